"""Unit ablation: which classes depend on which units (per-class accuracy drop per ablated unit).

    result = run_ablation(AblateConfig(layer="layer4", dataset=DatasetSpec(uri="/data/val"), store="runs/r50"))
    result.table, result.units, result.classes        # frames; run_sweep(cfg) returns result.summary
    class_units(result.table, "guacamole")           # the units a class depends on, ranked by drop
    with ablate(loaded.model, info, units=(12, 559), mode="weights"):
        logits = loaded.model(x)

Modules: ``modes`` (what ablating means: ``activation``, the default, or ``weights``; exact
restore), ``fast`` (closed-form, suffix, hook and naive evaluation paths), ``accuracy``
(per-class accuracy counts and the drop table), ``dataset`` (labelled images mapped onto the
model's classes), ``stats`` (confidence intervals), ``report`` (explanations, unit and class
views, chart, HTML), ``pipeline`` (config, resumable parts, assembled outputs).

Speed.  Sweeping all 2,048 units of ResNet50 ``layer4`` naively is 2,048 passes over the data.
Instead each image batch goes through the network once and ``fast`` evaluates the ablations from
there (in closed form, from the layer's cached output, or with hooks on stacked copies), each path
checked against the hook path on a probe batch.  A sweep is cut into parts of ``units_per_task``
units (the Dask tasks, resumable); each part decodes the data once.

Measured (``benchmarks/ablate.py``, ResNet50 random init, ``layer4``, CPU, 2 shared cores,
32 ImageNet samples, batch 32; naive timed on 2 units and extrapolated): naive 23 s per unit
(13 h for the layer), ``closed`` 24 s for all 2,048 units (about 2,000x), ``suffix`` 117 s
(about 400x), ``hook`` 1x; counts identical to the naive ones.  ``benchmarks/ablate.py --sweep``
times ``--all`` end to end on EfficientNet-Lite0's demo layers.
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
