"""The ``extract`` flow: fan activation extraction out over dataset shards on Dask, then reduce.

    from neuroscribe.flows._dask import with_dask_runner
    summary = with_dask_runner(extract_flow, cfg.runner)(cfg)

Each task takes a batch of shards (``runner.shards_per_task``); finished shards are skipped on
rerun; tasks are annotated to need a GPU when the cluster has GPU workers.
"""

from __future__ import annotations

import time

from prefect import flow
from prefect.artifacts import create_markdown_artifact
from prefect.futures import as_completed

from neuroscribe.flows._dask import gpu_resources
from neuroscribe.flows._naming import config_run_name
from neuroscribe.flows._progress import FlowProgress
from neuroscribe.flows._run import flow_lease
from neuroscribe.config import ExtractConfig
from neuroscribe.tasks import extract as t


def _batches(items: list[int], size: int) -> list[list[int]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


def summary_markdown(title: str, fields: dict) -> str:
    rows = "\n".join(f"| {k} | {v} |" for k, v in fields.items())
    return f"## {title}\n\n| field | value |\n|---|---|\n{rows}\n"


def extraction_stage(config: ExtractConfig) -> dict:
    """Extraction tasks inside the calling flow (``extract`` or ``explain``): shards, reduce, summary."""
    began = time.perf_counter()
    plan = t.prepare_extraction(config)
    progress = FlowProgress(
        "extract-shards", total=plan.n_shards, done=plan.n_shards - len(plan.pending), unit="shard",
        description=f"activation extraction into {config.store}",
    )
    with gpu_resources():
        futures = {t.extract_shards.submit(config, batch): len(batch) for batch in _batches(plan.pending, config.runner.shards_per_task)}
    for future in as_completed(list(futures)):
        future.result()  # a task that failed all its retries fails the flow; finished shards stay
        progress.advance(futures[future])
    progress.close()
    with gpu_resources():
        reductions = [t.reduce_topk.submit(config, layer) for layer in plan.layers]
    for future in reductions:
        future.result()
    summary = t.finalize_extraction(config, time.perf_counter() - began)
    create_markdown_artifact(
        summary_markdown("Extraction", summary.model_dump() | {"resumed shards": plan.n_shards - len(plan.pending)}),
        key="extract-summary",
        description=f"extraction summary for {config.store}",
    )
    print(f"extracted {summary.ok} images ({summary.skipped} skipped) at {summary.images_per_second} img/s into {config.store}")
    return summary.model_dump()


@flow(name="extract", flow_run_name=config_run_name("extract"), log_prints=True)
def extract_flow(config: ExtractConfig) -> dict:
    with flow_lease(config):
        return extraction_stage(config)
