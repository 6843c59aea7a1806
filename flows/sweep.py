"""The ``sweep`` flow: one subflow per grid combination, each with its own store; finished ones are skipped.

    summary = sweep_flow(SweepConfig(flow="explain", root="s3://bucket/sweeps/v1", models=[...], ...))

Each combination runs the stage's flow as a subflow on the Dask runner of ``config.runner`` (an
existing scheduler with ``runner.dask_address``).  A combination whose store already carries its
content key (``neuroscribe.sweep.combination_done``) is skipped; one that fails is reported and,
with ``continue_on_error``, the others still run; the sweep fails at the end if any did.
"""

from __future__ import annotations

import math
import pkgutil

from prefect import flow
from prefect.artifacts import create_markdown_artifact
from prefect.runtime import flow_run

from neuroscribe import sweep
from neuroscribe.config import ModelSpec
from neuroscribe.errors import NeuroscribeError
from neuroscribe.flows._dask import with_dask_runner
from neuroscribe.flows._naming import _get
from neuroscribe.flows._progress import flow_progress
from neuroscribe.flows._run import flow_lease
from neuroscribe.sweep import SweepConfig

STAGE_FLOWS = {"extract": "neuroscribe.flows.extract:extract_flow", "explain": "neuroscribe.flows.explain:explain_flow"}


def sweep_run_name() -> str:
    cfg = flow_run.parameters.get("config", {})
    models = [ModelSpec.model_validate(m) if isinstance(m, dict) else m for m in _get(cfg, "models") or []]
    runs = math.prod(len(_get(cfg, grid) or []) or 1 for grid in ("models", "datasets", "layers", "vocabularies"))
    return f"sweep-{_get(cfg, 'flow') or 'explain'}-{'+'.join(sweep.model_slug(m) for m in models)}-{runs}runs"


def _run_combination(combo, target, opts: dict) -> str:
    if sweep.combination_done(combo, opts):
        print(f"{combo.name}: already done (key {combo.key}), skipped")
        return "skipped (done)"
    state = with_dask_runner(target, getattr(combo.config, "extract", combo.config).runner)(combo.config, return_state=True)
    if not state.is_completed():
        return f"failed: {state.message or state.name}"
    sweep.mark_done(combo, state.result(), opts)  # the stage flows return their summary as a dict
    return "done"


@flow(name="sweep", flow_run_name=sweep_run_name, log_prints=True)
def sweep_flow(config: SweepConfig) -> dict:
    combos = sweep.plan_sweep(config)
    target = pkgutil.resolve_name(STAGE_FLOWS[config.flow])  # imported only when a sweep runs that stage
    rows: list[dict] = []
    description = f"{config.flow} sweep into {config.root}"
    for combo in flow_progress(combos, "sweep-combinations", total=len(combos), unit="run", description=description):
        try:
            with flow_lease(combo.config):  # held across the check, the run and the done mark
                status = _run_combination(combo, target, config.store_options)
        except NeuroscribeError as exc:  # another run writes this combination's store
            status = f"failed: {exc}"
        rows.append({"name": combo.name, "store": combo.store, "key": combo.key, "status": status})
        if status.startswith("failed"):
            print(f"{combo.name}: {status}")
            if not config.continue_on_error:
                break
    failed = [r["name"] for r in rows if r["status"].startswith("failed")]
    create_markdown_artifact(
        f"## {description}\n\n{sweep.sweep_table(rows)}\n",
        key="sweep-summary",
        description=f"{len(combos)} combinations, {len(failed)} failed",
    )
    if failed or len(rows) < len(combos):
        raise RuntimeError(f"sweep combinations failed: {failed}; rerun the sweep to retry them (finished ones are skipped)")
    return {"root": config.root, "combinations": rows}
