"""The ``extract`` flow: the extraction pipeline (``neuroscribe.extraction.extract``) as Prefect tasks on Dask.

    from neuroscribe.flows._run import run_flow
    summary = run_flow(extract_flow, cfg)      # ExtractConfig

Shards are mapped in batches of ``runner.shards_per_task``; finished shards are skipped on rerun;
tasks ask for a GPU when the cluster has GPU workers.
"""

from __future__ import annotations

from prefect import flow
from prefect.artifacts import create_markdown_artifact

from neuroscribe.config import ExtractConfig
from neuroscribe.extraction import extract
from neuroscribe.flows._executor import PrefectExecutor
from neuroscribe.flows._naming import config_run_name
from neuroscribe.flows._run import flow_lease


def summary_markdown(title: str, fields: dict) -> str:
    rows = "\n".join(f"| {k.replace('_', ' ')} | {v} |" for k, v in fields.items())
    return f"## {title}\n\n| field | value |\n|---|---|\n{rows}\n"


@flow(name="extract", flow_run_name=config_run_name("extract"), log_prints=True)
def extract_flow(config: ExtractConfig) -> dict:
    with flow_lease(config):
        summary = extract(config, PrefectExecutor())
    create_markdown_artifact(summary_markdown("Extraction", summary.model_dump()), key="extract-summary", description=f"extraction summary for {config.store}")
    print(f"extracted {summary.ok} images ({summary.skipped} skipped) at {summary.images_per_second} img/s into {config.store}")
    return summary.model_dump()
