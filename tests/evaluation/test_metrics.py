"""Label metrics against hand computations, and the chance baseline on shuffled labels."""

from __future__ import annotations

import numpy as np
import pytest

from neuroscribe.evaluation.metrics import (
    TextSpace,
    cosine_with_chance,
    exact_match_with_chance,
    label_metrics,
    match_vector,
    mean_cosine,
    rowwise_cosine,
    with_chance,
)
from neuroscribe.evaluation.truth import LayerTruth, normalise, split_variants
from neuroscribe.scoring.rules import INACTIVE


def test_normalise_folds_case_separators_and_punctuation():
    assert normalise("Red-breasted_Merganser") == "red breasted merganser"
    assert normalise("  jack-o'-lantern ") == "jack o' lantern"
    assert normalise("American chameleon") == normalise("american  chameleon")
    assert normalise("crane, bird") == "crane bird"


def test_synonyms_match_and_other_names_do_not():
    variants = ["tench", *split_variants("tench, Tinca tinca")]
    explanations = ["Tinca tinca", "TENCH", "goldfish", "tench fish"]
    assert match_vector(explanations, [variants] * 4).tolist() == [True, True, False, False]


def test_exact_match_rate_by_hand():
    explanations = ["tench", "Goldfish", "dog", "Tinca tinca"]
    variants = [["tench"], ["goldfish", "Carassius auratus"], ["cat"], ["tench", "Tinca tinca"]]
    assert match_vector(explanations, variants).mean() == pytest.approx(3 / 4)


def test_rowwise_cosine_by_hand():
    a = np.array([[1.0, 0.0], [3.0, 4.0], [1.0, 1.0]])
    b = np.array([[0.0, 2.0], [3.0, 4.0], [-1.0, -1.0]])
    assert rowwise_cosine(a, b) == pytest.approx([0.0, 1.0, -1.0])
    assert mean_cosine(a, b) == pytest.approx(0.0)


def test_with_chance_uses_the_identity_for_the_value_and_permutations_for_chance():
    seen = []

    def metric(order):
        seen.append(order.copy())
        return float(order[0])

    result = with_chance(metric, n=5, permutations=20, seed=1)
    assert result.value == 0.0 and result.n == 5
    assert np.array_equal(seen[0], np.arange(5))
    assert all(sorted(o) == list(range(5)) for o in seen[1:]) and len(seen) == 21
    assert result.chance == pytest.approx(np.mean([o[0] for o in seen[1:]]))


def test_exact_match_chance_is_near_chance_on_shuffled_labels():
    names = [f"concept {i}" for i in range(200)]
    result = exact_match_with_chance(names, [[n] for n in names], permutations=200, seed=0)
    assert result.value == 1.0
    # a random permutation has one fixed point on average: a rate of 1/n
    assert result.chance == pytest.approx(1 / 200, abs=0.004)
    shuffled = exact_match_with_chance(names, [[n] for n in np.random.default_rng(5).permutation(names)], permutations=200)
    assert shuffled.value < 0.03 and shuffled.chance == pytest.approx(1 / 200, abs=0.004)


def test_cosine_chance_is_the_mean_similarity_to_other_units_truth():
    rng = np.random.default_rng(0)
    truth = rng.normal(size=(60, 8))
    explained = truth + 0.3 * rng.normal(size=truth.shape)
    result = cosine_with_chance(explained, truth, permutations=400, seed=0)
    assert result.value == pytest.approx(mean_cosine(explained, truth))
    e = explained / np.linalg.norm(explained, axis=1, keepdims=True)
    t = truth / np.linalg.norm(truth, axis=1, keepdims=True)
    # a uniform random permutation pairs each explanation with every truth equally often
    expected = float((e @ t.T).mean())
    assert result.chance == pytest.approx(expected, abs=0.02)
    assert result.value > result.chance + 5 * result.chance_std


def _toy_space() -> TextSpace:
    # a fixed embedding per word: hand-checkable cosines (rows need no normalisation)
    table = {"cat": [1.0, 0.0], "kitty": [1.0, 1.0], "dog": [0.0, 1.0], "car": [-1.0, 0.0]}
    calls = []

    def embed(texts):
        calls.append(list(texts))
        return np.array([table[t] for t in texts])

    space = TextSpace("toy", embed)
    space.calls = calls
    return space


def test_text_space_embeds_each_text_once():
    space = _toy_space()
    space(["cat", "dog", "cat"])
    space(["dog", "car"])
    assert space.calls == [["cat", "dog"], ["car"]]
    twin = TextSpace("twin", lambda texts: 1 / 0, same_as=space)
    assert np.array_equal(twin(["car"]), [[-1.0, 0.0]])


def test_label_metrics_by_hand():
    truth = LayerTruth(
        names=["cat", "dog", "car", None],
        variants=[["cat", "kitty"], ["dog"], ["car"], []],
        present=np.array([True, True, False, False]),
        source="test",
        variant_source="test",
    )
    explanations = ["kitty", "cat", INACTIVE, "dog"]
    summary, per_unit = label_metrics(explanations, truth, [_toy_space()], permutations=0)
    assert per_unit["match"].tolist() == [True, False, False, False]
    # present: units 0 and 1; all labelled: 0, 1, 2 (unit 2 inactive: a miss, no cosine)
    assert summary["present"]["exact_match"]["value"] == pytest.approx(1 / 2)
    assert summary["all"]["exact_match"]["value"] == pytest.approx(1 / 3, abs=1e-4)  # rounded for the report
    cos_kitty_cat = 1 / np.sqrt(2)
    cos_cat_dog = 0.0
    assert per_unit["cos:toy"][:2] == pytest.approx([cos_kitty_cat, cos_cat_dog])
    assert np.isnan(per_unit["cos:toy"][2:]).all()
    assert summary["present"]["cosine"]["toy"]["value"] == pytest.approx((cos_kitty_cat + cos_cat_dog) / 2, abs=1e-4)
    assert summary["all"]["cosine"]["toy"]["n"] == 2 and summary["all"]["explained"] == 2


def test_label_metrics_with_synonym_text_embeds_all_names():
    truth = LayerTruth(["cat"], [["cat", "kitty"]], np.array([True]), "test", "test")
    space = TextSpace("rec", lambda texts: np.array([[len(t), 1.0] for t in texts]))
    label_metrics(["dog"], truth, [space], permutations=0, truth_text="synonyms")
    assert "cat, kitty" in space._memo
