"""The "seed" scoring rule: which concept do a unit's top patches look like, on average?

    scores = seed_scores([sims_unit0, sims_unit1], tau=0.01)   # sims_u = patches_u @ concepts.T
    scores.shape                                               # [units, concepts]

For one unit with patch-concept cosine similarities ``S [P, C]``: each patch gets a softmax over
concepts at temperature ``tau`` (0.01 = CLIP's logit scale of 100); the unit's score for a concept
is its patches' mean probability, so a unit's scores sum to 1 and the winner's reads as "share of
the patches' belief".  Usually called through ``neuroscribe.scoring.rules.explain_units``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.special import softmax

from neuroscribe.errors import NeuroscribeError


def seed_scores(unit_sims: Sequence[np.ndarray], tau: float = 0.01) -> np.ndarray:
    """``[units, concepts]`` mean per-patch softmax(S / tau); a unit without patches gets a NaN row."""
    if not tau > 0:
        raise NeuroscribeError(f"seed temperature tau={tau} must be > 0; CLIP's own is 0.01")
    n_concepts = unit_sims[0].shape[1] if len(unit_sims) else 0
    out = np.full((len(unit_sims), n_concepts), np.nan)
    for u, sims in enumerate(unit_sims):
        if len(sims):
            out[u] = softmax(np.asarray(sims, dtype=np.float64) / tau, axis=1).mean(axis=0)
    return out
