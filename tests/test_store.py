"""The run store (``RunStore``): its typed paths, side files and Zarr arrays, on a local path and on S3
(moto), and its errors."""

from __future__ import annotations

import io
import json
import threading
import warnings

import numpy as np
import pandas as pd
import pytest
import zarr

from neuroscribe import store as st
from neuroscribe.config import DatasetSpec, ExtractConfig
from neuroscribe.errors import NeuroscribeError
from neuroscribe.store import RunStore


@pytest.fixture(params=["local", "s3"])
def run_store(request, tmp_path):
    """(uri, storage_options) of an empty run store, local or in the moto bucket ``test``."""
    if request.param == "local":
        return str(tmp_path / "run"), {}
    return "s3://test/runs/r1", request.getfixturevalue("s3_options")


def frame() -> pd.DataFrame:
    return pd.DataFrame(
        {"unit": np.arange(4, dtype=np.int64), "label": ["stripes", "fur", "wheel, rim", "é"], "iou": [0.5, np.nan, 0.125, 1.0]}
    )


def test_json_round_trips_and_lands_where_the_layout_says(run_store):
    uri, options = run_store
    obj = {"run_key": "abc", "ok": 3, "skipped": [{"id": 7, "reason": "truncated"}], "nested": {"x": [1.5, None]}}
    st.StoreFile(uri, "shards/000003.json", options).write_json(obj)
    assert st.StoreFile(uri, "shards/000003.json", options).read_json() == obj
    fs, root = st.filesystem(uri, options)
    assert json.loads(fs.cat_file(f"{root}/shards/000003.json")) == obj  # a plain JSON file at that path
    assert st.StoreFile(uri, "shards/000003.json", options).exists() and not st.StoreFile(uri, "shards/000004.json", options).exists()
    assert st.StoreFile(uri, "shards", options).list() == ["000003.json"]
    assert st.StoreFile(uri, "nothing-here", options).list() == []


def test_tables_are_written_as_parquet_and_csv_and_read_back_equal(run_store):
    uri, options = run_store
    assert RunStore(uri, options).table("layer4").write_table(frame()).endswith("explanations/layer4.parquet")
    pd.testing.assert_frame_equal(st.StoreFile(uri, "explanations/layer4.parquet", options).read_parquet(), frame())
    csv = pd.read_csv(io.BytesIO(st.StoreFile(uri, "explanations/layer4.csv", options).read_bytes()))
    pd.testing.assert_frame_equal(csv, frame())
    assert st.StoreFile(uri, "explanations", options).list() == ["layer4.csv", "layer4.parquet"]  # no temporary files left


def test_a_rewrite_replaces_the_file_whole(run_store):
    uri, options = run_store
    st.StoreFile(uri, "summary/extract.json", options).write_bytes(b"x" * 1000)
    st.StoreFile(uri, "summary/extract.json", options).write_bytes(b"short")
    assert st.StoreFile(uri, "summary/extract.json", options).read_bytes() == b"short"


def test_missing_files_give_one_error_naming_the_path_and_the_store(run_store):
    uri, options = run_store
    missing = RunStore(uri, options).table("layer9")
    for read in (missing.read_bytes, missing.read_json, missing.read_parquet):
        with pytest.raises(NeuroscribeError, match=rf"explanations/layer9.parquet is missing from store {uri}; run the stage"):
            read()


def test_zarr_group_is_created_reopened_read_only_and_holds_its_arrays(run_store):
    uri, options = run_store
    with pytest.raises(NeuroscribeError, match=rf"store {uri} holds no neuroscribe run; run `neuroscribe extract`"):
        st.RunStore(uri, options).arrays("r")

    group = st.RunStore(uri, options).arrays("a")
    group.attrs["neuroscribe"] = {"run_key": "abc", "k": 5}
    data = np.arange(24, dtype=np.float32).reshape(6, 4)
    group.create_array("activations/layer4/max", shape=data.shape, dtype="float32", chunks=(3, 4))[:] = data

    reopened = st.RunStore(uri, options).arrays("r")
    np.testing.assert_array_equal(reopened["activations/layer4/max"][:], data)
    assert st.RunStore(uri, options).attrs() == {"run_key": "abc", "k": 5}
    with pytest.raises(ValueError, match="read-only"):  # nothing is written by a reader
        reopened["activations/layer4/max"][0] = 1.0
    assert st.StoreFile(uri, "arrays/zarr.json", options).exists() and not st.StoreFile(uri, "zarr.json", options).exists()  # layout 2


def test_remove_deletes_the_whole_store(run_store):
    uri, options = run_store
    st.StoreFile(uri, "a/b.json", options).write_json({})
    st.StoreFile(uri, "c.json", options).write_json({})
    st.RunStore(uri, options).remove()
    assert not st.StoreFile(uri, "a/b.json", options).exists() and not st.StoreFile(uri, "c.json", options).exists()
    st.RunStore(uri, options).remove()  # removing a missing store is a no-op


def test_store_that_cannot_be_opened_is_one_clear_error():
    with pytest.raises(NeuroscribeError, match=r"store nosuchproto://x/y cannot be opened .*check the URL"):
        st.StoreFile("nosuchproto://x/y", "zarr.json").exists()


@pytest.mark.parametrize(("uri", "expected"), [("runs/r50", "runs/r50/vocabulary"), ("s3://b/r50/", "s3://b/r50/vocabulary")])
def test_full_uri_joins_with_one_slash(uri, expected):
    assert st.full_uri(uri, "vocabulary") == expected


def test_concurrent_local_writers_of_one_file_never_fail_nor_mix(tmp_path):
    """Two tasks may write the same side file (a shared answer cache, a repeated shard marker)."""
    uri, errors = str(tmp_path / "run"), []
    contents = [bytes([ord("a") + i]) * 20_000 for i in range(4)]

    def write(data: bytes) -> None:
        for _ in range(100):
            try:
                st.StoreFile(uri, "cache/answer.json").write_bytes(data)
            except Exception as exc:  # noqa: BLE001 - any failure is the bug
                errors.append(repr(exc))

    threads = [threading.Thread(target=write, args=(data,)) for data in contents]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert st.StoreFile(uri, "cache/answer.json").read_bytes() in contents  # one whole write, not a mix
    assert st.StoreFile(uri, "cache").list() == ["answer.json"]  # no temporary file left behind


TYPED_PATHS = [
    (lambda s: s.index(), "index.parquet"),
    (lambda s: s.shard_marker(3), "shards/000003.json"),
    (lambda s: s.summary("extract"), "summary/extract.json"),
    (lambda s: s.summary("ablate-blocks.5"), "summary/ablate-blocks.5.json"),
    (lambda s: s.summaries(), "summary"),
    (lambda s: s.explain_config(), "explain_config.json"),
    (lambda s: s.table("layer4"), "explanations/layer4.parquet"),
    (lambda s: s.table("layer4").with_suffix(".json"), "explanations/layer4.json"),
    (lambda s: s.table("blocks.5").with_suffix(".csv"), "explanations/blocks.5.csv"),
    (lambda s: s.gallery("layer4"), "gallery/layer4.html"),
    (lambda s: s.gallery_strips("layer4").folder("7-abc.jpg"), "gallery/layer4/7-abc.jpg"),
    (lambda s: s.embeddings("layer4", "k1", [64, 65, 127]), "embeddings/layer4/k1/000064-000127.npz"),
    (lambda s: s.crop_embeddings("fp").folder("c.npz"), "embeddings/crops/fp/c.npz"),
    (lambda s: s.concept_embeddings("k2"), "embeddings/k2.npy"),
    (lambda s: s.ablation("fc"), "ablation/fc.parquet"),
    (lambda s: s.ablation("fc", table="units"), "ablation/fc.units.parquet"),
    (lambda s: s.ablation("fc", "a1b2", "baseline"), "ablation/fc.set-a1b2.baseline.parquet"),
    (lambda s: s.ablation("fc").with_suffix(".png"), "ablation/fc.png"),
    (lambda s: s.ablation_part("fc", "run", "part"), "ablation/parts/fc/run/part.parquet"),
    (lambda s: s.evaluation(), "evaluation/evaluation.json"),
    (lambda s: s.evaluation(".md"), "evaluation/evaluation.md"),
    (lambda s: s.evaluation_layer("fc", "units.parquet"), "evaluation/fc/units.parquet"),
    (lambda s: s.evaluation_images("k3"), "evaluation/images/k3.npz"),
    (lambda s: s.vocabulary(), "vocabulary/vocabulary.parquet"),
    (lambda s: s.vocabulary("compare-x").with_suffix(".json"), "vocabulary/compare-x.json"),
    (lambda s: s.llm_cache(), "vocabulary/llm_cache"),
    (lambda s: s.input_images().folder("h.png"), "inputs/images/h.png"),
    (lambda s: s.input_list("k4"), "inputs/k4.tsv"),
    (lambda s: s.leases(), "lease"),
    (lambda s: s.lease(2), "lease/00000002.json"),
    (lambda s: s.recorded("ablation/fc.html"), "ablation/fc.html"),
]


@pytest.mark.parametrize(("artifact", "relpath"), TYPED_PATHS, ids=[p for _, p in TYPED_PATHS])
def test_each_artifact_has_its_documented_path(artifact, relpath):
    file = artifact(RunStore("s3://b/r50/", {"anon": True}))
    assert (file.relpath, file.uri, file.storage_options) == (relpath, f"s3://b/r50/{relpath}", {"anon": True})
    assert f"<store>/{relpath.split('/')[0]}" in st.__doc__  # the docstring's layout lists every top-level entry


def test_the_evaluation_vocabulary_is_a_store_inside_the_evaluation_folder():
    inner = RunStore("runs/r50").evaluation_vocabulary()
    assert inner.vocabulary("compare-x").uri == "runs/r50/evaluation/vocabulary/compare-x.parquet"


def test_store_files_round_trip_and_list_and_remove(run_store):
    uri, options = run_store
    store = RunStore(uri, options)
    record = {"run_key": "abc", "ok": 3}
    store.shard_marker(0).write_json(record)
    store.shard_marker(1).write_bytes(b"{}")
    assert store.shard_marker(0).read_json() == record
    assert st.StoreFile(uri, "shards/000000.json", options).read_json() == record  # the file is where the layout says
    store.index().write_parquet(frame())
    pd.testing.assert_frame_equal(store.index().read_parquet(), frame())
    strips = store.gallery_strips("fc")
    strips.folder("1.jpg").write_bytes(b"jpeg")
    assert strips.list() == ["1.jpg"] and store.gallery_strips("other").list() == []
    strips.folder("1.jpg").remove()
    strips.folder("1.jpg").remove()  # removing a missing file is a no-op
    assert not strips.folder("1.jpg").exists() and store.index().exists()
    with pytest.raises(NeuroscribeError, match=rf"explain_config.json is missing from store {uri}"):
        store.explain_config().read_bytes()


def _arrays_with_side_files(store: RunStore) -> None:
    """A small store as extraction, patches and explanations leave it: arrays and side files."""
    root = store.arrays("a")
    root.attrs["neuroscribe"] = {"layout": st.LAYOUT_VERSION, "run_key": "abc"}
    store.activations("fc", "a").create_array("max", data=np.arange(6, dtype=np.float32).reshape(3, 2))
    store.topk("fc", "a").create_array("image_id", data=np.array([[2, 0], [1, -1]], dtype=np.int64))
    store.patches("fc", "a").create_array("rank", data=np.zeros((2, 2), dtype=np.int32))
    store.index().write_parquet(frame())
    store.shard_marker(0).write_json({"run_key": "abc"})
    store.summary("extract").write_json({"images": 3})
    store.table("fc").write_table(frame())
    store.explain_config().write_json({})


def test_array_groups_are_created_found_and_absent_ones_are_none(run_store):
    uri, options = run_store
    store = RunStore(uri, options)
    assert not store.has_run()
    with pytest.raises(NeuroscribeError, match=rf"store {uri} holds no neuroscribe run"):
        store.attrs()
    _arrays_with_side_files(store)
    assert store.has_run() and not store.old_layout()
    assert store.attrs() == {"layout": st.LAYOUT_VERSION, "run_key": "abc"}
    np.testing.assert_array_equal(store.activations("fc")["max"][:], np.arange(6).reshape(3, 2))
    np.testing.assert_array_equal(store.topk("fc")["image_id"][:], [[2, 0], [1, -1]])
    assert store.topk("other") is None and store.patches("other") is None and store.activations("other") is None
    with pytest.raises(ValueError, match="read-only"):
        store.topk("fc")["image_id"][0, 0] = 5
    store.topk("fc", "r+")["image_id"][0, 0] = 5  # writers of existing arrays open them r+
    assert store.topk("fc")["image_id"][0, 0] == 5
    store.remove_patches("fc")
    assert store.patches("fc") is None and store.topk("fc") is not None


def test_opening_the_arrays_with_zarr_raises_no_warning(run_store):
    """What a user does in a notebook: open the arrays' root with plain zarr, beside every side file."""
    uri, options = run_store
    store = RunStore(uri, options)
    _arrays_with_side_files(store)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        zarr_store = zarr_store_of(st.full_uri(uri, st.ARRAYS_DIR), options)
        group = zarr.open_group(store=zarr_store, mode="r")
        names = sorted(name for name, _ in group.members(max_depth=None))
    assert names == ["activations", "activations/fc", "activations/fc/max", "patches", "patches/fc", "patches/fc/rank",
                     "topk", "topk/fc", "topk/fc/image_id"]


def zarr_store_of(uri: str, options: dict):
    if uri.startswith("s3://"):
        return zarr.storage.FsspecStore.from_url(uri, storage_options=options, read_only=True)
    return zarr.storage.LocalStore(uri, read_only=True)


def test_an_old_layout_store_is_one_error_naming_the_store_and_the_fix(tmp_path):
    uri = str(tmp_path / "old")
    old = zarr.open_group(uri, mode="w", zarr_format=3)  # layout 1: the group at the store root
    old.attrs["neuroscribe"] = {"run_key": "abc"}
    store = RunStore(uri)
    assert store.has_run() and store.old_layout()
    for open_it in (store.attrs, lambda: store.arrays("a"), lambda: store.topk("fc")):
        with pytest.raises(NeuroscribeError, match=rf"store {uri} has the old layout 1 .* `neuroscribe extract --overwrite`"):
            open_it()


def test_configs_with_a_store_hand_out_their_run_store():
    cfg = ExtractConfig(layers=("fc",), dataset=DatasetSpec(uri="d"), store="s3://b/r", store_options={"anon": True})
    assert (cfg.run_store.uri, cfg.run_store.storage_options) == ("s3://b/r", {"anon": True})
    assert cfg.run_store.index().uri == "s3://b/r/index.parquet"
