"""Prefect tasks over ``neuroscribe.ablation.sweep``: they pass the config, the plan and part numbers, never arrays."""

from __future__ import annotations

from prefect import task

from neuroscribe.ablation import sweep
from neuroscribe.ablation.sweep import AblateConfig, SweepPlan


@task(name="plan-ablation")
def plan_ablation(config: AblateConfig) -> SweepPlan:
    return sweep.plan_sweep(config)


@task(name="ablate-units", retries=2, retry_delay_seconds=2, task_run_name="ablate-units-part-{part}")
def ablate_units(config: AblateConfig, plan: SweepPlan, part: int) -> dict:
    return sweep.run_part(config, plan, part)


@task(name="assemble-ablation")
def assemble_ablation(config: AblateConfig, plan: SweepPlan) -> dict:
    return sweep.assemble(config, plan)
