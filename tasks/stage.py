"""The one Prefect task every pipeline stage runs: ``run(config, item)`` of a ``neuroscribe.stages.Stage``.

    future = run_item.with_options(name=stage.name).submit(stage.run, config, item)

It takes the config and one small item (shard ids, a layer, a block of units) and returns the stage
function's small summary; outputs go to the store.  Prefect caches nothing: stages skip work whose
content-keyed output is already in the store, so a rerun resumes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE


@task(name="stage-item", cache_policy=NO_CACHE)
def run_item(run: Callable[[Any, Any], Any], config: Any, item: Any) -> Any:
    return run(config, item)
