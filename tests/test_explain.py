"""The explain stage end to end on tiny models: valid tables, content-keyed reruns, inactive units, errors."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from neuroscribe import store as st
from neuroscribe.config import DatasetSpec, ModelSpec, RunnerSpec
from neuroscribe.errors import NeuroscribeError
from neuroscribe.explanation import ExplainConfig, run_explain, score_layer
from neuroscribe.scoring.rules import INACTIVE

CONCEPTS = ["red", "green", "blue", "stripes", "dots", "grass", "sky", "metal"]


@pytest.fixture
def concept_file(tmp_path):
    path = tmp_path / "concepts.txt"
    path.write_text("\n".join(CONCEPTS) + "\n")
    return path


@pytest.fixture(scope="module")
def tiny_clip_spec():
    from neuroscribe.testing.tiny_clip import register_tiny_clip

    return register_tiny_clip(device="cpu")


def _config(image_folder, tmp_path, concept_file, backend, model="neuroscribe.testing.tiny_models:tiny_cnn", **kw):
    return ExplainConfig(
        model=ModelSpec(name=model),
        layers=kw.pop("layers", ("relu2", "fc")),
        dataset=DatasetSpec(uri=str(image_folder), shard_size=4),
        store=str(tmp_path / "store"),
        k=3,
        vocabulary={"sources": (f"file:{concept_file}",)},
        backend=backend,
        units_per_task=5,
        runner=RunnerSpec(device="cpu"),
        **kw,
    )


def test_tables_have_one_valid_row_per_unit_and_a_gallery(image_folder, tmp_path, concept_file, tiny_clip_spec):
    cfg = _config(image_folder, tmp_path, concept_file, tiny_clip_spec)
    frames = run_explain(cfg)
    for layer, units in (("relu2", 16), ("fc", 4)):
        frame = st.StoreFile(cfg.extract.store, f"explanations/{layer}.parquet").read_parquet()
        assert list(frame.unit) == list(range(units)) and (frame.layer == layer).all()
        assert list(frame.columns) == ["layer", "unit", "explanation", "score", "margin", "confidence", "uncertain", "agreement", "alternatives", "top_image_ids"]
        active = frame[frame.explanation != INACTIVE]
        assert active.explanation.isin(CONCEPTS).all()
        assert ((active.score > 0) & (active.score <= 1)).all() and (active.margin >= 0).all()
        assert ((active.agreement >= 0) & (active.agreement <= 1)).all()
        assert ((frame.confidence >= 0) & (frame.confidence < 1)).all() and (frame.uncertain == (active.confidence < 0.5)).reindex(frame.index, fill_value=False).all()
        for _, row in active.iterrows():
            scores = [a["score"] for a in row.alternatives]
            assert row.alternatives[0]["concept"] == row.explanation and scores == sorted(scores, reverse=True)
            assert len(scores) == 5 and np.isclose(row.margin, scores[0] - scores[1])
            assert 1 <= len(row.top_image_ids) <= 3 and all(0 <= i < 12 for i in row.top_image_ids)
        assert st.StoreFile(cfg.extract.store, f"gallery/{layer}.html").exists() and st.StoreFile(cfg.extract.store, f"explanations/{layer}.csv").exists()
        assert frames[layer].explanation.tolist() == frame.explanation.tolist()
        np.testing.assert_allclose(frames[layer].score, frame.score)


def test_new_vocabulary_reruns_only_concept_embedding_and_scoring(image_folder, tmp_path, concept_file, tiny_clip_spec, monkeypatch):
    from neuroscribe import explanation

    cfg = _config(image_folder, tmp_path, concept_file, tiny_clip_spec)
    run_explain(cfg)
    backend = explanation.cached_backend(cfg.backend)
    calls = {"images": 0, "texts": 0}
    original_images, original_texts = backend.embed_images, backend.embed_texts
    monkeypatch.setattr(backend, "embed_images", lambda imgs, *a, **k: calls.__setitem__("images", calls["images"] + 1) or original_images(imgs, *a, **k))
    monkeypatch.setattr(backend, "embed_texts", lambda txt, *a, **k: calls.__setitem__("texts", calls["texts"] + 1) or original_texts(txt, *a, **k))
    run_explain(cfg)
    assert calls == {"images": 0, "texts": 0}  # everything cached by content
    other = tmp_path / "other.txt"
    other.write_text("yellow\ncheckerboard\nfur\n")
    frames = run_explain(cfg.model_copy(update={"vocabulary": cfg.vocabulary.model_copy(update={"sources": (f"file:{other}",)})}))
    assert calls["images"] == 0 and calls["texts"] >= 1
    assert set(frames["fc"].explanation) <= {"yellow", "checkerboard", "fur", INACTIVE}


def test_softwpmi_rule_scores_whole_top_images(image_folder, tmp_path, concept_file, tiny_clip_spec):
    from neuroscribe.scoring.rules import RuleSpec

    cfg = _config(image_folder, tmp_path, concept_file, tiny_clip_spec, layers=("fc",), rule=RuleSpec(name="softwpmi"))
    frame = run_explain(cfg)["fc"]
    assert list(frame.unit) == [0, 1, 2, 3] and frame.explanation.isin(CONCEPTS).all()
    assert all(row[0]["concept"] == best for row, best in zip(frame.alternatives, frame.explanation))


def test_a_unit_that_never_fires_is_inactive(image_folder, tmp_path, concept_file, tiny_clip_spec):
    cfg = _config(image_folder, tmp_path, concept_file, tiny_clip_spec, model="neuroscribe.testing.tiny_models:tiny_cnn_dead_unit", layers=("relu2",))
    frame = run_explain(cfg)["relu2"]
    assert frame.explanation[0] == INACTIVE and frame.score[0] == 0
    assert (frame.explanation[1:] != INACTIVE).all()


def test_bad_input_errors(image_folder, tmp_path, concept_file, tiny_clip_spec):
    cfg = _config(image_folder, tmp_path, concept_file, tiny_clip_spec, layers=("fc",))
    run_explain(cfg)
    with pytest.raises(NeuroscribeError, match="layer 'relu2' was not extracted"):
        score_layer(ExplainConfig(**dict(cfg), layers=("relu2",)), "relu2", str(tmp_path / "store"))
    empty = tmp_path / "empty.txt"
    empty.write_text("\n")
    with pytest.raises(NeuroscribeError, match="empty"):
        run_explain(cfg.model_copy(update={"vocabulary": cfg.vocabulary.model_copy(update={"sources": (f"file:{empty}",)})}))
    # concept vectors of another backend (dimension 384) cannot score patches embedded in 32 dimensions
    from neuroscribe.scoring.rules import explain_units

    with pytest.raises(NeuroscribeError, match="same backend"):
        explain_units("seed", [np.ones((2, 32), np.float32)], np.ones((3, 384), np.float32), ["a", "b", "c"])


def test_a_linear_layer_embeds_each_original_top_image_once_per_run_across_blocks(
    image_folder, tmp_path, concept_file, tiny_clip_spec, monkeypatch
):
    """A linear unit's patch is its whole image: the backend reads the original (at its own input
    size, not the stored crop's), and each image once, however many units and blocks share it."""
    from neuroscribe import explanation
    from neuroscribe.data import load_image
    from neuroscribe.patches import cut as patch_cut

    monkeypatch.setattr(patch_cut, "BLOCK_UNITS", 1)  # fc's 4 units in 4 tasks that share top images
    cfg = _config(image_folder, tmp_path, concept_file, tiny_clip_spec, layers=("fc",)).model_copy(update={"units_per_task": 1})
    backend = explanation.cached_backend(cfg.backend)
    embedded: list[bytes] = []
    original = backend.embed_images

    def recording(images, *a, **k):
        embedded.extend(np.asarray(im).tobytes() for im in images)
        return original(images, *a, **k)

    monkeypatch.setattr(backend, "embed_images", recording)
    decoded: list[str] = []
    real_load = explanation.load_image
    monkeypatch.setattr(explanation, "load_image", lambda path, *a, **k: decoded.append(path) or real_load(path, *a, **k))
    run_explain(cfg)
    image_id = st.RunStore(cfg.extract.store).arrays("r")["patches/fc/image_id"][:]
    paths = st.StoreFile(cfg.extract.store, "index.parquet").read_parquet().set_index("id")["path"]
    images = {int(i): load_image(paths[int(i)]) for i in np.unique(image_id[image_id >= 0])}
    assert (image_id >= 0).sum() > len(images)  # the units do share top images
    assert sorted(embedded) == sorted(np.asarray(im).tobytes() for im in images.values())  # each embedded once
    assert sorted(decoded) == sorted(paths[i] for i in images)  # and decoded once: a known image is not read again
    # the stored vectors are the backend's own embedding of each unit's original top images, in rank order
    key = explanation.embedding_key(cfg, "fc", backend.fingerprint)
    stored = explanation._load_embeddings(cfg, "fc", key)
    for u, vectors in enumerate(stored):
        expected = original([images[int(i)] for i in image_id[u] if i >= 0])
        np.testing.assert_allclose(vectors, expected, rtol=0, atol=1e-5)


def test_conv_units_embed_their_crops_with_the_mask_as_alpha(image_folder, tmp_path, concept_file, tiny_clip_spec, monkeypatch):
    from neuroscribe import explanation
    from neuroscribe.patches import load_layer_patches

    cfg = _config(image_folder, tmp_path, concept_file, tiny_clip_spec, layers=("relu2",))
    backend = explanation.cached_backend(cfg.backend)
    run_explain(cfg)
    [block] = list(load_layer_patches(cfg.extract.store, "relu2", block_units=1 << 20))
    # what is embedded: each crop with its mask as alpha (backends that read the region use it)
    rgba = np.concatenate([block.crops, block.masks[..., None].astype(np.uint8) * 255], axis=-1)
    key = explanation.embedding_key(cfg, "relu2", backend.fingerprint)
    stored = explanation._load_embeddings(cfg, "relu2", key)
    for u, vectors in enumerate(stored):
        if len(vectors):
            expected = backend.embed_images([Image.fromarray(c) for c in rgba[u][block.image_id[u] >= 0]])
            np.testing.assert_allclose(vectors, expected, rtol=0, atol=1e-5)


def test_embedding_runs_in_bounded_batches_with_the_same_vectors(image_folder, tmp_path, concept_file, tiny_clip_spec, monkeypatch):
    """``EMBED_BATCH`` inputs are decoded and embedded at a time: one cache file per batch, same vectors."""
    from neuroscribe import explanation

    whole = _config(image_folder, tmp_path / "whole", concept_file, tiny_clip_spec, layers=("fc",))
    run_explain(whole)
    monkeypatch.setattr(explanation, "EMBED_BATCH", 1)
    batched = _config(image_folder, tmp_path / "batched", concept_file, tiny_clip_spec, layers=("fc",))
    run_explain(batched)
    fingerprint = explanation.cached_backend(batched.backend).fingerprint
    files = [f for f in st.StoreFile(batched.extract.store, f"embeddings/crops/{fingerprint}").list() if f.endswith(".npz")]
    ids = st.RunStore(batched.extract.store).arrays("r")["patches/fc/image_id"][:]
    assert len(files) == len(np.unique(ids[ids >= 0]))  # one file per (single-input) batch
    # equal up to float noise of batch size in the backend's matmuls
    np.testing.assert_allclose(explanation.stored_vectors(batched, "fc"), explanation.stored_vectors(whole, "fc"), rtol=0, atol=1e-5)
