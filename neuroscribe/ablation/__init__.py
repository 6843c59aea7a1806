"""Unit ablation: which classes depend on which units (per-class accuracy drop per ablated unit).

    summary = run_sweep(AblateConfig(layer="layer4", dataset=DatasetSpec(uri="/data/val"), store="runs/r50"))
    with ablate(loaded.model, info, units=(12, 559), mode="weights"):
        logits = loaded.model(x)

Modules: ``modes`` (what ablating means, and exact restore), ``fast`` (closed-form, suffix, hook
and naive evaluation paths), ``evaluate`` (per-class accuracy counts and the drop table),
``dataset`` (labelled images mapped onto the model's classes), ``report`` (explanations, chart,
HTML), ``sweep`` (config, resumable parts, assembled outputs).
"""

from neuroscribe.ablation.evaluate import Counts, class_accuracy, count_correct, counts_frame, drop_table
from neuroscribe.ablation.fast import FastPath, choose_path
from neuroscribe.ablation.modes import AblationMode, ablate, target_module, validate_units
from neuroscribe.ablation.sweep import AblateConfig, SweepPlan, assemble, plan_sweep, run_part, run_sweep

__all__ = [
    "AblateConfig",
    "AblationMode",
    "Counts",
    "FastPath",
    "SweepPlan",
    "ablate",
    "assemble",
    "choose_path",
    "class_accuracy",
    "count_correct",
    "counts_frame",
    "drop_table",
    "plan_sweep",
    "run_part",
    "run_sweep",
    "target_module",
    "validate_units",
]
