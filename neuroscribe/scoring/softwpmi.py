"""The "softwpmi" scoring rule of CLIP-Dissect (Oikarinen & Weng, ICLR 2023), in numpy.

    scores = softwpmi_scores([sims_top_images_unit0, ...])          # one [k_u, C] per unit, rank order
    scores = softwpmi_from_activations(image_concept_sims, acts)    # the reference's own inputs
    per_unit = top_image_embeddings(topk_image_id, probe_embeddings)  # store top-k -> rule inputs

Inputs: per unit, the image-concept cosine similarities of its top probe images by activation
(``topk/<layer>/image_id``).  That is all the rule needs: the reference's softmax is per image,
over concepts, so no other image enters a unit's score.  With ``P = softmax(a * S)`` over
concepts and rank weights ``p_i = p_start - (i / k) * (p_start - p_end)``:

    log p(c | E_u) = sum_i log(1 + p_i * (P[i, c] - 1) + min_prob)
    log p(c)       = logsumexp_u log p(c | E_u) - log U
    score(u, c)    = log p(c | E_u) - lam * log p(c)

as ``soft_wpmi`` in ``similarity.py`` of Trustworthy-ML-Lab/CLIP-dissect (defaults a=10, lam=1,
p_start=0.998, p_end=0.97, min_prob=1e-7; ``describe_neurons.py`` uses top_k=100).  The prior
``p(c)`` averages over the units scored together, so pass a whole layer (one unit with lam=1
scores every concept 0).  A unit with fewer than ``k`` images (store padding) uses those it has;
one with none gets a NaN row and stays out of the prior.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.special import logsumexp, softmax

from neuroscribe.errors import NeuroscribeError


def rank_weights(k: int, p_start: float = 0.998, p_end: float = 0.97) -> np.ndarray:
    """``p_i``: how likely the i-th ranked image is to truly show the unit's concept."""
    return p_start - np.arange(k) / k * (p_start - p_end)


def softwpmi_scores(
    unit_sims: Sequence[np.ndarray],
    a: float = 10.0,
    lam: float = 1.0,
    top_k: int | None = None,
    p_start: float = 0.998,
    p_end: float = 0.97,
    min_prob: float = 1e-7,
) -> np.ndarray:
    """``[units, concepts]`` soft-WPMI; ``top_k`` defaults to the longest unit's image count."""
    if not 0 < p_end <= p_start <= 1:
        raise NeuroscribeError(f"softwpmi needs 0 < p_end <= p_start <= 1 (got {p_start}, {p_end}); keep 0.998, 0.97")
    k = top_k or max((len(s) for s in unit_sims), default=0)
    n_concepts = unit_sims[0].shape[1] if len(unit_sims) else 0
    log_cond = np.full((len(unit_sims), n_concepts), np.nan)
    weights = rank_weights(k, p_start, p_end)
    for u, sims in enumerate(unit_sims):
        sims = np.asarray(sims, dtype=np.float64)[:k]
        if len(sims):
            probs = softmax(a * sims, axis=1)
            log_cond[u] = np.log(1 + weights[: len(sims), None] * (probs - 1) + min_prob).sum(axis=0)
    active = ~np.isnan(log_cond[:, 0]) if n_concepts else np.zeros(len(unit_sims), bool)
    if not active.any():
        return log_cond
    log_prior = logsumexp(log_cond[active], axis=0) - np.log(active.sum())
    return log_cond - lam * log_prior


def softwpmi_from_activations(
    image_concept_sims: np.ndarray, activations: np.ndarray, top_k: int = 100, **kwargs
) -> np.ndarray:
    """Soft-WPMI from the probe set (``image_concept_sims [N, C]``, ``activations [N, units]``): each
    unit's top ``top_k`` images by activation are selected first (the reference's inputs)."""
    sims = np.asarray(image_concept_sims)
    acts = np.asarray(activations)
    if sims.shape[0] != acts.shape[0]:
        raise NeuroscribeError(
            f"{sims.shape[0]} probe images have concept similarities but {acts.shape[0]} have activations; "
            "compute both over the same probe images in the same order"
        )
    k = min(top_k, len(acts))
    order = np.argsort(-acts, axis=0, kind="stable")[:k]
    return softwpmi_scores([sims[order[:, u]] for u in range(acts.shape[1])], top_k=k, **kwargs)


def top_image_embeddings(image_ids: np.ndarray, image_embeddings: np.ndarray) -> list[np.ndarray]:
    """Per unit, its top images' embeddings in rank order (the rule's inputs), gathered so that images
    many units share are embedded once.  ``image_ids [units, k]`` is ``topk/<layer>/image_id`` (-1 =
    padding); ``image_embeddings [N, d]`` holds them by image id (NaN rows: could not be embedded)."""
    ids = np.asarray(image_ids)
    vectors = np.asarray(image_embeddings)
    if ids.size and ids.max() >= len(vectors):
        raise NeuroscribeError(
            f"top-k image id {int(ids.max())} is beyond the {len(vectors)} embedded probe images; "
            "embed every image of the run's index, in id order"
        )
    usable = ~np.isnan(vectors).any(axis=1)
    return [vectors[[i for i in row if i >= 0 and usable[i]]] for row in ids]
