"""The open_clip backend on a tiny registered architecture with random weights (no CLIP weights offline)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from neuroscribe.errors import NeuroscribeError
from neuroscribe.scoring import ImageTextBackend, OpenClipSpec, make_backend

from .conftest import TINY_DIM


def test_embeddings_have_shape_dtype_and_unit_norm(tiny_clip, small_images):
    assert isinstance(tiny_clip, ImageTextBackend)
    images = tiny_clip.embed_images(small_images)
    texts = tiny_clip.embed_texts(["a photo of stripes.", "a photo of a dog.", "red"])
    assert images.shape == (len(small_images), TINY_DIM) and images.dtype == np.float32
    assert texts.shape == (3, TINY_DIM) and texts.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(images, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(texts, axis=1), 1.0, atol=1e-5)
    # different inputs must not collapse onto one vector
    assert np.abs(images[0] - images[1]).max() > 1e-3
    assert np.abs(texts[0] - texts[1]).max() > 1e-3
    assert tiny_clip.embed_images([]).shape == (0, TINY_DIM)
    assert tiny_clip.embed_texts([]).shape == (0, TINY_DIM)


def test_batches_and_progress_do_not_change_results(tiny_clip, small_images):
    seen: list[int] = []
    batched = tiny_clip.embed_images(small_images, on_progress=seen.append)  # batch_size 4: two batches
    assert seen == [4, 6]
    one_by_one = np.concatenate([tiny_clip.embed_images([img]) for img in small_images])
    np.testing.assert_allclose(batched, one_by_one, atol=1e-5)


def test_direct_encode_matches(tiny_clip, small_images):
    """The backend is open_clip's own encode_image + L2 normalisation, nothing more."""
    pixels = torch.stack([tiny_clip.preprocess(img) for img in small_images[:2]])
    with torch.no_grad():
        raw = tiny_clip.model.encode_image(pixels)
    expected = (raw / raw.norm(dim=-1, keepdim=True)).numpy()
    np.testing.assert_allclose(tiny_clip.embed_images(small_images[:2]), expected, atol=1e-5)


def test_random_weights_are_reproducible_and_fingerprinted(tiny_clip_arch, tiny_clip, small_images):
    again = make_backend(OpenClipSpec(arch=tiny_clip_arch, pretrained=None, device="cpu", batch_size=64))
    assert again.fingerprint == tiny_clip.fingerprint  # batch size does not change embeddings
    np.testing.assert_allclose(again.embed_images(small_images), tiny_clip.embed_images(small_images), atol=1e-5)
    np.testing.assert_array_equal(again.embed_texts(["stripes"]), tiny_clip.embed_texts(["stripes"]))


def test_local_checkpoint_loads_and_changes_fingerprint(tiny_clip_arch, tiny_clip, small_images, tmp_path):
    path = tmp_path / "tiny.pt"
    torch.save(tiny_clip.model.state_dict(), path)
    loaded = make_backend(OpenClipSpec(arch=tiny_clip_arch, checkpoint=str(path), device="cpu"))
    np.testing.assert_allclose(loaded.embed_images(small_images), tiny_clip.embed_images(small_images), atol=1e-5)
    assert loaded.fingerprint != tiny_clip.fingerprint
    # a file given as `pretrained` works the same and is keyed by content, not by name
    as_pretrained = make_backend(OpenClipSpec(arch=tiny_clip_arch, pretrained=str(path), device="cpu"))
    assert as_pretrained.fingerprint == loaded.fingerprint


def test_bad_specs_say_how_to_fix(tiny_clip_arch, tmp_path):
    with pytest.raises(NeuroscribeError, match="arch 'ViT-B-3' is unknown.*ViT-B-32"):
        make_backend(OpenClipSpec(arch="ViT-B-3", pretrained=None))
    with pytest.raises(NeuroscribeError, match="not-a-tag.*checkpoint"):
        make_backend(OpenClipSpec(arch="ViT-B-32", pretrained="not-a-tag"))
    with pytest.raises(NeuroscribeError, match="checkpoint .*missing.pt does not exist"):
        make_backend(OpenClipSpec(arch=tiny_clip_arch, checkpoint=str(tmp_path / "missing.pt")))
    wrong = tmp_path / "wrong.pt"
    torch.save({"not": torch.zeros(1)}, wrong)
    with pytest.raises(NeuroscribeError, match="wrong.pt.* could not be loaded .*Missing key.*pass the arch the file was saved from"):
        make_backend(OpenClipSpec(arch=tiny_clip_arch, checkpoint=str(wrong)))
    with pytest.raises(ValueError, match="exactly once"):
        OpenClipSpec(templates=("no placeholder",))


def test_tag_that_cannot_be_downloaded_asks_for_a_local_checkpoint(monkeypatch, tmp_path):
    import huggingface_hub.constants as hub

    # an empty cache and no network, whatever the machine running the test has cached
    monkeypatch.setattr(hub, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(hub, "HF_HUB_CACHE", str(tmp_path / "hub"))
    with pytest.raises(NeuroscribeError, match="'openai' could not be loaded.*pass checkpoint: PATH"):
        make_backend(OpenClipSpec(arch="ViT-B-32", pretrained="openai", device="cpu"))
