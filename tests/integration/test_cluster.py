"""The explain flow on real components: a Prefect server, a Dask scheduler with a GPU and a CPU worker, S3.

Run alone with ``pytest -m integration``.  The flow runs in its own process, as the CLI runs it;
the store and the dataset are on S3, the credentials in the config (so they must stay unlogged).
"""

from __future__ import annotations

import time

import pandas as pd
import pytest

from integration.conftest import (
    SECRET,
    TINY,
    assert_same_store,
    run_flow_process,
    task_stream,
    wait_until,
    write_config,
)
from neuroscribe import store as st
from neuroscribe.config import DatasetSpec, RunnerSpec
from neuroscribe.explanation import ExplainConfig, run_explain

pytestmark = [pytest.mark.integration, pytest.mark.timeout(420)]

LAYERS = ("relu2", "fc")
GPU_TASKS = {"extract_shards", "reduce_topk", "embed_block"}  # the stages run functions (Dask names tasks after them)
CONCEPTS = ["red", "green", "blue", "stripes", "dots", "grass", "sky", "metal"]


def stored_result(data: bytes):
    """A value Prefect persisted: a whole result record, or a bare serialized value (its metadata kept apart)."""
    from prefect._internal.result_records import ResultRecord
    from prefect.serializers import PickleSerializer

    try:
        return ResultRecord.deserialize(data).result
    except ValueError:
        return PickleSerializer().loads(data)


def test_explain_flow_on_the_cluster_with_store_and_dataset_on_s3(s3, prefect_server, flow_env, cluster, tiny_clip, tmp_path, logdir):
    dataset, folder = s3.upload_images("images-main", tmp_path, per_class=4)  # 16 images, 8 shards
    concepts = tmp_path / "concepts.txt"
    concepts.write_text("\n".join(CONCEPTS) + "\n")
    cfg = ExplainConfig(
        model=TINY, layers=LAYERS, dataset=DatasetSpec(uri=dataset, shard_size=2, storage_options=s3.options),
        store=s3.uri("runs", "main"), store_options=s3.options, k=3, vocabulary={"sources": (f"file:{concepts}",)},
        backend=tiny_clip, units_per_task=8, runner=RunnerSpec(dask_address=cluster.address, batch_size=2),
    )
    began = time.time()
    summary = run_flow_process("neuroscribe.flows.explain:explain_flow", write_config(tmp_path / "cfg.json", cfg), flow_env, logdir / "main-flow.log")
    assert summary["extraction"]["ok"] == 16 and [s["layer"] for s in summary["layers"]] == list(LAYERS)

    # GPU-annotated work (extraction, top-k maps, embeddings) ran on the GPU-declaring worker only
    ran = task_stream(cluster, began)
    gpu_work = [t for t in ran if t["name"] in GPU_TASKS]
    assert sorted({t["name"] for t in gpu_work}) == sorted(GPU_TASKS)
    assert [t["name"] for t in gpu_work].count("extract_shards") == 8
    assert {t["worker"] for t in gpu_work} == {"gpu"} and {t["status"] for t in ran} == {"OK"}

    # every task run of the flow run finished, as the Prefect server recorded them
    [run] = prefect_server.post("/flow_runs/filter", {"flow_runs": {"name": {"any_": ["explain-tiny_cnn-images-main-relu2+fc"]}}})
    assert run["state_type"] == "COMPLETED"

    def task_states():
        runs = prefect_server.post("/task_runs/filter", {"flow_runs": {"id": {"any_": [run["id"]]}}})
        return {r["state_type"] for r in runs} if len(runs) >= len(ran) else None

    assert wait_until(task_states, 30, "task runs on the server") == {"COMPLETED"}

    # the tables and the whole store equal a plain local run's (no Prefect, no Dask, local files)
    local = ExplainConfig(  # the flat extraction fields replace the nested ones
        **dict(cfg), dataset=cfg.extract.dataset.model_copy(update={"uri": str(folder), "storage_options": {}}),
        store=str(tmp_path / "local"), store_options={}, runner=RunnerSpec(device="cpu"),
    )
    run_explain(local)
    for layer in LAYERS:
        pd.testing.assert_frame_equal(
            st.StoreFile(cfg.extract.store, f"explanations/{layer}.parquet", s3.options).read_parquet(), st.StoreFile(local.extract.store, f"explanations/{layer}.parquet").read_parquet()
        )
        assert st.StoreFile(cfg.extract.store, f"gallery/{layer}.html", s3.options).exists()
    assert_same_store(cfg.extract.store, s3.options, local.extract.store)

    # the final markdown artifact links the tables and galleries; progress artifacts were kept up to date
    artifacts = prefect_server.post("/artifacts/filter", {"artifacts": {"flow_run_id": {"any_": [run["id"]]}}})
    [markdown] = [a for a in artifacts if a["key"] == "explain-summary"]
    assert all(f"{cfg.extract.store}/explanations/{layer}.parquet" in markdown["data"] for layer in LAYERS)
    assert all(f"{cfg.extract.store}/gallery/{layer}.html" in markdown["data"] for layer in LAYERS)
    progress = [a for a in artifacts if a["type"] == "progress"]
    assert progress and all(a["data"] == 100.0 for a in progress)

    # Prefect persisted results to S3 through the result-storage block: the flow's own summary is there
    assert summary in [stored_result(s3.fs.cat_file(p)) for p in s3.fs.find(s3.uri("prefect-results"))]

    # the credential given in the config shows up nowhere: not in logs, parameters or artifacts
    params = prefect_server.get(f"/flow_runs/{run['id']}")["parameters"]
    extract = params["config"]["extract"]  # the explain config holds its extraction
    assert extract["store_options"]["secret"] == "***" and extract["dataset"]["storage_options"]["key"] == "***"
    logs = prefect_server.post("/logs/filter", {"logs": {"flow_run_id": {"any_": [run["id"]]}}})
    assert logs
    shown = str(params) + str(logs) + str(artifacts) + "".join(p.read_text(errors="replace") for p in logdir.glob("*.log"))
    assert SECRET not in shown
