"""Dask plumbing shared by the flows: which task runner, and whether GPU work can be annotated.

    runner_flow = with_dask_runner(extract_flow, cfg.runner)   # LocalCluster or existing scheduler
    with gpu_resources():                                       # inside a flow: tasks ask for a GPU
        future = extract_task.submit(cfg, shard_ids)           # ... only if a worker declares one
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import dask
from prefect.context import FlowRunContext
from prefect_dask import DaskTaskRunner

from neuroscribe.config import RunnerSpec


def with_dask_runner(flow_obj, runner: RunnerSpec):
    """``flow_obj`` on ``runner``'s scheduler, or on a LocalCluster that declares this host's GPUs as resources."""
    if runner.dask_address:
        task_runner = DaskTaskRunner(address=runner.dask_address)
    else:
        cluster_kwargs = {"n_workers": runner.n_workers, "threads_per_worker": runner.threads_per_worker,
                          "processes": True, "dashboard_address": ":0"}
        if runner.device != "cpu" and (gpus := _local_gpu_count()):
            cluster_kwargs["resources"] = {"GPU": gpus}
        task_runner = DaskTaskRunner(cluster_class="distributed.LocalCluster", cluster_kwargs=cluster_kwargs)
    return flow_obj.with_options(task_runner=task_runner)


def _local_gpu_count() -> int:
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


@contextlib.contextmanager
def gpu_resources() -> Iterator[bool]:
    """Annotate submissions with ``resources={"GPU": 1}`` when the flow's Dask cluster has workers declaring
    a ``GPU`` resource (else the annotation would leave tasks unschedulable); yields whether it did."""
    task_runner, workers = getattr(FlowRunContext.get(), "task_runner", None), {}
    if isinstance(task_runner, DaskTaskRunner):
        # prefect-dask connects its client on first use (the first submit): connect now, or a flow that
        # asks before its first submission would never see the GPU workers and never annotate
        workers = task_runner.client.scheduler_info(n_workers=-1).get("workers", {})
    has_gpu = any(w.get("resources", {}).get("GPU", 0) > 0 for w in workers.values())
    with dask.annotate(resources={"GPU": 1}) if has_gpu else contextlib.nullcontext():
        yield has_gpu
