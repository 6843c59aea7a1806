"""Extraction stores exactly what a direct forward pass computes, resumes, and refuses stale stores."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from neuroscribe import store as st
from neuroscribe.config import DatasetSpec, ExtractConfig, ModelSpec
from neuroscribe.data import build_index, load_image
from neuroscribe.errors import NeuroscribeError
from neuroscribe.extraction import extract_shards, prepare_extraction, run_extraction, unit_quantiles
from neuroscribe.models import load_model

TINY_CNN = "neuroscribe.testing.tiny_models:tiny_cnn"
TINY_VIT = "neuroscribe.testing.tiny_models:tiny_vit"


def _config(image_folder, tmp_path, model=TINY_CNN, layers="conv1,conv2,fc", **kw):
    dataset = DatasetSpec(uri=str(image_folder), shard_size=kw.pop("shard_size", 5))
    return ExtractConfig(model=ModelSpec(name=model), layers=layers, dataset=dataset, store=str(tmp_path / "store"), k=kw.pop("k", 4), **kw)


def _direct_outputs(model_name, folder, layer_names):
    """Independent reference: plain forward hooks on a fresh model, no neuroscribe extraction code."""
    loaded = load_model(ModelSpec(name=model_name))
    index = build_index(DatasetSpec(uri=str(folder)))
    x = torch.stack([loaded.preprocessing.transform()(load_image(p)) for p in index["path"]])
    modules = dict(loaded.model.named_modules())
    outs = {}
    handles = [modules[n].register_forward_hook(lambda m, i, o, n=n: outs.__setitem__(n, o.detach())) for n in layer_names]
    with torch.no_grad():
        loaded.model(x)
    for h in handles:
        h.remove()
    return outs


def _numpy_topk(values: np.ndarray, k: int):
    order = np.argsort(-values, axis=0, kind="stable")[:k].T  # [units, k], ties -> lower id
    return np.take_along_axis(values.T, order, axis=1), order


def test_stored_statistics_and_topk_match_direct_forward(image_folder, tmp_path):
    cfg = _config(image_folder, tmp_path)
    summary = run_extraction(cfg)
    assert summary.ok == summary.images == 12 and summary.skipped == 0
    ref = _direct_outputs(TINY_CNN, image_folder, ["conv1", "conv2", "fc"])
    group = st.open_group(cfg.store, "r")
    for layer in ("conv1", "conv2"):
        out = ref[layer].numpy()
        np.testing.assert_allclose(group[f"activations/{layer}/max"][:], out.max(axis=(2, 3)), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(group[f"activations/{layer}/mean"][:], out.mean(axis=(2, 3)), rtol=1e-5, atol=1e-6)
        values, ids = _numpy_topk(out.max(axis=(2, 3)), cfg.k)
        np.testing.assert_array_equal(group[f"topk/{layer}/image_id"][:], ids)
        np.testing.assert_allclose(group[f"topk/{layer}/value"][:], values, rtol=1e-5, atol=1e-6)
        maps = group[f"topk/{layer}/maps"][:]
        assert maps.shape == (out.shape[1], cfg.k, *out.shape[2:])
        expected = np.stack([out[ids[u], u] for u in range(out.shape[1])])
        np.testing.assert_allclose(maps, expected, rtol=1e-5, atol=1e-6)
    fc = ref["fc"].numpy()
    np.testing.assert_allclose(group["activations/fc/max"][:], fc, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(group["topk/fc/image_id"][:], _numpy_topk(fc, cfg.k)[1])
    assert "maps" not in group["topk/fc"]


def test_vit_mlp_neurons_have_patch_grid_maps_and_class_token(image_folder, tmp_path):
    layer = "encoder.layers.encoder_layer_1.mlp.1"
    cfg = _config(image_folder, tmp_path, model=TINY_VIT, layers=layer)
    run_extraction(cfg)
    out = _direct_outputs(TINY_VIT, image_folder, [layer])[layer].numpy()  # [B, 1 + 16, 24]
    grid = out[:, 1:, :].reshape(out.shape[0], 4, 4, 24).transpose(0, 3, 1, 2)
    group = st.open_group(cfg.store, "r")
    assert st.run_attrs(cfg.store)["layers"][layer]["map_shape"] == [4, 4]
    assert group[f"topk/{layer}/maps"].shape == (24, cfg.k, 4, 4)
    np.testing.assert_allclose(group[f"activations/{layer}/max"][:], grid.max(axis=(2, 3)), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(group[f"activations/{layer}/cls"][:], out[:, 0, :], rtol=1e-5, atol=1e-6)
    ids = group[f"topk/{layer}/image_id"][:]
    np.testing.assert_allclose(group[f"topk/{layer}/maps"][:][3, 0], grid[ids[3, 0], 3], rtol=1e-5, atol=1e-6)


def test_resume_computes_only_the_rest_and_gives_an_identical_store(image_folder, tmp_path):
    whole = _config(image_folder, tmp_path / "whole")
    run_extraction(whole)
    cfg = _config(image_folder, tmp_path / "resumed")
    extract_shards(cfg, prepare_extraction(cfg).pending[:1])  # interrupted after the first shard
    plan = prepare_extraction(cfg)
    assert plan.pending == [1, 2]
    records = extract_shards(cfg, list(range(plan.n_shards)))
    assert [r["resumed"] for r in records] == [True, False, False]
    run_extraction(cfg)
    a, b = st.open_group(whole.store, "r"), st.open_group(cfg.store, "r")
    for layer in ("conv1", "conv2", "fc"):
        for name in ("activations/{}/max", "activations/{}/mean", "topk/{}/value", "topk/{}/image_id"):
            np.testing.assert_array_equal(a[name.format(layer)][:], b[name.format(layer)][:])
    np.testing.assert_array_equal(a["topk/conv2/maps"][:], b["topk/conv2/maps"][:])


def test_a_store_of_another_extraction_is_refused_then_replaced_on_overwrite(image_folder, tmp_path):
    run_extraction(_config(image_folder, tmp_path))
    other = _config(image_folder, tmp_path, layers="conv2")
    with pytest.raises(NeuroscribeError, match="holds a different extraction.*--overwrite"):
        prepare_extraction(other)
    run_extraction(other.model_copy(update={"overwrite": True}))
    assert list(st.run_attrs(other.store)["layers"]) == ["conv2"]


def test_unknown_layer_lists_the_closest_valid_names(image_folder, tmp_path):
    with pytest.raises(NeuroscribeError, match="'conv3' is not an addressable layer.*closest valid names: conv"):
        prepare_extraction(_config(image_folder, tmp_path, layers="conv3"))


def test_bad_images_are_recorded_as_skipped_and_counted(image_folder, tmp_path):
    (image_folder / "class0" / "empty.jpg").write_bytes(b"")
    (image_folder / "class1" / "notes.jpg").write_text("not an image")
    cfg = _config(image_folder, tmp_path)
    summary = run_extraction(cfg)
    assert (summary.ok, summary.skipped) == (12, 2)
    index = st.read_parquet(cfg.store, "index.parquet")
    skipped = index[index.status == "skipped"]
    assert sorted(skipped.reason.str.split(" ").str[0]) == ["empty", "not"]
    maxima = st.open_group(cfg.store, "r")["activations/conv2/max"][:]
    assert np.isnan(maxima[skipped.id.to_numpy()]).all() and not np.isnan(maxima[index.status == "ok"]).any()


def test_unit_quantiles_match_numpy_over_all_map_values(image_folder, tmp_path):
    # shards of 4 images x 16 x 16 positions fit in the per-shard sample, so the estimate is exact
    cfg = _config(image_folder, tmp_path, layers="conv2", shard_size=4)
    run_extraction(cfg)
    out = _direct_outputs(TINY_CNN, image_folder, ["conv2"])["conv2"].numpy()
    expected = np.quantile(out.transpose(1, 0, 2, 3).reshape(out.shape[1], -1), 0.9, axis=1)
    np.testing.assert_allclose(unit_quantiles(cfg.store, "conv2", 0.9), expected, rtol=1e-5, atol=1e-6)


def test_the_reduce_takes_the_winners_maps_from_the_shards_without_a_second_pass(image_folder, tmp_path, monkeypatch):
    from neuroscribe import extraction

    cfg = _config(image_folder, tmp_path, layers="conv1,conv2", k=3, shard_size=4)
    forwards = []
    real = extraction.forward_batches
    monkeypatch.setattr(extraction, "forward_batches", lambda *a, **k: forwards.append(len(a[1])) or real(*a, **k))
    run_extraction(cfg)
    assert forwards == [4, 4, 4]  # the three shards, and no second pass over the top images
    ref = _direct_outputs(TINY_CNN, image_folder, ["conv1", "conv2"])
    group = st.open_group(cfg.store, "r")
    for layer in ("conv1", "conv2"):
        out = ref[layer].numpy()
        ids = group[f"topk/{layer}/image_id"][:]
        expected = np.stack([out[ids[u], u] for u in range(out.shape[1])])
        np.testing.assert_allclose(group[f"topk/{layer}/maps"][:], expected, rtol=1e-5, atol=1e-6)
    # a larger k than the shards kept: the winners' maps come from a second pass, still exact
    forwards.clear()
    bigger = cfg.model_copy(update={"k": 5})
    extraction.reduce_topk(bigger, "conv2")
    assert forwards and sum(forwards) <= 12
    out = ref["conv2"].numpy()
    ids = group["topk/conv2/image_id"][:]
    assert ids.shape[1] == 5
    np.testing.assert_allclose(group["topk/conv2/maps"][:], np.stack([out[ids[u], u] for u in range(out.shape[1])]), rtol=1e-5, atol=1e-6)
