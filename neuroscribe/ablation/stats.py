"""Confidence intervals for per-class accuracies and accuracy drops, and when a class has too few images to tell.

    low, high = wilson_interval(correct, support)                        # baseline or ablated accuracy
    low, high = paired_drop_interval(both, lost, gained, neither)        # drop = baseline - ablated
    n = min_support_to_tell()                                            # 2 at 95%: one image never tells

Accuracy: the Wilson score interval (``scipy.stats.binomtest(...).proportion_ci(method="wilson")``,
once per distinct (correct, support) pair, so a 1,280 x 1,000 table costs a few hundred calls).
Drop: baseline and ablated accuracy are measured on the *same* images, so its interval is
Newcombe's hybrid score interval for paired proportions (Newcombe 1998, Statistics in Medicine
17:2635, method 10, continuity-corrected ``phi``): the two Wilson intervals combined with the
correlation ``phi`` of the per-image 2x2 table, from four counts per class: ``both``, ``lost``
(correct only at baseline), ``gained`` (correct only when ablated) and ``neither``.  No library we
use implements it; tests check it against a hand computation.  Intervals are at ``CONFIDENCE`` (95%).
"""

from __future__ import annotations

import numpy as np
from scipy.stats import binomtest

CONFIDENCE = 0.95


def wilson_interval(correct, support, confidence: float = CONFIDENCE) -> tuple[np.ndarray, np.ndarray]:
    """Wilson score interval of ``correct / support`` per element; NaN where ``support`` is 0."""
    k, n = (np.asarray(v, dtype=np.int64).reshape(-1) for v in (correct, support))
    pairs, inverse = np.unique(np.stack([k, n], axis=1), axis=0, return_inverse=True)
    bounds = np.full((len(pairs), 2), np.nan)
    for i, (kk, nn_) in enumerate(pairs):
        if nn_ > 0:
            ci = binomtest(int(kk), int(nn_)).proportion_ci(confidence_level=confidence, method="wilson")
            bounds[i] = ci.low, ci.high
    low, high = bounds[inverse.reshape(-1)].T
    return low.reshape(np.shape(correct)), high.reshape(np.shape(correct))


def paired_drop_interval(both, lost, gained, neither, confidence: float = CONFIDENCE) -> tuple[np.ndarray, np.ndarray]:
    """Newcombe's method-10 interval for ``p1 - p2`` with p1 = (both + lost) / n, p2 = (both + gained) / n.

    The counts are the 2x2 table of the same images: correct at baseline and when ablated (``both``),
    at baseline only (``lost``), when ablated only (``gained``), neither.  NaN where n is 0.
    """
    a, b, c, d = (np.asarray(v, dtype=np.float64) for v in (both, lost, gained, neither))
    n = a + b + c + d
    with np.errstate(invalid="ignore", divide="ignore"):
        p1, p2 = (a + b) / n, (a + c) / n
        l1, u1 = wilson_interval(a + b, n, confidence)
        l2, u2 = wilson_interval(a + c, n, confidence)
        denominator = np.sqrt((a + b) * (c + d) * (a + c) * (b + d))
        # Newcombe's continuity-corrected phi: ad - bc shrunk by n/2 toward 0 when positive
        cross = a * d - b * c
        cross = np.where(cross > n / 2, cross - n / 2, np.where(cross < 0, cross, 0.0))
        phi = np.where(denominator > 0, cross / np.where(denominator > 0, denominator, 1), 0.0)
        delta = np.sqrt(np.maximum((p1 - l1) ** 2 - 2 * phi * (p1 - l1) * (u2 - p2) + (u2 - p2) ** 2, 0))
        epsilon = np.sqrt(np.maximum((u1 - p1) ** 2 - 2 * phi * (u1 - p1) * (p2 - l2) + (p2 - l2) ** 2, 0))
    theta = p1 - p2
    return np.clip(theta - delta, -1, 1), np.clip(theta + epsilon, -1, 1)


def min_support_to_tell(confidence: float = CONFIDENCE, limit: int = 1000) -> int:
    """The fewest images of a class for which even a full drop (every image lost) has an interval above 0."""
    telling = (n for n in range(1, limit + 1) if float(paired_drop_interval(0, n, 0, 0, confidence)[0]) > 0)
    return next(telling, limit)
