"""The ``ablate`` flow: the ablation pipeline (``neuroscribe.ablation.sweep.run_sweep``) as Prefect tasks on Dask.

    from neuroscribe.flows._run import run_flow
    summary = run_flow(ablate_flow, cfg)      # AblateConfig

Each task evaluates one part (a share of the ablations) over the whole dataset and writes its
counts; parts already in the store under the same content key are skipped, so a rerun resumes.
"""

from __future__ import annotations

from prefect import flow
from prefect.artifacts import create_markdown_artifact

from neuroscribe.ablation.sweep import AblateConfig, run_sweep
from neuroscribe.flows._executor import PrefectExecutor
from neuroscribe.flows._naming import config_run_name
from neuroscribe.flows._run import flow_lease
from neuroscribe.flows.extract import summary_markdown


@flow(name="ablate", flow_run_name=config_run_name("ablate"), log_prints=True)
def ablate_flow(config: AblateConfig) -> dict:
    with flow_lease(config):
        summary = run_sweep(config, PrefectExecutor())
    shown = {k: v for k, v in summary.items() if k not in ("skipped_reasons", "charted", "statistics", "notes")}
    create_markdown_artifact(
        summary_markdown(f"Ablation of {summary['layer']}", shown | summary["statistics"]),
        key="ablate-summary", description=f"ablation summary for {config.store}",
    )
    print(f"ablated {summary['ablations']} unit sets of {summary['layer']} over {summary['images']} images into {config.store}")
    for note in summary["notes"]:
        print(note)
    return summary
