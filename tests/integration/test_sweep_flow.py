"""The deployed sweep entry flow on the cluster: one subflow and store per combination; done ones skipped.

Run alone with ``pytest -m integration``.
"""

from __future__ import annotations

import time

import pytest

from integration.conftest import TINY, run_flow_process, task_stream, write_config
from neuroscribe import store as st
from neuroscribe import sweep
from neuroscribe.config import DatasetSpec, RunnerSpec

pytestmark = pytest.mark.integration


def test_sweep_runs_each_combination_once_and_skips_finished_ones_on_rerun(s3, prefect_server, flow_env, cluster, tmp_path, logdir):
    dataset, _ = s3.upload_images("images-sweep", tmp_path, per_class=2)  # 8 images: 2 shards of 4
    cfg = sweep.SweepConfig(
        flow="extract", root=s3.uri("sweeps", "test"), models=[TINY],
        datasets=[DatasetSpec(uri=dataset, shard_size=4)], layers=["conv1"], settings={"k": 3},
        runner=RunnerSpec(dask_address=cluster.address, batch_size=4),
    )
    first = run_flow_process("flows.deployed:sweep", write_config(tmp_path / "a.json", cfg), flow_env, logdir / "sweep-1.log", direct=True)
    assert [(r["name"], r["status"]) for r in first["combinations"]] == [("tiny_cnn/neuroscribe-images-sweep/conv1", "done")]

    # a wider grid: the finished combination is skipped, the new one runs, each in its own store
    wider = cfg.model_copy(update={"layers": (("conv1",), ("conv1", "conv2"))})
    began = time.time()
    second = run_flow_process("flows.deployed:sweep", write_config(tmp_path / "b.json", wider), flow_env, logdir / "sweep-2.log", direct=True)
    assert [(r["name"], r["status"]) for r in second["combinations"]] == [
        ("tiny_cnn/neuroscribe-images-sweep/conv1", "skipped (done)"), ("tiny_cnn/neuroscribe-images-sweep/conv1+conv2", "done"),
    ]
    assert sorted(t["name"] for t in task_stream(cluster, began)) == ["extract_shards"] * 2 + ["reduce_topk"] * 2

    for combo in sweep.plan_sweep(wider):
        assert sweep.combination_done(combo, s3.options)
        attrs = st.run_attrs(combo.store, s3.options)
        assert list(attrs["layers"]) == list(combo.layers) and attrs["dataset"]["n_images"] == 8
    # each combination was a subflow of the sweep's flow run, named after its model, dataset and layers
    [parent] = prefect_server.post("/flow_runs/filter", {"flow_runs": {"name": {"any_": ["sweep-extract-tiny_cnn-2runs"]}}})
    children = prefect_server.post("/flow_runs/filter", {"flow_runs": {"parent_task_run_id": {"is_null_": False}}})
    names = {c["name"] for c in children if c["start_time"] >= parent["start_time"]}
    assert "extract-tiny_cnn-images-sweep-conv1+conv2" in names and "extract-tiny_cnn-images-sweep-conv1" not in names
