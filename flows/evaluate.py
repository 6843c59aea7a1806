"""The ``evaluate`` flow: score an explained run against ground truth and label-free checks, and compare methods.

    from neuroscribe.flows._run import run_flow
    result = run_flow(evaluate_flow, EvaluateConfig(store="runs/r50", compare=("rules", "k")))

missing embeddings (unit blocks, GPU workers when present) -> probe-image embeddings (GPU) ->
per layer: metrics, AUC, stability and the comparison table (in parallel) -> evaluation.json/.md/.png
-> a markdown artifact (the report) and a table artifact (headline numbers per layer).
"""

from __future__ import annotations

import posixpath

from prefect import flow
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.futures import as_completed
from prefect.runtime import flow_run

from neuroscribe.flows._dask import gpu_resources
from neuroscribe.flows._progress import FlowProgress
from neuroscribe.evaluation import evaluate as ev
from neuroscribe.evaluation.config import (
    EvaluateConfig,
    evaluated_layers,
    resolve_explain_config,
)
from neuroscribe.tasks import evaluate as t
from neuroscribe.tasks.explain import embed_units_task


def _run_name() -> str:
    cfg = flow_run.parameters.get("config", {})
    get = cfg.get if isinstance(cfg, dict) else lambda k, d=None: getattr(cfg, k, d)
    store = posixpath.basename(str(get("store", "") or "").rstrip("/")) or "run"
    return "-".join(p for p in ("evaluate", store, "+".join(get("layers", ()) or ())) if p)


@flow(name="evaluate", flow_run_name=_run_name, log_prints=True)
def evaluate_flow(config: EvaluateConfig) -> dict:
    layers = evaluated_layers(config, resolve_explain_config(config))
    jobs = ev.embedding_jobs(config)
    progress = FlowProgress(
        "evaluate-steps", total=len(jobs) + ev.total_steps(config, layers), unit="step",
        description=f"evaluation of {', '.join(layers)} in {config.store}",
    )
    with gpu_resources():
        embedded = [embed_units_task.submit(c, layer, block) for c, layer, block in jobs]
    for future in as_completed(embedded):
        future.result()
        progress.advance(1)
    with gpu_resources():
        t.embed_probe_task.submit(config).result()
    progress.advance(1)
    futures = [t.evaluate_layer_task.submit(config, layer) for layer in layers]
    if config.compare:
        futures += [t.compare_task.submit(config, layer) for layer in layers]
    for future in as_completed(futures):
        future.result()
        progress.advance(1)
    progress.close()
    report = t.report_task(config, layers)
    create_markdown_artifact(report["markdown_text"], key="evaluation", description=f"evaluation of {config.store}")
    create_table_artifact(report["headline"], key="evaluation-headline", description="headline numbers per layer")
    print(f"evaluation written to {report['markdown']} (and .json, .png)")
    return {k: v for k, v in report.items() if k != "markdown_text"}
