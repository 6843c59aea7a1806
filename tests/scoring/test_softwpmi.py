"""softwpmi against a direct transcription of CLIP-Dissect's reference ``soft_wpmi`` (torch)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from neuroscribe.errors import NeuroscribeError
from neuroscribe.scoring import (
    explain_units,
    softwpmi_from_activations,
    softwpmi_scores,
)
from neuroscribe.scoring.softwpmi import rank_weights, top_image_embeddings


def reference_soft_wpmi(clip_feats, target_feats, top_k=100, a=10, lam=1, min_prob=1e-7, p_start=0.998, p_end=0.97):
    """similarity.py::soft_wpmi of Trustworthy-ML-Lab/CLIP-dissect, on CPU, line for line (no tqdm/cuda)."""
    clip_feats = torch.nn.functional.softmax(a * clip_feats, dim=1)
    inds = torch.topk(target_feats, dim=0, k=top_k)[1]
    prob_d_given_e = []
    # dtype added: the reference's float32 arange would round p_i to ~1e-7 and hide real differences
    p_in_examples = p_start - (torch.arange(start=0, end=top_k, dtype=torch.float64) / top_k * (p_start - p_end)).unsqueeze(1)
    for orig_id in range(target_feats.shape[1]):
        curr_clip_feats = clip_feats.gather(0, inds[:, orig_id : orig_id + 1].expand(-1, clip_feats.shape[1]))
        curr_p_d_given_e = 1 + p_in_examples * (curr_clip_feats - 1)
        curr_p_d_given_e = torch.sum(torch.log(curr_p_d_given_e + min_prob), dim=0, keepdim=True)
        prob_d_given_e.append(curr_p_d_given_e)
    prob_d_given_e = torch.cat(prob_d_given_e, dim=0)
    prob_d = torch.logsumexp(prob_d_given_e, dim=0, keepdim=True) - torch.log(
        prob_d_given_e.shape[0] * torch.ones([1], dtype=prob_d_given_e.dtype)
    )
    return prob_d_given_e - lam * prob_d


@pytest.fixture
def probe():
    """12 probe images, 5 concepts, 4 units in an 8-D embedding space; unit u likes concept u."""
    rng = np.random.default_rng(1)
    concepts = rng.normal(size=(5, 8))
    concepts /= np.linalg.norm(concepts, axis=1, keepdims=True)
    images = rng.normal(size=(12, 8)) + 2 * concepts[rng.integers(0, 5, size=12)]
    images /= np.linalg.norm(images, axis=1, keepdims=True)
    sims = images @ concepts.T  # the reference's clip_feats: cosine of normalised features
    activations = sims[:, :4] + 0.01 * rng.normal(size=(12, 4))
    return images, concepts, sims, activations


@pytest.mark.parametrize("kwargs", [{}, {"a": 2.0, "lam": 0.6}, {"p_start": 0.9, "p_end": 0.5}])
def test_matches_reference_from_probe_activations(probe, kwargs):
    _, _, sims, activations = probe
    expected = reference_soft_wpmi(torch.from_numpy(sims), torch.from_numpy(activations), top_k=5, **kwargs).numpy()
    got = softwpmi_from_activations(sims, activations, top_k=5, **kwargs)
    np.testing.assert_allclose(got, expected, rtol=1e-9, atol=1e-9)


def test_explain_units_on_ranked_top_images_matches_reference(probe):
    images, concepts, sims, activations = probe
    names = [f"concept{i}" for i in range(5)]
    expected = reference_soft_wpmi(torch.from_numpy(sims), torch.from_numpy(activations), top_k=5).numpy()
    order = np.argsort(-activations, axis=0)[:5]
    results = explain_units("softwpmi", [images[order[:, u]] for u in range(4)], concepts, names)
    for u, result in enumerate(results):
        ranked = np.argsort(-expected[u])
        assert result.best == names[ranked[0]]
        assert result.score == pytest.approx(expected[u, ranked[0]], abs=1e-4)  # float32 similarities
        assert result.margin == pytest.approx(expected[u, ranked[0]] - expected[u, ranked[1]], abs=1e-4)
        own = np.argmax(sims[order[:, u]], axis=1)
        assert result.agreement == pytest.approx(np.mean(own == ranked[0]))
        assert result.n == 5


def test_tiny_example_by_hand():
    """Two units, one image each, two concepts: every term written out."""
    unit_sims = [np.array([[0.3, 0.1]]), np.array([[0.0, 0.2]])]
    a, w = 10.0, 0.998  # one image: rank weight p_start
    log_cond = []
    for (s0, s1), in unit_sims:
        z = math.exp(a * s0) + math.exp(a * s1)
        probs = (math.exp(a * s0) / z, math.exp(a * s1) / z)
        log_cond.append([math.log(1 + w * (p - 1) + 1e-7) for p in probs])
    prior = [math.log((math.exp(log_cond[0][c]) + math.exp(log_cond[1][c])) / 2) for c in range(2)]
    expected = [[log_cond[u][c] - prior[c] for c in range(2)] for u in range(2)]
    np.testing.assert_allclose(softwpmi_scores(unit_sims), expected, rtol=1e-12)


def test_rank_weights_and_padded_units():
    np.testing.assert_allclose(rank_weights(4), [0.998, 0.991, 0.984, 0.977])
    rng = np.random.default_rng(2)
    full = [rng.uniform(-1, 1, size=(4, 3)) for _ in range(3)]
    short = full[2][:2]  # a unit with only 2 of k=4 images (store padding)
    scores = softwpmi_scores([full[0], full[1], short], top_k=4)
    # the short unit's conditional uses the first two rank weights only
    probs = np.exp(10 * short) / np.exp(10 * short).sum(axis=1, keepdims=True)
    cond_short = np.log(1 + rank_weights(4)[:2, None] * (probs - 1) + 1e-7).sum(axis=0)
    lam0 = softwpmi_scores([full[0], full[1], short], top_k=4, lam=0.0)
    np.testing.assert_allclose(lam0[2], cond_short, rtol=1e-12)
    # the prior is the same for all units: score differences between units equal conditional differences
    np.testing.assert_allclose(scores[0] - scores[2], lam0[0] - lam0[2], rtol=1e-9)
    # inactive units stay out of the prior
    with_empty = softwpmi_scores([full[0], np.zeros((0, 3)), full[1], short], top_k=4)
    np.testing.assert_allclose(with_empty[[0, 2, 3]], scores, rtol=1e-12)
    assert np.isnan(with_empty[1]).all()


def test_top_image_embeddings_follow_rank_order_and_skip_padding():
    vectors = np.arange(12, dtype=np.float32).reshape(6, 2)
    vectors[4] = np.nan  # an image that could not be embedded
    ids = np.array([[5, 0, 3], [4, 1, -1], [-1, -1, -1]])
    units = top_image_embeddings(ids, vectors)
    np.testing.assert_array_equal(units[0], vectors[[5, 0, 3]])
    np.testing.assert_array_equal(units[1], vectors[[1]])
    assert units[2].shape == (0, 2)
    with pytest.raises(NeuroscribeError, match="image id 9 is beyond the 6 embedded"):
        top_image_embeddings(np.array([[9]]), vectors)
