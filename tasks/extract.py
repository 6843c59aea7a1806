"""Prefect tasks over ``neuroscribe.extraction``: they pass the config and the store URI, never arrays."""

from __future__ import annotations

from prefect import task

from neuroscribe import extraction
from neuroscribe.config import ExtractConfig


@task(name="prepare-extraction")
def prepare_extraction(config: ExtractConfig) -> extraction.ExtractionPlan:
    return extraction.prepare_extraction(config)


@task(name="extract-shards", retries=2, retry_delay_seconds=2, task_run_name="extract-shards-{shard_ids[0]}")
def extract_shards(config: ExtractConfig, shard_ids: list[int]) -> list[dict]:
    records = extraction.extract_shards(config, shard_ids)
    # markers carry the per-image skip reasons; the flow only needs counts
    return [{k: v for k, v in r.items() if k != "skipped"} | {"n_skipped": len(r.get("skipped", []))} for r in records]


@task(name="reduce-topk", retries=2, retry_delay_seconds=2, task_run_name="reduce-topk-{layer}")
def reduce_topk(config: ExtractConfig, layer: str) -> dict:
    return extraction.reduce_topk(config, layer)


@task(name="finalize-extraction")
def finalize_extraction(config: ExtractConfig, wall_seconds: float) -> extraction.ExtractionSummary:
    return extraction.finalize_extraction(config, wall_seconds)
