"""The ``ablate`` flow: map batches of units over Dask workers (on a GPU when one is declared), then assemble.

    from neuroscribe.flows._dask import with_dask_runner
    summary = with_dask_runner(ablate_flow, cfg.runner)(cfg)

Each task evaluates one part (``units_per_task`` ablations) over the whole dataset and writes its
counts; parts already in the store under the same content key are skipped, so a rerun resumes.
"""

from __future__ import annotations

from prefect import flow
from prefect.artifacts import create_markdown_artifact
from prefect.futures import as_completed

from neuroscribe.flows._dask import gpu_resources
from neuroscribe.flows._naming import config_run_name
from neuroscribe.flows._progress import FlowProgress
from neuroscribe.flows._run import flow_lease
from neuroscribe.flows.extract import summary_markdown
from neuroscribe.ablation import sweep
from neuroscribe.ablation.sweep import AblateConfig
from neuroscribe.tasks import ablate as t


@flow(name="ablate", flow_run_name=config_run_name("ablate"), log_prints=True)
def ablate_flow(config: AblateConfig) -> dict:
    with flow_lease(config):
        return _ablate(config)


def _ablate(config: AblateConfig) -> dict:
    plan = t.plan_ablation(config)
    pending = [i for i in range(len(plan.parts)) if not sweep.part_done(config, plan, i)]
    progress = FlowProgress(
        "ablate-parts", total=len(plan.parts), done=len(plan.parts) - len(pending), unit="part",
        description=f"ablation of {plan.layer} ({len(plan.ablations)} ablations, {plan.path} path) into {config.store}",
    )
    with gpu_resources():
        futures = [t.ablate_units.submit(config, plan, i) for i in pending]
    for future in as_completed(futures):
        future.result()  # a part that failed all its retries fails the flow; finished parts stay
        progress.advance(1)
    progress.close()
    summary = t.assemble_ablation(config, plan)
    shown = {k: v for k, v in summary.items() if k not in ("skipped_reasons", "charted", "statistics", "notes")}
    shown |= summary["statistics"]
    create_markdown_artifact(
        summary_markdown(f"Ablation of {plan.layer}", shown | {"resumed parts": len(plan.parts) - len(pending)}),
        key="ablate-summary",
        description=f"ablation summary for {config.store}",
    )
    print(f"ablated {summary['ablations']} unit sets of {plan.layer} over {summary['images']} images into {config.store}")
    for note in summary["notes"]:
        print(note)
    return summary
