"""The ``evaluate`` flow: the evaluation pipeline (``neuroscribe.evaluation.run_evaluation``) as Prefect tasks.

    from neuroscribe.flows._run import run_flow
    result = run_flow(evaluate_flow, EvaluateConfig(store="runs/r50", compare=("rules", "k")))

Runs ``neuroscribe.evaluation.evaluate``'s stages as tasks (embeddings on GPU workers when present),
then adds a markdown artifact (the report) and a table artifact (headline numbers per layer).
"""

from __future__ import annotations

import posixpath

from prefect import flow
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.runtime import flow_run

from neuroscribe.evaluation.config import EvaluateConfig
from neuroscribe.evaluation.evaluate import run_evaluation
from neuroscribe.flows._executor import PrefectExecutor
from neuroscribe.flows._naming import _get


def _run_name() -> str:
    cfg = flow_run.parameters.get("config", {})
    store = posixpath.basename(str(_get(cfg, "store") or "").rstrip("/")) or "run"
    return "-".join(p for p in ("evaluate", store, "+".join(_get(cfg, "layers") or ())) if p)


@flow(name="evaluate", flow_run_name=_run_name, log_prints=True)
def evaluate_flow(config: EvaluateConfig) -> dict:
    report = run_evaluation(config, PrefectExecutor())
    create_markdown_artifact(report["markdown_text"], key="evaluation", description=f"evaluation of {config.store}")
    create_table_artifact(report["headline"], key="evaluation-headline", description="headline numbers per layer")
    print(f"evaluation written to {report['markdown']} (and .json, .png)")
    return {k: v for k, v in report.items() if k != "markdown_text"}
