"""The ``explain`` flow: the whole method, each stage cached by content.

    from neuroscribe.flows._run import run_flow
    result = run_flow(explain_flow, cfg)    # ExplainConfig

extract (shards on Dask) -> vocabulary (LLM batches or built-in sets) -> patches (unit blocks)
-> embeddings (unit blocks, on GPU workers when present) -> scoring and tables per layer ->
galleries -> artifacts (a table of layer summaries, a markdown summary linking tables and galleries).
"""

from __future__ import annotations

import time

from prefect import flow
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.futures import as_completed

from neuroscribe.flows._dask import gpu_resources
from neuroscribe.flows._naming import config_run_name
from neuroscribe.flows._progress import FlowProgress
from neuroscribe.flows._run import flow_lease
from neuroscribe.flows.extract import extraction_stage
from neuroscribe.flows.vocabulary import vocabulary_stage
from neuroscribe import explanation
from neuroscribe.explanation import ExplainConfig
from neuroscribe.tasks import explain as t


def _map_unit_blocks(task, config: ExplainConfig, key: str, description: str, gpu: bool = False) -> None:
    blocks = [(layer, b) for layer in config.extract.layers for b in explanation.unit_blocks(explanation.n_units(config, layer), config.units_per_task)]
    progress = FlowProgress(key, total=len(blocks), unit="block", description=description)
    if gpu:
        with gpu_resources():
            futures = [task.submit(config, layer, units) for layer, units in blocks]
    else:
        futures = [task.submit(config, layer, units) for layer, units in blocks]
    for future in as_completed(futures):
        future.result()
        progress.advance(1)
    progress.close()


def explain_stages(config: ExplainConfig) -> dict:
    began = time.perf_counter()
    extraction = extraction_stage(config.extract)
    explanation.save_config(config)  # after extraction: --overwrite may have cleared the store
    vocabulary_uri = config.vocabulary_uri or vocabulary_stage(config.vocabulary_config()).uri
    for layer in config.extract.layers:
        t.prepare_patches_task(config, layer)
    _map_unit_blocks(t.cut_patches_task, config, "explain-patches", "cutting top-activating patches")
    _map_unit_blocks(t.embed_units_task, config, "explain-embeddings", f"embedding patches with {config.backend.kind}", gpu=True)
    summaries = [f.result() for f in [t.score_layer_task.submit(config, layer, vocabulary_uri) for layer in config.extract.layers]]
    galleries = {layer: t.render_gallery_task.submit(config, layer) for layer in config.extract.layers}
    galleries = {layer: future.result() for layer, future in galleries.items()}
    create_table_artifact(
        [{k: v for k, v in s.items() if k != "table"} for s in summaries], key="explain-layers",
        description="explained units, most frequent concepts and mean score per layer",
    )
    lines = [f"## Explanations of {config.extract.model.name} on {config.extract.dataset.uri}", "",
             f"{extraction['ok']} images, vocabulary `{vocabulary_uri}`, backend `{config.backend.kind}`, rule `{config.rule.name}`.", "",
             "| layer | units | explained | mean score | table | gallery |", "|---|---|---|---|---|---|"]
    for s in summaries:
        lines.append(f"| {s['layer']} | {s['units']} | {s['explained']} | {s['mean_score']} | [{s['table']}]({s['table']}) | [{galleries[s['layer']]}]({galleries[s['layer']]}) |")
    lines += ["", f"Finished in {time.perf_counter() - began:.1f} s."]
    create_markdown_artifact("\n".join(lines), key="explain-summary", description=f"explanation run {config.extract.store}")
    print("\n".join(f"{s['layer']}: {s['explained']}/{s['units']} units explained, table {s['table']}, gallery {galleries[s['layer']]}" for s in summaries))
    return {"store": config.extract.store, "vocabulary": vocabulary_uri, "layers": summaries, "galleries": galleries, "extraction": extraction}


@flow(name="explain", flow_run_name=config_run_name("explain"), log_prints=True)
def explain_flow(config: ExplainConfig) -> dict:
    with flow_lease(config):
        return explain_stages(config)
