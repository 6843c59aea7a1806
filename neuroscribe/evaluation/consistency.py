"""Checks that need no labels: does the explanation pick out the unit's images, and does it survive resampling?

    auc([0.9, 0.5], [0.6, 0.1, 0.4])                          # 5/6: P(positive scores above negative)
    aucs = unit_aucs(probe, top_ids, text_vectors)            # one AUC per unit (NaN: inactive)
    repeats, coverage = bootstrap_repeats(values, counts, evidence.image_id, k)
    summary = distribution(aucs)                              # mean, quartiles, histogram

Activation-grounded check (in the spirit of INVERT, Bykov et al. 2024): the AUC of the probe images'
backend similarity to the explanation's concept embedding, for telling the unit's top images where it
fired (top-k with a patch) from random probe images outside its top-k: 0.5 for an unrelated
explanation, 1.0 when every top image ranks above every random one; ties count one half.

Stability: the probe set is resampled with replacement, each unit's top-k recomputed among the drawn
images from ``activations/<layer>/max`` (an image drawn twice fills two places) and the unit rescored,
in rank order with multiplicity, on the drawn part of its stored top-k (only those have embeddings):
``coverage`` is the share of resampled top-k places they fill (about 63% of stored images are drawn).
A resample that draws none of a unit's stored images (probability about e^-k) is left out for that
unit (``scored``: the share kept).  Stability: the share of active, scored units with an unchanged label.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy.stats import mannwhitneyu

from neuroscribe.evaluation.evidence import ProbeImages
from neuroscribe.scoring.rules import INACTIVE


def auc(positive: np.ndarray, negative: np.ndarray) -> float:
    """Area under the ROC curve of scores separating ``positive`` from ``negative`` (NaN if either is empty)."""
    if not len(positive) or not len(negative):
        return float("nan")
    u = mannwhitneyu(positive, negative, alternative="two-sided", method="asymptotic").statistic
    return float(u / (len(positive) * len(negative)))


def rounded(value: float) -> float | None:
    """``value`` to 4 places; None when it is not finite (JSON has no NaN)."""
    return round(float(value), 4) if np.isfinite(value) else None


def unit_aucs(
    probe: ProbeImages, positive_ids: np.ndarray, text_vectors: np.ndarray, topk_ids: np.ndarray | None = None
) -> np.ndarray:
    """[units] AUC of each unit's explanation similarity: its ``positive_ids`` row (-1 padded) against
    the probe's random images outside its ``topk_ids`` row (default: the positives); NaN for units
    without text (inactive) or without positives."""
    topk_ids = positive_ids if topk_ids is None else topk_ids
    random_vectors = probe.lookup(probe.random)
    random_ok = ~np.isnan(random_vectors).any(axis=1)
    out = np.full(len(positive_ids), np.nan)
    for u, (ids, text) in enumerate(zip(positive_ids, text_vectors)):
        if np.isnan(text).any():
            continue
        pos_vectors = probe.lookup(ids[ids >= 0])
        pos_vectors = pos_vectors[~np.isnan(pos_vectors).any(axis=1)]
        negative = random_ok & ~np.isin(probe.random, topk_ids[u])
        out[u] = auc(pos_vectors @ text, random_vectors[negative] @ text)
    return out


def bootstrap_counts(ok_ids: np.ndarray, n_images: int, rng: np.random.Generator) -> np.ndarray:
    """int [n_images]: how often each image is drawn when ``len(ok_ids)`` draws are made with replacement."""
    return np.bincount(rng.choice(ok_ids, size=len(ok_ids), replace=True), minlength=n_images)


def resampled_topk(values: np.ndarray, counts: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Each unit's top-k of the resampled multiset: (image ids [units, k], multiplicities [units, k]).

    ``values`` [images, units] are activations (NaN = skipped image), ``counts`` [images] the draws.
    The places go to the highest drawn images, each taking up to its draw count; unused places
    have id -1 and multiplicity 0.
    """
    drawn = np.flatnonzero(counts > 0)
    block = np.asarray(values, dtype=np.float32)[drawn]  # activations are stored as float32
    block = np.where(np.isnan(block), -np.inf, block)
    take = min(k, len(drawn))
    # k distinct candidates always suffice: each drawn image fills at least one place
    if take < len(drawn):
        part = np.argpartition(-block, take - 1, axis=0)[:take]
    else:
        part = np.tile(np.arange(len(drawn))[:, None], (1, block.shape[1]))
    cand_values = np.take_along_axis(block, part, axis=0)
    order = np.argsort(-cand_values, axis=0, kind="stable")
    rows = np.take_along_axis(part, order, axis=0).T  # [units, take], best first
    finite = np.isfinite(np.take_along_axis(cand_values, order, axis=0).T)
    cand_ids = drawn[rows]
    cand_counts = np.where(finite, counts[cand_ids], 0)
    before = np.cumsum(cand_counts, axis=1) - cand_counts
    mult = np.clip(np.minimum(cand_counts, k - before), 0, None)
    unused = ((0, 0), (0, k - take))  # fewer drawn images than k: the last places stay empty
    return np.pad(np.where(finite, cand_ids, -1), unused, constant_values=-1), np.pad(mult, unused)


def bootstrap_repeats(
    values: np.ndarray, counts: np.ndarray, slot_ids: np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray]:
    """(repeats [units, slots], coverage [units]): how often each stored slot enters the resampled
    top-k, and the fraction of the resampled top-k places that stored slots fill."""
    ids, mult = resampled_topk(values, counts, k)
    matches = (slot_ids[:, :, None] == ids[:, None, :]) & (slot_ids[:, :, None] >= 0)
    repeats = (matches * mult[:, None, :]).sum(axis=2)
    filled = mult.sum(axis=1)
    coverage = np.divide(repeats.sum(axis=1), filled, out=np.zeros(len(filled)), where=filled > 0)
    return repeats, coverage


def distribution(values: np.ndarray, bins: int = 10, lo: float = 0.0, hi: float = 1.0) -> dict:
    """Mean, median, quartiles and a histogram of the finite values."""
    values = np.asarray(values, dtype=np.float64)
    values = values[np.isfinite(values)]
    if not len(values):
        return {"n": 0}
    counts, edges = np.histogram(values, bins=bins, range=(lo, hi))
    stats = zip(("mean", "median", "q25", "q75"), (values.mean(), *np.percentile(values, [50, 25, 75])))
    return {
        "n": len(values),
        **{name: round(float(v), 4) for name, v in stats},
        "histogram": {"edges": [round(float(e), 4) for e in edges], "counts": counts.tolist()},
    }


def bootstrap_stability(
    values_block: Callable[[list[int]], np.ndarray],
    slot_ids: np.ndarray,
    ok_ids: np.ndarray,
    n_images: int,
    k: int,
    relabel: Callable[[np.ndarray], list[str]],
    reference: list[str],
    resamples: int,
    seed: int = 0,
    units_per_block: int = 512,
) -> tuple[dict, np.ndarray]:
    """Fraction of active units whose label survives each bootstrap resample of the probe images.

    ``values_block(units)`` reads ``activations/<layer>/max`` [images, len(units)]; ``slot_ids``
    [units, slots] are the stored slots' image ids; ``relabel(repeats)`` rescores every unit on
    ``repeats`` [units, slots] and returns its labels; ``reference`` are the labels on all slots.
    Returns (summary, per-unit fraction of resamples with an unchanged label; NaN: inactive).
    """
    rng = np.random.default_rng(seed)
    counts = [bootstrap_counts(ok_ids, n_images, rng) for _ in range(resamples)]
    n_units = len(slot_ids)
    repeats = np.zeros((resamples, *slot_ids.shape), dtype=np.int64)
    coverage = np.zeros((resamples, n_units))
    for start in range(0, n_units, units_per_block):
        units = list(range(start, min(start + units_per_block, n_units)))
        values = values_block(units)
        for b, c in enumerate(counts):
            repeats[b, units], coverage[b, units] = bootstrap_repeats(values, c, slot_ids[units], k)
    active = np.array([r != INACTIVE for r in reference], dtype=bool)
    # a resample that draws none of a unit's stored images leaves nothing to rescore it on: unknown, not changed
    scored = (repeats.sum(axis=2) > 0) & active[None, :]
    labels = np.array([relabel(r) for r in repeats], dtype=object).reshape(resamples, n_units)
    same = labels == np.array(reference, dtype=object)
    with np.errstate(invalid="ignore", divide="ignore"):
        per_resample = (same & scored).sum(axis=1) / scored.sum(axis=1)
        per_unit = np.where(active, (same & scored).sum(axis=0) / scored.sum(axis=0), np.nan)
    ok = bool(resamples) and bool(scored.any())
    summary = {
        "resamples": resamples,
        "units": int(active.sum()),
        "unchanged": round(float(np.nanmean(per_resample)), 4) if ok else None,
        "unchanged_std": round(float(np.nanstd(per_resample)), 4) if ok else None,
        "per_resample": [round(float(v), 4) for v in per_resample],
        "scored": round(float(scored[:, active].mean()), 4) if ok else None,
        "coverage": round(float(coverage[scored].mean()), 4) if ok else None,
    }
    return summary, per_unit
