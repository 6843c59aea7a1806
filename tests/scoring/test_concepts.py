"""Concept embeddings: template averaging, and the content-keyed cache in the run store."""

from __future__ import annotations

import numpy as np
import pytest

from neuroscribe.errors import NeuroscribeError
from neuroscribe.scoring import (
    OpenClipSpec,
    concept_cache_key,
    concept_embeddings,
    make_backend,
)
from neuroscribe.store import RunStore

CONCEPTS = ["stripes", "red", "wheel", "fur", "grass {x}"]  # braces in a concept must survive templating


@pytest.fixture
def counted(tiny_clip, monkeypatch):
    """Count the backend's text-embedding calls: a cache hit must make none."""
    calls: list[int] = []
    original = tiny_clip.embed_texts

    def embed_texts(texts, on_progress=None):
        calls.append(len(texts))
        return original(texts, on_progress=on_progress)

    monkeypatch.setattr(tiny_clip, "embed_texts", embed_texts)
    return calls


def _unit_rows(a: np.ndarray) -> np.ndarray:
    return a / np.linalg.norm(a, axis=1, keepdims=True)


def test_templates_are_averaged_then_renormalised(tiny_clip):
    templates = ("a photo of {}.", "a close-up of {}.")
    got = concept_embeddings(tiny_clip, CONCEPTS, templates)
    first = tiny_clip.embed_texts([f"a photo of {c}." for c in CONCEPTS])
    second = tiny_clip.embed_texts([f"a close-up of {c}." for c in CONCEPTS])
    np.testing.assert_allclose(got, _unit_rows((first + second) / 2), atol=1e-5)
    # default templates are the backend's: CLIP's caption prompt
    np.testing.assert_allclose(concept_embeddings(tiny_clip, CONCEPTS), first, atol=1e-5)


def test_second_call_reads_the_cache(tiny_clip, counted, tmp_path):
    store = str(tmp_path / "run")
    first = concept_embeddings(tiny_clip, CONCEPTS, cache_uri=store, vocab_hash="v1")
    assert counted == [len(CONCEPTS)]
    key = concept_cache_key(tiny_clip, CONCEPTS, tiny_clip.templates, "v1")
    assert RunStore(store).concept_embeddings(key).exists()
    second = concept_embeddings(tiny_clip, CONCEPTS, cache_uri=store, vocab_hash="v1")
    assert counted == [len(CONCEPTS)]  # no new embedding call
    np.testing.assert_array_equal(first, second)


def test_changed_inputs_get_new_keys(tiny_clip, tiny_clip_arch, counted, tmp_path):
    store = str(tmp_path / "run")
    concept_embeddings(tiny_clip, CONCEPTS, cache_uri=store, vocab_hash="v1")
    concept_embeddings(tiny_clip, CONCEPTS, cache_uri=store, vocab_hash="v2")  # vocabulary changed
    concept_embeddings(tiny_clip, CONCEPTS, ("{}",), cache_uri=store, vocab_hash="v1")  # templates changed
    concept_embeddings(tiny_clip, CONCEPTS[:-1], cache_uri=store, vocab_hash="v1")  # concepts changed
    assert counted == [5, 5, 5, 4]
    assert len(list((tmp_path / "run" / "embeddings").glob("*.npy"))) == 4
    other = make_backend(OpenClipSpec(arch=tiny_clip_arch, checkpoint=None, pretrained=None, device="cpu", batch_size=2))
    assert concept_cache_key(other, CONCEPTS, ("{}",), "v1") == concept_cache_key(tiny_clip, CONCEPTS, ("{}",), "v1")
    other.fingerprint = "another-backend"  # e.g. other weights
    assert concept_cache_key(other, CONCEPTS, ("{}",), "v1") != concept_cache_key(tiny_clip, CONCEPTS, ("{}",), "v1")


def test_corrupt_cache_file_is_recomputed(tiny_clip, counted, tmp_path):
    store = tmp_path / "run"
    first = concept_embeddings(tiny_clip, CONCEPTS, cache_uri=str(store), vocab_hash="v1")
    key = concept_cache_key(tiny_clip, CONCEPTS, tiny_clip.templates, "v1")
    RunStore(str(store)).concept_embeddings(key).write_bytes(b"half a file")
    again = concept_embeddings(tiny_clip, CONCEPTS, cache_uri=str(store), vocab_hash="v1")
    assert len(counted) == 2
    np.testing.assert_array_equal(first, again)


def test_bad_vocabulary_and_templates(tiny_clip):
    with pytest.raises(NeuroscribeError, match="vocabulary is empty"):
        concept_embeddings(tiny_clip, [])
    with pytest.raises(NeuroscribeError, match="exactly once"):
        concept_embeddings(tiny_clip, CONCEPTS, ("a photo",))
