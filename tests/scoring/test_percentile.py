"""The percentile rule: a hand computation, scale-freedom (also on tiny open_clip embeddings), ties."""

from __future__ import annotations

import numpy as np
import pytest

from neuroscribe.errors import NeuroscribeError
from neuroscribe.scoring import explain_units
from neuroscribe.scoring.percentile import concept_percentiles, percentile_scores


def _hand_percentile(value: float, pool: list[float]) -> float:
    below = sum(p < value for p in pool)
    equal = sum(p == value for p in pool)
    return (below + equal / 2) / len(pool)


def test_scores_match_a_hand_computation():
    unit0 = np.array([[0.9, 0.1, 0.5], [0.2, 0.3, 0.4]])
    unit1 = np.array([[0.1, 0.8, 0.5], [0.3, 0.7, 0.1], [0.4, 0.2, 0.6]])
    pool = np.concatenate([unit0, unit1])  # every row distinct: the pool is all five patches
    got = percentile_scores([unit0, unit1], decay=1.0)
    for u, sims in enumerate([unit0, unit1]):
        weights = [1 / (i + 1) for i in range(len(sims))]
        for c in range(3):
            q = [_hand_percentile(sims[i, c], list(pool[:, c])) for i in range(len(sims))]
            assert got[u, c] == pytest.approx(sum(w * x for w, x in zip(weights, q)) / sum(weights))
    # decay 0: the plain mean percentile
    flat = percentile_scores([unit0, unit1], decay=0.0)
    assert flat[0, 0] == pytest.approx((_hand_percentile(0.9, list(pool[:, 0])) + _hand_percentile(0.2, list(pool[:, 0]))) / 2)


def test_identical_patches_count_once_in_the_prior():
    shared = np.array([[0.9, 0.1], [0.1, 0.9], [0.5, 0.5]])
    once = concept_percentiles([shared[:1], shared[1:]])
    repeated = concept_percentiles([shared[:1], shared[1:], shared, shared])  # the same images again
    np.testing.assert_allclose(repeated[0], once[0])
    np.testing.assert_allclose(repeated[1], once[1])


def test_any_increasing_transform_of_a_concepts_similarities_keeps_every_score():
    rng = np.random.default_rng(0)
    sims = [rng.normal(size=(int(n), 6)) for n in rng.integers(1, 8, size=20)]
    base = percentile_scores(sims)
    scale, shift = rng.uniform(0.1, 10, size=6), rng.normal(size=6)
    for transform in (lambda s: s * scale + shift, lambda s: np.exp(3 * s), lambda s: 100 * s):
        np.testing.assert_allclose(percentile_scores([transform(s) for s in sims]), base)


def test_a_concept_that_matches_everything_does_not_win(tiny_clip, small_images):
    """ConSE's failure mode: "screen" resembles every image, so raw similarity favours it everywhere."""
    rng = np.random.default_rng(1)
    sims = [rng.normal(size=(5, 3)) for _ in range(30)]
    sims = [s + np.array([5.0, 0.0, 0.0]) for s in sims]  # concept 0: high similarity to every patch
    sims[7][:, 2] += 3.0  # unit 7's patches stand out for concept 2
    scores = percentile_scores(sims)
    assert np.argmax(scores[7]) == 2
    assert np.mean(np.argmax(scores, axis=1) == 0) < 0.6  # the generic concept is no default answer


def test_labels_on_tiny_open_clip_embeddings_ignore_the_similarity_scale(tiny_clip, small_images):
    images = tiny_clip.embed_images(small_images)
    concepts = ["red", "green", "blue", "stripes", "dog"]
    texts = tiny_clip.embed_texts([f"a photo of {c}." for c in concepts])
    units = [images[[i, (i + 1) % len(images)]] for i in range(len(images))]
    labels = [s.best for s in explain_units("percentile", units, texts, concepts)]
    sims = [u @ texts.T for u in units]
    # the same rule on CLIP's logits (scale 100) and on a shifted copy: the same scores, labels
    for transformed in ([100 * s for s in sims], [s - 0.3 for s in sims]):
        np.testing.assert_allclose(percentile_scores(transformed), percentile_scores(sims))
    # through explain_units: concept vectors at CLIP's logit scale give the same labels
    assert [s.best for s in explain_units("percentile", units, 100 * texts, concepts)] == labels
    # the seed rule, by contrast, depends on the scale through its softmax temperature
    from neuroscribe.scoring.seed_rule import seed_scores

    assert not np.allclose(seed_scores([100 * s for s in sims]), seed_scores(sims))


def test_bad_decay_is_refused():
    with pytest.raises(NeuroscribeError, match="decay"):
        percentile_scores([np.zeros((2, 2))], decay=-1)


def test_units_without_patches_get_nan_rows():
    scores = percentile_scores([np.zeros((0, 2)), np.array([[0.1, 0.2]])])
    assert np.isnan(scores[0]).all() and np.isfinite(scores[1]).all()


def test_confidence_is_the_lead_over_the_runner_up_against_chance():
    from math import erf, sqrt

    from neuroscribe.scoring.percentile import lead_confidence, null_sd

    q = np.array([[0.9, 0.5, 0.2], [0.8, 0.6, 0.1], [0.4, 0.45, 0.3]])
    w = np.array([1, 2**-0.5, 3**-0.5])
    lead = (w @ (q[:, 0] - q[:, 1])) / w.sum()
    sd = sqrt((w**2).sum()) / w.sum() / sqrt(12)
    assert null_sd(3, 0.5) == pytest.approx(sd)
    assert lead_confidence(q, 0, 1, 0.5) == pytest.approx(erf(lead / (sd * sqrt(2))))
    assert lead_confidence(q, 1, 0, 0.5) == 0.0  # no lead, no confidence
    assert 0 <= lead_confidence(q, 0, 2, 0.5) < 1


def test_confidence_separates_planted_units_from_noise():
    """Units whose patches all stand out for one concept are confident; units of random patches are not."""
    rng = np.random.default_rng(3)
    noise = [rng.normal(size=(20, 8)) for _ in range(40)]
    planted = []
    for u in range(40):
        sims = rng.normal(size=(20, 8))
        sims[:, u % 8] += 2.5
        planted.append(sims)
    concepts = [f"c{i}" for i in range(8)]
    eye = np.eye(8, dtype=np.float32)  # patch "embeddings" that are their similarities
    results = explain_units("percentile", [s.astype(np.float32) for s in planted + noise], eye, concepts)
    planted_conf = np.array([r.confidence for r in results[:40]])
    noise_conf = np.array([r.confidence for r in results[40:]])
    assert [r.best for r in results[:40]] == [f"c{u % 8}" for u in range(40)]
    assert planted_conf.min() > np.median(noise_conf) and np.median(planted_conf) > 0.9


def test_labels_are_not_decided_by_ties():
    rng = np.random.default_rng(4)
    sims = [rng.normal(size=(int(n), 50)).astype(np.float32) for n in rng.integers(1, 30, size=300)]
    results = explain_units("percentile", sims, np.eye(50, dtype=np.float32), [f"c{i}" for i in range(50)])
    assert np.mean([abs(r.margin) < 1e-6 for r in results]) <= 0.01
