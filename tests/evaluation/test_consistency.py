"""AUC, bootstrap top-k and stability against hand computations and brute force."""

from __future__ import annotations

import numpy as np
import pytest

from neuroscribe.evaluation.consistency import (
    auc,
    bootstrap_counts,
    bootstrap_repeats,
    bootstrap_stability,
    distribution,
    resampled_topk,
    unit_aucs,
)
from neuroscribe.evaluation.evidence import Evidence, ProbeImages
from neuroscribe.scoring.rules import INACTIVE


def test_auc_by_hand():
    # 0.9 beats all three negatives, 0.5 beats 0.1 and 0.4: 5 of 6 pairs
    assert auc([0.9, 0.5], [0.6, 0.1, 0.4]) == pytest.approx(5 / 6)
    assert auc([1.0, 2.0], [0.0]) == 1.0
    assert auc([0.0], [1.0, 2.0]) == 0.0
    assert auc([0.5], [0.5]) == 0.5  # a tie counts one half
    assert auc([0.5, 0.7], [0.5, 0.1]) == pytest.approx((0.5 + 1 + 1 + 1) / 4)
    assert np.isnan(auc([], [0.1]))


def test_unit_aucs_use_top_images_against_random_images_outside_the_top_k():
    vectors = np.array([[1.0, 0.0], [0.8, 0.6], [0.0, 1.0], [0.6, 0.8], [-1.0, 0.0]], dtype=np.float32)
    probe = ProbeImages(ids=np.arange(5), vectors=vectors, random=np.arange(5))
    text = np.array([[1.0, 0.0], [np.nan, np.nan]], dtype=np.float32)
    positives = np.array([[0, 1], [2, -1]])
    result = unit_aucs(probe, positives, text, topk_ids=np.array([[0, 1, 3], [2, -1, -1]]))
    # unit 0: positives score 1.0 and 0.8; negatives are images 2 and 4 (image 3 is in its top-k): 0.0, -1.0
    assert result[0] == 1.0
    assert np.isnan(result[1])  # inactive: no text
    # with image 3 (score 0.6) kept as a negative the AUC is still 1; put it above a positive instead
    probe.vectors[1] = [0.5, 0.866]
    assert unit_aucs(probe, positives[:1], text[:1])[0] == pytest.approx(5 / 6)


def _brute_force_topk(values: np.ndarray, counts: np.ndarray, k: int) -> list[list[int]]:
    """Each unit's top-k of the multiset written out image by image."""
    out = []
    for u in range(values.shape[1]):
        multiset = [i for i in range(len(counts)) for _ in range(counts[i]) if not np.isnan(values[i, u])]
        multiset.sort(key=lambda i: (-values[i, u], i))
        out.append(multiset[:k])
    return out


def test_resampled_topk_matches_the_multiset_written_out():
    rng = np.random.default_rng(0)
    values = rng.normal(size=(30, 7))
    values[3, 2] = np.nan  # a skipped image
    for trial in range(5):
        counts = bootstrap_counts(np.delete(np.arange(30), 3), 30, rng)
        for k in (1, 3, 8):
            ids, mult = resampled_topk(values, counts, k)
            expected = _brute_force_topk(values, counts, k)
            for u in range(values.shape[1]):
                got = [i for i, m in zip(ids[u], mult[u]) for _ in range(m)]
                assert got == expected[u], (trial, k, u)


def test_bootstrap_counts_draw_as_many_images_as_there_are():
    counts = bootstrap_counts(np.array([0, 2, 5]), 7, np.random.default_rng(1))
    assert counts.sum() == 3 and counts[[1, 3, 4, 6]].sum() == 0


def test_bootstrap_repeats_and_coverage_by_hand():
    # one unit; stored top-3 = images 4, 1, 0 (activations 0.9, 0.8, 0.7); image 2 ranks fourth
    values = np.array([[0.7], [0.8], [0.5], [0.1], [0.9]])
    slots = np.array([[4, 1, 0]])
    counts = np.array([0, 2, 3, 0, 0])  # image 4 not drawn, image 1 twice, image 2 three times
    repeats, coverage = bootstrap_repeats(values, counts, slots, k=3)
    # resampled top-3: image 1, image 1, image 2; image 2 has no stored slot
    assert repeats.tolist() == [[0, 2, 0]]
    assert coverage == pytest.approx([2 / 3])
    everything = np.ones(5, dtype=int)
    repeats, coverage = bootstrap_repeats(values, everything, slots, k=3)
    assert repeats.tolist() == [[1, 1, 1]] and coverage == pytest.approx([1.0])


def _evidence(labels_per_slot: list[list[int]]) -> tuple[Evidence, np.ndarray]:
    """Units whose slots carry one-hot concept vectors: slot s of unit u 'shows' concept labels[u][s]."""
    n_concepts = 3
    ids = np.array([[u * 10 + s for s in range(len(row))] for u, row in enumerate(labels_per_slot)])
    vectors = np.eye(n_concepts, dtype=np.float32)[np.array(labels_per_slot)]
    ranks = np.tile(np.arange(ids.shape[1]), (len(ids), 1))
    return Evidence(ids, ranks, vectors), np.eye(n_concepts, dtype=np.float32)


def test_stability_is_one_for_units_whose_top_images_agree_and_lower_otherwise():
    from neuroscribe.evaluation.evidence import rescore
    from neuroscribe.scoring.rules import RuleSpec

    concepts = ["a", "b", "c"]
    # unit 0: all four top images show "a"; unit 1: a 2-2 split, decided by which images are drawn
    evidence, concept_vectors = _evidence([[0, 0, 0, 0], [1, 2, 1, 2]])
    n_images = 20
    values = np.zeros((n_images, 2))
    for u in range(2):
        values[evidence.image_id[u], u] = [4, 3, 2, 1]
    rule = RuleSpec(name="seed")

    def relabel(repeats):
        return [s.best for s in rescore(evidence, repeats, rule, concept_vectors, concepts)]

    reference = relabel(evidence.repeats())
    summary, per_unit = bootstrap_stability(
        lambda units: values[:, units], evidence.image_id, np.arange(n_images), n_images, 4, relabel, reference, resamples=30, seed=2
    )
    assert reference[0] == "a"
    assert per_unit[0] == 1.0
    assert 0.0 < per_unit[1] < 1.0
    assert summary["unchanged"] == pytest.approx(np.mean(summary["per_resample"]), abs=1e-4)
    assert per_unit[1] < summary["unchanged"] < 1.0
    assert 0.0 < summary["coverage"] <= 1.0
    # P(none of unit 0's 4 images among 20 draws from 20) = (16/20)^20 ~ 1%: nearly every pair is scored
    assert 0.9 < summary["scored"] <= 1.0


def test_a_resample_without_any_stored_image_of_a_unit_is_not_counted_as_a_change():
    evidence, _ = _evidence([[0, 0]])
    values = np.zeros((200, 1))
    values[evidence.image_id[0], 0] = [2, 1]
    summary, per_unit = bootstrap_stability(
        lambda units: values[:, units], evidence.image_id, np.arange(200), 200, 2,
        lambda repeats: ["a" if repeats[0].sum() else INACTIVE], ["a"], resamples=20, seed=0,
    )
    # (199/200)^200 ~ 37% per image: some resamples miss both images and are left out
    assert summary["scored"] < 1.0
    assert summary["unchanged"] == 1.0 and per_unit[0] == 1.0


def test_stability_leaves_inactive_units_out():
    evidence, _ = _evidence([[0, 0], [1, 1]])
    values = -np.arange(80, dtype=float).reshape(40, 2)  # images 0 and 1 rank first, as stored
    summary, per_unit = bootstrap_stability(
        lambda units: values[:, units], evidence.image_id, np.arange(40), 40, 2,
        lambda repeats: ["a", "b"], ["a", INACTIVE], resamples=3,
    )
    assert summary["units"] == 1 and summary["unchanged"] == 1.0
    assert per_unit[0] == 1.0 and np.isnan(per_unit[1])


def test_distribution_by_hand():
    d = distribution(np.array([0.2, 0.4, 0.6, 0.8, np.nan]), bins=2)
    assert d["n"] == 4 and d["mean"] == pytest.approx(0.5) and d["median"] == pytest.approx(0.5)
    assert d["histogram"]["counts"] == [2, 2]
    assert distribution(np.array([np.nan])) == {"n": 0}
