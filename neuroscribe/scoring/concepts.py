"""Concept text embeddings, computed once per (backend, vocabulary, templates) and cached by content.

    vocab = load_vocabulary("runs/r50")
    concepts = concept_embeddings(backend, vocab.concepts, cache_uri="runs/r50", vocab_hash=vocab.content_hash)
    concepts.shape                       # [C, d] float32, unit rows, same order as vocab.concepts

With several templates each concept's embedding is the mean of its per-template unit
embeddings, renormalised (CLIP's prompt ensembling).  The cache file is ``<store>/embeddings/<key>.npy``,
keyed by content (``concept_cache_key``): a changed vocabulary, backend or template gives a new key.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Callable, Sequence

import numpy as np

from neuroscribe.errors import NeuroscribeError
from neuroscribe.fingerprint import code_version, content_key
from neuroscribe.scoring.backend import check_templates
from neuroscribe.store import RunStore


def embed_with_templates(
    embed_texts: Callable[..., np.ndarray],
    texts: Sequence[str],
    templates: Sequence[str],
    on_progress: Callable[[int], None] | None = None,
) -> np.ndarray:
    """``[len(texts), d]``: per text, the renormalised mean of its unit embeddings over ``templates``."""
    # replace, not str.format: a concept may itself contain braces
    prompts = [t.replace("{}", text) for t in templates for text in texts]
    vectors = embed_texts(prompts, on_progress=on_progress)
    mean = vectors.reshape(len(templates), len(texts), -1).mean(axis=0)
    norms = np.linalg.norm(mean, axis=1, keepdims=True)
    return (mean / np.maximum(norms, 1e-12)).astype(np.float32)


def concept_cache_key(backend, concepts: Sequence[str], templates: Sequence[str], vocab_hash: str | None) -> str:
    return content_key(
        {
            "backend": backend.fingerprint,
            "vocabulary": vocab_hash,
            "concepts": content_key(list(concepts)),
            "templates": list(templates),
            "code": code_version("neuroscribe.scoring.concepts"),
        }
    )


def concept_embeddings(
    backend,
    concepts: Sequence[str],
    templates: Sequence[str] | None = None,
    cache_uri: str | None = None,
    vocab_hash: str | None = None,
    storage_options: dict | None = None,
    on_progress: Callable[[int], None] | None = None,
) -> np.ndarray:
    """float32 ``[len(concepts), backend.dim]`` unit embeddings of the concepts.

    ``templates`` defaults to the backend's (``"a photo of {}."`` for CLIP); ``cache_uri`` is the run
    store (local or ``s3://``) holding the cache, ``None`` for none; ``vocab_hash`` the vocabulary's
    content hash.  ``on_progress(n_done)`` counts embedded prompts (concepts x templates), not hits.
    """
    concepts = list(concepts)
    if not concepts:
        raise NeuroscribeError("the concept vocabulary is empty; build one with `neuroscribe vocabulary` or pass concepts")
    templates = check_templates(templates or backend.templates)
    key = concept_cache_key(backend, concepts, templates, vocab_hash)
    cache = None if cache_uri is None else RunStore(cache_uri, storage_options).concept_embeddings(key)
    if cache is not None and cache.exists():
        data = cache.read_bytes()
        # an interrupted or foreign file is recomputed rather than trusted
        with contextlib.suppress(ValueError, OSError, EOFError):
            cached = np.load(io.BytesIO(data), allow_pickle=False).astype(np.float32, copy=False)
            if cached.shape == (len(concepts), backend.dim):
                return cached
    vectors = embed_with_templates(backend.embed_texts, concepts, templates, on_progress)
    if cache is not None:
        buf = io.BytesIO()
        np.save(buf, vectors, allow_pickle=False)
        cache.write_bytes(buf.getvalue())
    return vectors
