"""A pipeline stage's ``run(config, item)`` as a Prefect task: the one task wrapper every flow uses.

    task = stage_task(EMBEDDINGS)                  # named after the stage; Dask shows run's name
    future = task.submit(config, ("layer4", [0, 1, 2]))

Prefect caches nothing: stages skip work whose content-keyed output is in the store, so a rerun resumes.
"""

from __future__ import annotations

from prefect import Task, task
from prefect.cache_policies import NO_CACHE

from neuroscribe.stages import Stage


def stage_task(stage: Stage) -> Task:
    return task(stage.run, name=stage.name, retries=stage.retries, retry_delay_seconds=2 if stage.retries else 0, cache_policy=NO_CACHE)
