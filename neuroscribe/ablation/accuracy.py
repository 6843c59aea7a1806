"""Per-class top-1 accuracy, at baseline and under each ablation, and the drop table built from it.

    counts = count_correct(path, batches, ablations=[(12,), (559,), (12, 559)], n_units=2048)
    frame = counts_frame(counts)              # units, class, support, baseline_correct, ablated_correct
    table = drop_table(frame, class_names)    # + unit, class_name, baseline_acc, ablated_acc, drop, ...
    per_class = class_accuracy(counts.support, counts.baseline_correct, class_names)

Accuracies are fractions in [0, 1].  ``drop = baseline_acc - ablated_acc`` (accuracy points;
negative when the ablation helps) and ``relative_drop = drop / baseline_acc`` (the seed paper's
"drops the class by 84%"; NaN when the baseline is 0).  Each has a 95% interval (see
``neuroscribe.ablation.stats``: Wilson for the accuracies, Newcombe's paired interval for the
drop, from the images ``lost`` and ``gained`` by the ablation); ``resolved`` says the drop's
interval excludes 0, i.e. the class has enough images to tell this drop from chance.  A class with no image in the dataset has
no accuracy: ``class_accuracy`` marks it ``present=False`` with NaN, and the drop table leaves it
out rather than report 0%.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from neuroscribe.ablation.modes import units_mask
from neuroscribe.ablation.stats import paired_drop_interval, wilson_interval


@dataclass
class Counts:
    ablations: list[tuple[int, ...]]
    support: np.ndarray           # [classes] images per class
    baseline_correct: np.ndarray  # [classes] correct top-1 without ablation
    ablated_correct: np.ndarray   # [ablations, classes] correct top-1 under each ablation
    lost: np.ndarray              # [ablations, classes] correct at baseline, wrong under the ablation
    images: int


def units_label(units: Sequence[int]) -> str:
    """``"559"`` for one unit, ``"12+559"`` for a set ablated together."""
    return "+".join(str(u) for u in units)


def count_correct(
    path,
    batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
    ablations: Sequence[Sequence[int]],
    n_units: int,
    units_per_pass: int = 64,
    on_progress: Callable[[int], None] | None = None,
    lock: AbstractContextManager | None = None,
) -> Counts:
    """Correct top-1 counts per class for the baseline and each ablation (a ``neuroscribe.ablation.fast`` path).

    Each image batch is prepared once and then evaluated ``units_per_pass`` ablations at a time;
    ``on_progress`` gets the number of images done after each batch.  ``lock`` (the model's, when
    other threads share it) is held while a batch is evaluated, not while the next one decodes.
    """
    device = next(path.model.parameters()).device
    ablations = [tuple(a) for a in ablations]
    masks = torch.stack([units_mask(a, n_units, device) for a in ablations])
    support = baseline = ablated = lost = None
    images = 0
    for x, y in batches:
        with lock or nullcontext(), torch.no_grad():
            x, y = x.to(device, non_blocking=True), y.to(device)
            state = path.prepare(x)
            classes = state.logits.shape[-1]
            if support is None:
                support, baseline = torch.zeros(2, classes, dtype=torch.long, device=device)
                ablated, lost = torch.zeros(2, len(ablations) * classes, dtype=torch.long, device=device)
            hit = state.logits.argmax(-1) == y
            support += torch.bincount(y, minlength=classes)
            baseline += torch.bincount(y[hit], minlength=classes)
            for start in range(0, len(ablations), units_per_pass):
                logits = path.ablated_logits(state, masks[start : start + units_per_pass])
                correct = logits.argmax(-1) == y.unsqueeze(0)
                for counter, where in ((ablated, correct), (lost, hit.unsqueeze(0) & ~correct)):
                    which, sample = where.nonzero(as_tuple=True)
                    counter.index_add_(0, (which + start) * classes + y[sample], torch.ones_like(which))
        images += int(y.numel())
        if on_progress is not None:
            on_progress(images)
    if support is None:
        raise ValueError("no image could be evaluated")
    return Counts(
        ablations=ablations,
        support=support.cpu().numpy(),
        baseline_correct=baseline.cpu().numpy(),
        ablated_correct=ablated.reshape(len(ablations), -1).cpu().numpy(),
        lost=lost.reshape(len(ablations), -1).cpu().numpy(),
        images=images,
    )


def counts_frame(counts: Counts) -> pd.DataFrame:
    """Long table of counts, one row per ablation and class present in the data (what parts store)."""
    present = np.flatnonzero(counts.support > 0)
    n = len(counts.ablations)
    return pd.DataFrame(
        {
            "units": np.repeat([units_label(a) for a in counts.ablations], len(present)),
            "class": np.tile(present, n).astype(np.int64),
            "support": np.tile(counts.support[present], n).astype(np.int64),
            "baseline_correct": np.tile(counts.baseline_correct[present], n).astype(np.int64),
            "ablated_correct": counts.ablated_correct[:, present].reshape(-1).astype(np.int64),
            "lost": counts.lost[:, present].reshape(-1).astype(np.int64),
        }
    )


def class_accuracy(support: np.ndarray, correct: np.ndarray, class_names: Sequence[str]) -> pd.DataFrame:
    """Every model class: support, correct, accuracy with its Wilson interval (NaN if no image), present."""
    support = np.asarray(support)
    low, high = wilson_interval(correct, support)
    return pd.DataFrame(
        {
            "class": np.arange(len(support), dtype=np.int64),
            "class_name": list(class_names)[: len(support)],
            "support": support.astype(np.int64),
            "correct": np.asarray(correct, dtype=np.int64),
            "accuracy": np.where(support > 0, np.asarray(correct) / np.maximum(support, 1), np.nan),
            "accuracy_low": low,
            "accuracy_high": high,
            "present": support > 0,
        }
    )


def drop_table(frame: pd.DataFrame, class_names: Sequence[str]) -> pd.DataFrame:
    """The ablation table from a counts frame: one row per ablation and present class.

    Columns: unit (-1 for a set), units, class, class_name, support, lost, gained, baseline_acc
    [_low, _high], ablated_acc [_low, _high], drop [_low, _high], resolved, relative_drop, rank
    (1 = the class this ablation hurts most; ties broken by the drop's lower bound, then class).
    """
    out = pd.DataFrame(
        {
            "unit": frame["units"].map(lambda s: int(s) if "+" not in s else -1).astype(np.int64),
            "units": frame["units"].astype(str),
            "class": frame["class"].astype(np.int64),
            "class_name": frame["class"].map(lambda c: class_names[int(c)]),
            "support": frame["support"].astype(np.int64),
        }
    )
    support, base, ablated = (frame[c].to_numpy(np.int64) for c in ("support", "baseline_correct", "ablated_correct"))
    lost = frame["lost"].to_numpy(np.int64)
    gained = lost - (base - ablated)  # ablated = base - lost + gained
    out["lost"], out["gained"] = lost, gained
    out["baseline_acc"] = base / support
    out["baseline_acc_low"], out["baseline_acc_high"] = wilson_interval(base, support)
    out["ablated_acc"] = ablated / support
    out["ablated_acc_low"], out["ablated_acc_high"] = wilson_interval(ablated, support)
    out["drop"] = out["baseline_acc"] - out["ablated_acc"]
    both = base - lost
    out["drop_low"], out["drop_high"] = paired_drop_interval(both, lost, gained, support - both - lost - gained)
    out["resolved"] = (out["drop_low"] > 0) | (out["drop_high"] < 0)
    out["relative_drop"] = (out["drop"] / out["baseline_acc"]).where(out["baseline_acc"] > 0)
    out["_order"] = pd.factorize(out["units"])[0]  # ablations in the order of the frame
    out = out.sort_values(["_order", "drop", "drop_low", "class"], ascending=[True, False, False, True], kind="stable")
    out["rank"] = out.groupby("_order", sort=False).cumcount() + 1
    return out.drop(columns="_order").reset_index(drop=True)
