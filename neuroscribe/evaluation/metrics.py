"""Explanations against ground-truth unit names: exact match, cosine similarity, and their chance level.

    match_vector(["tench", "dog"], [["tench", "Tinca tinca"], ["cat"]])              # [True, False]
    cos = mean_cosine(explanation_vectors, truth_vectors)                            # rowwise, unit rows
    result = with_chance(lambda perm: mean_cosine(e, t[perm]), n=len(t), permutations=100)
    result.value, result.chance, result.chance_std

The chance baseline recomputes a metric against a random permutation of the units' ground truth,
``permutations`` times with a fixed seed: what explanations that say nothing about their unit get.
Cosine similarities follow CLIP-Dissect's ``get_cos_similarity``: the texts are embedded as they
are (no prompt template), L2-normalised, and the rowwise dot products averaged.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

import numpy as np

from neuroscribe.evaluation.truth import LayerTruth, normalise
from neuroscribe.scoring.rules import INACTIVE


def match_vector(explanations: Sequence[str], variants: Sequence[Sequence[str]]) -> np.ndarray:
    """bool [n]: explanation i is one of the variants of truth i (after normalisation)."""
    truth_sets = [{normalise(v) for v in vs} for vs in variants]
    return np.array([normalise(e) in s for e, s in zip(explanations, truth_sets, strict=True)], dtype=bool)


def rowwise_cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """[n] cosine similarity of row i of ``a`` with row i of ``b`` (rows need not be normalised)."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    norms = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    return np.einsum("ij,ij->i", a, b) / np.maximum(norms, 1e-12)


def mean_cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(rowwise_cosine(a, b).mean()) if len(a) else float("nan")


@dataclass(frozen=True)
class MetricResult:
    """A metric over ``n`` units, with its mean and spread under permuted ground truth."""

    value: float
    chance: float
    chance_std: float
    n: int

    def as_dict(self) -> dict:
        return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in asdict(self).items()}


def with_chance(metric: Callable[[np.ndarray], float], n: int, permutations: int = 100, seed: int = 0) -> MetricResult:
    """``metric(order)`` scores the explanations against the truths taken in ``order``: the identity
    gives the value, random permutations the chance level."""
    if n == 0:
        return MetricResult(float("nan"), float("nan"), float("nan"), 0)
    rng = np.random.default_rng(seed)
    value = metric(np.arange(n))
    shuffled = np.array([metric(rng.permutation(n)) for _ in range(permutations)]) if permutations else np.array([np.nan])
    return MetricResult(float(value), float(np.mean(shuffled)), float(np.std(shuffled)), n)


def exact_match_with_chance(
    explanations: Sequence[str], variants: Sequence[Sequence[str]], permutations: int = 100, seed: int = 0
) -> MetricResult:
    # normalise once: the permutations only reorder the truth sets
    explained = [normalise(e) for e in explanations]
    truth_sets = [{normalise(v) for v in vs} for vs in variants]
    return with_chance(lambda order: float(np.mean([e in truth_sets[j] for e, j in zip(explained, order)])),
                       len(explained), permutations, seed)


def cosine_with_chance(
    explanation_vectors: np.ndarray, truth_vectors: np.ndarray, permutations: int = 100, seed: int = 0
) -> MetricResult:
    t = np.asarray(truth_vectors)
    return with_chance(lambda order: mean_cosine(explanation_vectors, t[order]), len(t), permutations, seed)


class TextSpace:
    """A named text-embedding function whose results are remembered per text (variants share most texts)."""

    def __init__(self, name: str, embed: Callable[[list[str]], np.ndarray], same_as: TextSpace | None = None):
        self.name = name
        self._embed = embed
        # a space that is another under a second name (ConSE's text side is MiniLM) shares its memo
        self._memo: dict[str, np.ndarray] = same_as._memo if same_as is not None else {}

    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        if new := [t for t in dict.fromkeys(texts) if t not in self._memo]:
            self._memo.update(zip(new, np.asarray(self._embed(new), dtype=np.float32)))
        if not len(texts):
            return np.zeros((0, 0), dtype=np.float32)
        return np.stack([self._memo[t] for t in texts])


def label_metrics(
    explanations: Sequence[str],
    truth: LayerTruth,
    spaces: Sequence[TextSpace],
    permutations: int = 100,
    seed: int = 0,
    truth_text: str = "name",
) -> tuple[dict, dict[str, np.ndarray]]:
    """Exact match and cosine similarities with their chance levels, over present and over all labelled units.

    Returns ``(summary, per_unit)``: ``summary[subset]`` for subsets ``present`` and ``all`` holds
    ``exact_match`` and ``cosine[space]`` as ``MetricResult`` dicts; ``per_unit`` holds ``match``
    (bool) and one ``cos:<space>`` array (NaN where not computed) per space.  An inactive unit
    counts as a miss for exact match and is left out of cosine similarities (it has no text).
    """
    # object arrays: index arrays pick a subset's texts
    explanations = np.array([str(e) for e in explanations], dtype=object)
    texts = np.array([
        (", ".join(dict.fromkeys(v)) if truth_text == "synonyms" else n) if n is not None else None
        for n, v in zip(truth.names, truth.variants)
    ], dtype=object)
    labelled = truth.labelled
    per_unit = {"match": match_vector(explanations, truth.variants) & labelled}
    explained = explanations != INACTIVE
    idx = np.flatnonzero(labelled & explained)
    for space in spaces:
        cos = np.full(len(explanations), np.nan)
        cos[idx] = rowwise_cosine(space(explanations[idx]), space(texts[idx]))
        per_unit[f"cos:{space.name}"] = cos
    summary = {}
    for subset, mask in (("present", labelled & truth.present), ("all", labelled)):
        idx = np.flatnonzero(mask)
        variants = [truth.variants[i] for i in idx]
        summary[subset] = {
            "units": len(idx),
            "explained": int(explained[idx].sum()),
            "exact_match": exact_match_with_chance(explanations[idx], variants, permutations, seed).as_dict(),
        }
        idx = idx[explained[idx]]
        summary[subset]["cosine"] = {
            s.name: cosine_with_chance(s(explanations[idx]), s(texts[idx]), permutations, seed).as_dict()
            for s in spaces
        }
    return summary, per_unit
