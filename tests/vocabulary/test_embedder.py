"""The bundled sentence embedder: loads offline without changing the process's environment."""

from __future__ import annotations

import os

import numpy as np

from neuroscribe.vocabulary.embedder import embed_sentences, sentence_embedder


def test_the_bundled_model_loads_offline_and_leaves_the_environment_alone(monkeypatch):
    import sentence_transformers  # noqa: F401  # torch sets its own variables on import: before the snapshot

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    before = dict(os.environ)
    sentence_embedder.cache_clear()  # load it here, not from an earlier test's cache
    vectors = embed_sentences(["striped", "stripes", "a red car"])
    assert dict(os.environ) == before
    assert vectors.shape == (3, 384)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    # near-synonyms are closer than an unrelated phrase: the real MiniLM, not random weights
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2] + 0.2
