"""Unit ablation: which classes depend on which units (per-class accuracy drop per ablated unit).

    result = run_ablation(AblateConfig(layer="layer4", dataset=DatasetSpec(uri="/data/val"), store="runs/r50"))
    result.table, result.units, result.classes        # frames; run_sweep(cfg) returns result.summary
    class_units(result.table, "guacamole")           # the units a class depends on, ranked by drop
    with ablate(loaded.model, info, units=(12, 559), mode="weights"):
        logits = loaded.model(x)

Modules: ``modes`` (what ablating means, and exact restore), ``fast`` (closed-form, suffix, hook
and naive evaluation paths), ``evaluate`` (per-class accuracy counts and the drop table),
``dataset`` (labelled images mapped onto the model's classes), ``stats`` (confidence intervals),
``report`` (explanations, unit and class views, chart, HTML), ``sweep`` (config, resumable parts,
assembled outputs).

Modes (details in ``modes``): ``activation`` (default) forces the unit's output to exactly 0
with a hook; ``weights`` (the seed paper's definition) zeroes the weights and bias producing
the unit's map.  With a BatchNorm after the zeroed conv the channel is not exactly zero: it
becomes the BatchNorm's constant ``beta - gamma * mean / sqrt(var + eps)``, and a residual block
adds its shortcut back.  Both restore the model bit for bit, also after an exception.

Speed.  Sweeping all 2,048 units of ResNet50 ``layer4`` naively is 2,048 full passes over the
data.  Instead each image batch goes through the network once, and then (``fast``):
- ``closed``: for a layer followed only by per-channel modules (BatchNorm, activations), global
  average pooling and a linear head (``layer4``, ``avgpool``, the logits; EfficientNet's
  ``conv_head``, ``bn2``, ``bn2.act``), the logit change of ablating unit u is
  ``-W[:, u] * (mean(A_u) - c_u)``, an outer product per unit: a full-layer sweep costs about one
  forward pass, so it runs as one part.
- ``suffix``: otherwise, if the rest of the network is a chain of modules (checked on a probe
  batch; nested ``nn.Sequential`` heads unrolled, ViT class-token heads known), the layer's output
  is cached and only the rest runs, on masked copies stacked along the batch axis; a rest that
  starts with a 1x1 conv or a linear layer (EfficientNet's ``blocks.6`` -> ``conv_head``) starts
  from a rank-one update of that layer's cached output.
- ``hook``: any other model: the whole network on stacked copies (batching only).
A name for the same tensor as an enclosing module (``bn2.act``, ``blocks.6``) is evaluated from
that module.  Stacked copies are capped at ``fast.MEMORY_BUDGET`` bytes of activations per forward.
A sweep is cut into parts of ``units_per_task`` units (the Dask tasks, resumable); each part
decodes the data once and evaluates its units batch by batch, so the prefix runs once per part.
Every fast path is tested against the naive path (``tests/ablation/test_fast.py``), and the
plan checks the chosen one against the hook path on a probe batch before any work.

Measured (``benchmarks/ablate.py``, ResNet50 random init, ``layer4``, CPU, 2 shared cores,
32 ImageNet samples, batch 32; naive timed on 2 units and extrapolated): naive 23 s per unit
(13 h for the layer), ``closed`` 24 s for all 2,048 units (about 2,000x), ``suffix`` 117 s
(about 400x), ``hook`` 1x; counts identical to the naive ones.  ``benchmarks/ablate.py --sweep``
times ``--all`` end to end on EfficientNet-Lite0's demo layers.
"""

from neuroscribe.ablation.evaluate import (
    Counts,
    class_accuracy,
    count_correct,
    counts_frame,
    drop_table,
)
from neuroscribe.ablation.fast import FastPath, choose_path
from neuroscribe.ablation.modes import (
    AblationMode,
    ablate,
    target_module,
    validate_units,
)
from neuroscribe.ablation.report import class_units
from neuroscribe.ablation.sweep import (
    AblateConfig,
    AblationResult,
    SweepPlan,
    plan_sweep,
    run_ablation,
    run_part,
    run_sweep,
)

__all__ = [
    "AblateConfig",
    "AblationMode",
    "AblationResult",
    "Counts",
    "FastPath",
    "SweepPlan",
    "ablate",
    "choose_path",
    "class_accuracy",
    "class_units",
    "count_correct",
    "counts_frame",
    "drop_table",
    "plan_sweep",
    "run_ablation",
    "run_part",
    "run_sweep",
    "target_module",
    "validate_units",
]
