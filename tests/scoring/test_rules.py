"""The seed rule and explain_units against values computed by hand on tiny embeddings."""

from __future__ import annotations

import math

import numpy as np
import pytest

from neuroscribe.errors import NeuroscribeError
from neuroscribe.scoring import INACTIVE, RULES, RuleSpec, explain_units

# three concepts in 2-D: x axis, y axis, and a unit vector between them
CONCEPT_VECTORS = np.array([[1.0, 0.0], [0.0, 1.0], [0.6, 0.8]], dtype=np.float32)
CONCEPTS = ["horizontal", "vertical", "diagonal"]


def by_hand_seed(patches: list[tuple[float, float]], tau: float) -> list[float]:
    """Mean over patches of softmax(cos / tau), written out with loops."""
    totals = [0.0, 0.0, 0.0]
    for px, py in patches:
        logits = [(px * cx + py * cy) / tau for cx, cy in CONCEPT_VECTORS.tolist()]
        exps = [math.exp(v) for v in logits]
        for c in range(3):
            totals[c] += exps[c] / sum(exps) / len(patches)
    return totals


def test_seed_matches_hand_computation():
    patches = [(1.0, 0.0), (0.8, 0.6), (0.0, 1.0)]
    # patch 0: sims (1, 0, .6); patch 1: (.8, .6, .96); patch 2: (0, 1, .8)
    expected = by_hand_seed(patches, tau=0.5)
    [result] = explain_units("seed", [np.array(patches)], CONCEPT_VECTORS, CONCEPTS, tau=0.5)
    ranked = sorted(range(3), key=lambda c: -expected[c])
    assert result.best == CONCEPTS[ranked[0]]
    assert result.score == pytest.approx(expected[ranked[0]], abs=1e-6)
    assert result.margin == pytest.approx(expected[ranked[0]] - expected[ranked[1]], abs=1e-6)
    assert [name for name, _ in result.alternatives] == [CONCEPTS[c] for c in ranked]
    assert [s for _, s in result.alternatives] == pytest.approx([expected[c] for c in ranked], abs=1e-6)
    # own argmax: patch 0 -> horizontal, patch 1 -> diagonal, patch 2 -> vertical
    own = ["horizontal", "diagonal", "vertical"]
    assert result.agreement == pytest.approx(own.count(result.best) / 3)
    assert result.n == 3
    assert sum(expected) == pytest.approx(1.0)


def test_seed_hand_values_at_clip_temperature():
    # at tau = 0.01 a patch's softmax is nearly one-hot on its most similar concept
    patches = [(0.8, 0.6), (0.6, 0.8), (0.0, 1.0), (0.64, 0.768)]
    expected = by_hand_seed(patches, tau=0.01)
    [result] = explain_units("seed", [np.array(patches, dtype=np.float32)], CONCEPT_VECTORS, CONCEPTS)
    assert result.best == "diagonal"
    assert result.score == pytest.approx(expected[2], abs=1e-5)
    # own argmax: diagonal (.96), diagonal (1.0), vertical (1.0 vs .8), diagonal (.9984)
    assert result.agreement == pytest.approx(3 / 4)


def test_alternatives_are_the_top_five_best_first_and_margin_uses_the_runner_up():
    rng = np.random.default_rng(0)
    concepts = [f"c{i}" for i in range(9)]
    vectors = rng.normal(size=(9, 4)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    patches = rng.normal(size=(7, 4)).astype(np.float32)
    [result] = explain_units("seed", [patches], vectors, concepts, tau=0.2)
    # independent: softmax with explicit exp per patch
    probs = np.zeros(9)
    for p in patches:
        e = np.array([math.exp(float(p @ v) / 0.2) for v in vectors])
        probs += e / e.sum() / len(patches)
    order = np.argsort(-probs)
    assert len(result.alternatives) == 5
    assert result.alternatives[0] == (result.best, result.score)
    assert [n for n, _ in result.alternatives] == [concepts[i] for i in order[:5]]
    assert result.margin == pytest.approx(probs[order[0]] - probs[order[1]], abs=1e-6)


def test_units_without_patches_are_inactive_and_others_unaffected():
    patches = np.array([[1.0, 0.0]], dtype=np.float32)
    results = explain_units("seed", [np.zeros((0, 2)), patches, np.zeros((0,))], CONCEPT_VECTORS, CONCEPTS)
    assert [r.best for r in results] == [INACTIVE, "horizontal", INACTIVE]
    assert results[0].score == results[0].margin == results[0].agreement == 0.0 and results[0].alternatives == []
    [alone] = explain_units("seed", [patches], CONCEPT_VECTORS, CONCEPTS)
    assert results[1] == alone
    assert explain_units("seed", [], CONCEPT_VECTORS, CONCEPTS) == []


def test_bad_inputs_name_the_problem_and_the_fix():
    patches = [np.ones((2, 512), dtype=np.float32)]
    with pytest.raises(NeuroscribeError, match="unit 0's patch embeddings have shape \\(2, 512\\).*dimension 2.*same backend"):
        explain_units("seed", patches, CONCEPT_VECTORS, CONCEPTS)
    with pytest.raises(NeuroscribeError, match="vocabulary is empty"):
        explain_units("seed", [np.ones((1, 2))], np.zeros((0, 2)), [])
    with pytest.raises(NeuroscribeError, match="shape \\(3, 2\\) but there are 2 concepts"):
        explain_units("seed", [np.ones((1, 2))], CONCEPT_VECTORS, CONCEPTS[:2])
    with pytest.raises(NeuroscribeError, match="unknown scoring rule 'netdissect'; use one of seed, softwpmi, percentile"):
        explain_units("netdissect", [np.ones((1, 2))], CONCEPT_VECTORS, CONCEPTS)
    with pytest.raises(NeuroscribeError, match="takes no option \\['a'\\]"):
        explain_units("seed", [np.ones((1, 2))], CONCEPT_VECTORS, CONCEPTS, a=3)
    with pytest.raises(NeuroscribeError, match="tau=0 must be > 0"):
        explain_units("seed", [np.ones((1, 2))], CONCEPT_VECTORS, CONCEPTS, tau=0)


def test_rule_spec_passes_only_its_rules_options():
    assert set(RULES) == {"seed", "softwpmi", "percentile"}
    assert RuleSpec().kwargs() == {"decay": 0.5, "pool_size": 20000}  # the default rule
    assert RuleSpec(name="seed").kwargs() == {"tau": 0.01}
    assert RuleSpec(name="softwpmi", top_k=20).kwargs() == {
        "a": 10.0, "lam": 1.0, "top_k": 20, "p_start": 0.998, "p_end": 0.97,
    }
    patches = [np.array([[0.6, 0.8]], dtype=np.float32)]
    spec = RuleSpec(name="seed", tau=0.5)
    assert explain_units(spec.name, patches, CONCEPT_VECTORS, CONCEPTS, **spec.kwargs())[0].score == pytest.approx(
        by_hand_seed([(0.6, 0.8)], 0.5)[2], abs=1e-6
    )
