"""Prefect tasks of the evaluate flow: thin wrappers over ``neuroscribe.evaluation.evaluate``.

They take the config and a layer name and return small summaries; results go to ``<store>/evaluation/``.
Unit blocks still missing embeddings are mapped with ``tasks.explain.embed_units_task``.
"""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NO_CACHE

from neuroscribe.evaluation import evaluate as ev
from neuroscribe.evaluation.config import EvaluateConfig
from neuroscribe.evaluation.report import write_report


@task(name="embed-probe-images", retries=2, retry_delay_seconds=2, cache_policy=NO_CACHE)
def embed_probe_task(config: EvaluateConfig) -> dict:
    return ev.embed_probe(config)


@task(name="evaluate-layer", retries=1, cache_policy=NO_CACHE, task_run_name="evaluate-layer-{layer}")
def evaluate_layer_task(config: EvaluateConfig, layer: str) -> dict:
    return ev.evaluate_layer(config, layer)


@task(name="compare-layer", retries=1, cache_policy=NO_CACHE, task_run_name="compare-layer-{layer}")
def compare_task(config: EvaluateConfig, layer: str) -> dict:
    return ev.compare_step(config, layer)


@task(name="evaluation-report", cache_policy=NO_CACHE)
def report_task(config: EvaluateConfig, layers: list[str]) -> dict:
    return write_report(config, layers)
