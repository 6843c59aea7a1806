"""The run store's side files and Zarr group, on a local path and on S3 (moto), and its errors."""

from __future__ import annotations

import io
import json
import threading

import numpy as np
import pandas as pd
import pytest

from neuroscribe import store as st
from neuroscribe.errors import NeuroscribeError


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
    st.write_json(uri, "shards/000003.json", obj, options)
    assert st.read_json(uri, "shards/000003.json", options) == obj
    fs, root = st.filesystem(uri, options)
    assert json.loads(fs.cat_file(f"{root}/shards/000003.json")) == obj  # a plain JSON file at that path
    assert st.exists(uri, "shards/000003.json", options) and not st.exists(uri, "shards/000004.json", options)
    assert st.list_files(uri, "shards", options) == ["000003.json"]
    assert st.list_files(uri, "nothing-here", options) == []


def test_tables_are_written_as_parquet_and_csv_and_read_back_equal(run_store):
    uri, options = run_store
    st.write_table(uri, "explanations/layer4", frame(), options)
    pd.testing.assert_frame_equal(st.read_parquet(uri, "explanations/layer4.parquet", options), frame())
    csv = pd.read_csv(io.BytesIO(st.read_bytes(uri, "explanations/layer4.csv", options)))
    pd.testing.assert_frame_equal(csv, frame())
    assert st.list_files(uri, "explanations", options) == ["layer4.csv", "layer4.parquet"]  # no temporary files left


def test_a_rewrite_replaces_the_file_whole(run_store):
    uri, options = run_store
    st.write_bytes(uri, "summary/extract.json", b"x" * 1000, options)
    st.write_bytes(uri, "summary/extract.json", b"short", options)
    assert st.read_bytes(uri, "summary/extract.json", options) == b"short"


def test_missing_files_give_one_error_naming_the_path_and_the_store(run_store):
    uri, options = run_store
    for read in (st.read_bytes, st.read_json, st.read_parquet):
        with pytest.raises(NeuroscribeError, match=rf"explanations/layer9.parquet is missing from store {uri}; run the stage"):
            read(uri, "explanations/layer9.parquet", options)


def test_zarr_group_is_created_reopened_read_only_and_holds_its_arrays(run_store):
    uri, options = run_store
    with pytest.raises(NeuroscribeError, match=rf"store {uri} holds no neuroscribe run; run `neuroscribe extract`"):
        st.open_group(uri, "r", options)

    group = st.open_group(uri, "a", options)
    group.attrs["neuroscribe"] = {"run_key": "abc", "k": 5}
    data = np.arange(24, dtype=np.float32).reshape(6, 4)
    group.create_array("activations/layer4/max", shape=data.shape, dtype="float32", chunks=(3, 4))[:] = data

    reopened = st.open_group(uri, "r", options)
    np.testing.assert_array_equal(reopened["activations/layer4/max"][:], data)
    assert st.run_attrs(uri, options) == {"run_key": "abc", "k": 5}
    with pytest.raises(ValueError, match="read-only"):  # nothing is written by a reader
        reopened["activations/layer4/max"][0] = 1.0
    assert st.exists(uri, "zarr.json", options)


def test_remove_deletes_the_whole_store(run_store):
    uri, options = run_store
    st.write_json(uri, "a/b.json", {}, options)
    st.write_json(uri, "c.json", {}, options)
    st.remove(uri, options)
    assert not st.exists(uri, "a/b.json", options) and not st.exists(uri, "c.json", options)
    st.remove(uri, options)  # removing a missing store is a no-op


def test_store_that_cannot_be_opened_is_one_clear_error():
    with pytest.raises(NeuroscribeError, match=r"store nosuchproto://x/y cannot be opened .*check the URL"):
        st.exists("nosuchproto://x/y", "zarr.json")


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
                st.write_bytes(uri, "cache/answer.json", data)
            except Exception as exc:  # noqa: BLE001 - any failure is the bug
                errors.append(repr(exc))

    threads = [threading.Thread(target=write, args=(data,)) for data in contents]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert st.read_bytes(uri, "cache/answer.json") in contents  # one whole write, not a mix
    assert st.list_files(uri, "cache") == ["answer.json"]  # no temporary file left behind
