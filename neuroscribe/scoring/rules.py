"""Scoring rules by name, and the batch function that turns embeddings into one label per unit.

    results = explain_units("percentile", patch_embeddings, concept_vectors, concepts)   # the default
    results = explain_units("seed", patch_embeddings, concept_vectors, concepts, tau=0.01)
    results = explain_units("softwpmi", top_image_embeddings, concept_vectors, concepts)  # a whole layer
    results = explain_units(spec.name, embeddings, concept_vectors, concepts, **spec.kwargs())
    results[0].best, results[0].score, results[0].alternatives

``unit_patch_embeddings`` holds one ``[P_u, d]`` array per unit, embedded by the concepts' backend:
its top patches in rank order (``percentile``, ``seed``) or top probe images by activation
(``softwpmi``).  A rule (one module each) maps the similarities ``S_u = E_u @ concepts.T`` to
scores ``[units, concepts]``; everything else here is shared.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from pydantic import Field

from neuroscribe.config import FrozenModel
from neuroscribe.errors import NeuroscribeError
from neuroscribe.scoring.percentile import (
    POOL_SIZE,
    concept_percentiles,
    lead_confidence,
    map_distinct_rows,
    percentile_scores,
    weighted_percentiles,
)
from neuroscribe.scoring.seed_rule import seed_scores
from neuroscribe.scoring.softwpmi import softwpmi_scores

INACTIVE = "(inactive)"
TOP_N = 5
# labels whose lead over the runner-up is under ~0.67 null sd (confidence 0.5) are marked uncertain;
# measured on final-layer units of EfficientNet-Lite0: see README "Quality"
UNCERTAIN_BELOW = 0.5
CONFIDENCE_DECAY = 0.5  # rank weighting of confidence for rules without their own (the default rule's)

RULES: dict[str, Callable[..., np.ndarray]] = {"seed": seed_scores, "softwpmi": softwpmi_scores, "percentile": percentile_scores}


@dataclass(frozen=True)
class UnitScore:
    """One unit's explanation.  ``score``: the rule's value for ``best`` (percentile: weighted mean
    percentile in [0, 1]; seed: mean probability in [0, 1]; softwpmi: a log ratio); ``margin``: its
    lead over the runner-up (the score itself for one concept); ``alternatives``: the top 5 concepts
    with scores, best first; ``agreement``: the share of patches (or images) most similar to ``best``;
    ``confidence`` (any rule): ``percentile.lead_confidence``, below ``UNCERTAIN_BELOW`` shown uncertain.
    """

    best: str
    score: float
    margin: float
    alternatives: list[tuple[str, float]] = field(default_factory=list)
    agreement: float = 0.0
    n: int = 0  # patches (seed) or images (softwpmi) the unit was scored on
    confidence: float = 0.0  # in [0, 1): the patches' lead for best over the runner-up against chance


class RuleSpec(FrozenModel):
    """Which rule scores units, with its parameters (only those of the chosen rule are used)."""

    name: Literal["seed", "softwpmi", "percentile"] = "percentile"
    tau: float = Field(default=0.01, gt=0, description="seed: softmax temperature (CLIP's logit scale 100)")
    a: float = Field(default=10.0, gt=0, description="softwpmi: softmax scale on cosine similarities")
    lam: float = Field(default=1.0, ge=0, description="softwpmi: weight of the concept prior")
    top_k: int | None = Field(default=None, ge=1, description="softwpmi: ranked images used; None = all given")
    p_start: float = Field(default=0.998, gt=0, le=1, description="softwpmi: weight of the top image")
    p_end: float = Field(default=0.97, gt=0, le=1, description="softwpmi: weight of the k-th image")
    decay: float = Field(default=0.5, ge=0, description="percentile: weight (rank + 1) ** -decay of the rank-th patch")
    pool_size: int = Field(default=POOL_SIZE, ge=100, description="percentile: patches in the concept prior at most")

    def kwargs(self) -> dict:
        return self.model_dump(include=set(inspect.signature(RULES[self.name]).parameters))


def _check_inputs(
    unit_patch_embeddings: Sequence[np.ndarray], concept_embeddings: np.ndarray, concepts: Sequence[str]
) -> np.ndarray:
    if len(concepts) == 0:
        raise NeuroscribeError("the concept vocabulary is empty; build one with `neuroscribe vocabulary` or pass concepts")
    vectors = np.asarray(concept_embeddings, dtype=np.float32)
    if vectors.ndim != 2 or vectors.shape[0] != len(concepts):
        raise NeuroscribeError(
            f"concept embeddings have shape {vectors.shape} but there are {len(concepts)} concepts; "
            "embed exactly these concepts with concept_embeddings()"
        )
    for u, patches in enumerate(unit_patch_embeddings):
        patches = np.asarray(patches)
        if patches.size and (patches.ndim != 2 or patches.shape[1] != vectors.shape[1]):
            raise NeuroscribeError(
                f"unit {u}'s patch embeddings have shape {patches.shape} but concept embeddings have dimension "
                f"{vectors.shape[1]}; embed patches and concepts with the same backend (recompute the concept "
                "embeddings for this backend)"
            )
    return vectors


def _check_rule(rule: str, rule_kwargs: dict) -> Callable[..., np.ndarray]:
    if rule not in RULES:
        raise NeuroscribeError(f"unknown scoring rule {rule!r}; use one of {', '.join(RULES)}")
    accepted = set(inspect.signature(RULES[rule]).parameters) - {"unit_sims"}
    unknown = sorted(set(rule_kwargs) - accepted)
    if unknown:
        raise NeuroscribeError(f"scoring rule {rule!r} takes no option {unknown}; its options are {sorted(accepted)}")
    return RULES[rule]


def explain_units(
    rule: str,
    unit_patch_embeddings: Sequence[np.ndarray],
    concept_embeddings: np.ndarray,
    concepts: Sequence[str],
    **rule_kwargs,
) -> list[UnitScore]:
    """One ``UnitScore`` per unit; a unit with no patches gets ``best="(inactive)"`` and zeros."""
    fn = _check_rule(rule, rule_kwargs)
    vectors = _check_inputs(unit_patch_embeddings, concept_embeddings, concepts)
    # each distinct patch embedding (a whole image many units share) is multiplied once
    rows = [np.asarray(p, dtype=np.float32).reshape(-1, vectors.shape[1]) for p in unit_patch_embeddings]
    sims = map_distinct_rows(rows, lambda distinct: distinct @ vectors.T)
    percentiles = concept_percentiles(sims, rule_kwargs.get("pool_size", POOL_SIZE))
    decay = rule_kwargs.get("decay", CONFIDENCE_DECAY)
    # the percentile rule's scores are the confidence's percentiles, weighted: compute them once
    scores = weighted_percentiles(percentiles, decay) if rule == "percentile" else fn(sims, **rule_kwargs)
    return [_unit_score(s, row, q, concepts, decay) for s, row, q in zip(sims, scores, percentiles)]


def _unit_score(sims: np.ndarray, scores: np.ndarray, q: np.ndarray, concepts: Sequence[str], decay: float) -> UnitScore:
    if len(sims) == 0:
        return UnitScore(best=INACTIVE, score=0.0, margin=0.0, alternatives=[], agreement=0.0, n=0, confidence=0.0)
    # ties (near one-hot softmaxes over few patches tie to within ~1e-6) go to the concept that the
    # top-ranked patch resembles most, then to vocabulary order
    order = np.lexsort((-sims[0], -np.round(scores, 6)))
    best = int(order[0])
    return UnitScore(
        best=concepts[best],
        score=float(scores[best]),
        margin=float(scores[best] - scores[order[1]]) if len(order) > 1 else float(scores[best]),
        alternatives=[(concepts[i], float(scores[i])) for i in order[:TOP_N]],
        agreement=float(np.mean(np.argmax(sims, axis=1) == best)),
        n=len(sims),
        confidence=lead_confidence(q, best, int(order[1]), decay) if len(order) > 1 else 0.0,
    )
