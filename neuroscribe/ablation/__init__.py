"""Unit ablation: which classes depend on which units (per-class accuracy drop per ablated unit).

    result = run_ablation(AblateConfig(layer="layer4", dataset=DatasetSpec(uri="/data/val"), store="runs/r50"))
    result.table, result.units, result.classes        # frames; run_sweep(cfg) returns result.summary
    class_units(result.table, "guacamole")           # the units a class depends on, ranked by drop
    with ablate(loaded.model, info, units=(12, 559), mode="weights"):
        logits = loaded.model(x)

Modules: ``modes`` (what ablating means), ``fast`` (evaluation paths), ``accuracy`` (counts, drop
table), ``dataset`` (labelled images on the model's classes), ``stats`` (confidence intervals),
``report`` (views, chart, HTML), ``pipeline`` (config, resumable parts, assembled outputs).

Speed.  Sweeping all 2,048 units of ResNet50 ``layer4`` naively is 2,048 passes over the data;
``fast`` evaluates the ablations from one forward per image batch, and a sweep is cut into resumable
parts (the Dask tasks) that each decode the data once.  Measured (``benchmarks/ablate.py``, ResNet50
random init, ``layer4``, CPU, 2 shared cores, 32 ImageNet samples, batch 32; naive timed on 2 units
and extrapolated): naive 23 s per unit (13 h for the layer), ``closed`` 24 s for all 2,048 units
(about 2,000x), ``suffix`` 117 s (about 400x), ``hook`` 1x; counts identical to the naive ones.
``benchmarks/ablate.py --sweep`` times ``--all`` end to end on EfficientNet-Lite0's demo layers.
"""

from neuroscribe.ablation.accuracy import Counts, class_accuracy, count_correct, counts_frame, drop_table
from neuroscribe.ablation.fast import FastPath, choose_path
from neuroscribe.ablation.modes import AblationMode, ablate, target_module, validate_units
from neuroscribe.ablation.report import class_units
from neuroscribe.ablation.pipeline import (
    AblateConfig, AblationResult, SweepPlan, plan_sweep, run_ablation, run_part, run_sweep,
)

__all__ = [
    "AblateConfig", "AblationMode", "AblationResult", "Counts", "FastPath", "SweepPlan", "ablate",
    "choose_path", "class_accuracy", "class_units", "count_correct", "counts_frame", "drop_table",
    "plan_sweep", "run_ablation", "run_part", "run_sweep", "target_module", "validate_units",
]
