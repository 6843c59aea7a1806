"""The extraction flow on real components: a Prefect server, a Dask scheduler with a GPU and a CPU worker, S3.

Run alone with ``pytest -m integration``.  Each flow runs in its own process, as the CLI runs it.
"""

from __future__ import annotations

import time

import pytest

from integration.conftest import (
    SECRET,
    assert_same_store,
    extract_config,
    local_run,
    run_flow_process,
    task_stream,
    wait_until,
    write_config,
)

pytestmark = pytest.mark.integration

GPU_TASKS = {"extract_shards", "reduce_topk"}

def stored_result(data: bytes):
    """A value Prefect persisted: a whole result record, or a bare serialized value (its metadata kept apart)."""
    from prefect._internal.result_records import ResultRecord
    from prefect.serializers import PickleSerializer

    try:
        return ResultRecord.deserialize(data).result
    except ValueError:
        return PickleSerializer().loads(data)


def flow_runs_named(server, name: str) -> list[dict]:
    return server.post("/flow_runs/filter", {"flow_runs": {"name": {"any_": [name]}}})


def test_extract_flow_on_cluster_with_store_and_dataset_on_s3(s3, prefect_server, flow_env, cluster, tmp_path, logdir):
    dataset, folder = s3.upload_images("images-main", tmp_path, per_class=4)  # 16 images, 8 shards
    cfg = extract_config(dataset, s3.uri("runs", "main"), cluster.address, s3.options)
    began = time.time()
    summary = run_flow_process("flows.extract:extract_flow", write_config(tmp_path / "cfg.json", cfg), flow_env, logdir / "main-flow.log")
    assert (summary["ok"], summary["skipped"], summary["shards"]) == (16, 0, 8)

    # GPU-annotated work ran on the GPU-declaring worker only, every piece of it, as the scheduler saw it
    ran = [t for t in task_stream(cluster, since=began) if t["name"] in GPU_TASKS]
    assert sorted(t["name"] for t in ran) == sorted(["extract_shards"] * 8 + ["reduce_topk"] * 2)
    assert {t["worker"] for t in ran} == {"gpu"} and {t["status"] for t in ran} == {"OK"}

    # every task run of the flow run finished, as the Prefect server recorded them
    [run] = flow_runs_named(prefect_server, "extract-tiny_cnn-images-main-conv1+conv2")
    assert run["state_type"] == "COMPLETED"

    def task_states():
        runs = prefect_server.post("/task_runs/filter", {"flow_runs": {"id": {"any_": [run["id"]]}}})
        return sorted(r["state_type"] for r in runs) if len(runs) == 12 else None

    assert wait_until(task_states, 30, "task runs on the server") == ["COMPLETED"] * 12

    # the store on S3 equals a plain local run's, array by array
    assert_same_store(cfg.store, s3.options, local_run(cfg, folder, tmp_path))

    # Prefect persisted results to S3 through the result-storage block: the flow's own summary is there
    assert summary in [stored_result(s3.fs.cat_file(p)) for p in s3.fs.find(s3.uri("prefect-results"))]

    # the credential given in the config shows up nowhere: not in logs, parameters or artifacts
    params = prefect_server.get(f"/flow_runs/{run['id']}")["parameters"]
    assert params["config"]["store_options"]["secret"] == "***" and params["config"]["store_options"]["key"] == "***"
    logs = prefect_server.post("/logs/filter", {"logs": {"flow_run_id": {"any_": [run["id"]]}}})
    artifacts = prefect_server.post("/artifacts/filter", {"artifacts": {"flow_run_id": {"any_": [run["id"]]}}})
    assert logs and artifacts
    shown = str(params) + str(logs) + str(artifacts) + "".join(p.read_text(errors="replace") for p in logdir.glob("*.log"))
    assert SECRET not in shown
