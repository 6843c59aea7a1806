"""Prefect tasks of the explain flow: thin wrappers over ``neuroscribe.patches``, ``neuroscribe.explanation``
and ``neuroscribe.gallery``. They take the config and unit lists and return small summaries."""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NO_CACHE

from neuroscribe import explanation
from neuroscribe.explanation import ExplainConfig
from neuroscribe.gallery import render_gallery


@task(name="prepare-patches", cache_policy=NO_CACHE, task_run_name="prepare-patches-{layer}")
def prepare_patches_task(config: ExplainConfig, layer: str) -> str:
    return explanation.prepare_layer_patches(config, layer)


@task(name="cut-patches", retries=2, retry_delay_seconds=2, cache_policy=NO_CACHE, task_run_name="cut-patches-{layer}-{units[0]}")
def cut_patches_task(config: ExplainConfig, layer: str, units: list[int]) -> dict:
    return explanation.cut_patches(config, layer, units)


@task(name="embed-units", retries=2, retry_delay_seconds=2, cache_policy=NO_CACHE, task_run_name="embed-units-{layer}-{units[0]}")
def embed_units_task(config: ExplainConfig, layer: str, units: list[int]) -> dict:
    return explanation.embed_unit_block(config, layer, units)


@task(name="score-layer", retries=1, cache_policy=NO_CACHE, task_run_name="score-layer-{layer}")
def score_layer_task(config: ExplainConfig, layer: str, vocabulary_uri: str) -> dict:
    frame = explanation.score_layer(config, layer, vocabulary_uri)
    return explanation.layer_summary(frame) | {"table": f"{config.extract.store.rstrip('/')}/explanations/{layer}.parquet"}


@task(name="render-gallery", cache_policy=NO_CACHE, task_run_name="render-gallery-{layer}")
def render_gallery_task(config: ExplainConfig, layer: str) -> str:
    from neuroscribe import store as st

    frame = st.read_parquet(config.extract.store, f"explanations/{layer}.parquet", config.extract.store_options)
    return render_gallery(config.extract.store, layer, frame, config.extract.store_options, config.gallery_patches)
