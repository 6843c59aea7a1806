"""Run a pipeline stage as Prefect tasks on the flow's Dask runner: the flows' only executor.

    summary = extract(config, PrefectExecutor())     # inside a flow: each stage's items become tasks

One task per item, GPU resources for ``gpu`` stages when the cluster has GPU workers, a progress
artifact and bar per stage of more than one item; results come back in item order.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any

from prefect.futures import as_completed

from neuroscribe.flows._dask import gpu_resources
from neuroscribe.flows._progress import flow_progress
from neuroscribe.stages import Stage
from neuroscribe.tasks.stage import stage_task


@dataclass(frozen=True)
class PrefectExecutor:
    def __call__(self, stage: Stage, config: Any, *inputs: Any) -> Any:
        plan = stage.planned(config, *inputs)
        task = stage_task(stage)
        total = len(plan.items) + plan.done
        with gpu_resources() if stage.gpu else contextlib.nullcontext():
            futures = [task.with_options(task_run_name=f"{stage.name}-{stage.label(item)}").submit(config, item) for item in plan.items]
        completed = as_completed(futures)
        if total > 1:
            completed = flow_progress(completed, stage.name, total=total, done=plan.done, unit=stage.unit)
        results: dict[Any, Any] = {}
        for future in completed:
            results[future.task_run_id] = future.result()  # a task that failed its retries fails the flow
        return stage.reduce(config, [results[future.task_run_id] for future in futures], *inputs)
