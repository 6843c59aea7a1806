"""The ``explain`` flow: the whole method (``neuroscribe.explanation.explain``) as Prefect tasks on Dask.

    from neuroscribe.flows._run import run_flow
    result = run_flow(explain_flow, cfg)    # ExplainConfig

extract (shards) -> vocabulary (LLM batches or built-in sets) -> patches (unit blocks) -> embeddings
(unit blocks, on GPU workers when present) -> scoring and tables per layer -> galleries; then two
artifacts: a table of layer summaries and a markdown summary linking tables and galleries.
"""

from __future__ import annotations

import time

from prefect import flow
from prefect.artifacts import create_markdown_artifact, create_table_artifact

from neuroscribe.explanation import ExplainConfig, explain
from neuroscribe.flows._executor import PrefectExecutor
from neuroscribe.flows._naming import config_run_name
from neuroscribe.flows._run import flow_lease


@flow(name="explain", flow_run_name=config_run_name("explain"), log_prints=True)
def explain_flow(config: ExplainConfig) -> dict:
    began = time.perf_counter()
    with flow_lease(config):
        result = explain(config, PrefectExecutor())
    summaries, galleries = result["layers"], result["galleries"]
    create_table_artifact(
        [{k: v for k, v in s.items() if k != "table"} for s in summaries], key="explain-layers",
        description="explained units, most frequent concepts and mean score per layer",
    )
    lines = [f"## Explanations of {config.extract.model.name} on {config.extract.dataset.uri}", "",
             f"{result['extraction']['ok']} images, vocabulary `{result['vocabulary']}`, backend `{config.backend.kind}`, rule `{config.rule.name}`.", "",
             "| layer | units | explained | mean score | table | gallery |", "|---|---|---|---|---|---|"]
    for s in summaries:
        lines.append(f"| {s['layer']} | {s['units']} | {s['explained']} | {s['mean_score']} | [{s['table']}]({s['table']}) | [{galleries[s['layer']]}]({galleries[s['layer']]}) |")
    lines += ["", f"Finished in {time.perf_counter() - began:.1f} s."]
    create_markdown_artifact("\n".join(lines), key="explain-summary", description=f"explanation run {config.extract.store}")
    print("\n".join(f"{s['layer']}: {s['explained']}/{s['units']} units explained, table {s['table']}, gallery {galleries[s['layer']]}" for s in summaries))
    return result
