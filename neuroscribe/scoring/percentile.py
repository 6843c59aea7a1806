"""The "percentile" scoring rule: how unusually similar to a concept are a unit's top patches?

    scores = percentile_scores([sims_unit0, sims_unit1, ...])   # one [P_u, C] per unit, rank order
    q = concept_percentiles(unit_sims)                          # per unit [P_u, C] in [0, 1]

A patch's similarity to concept ``c`` becomes its percentile among the similarities to ``c`` of
every patch of the layer (the concept's prior: how much it matches patches in general).  A unit's
score for ``c`` is its patches' mean percentile, weighted ``(i + 1) ** -decay`` for the i-th top image:

    q[i, c]    = mid-rank of S[i, c] among the pool's S[:, c], divided by the pool size
    score(c)   = sum_i w_i q[i, c] / sum_i w_i

Why this form:
- PMI against a prior, as CLIP-Dissect's SoftWPMI: a concept that resembles every patch ("screen"
  for ConSE) is similar everywhere, so similarity alone is no evidence; a percentile counts only
  how a unit's patches stand against all others *for that concept*.
- Scale-free: a percentile is unchanged by any increasing transform of a concept's similarities,
  so the rule reads ConSE's, CLIP's or any block's similarities alike and needs no temperature.
- Bounded: a concept with heavy-tailed similarities (the classifier's probability of its own
  class) cannot outvote one that all the patches match, as an average of z-scores would.
- Top patches count most: the top image of a final-layer unit shows its class for 92% of units,
  while 49 of 50 top images are other classes when the probe set has one image per class.

The pool is every distinct patch passed in, subsampled evenly to ``pool_size``: pass a whole
layer at once, as ``explain_units`` does.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence

import numpy as np
from scipy.special import erf

from neuroscribe.errors import NeuroscribeError

POOL_SIZE = 20000  # pool rows at most: percentiles to 5e-5, memory pool_size x concepts


def rank_weights(n: int, decay: float) -> np.ndarray:
    """``(i + 1) ** -decay`` for ranks 0..n-1: 0 = equal weights, 1 = harmonic."""
    return (np.arange(n) + 1.0) ** -decay


def map_distinct_rows(
    arrays: Sequence[np.ndarray], fn: Callable[[np.ndarray], np.ndarray]
) -> list[np.ndarray]:
    """``fn`` of the rows of ``arrays`` stacked (each distinct row passed once, in order of first
    occurrence), split back per array: a final layer's patches are whole images many units share."""
    if not len(arrays):
        return []
    stacked = np.concatenate(arrays)
    first: dict[bytes, int] = {}
    inverse = np.empty(len(stacked), dtype=np.int64)
    for i, row in enumerate(stacked):
        inverse[i] = first.setdefault(hashlib.blake2b(row.tobytes(), digest_size=16).digest(), len(first))
    keep = np.unique(inverse, return_index=True)[1]
    return np.split(fn(stacked[keep])[inverse], np.cumsum([len(a) for a in arrays])[:-1])


def concept_percentiles(unit_sims: Sequence[np.ndarray], pool_size: int = POOL_SIZE) -> list[np.ndarray]:
    """Per unit ``[P_u, C]``: each similarity's mid-rank percentile in its concept's pool column."""

    def percentiles(distinct: np.ndarray) -> np.ndarray:
        pool_rows = np.linspace(0, len(distinct) - 1, min(len(distinct), pool_size)).round().astype(int)
        pool = np.sort(distinct[pool_rows], axis=0)
        q = np.empty(distinct.shape, dtype=np.float64)
        for c in range(distinct.shape[1]):
            # mid-rank: equal similarities share one percentile, so ties in the pool favour no concept
            q[:, c] = np.searchsorted(pool[:, c], distinct[:, c], "left") + np.searchsorted(pool[:, c], distinct[:, c], "right")
        return q / (2 * len(pool))

    n_concepts = unit_sims[0].shape[1] if len(unit_sims) else 0
    rows = [np.asarray(s, dtype=np.float32).reshape(-1, n_concepts) for s in unit_sims]
    return map_distinct_rows(rows, percentiles)


def null_sd(n: int, decay: float) -> float:
    """Sd of the rank-weighted mean of ``n`` independent uniform percentiles (a unit of random patches)."""
    w = rank_weights(n, decay)
    return float(np.sqrt((w**2).sum()) / w.sum() / np.sqrt(12.0))


def lead_confidence(q: np.ndarray, best: int, runner_up: int, decay: float) -> float:
    """In [0, 1): how far the unit's patches prefer ``best`` over ``runner_up``, against chance:
    ``erf(d / (sd * sqrt 2))`` = ``2 Phi(d / sd) - 1``, ``d`` the rank-weighted mean of
    ``q[:, best] - q[:, runner_up]`` (the percentile rule's margin), ``sd`` that of a random unit
    (``null_sd``): 0 for no lead, 0.68 for one sd, 0.95 for two.  Percentiles make it scale-free;
    the sd makes a lead held by a few patches count for less than the same lead held by many."""
    if not len(q) or best == runner_up:
        return 0.0
    w = rank_weights(len(q), decay)
    lead = float(w @ (q[:, best] - q[:, runner_up]) / w.sum())
    return float(erf(max(lead, 0.0) / (null_sd(len(q), decay) * np.sqrt(2.0))))


def percentile_scores(unit_sims: Sequence[np.ndarray], decay: float = 0.5, pool_size: int = POOL_SIZE) -> np.ndarray:
    """``[units, concepts]`` rank-weighted mean percentile; a unit without patches gets a NaN row."""
    return weighted_percentiles(concept_percentiles(unit_sims, pool_size), decay)


def weighted_percentiles(percentiles: Sequence[np.ndarray], decay: float = 0.5) -> np.ndarray:
    """The rule's scores from ``concept_percentiles``' output (computed once when confidence needs it too)."""
    if decay < 0:
        raise NeuroscribeError(f"percentile rank decay={decay} must be >= 0 (0 = all patches equal, 1 = harmonic)")
    n_concepts = max((q.shape[1] for q in percentiles if q.ndim == 2), default=0)
    out = np.full((len(percentiles), n_concepts), np.nan)
    for u, q in enumerate(percentiles):
        if len(q):
            w = rank_weights(len(q), decay)
            out[u] = w @ q / w.sum()
    return out
