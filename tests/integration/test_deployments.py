"""``prefect deploy`` of deployments/prefect.yaml to a real server, and the sweep deployment run twice
by a real process worker on the Dask cluster: the second, wider run skips the finished combination.

Run alone with ``pytest -m integration``.
"""

from __future__ import annotations

import re
import subprocess
import sys
import time

import pytest

from integration.conftest import REPO, TINY, start_service, task_stream, wait_until
from neuroscribe import store as st
from neuroscribe import sweep
from neuroscribe.config import DatasetSpec, RunnerSpec

pytestmark = [pytest.mark.integration, pytest.mark.timeout(420)]

POOL = "neuroscribe"


@pytest.fixture(scope="module")
def deployed(prefect_server, flow_env, logdir):
    """The work pool, every deployment of prefect.yaml, and a process worker polling the pool."""
    env = flow_env | {"NEUROSCRIBE_HOME": str(REPO), "PREFECT_WORKER_QUERY_SECONDS": "1"}
    for cmd in (
        [sys.executable, "-m", "prefect", "work-pool", "create", POOL, "--type", "process", "--overwrite"],
        [sys.executable, "-m", "prefect", "--no-prompt", "deploy", "--all", "--prefect-file", "deployments/prefect.yaml"],
    ):
        done = subprocess.run(cmd, env=env, cwd=REPO, capture_output=True, text=True, timeout=240, check=False)
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    worker = start_service("prefect-worker", [sys.executable, "-m", "prefect", "worker", "start", "--pool", POOL, "--limit", "1"], env, logdir)
    yield prefect_server
    worker.stop()


def run_deployment(server, name: str, config) -> dict:
    deployment = server.get(f"/deployments/name/{name}")
    run = server.post(f"/deployments/{deployment['id']}/create_flow_run", {"parameters": {"config": config.model_dump(mode="json")}})
    final = wait_until(
        lambda: (r := server.get(f"/flow_runs/{run['id']}"))["state_type"] in ("COMPLETED", "FAILED", "CRASHED", "CANCELLED") and r,
        300, f"the {name} run", every=1,
    )
    assert final["state_type"] == "COMPLETED", final["state"]
    assert final["work_pool_name"] == POOL
    return final


def sweep_statuses(server, parent: dict) -> dict[str, str]:
    [artifact] = server.post("/artifacts/filter", {"artifacts": {"key": {"any_": ["sweep-summary"]}}, "sort": "CREATED_DESC", "limit": 1})
    assert artifact["created"] >= parent["start_time"]
    return dict(re.findall(r"^\| (\S+) \| ([^|]+?) \|", artifact["data"], re.MULTILINE)[1:])


def test_deployments_are_on_the_server_with_their_schedule(deployed):
    names = {d["name"] for d in deployed.post("/deployments/filter", {})}
    assert {"explain", "ablate", "extract", "sweep-weekly"} <= names
    weekly = deployed.get("/deployments/name/neuroscribe-sweep/sweep-weekly")
    assert [s["schedule"]["cron"] for s in weekly["schedules"]] == ["0 2 * * 6"]
    assert weekly["work_pool_name"] == POOL and weekly["global_concurrency_limit"]["limit"] == 1


def test_a_worker_runs_the_sweep_deployment_and_a_wider_rerun_skips_finished_combinations(deployed, s3, cluster, tmp_path):
    dataset, _ = s3.upload_images("images-sweep", tmp_path, per_class=2)  # 8 images: 2 shards of 4
    cfg = sweep.SweepConfig(
        flow="extract", root=s3.uri("sweeps", "test"), models=[TINY], datasets=[DatasetSpec(uri=dataset, shard_size=4)],
        layers=["conv1"], settings={"k": 3}, runner=RunnerSpec(dask_address=cluster.address, batch_size=4),
    )
    first = run_deployment(deployed, "neuroscribe-sweep/sweep-weekly", cfg)
    assert sweep_statuses(deployed, first) == {"tiny_cnn/neuroscribe-images-sweep/conv1": "done"}

    wider = cfg.model_copy(update={"layers": (("conv1",), ("conv1", "conv2"))})
    began = time.time()
    second = run_deployment(deployed, "neuroscribe-sweep/sweep-weekly", wider)
    assert sweep_statuses(deployed, second) == {
        "tiny_cnn/neuroscribe-images-sweep/conv1": "skipped (done)",
        "tiny_cnn/neuroscribe-images-sweep/conv1+conv2": "done",
    }
    # only the new combination computed anything, on the GPU worker
    ran = task_stream(cluster, began)
    assert sorted(t["name"] for t in ran) == ["extract_shards"] * 2 + ["reduce_topk"] * 2 and {t["worker"] for t in ran} == {"gpu"}
    for combo in sweep.plan_sweep(wider):
        assert sweep.combination_done(combo, s3.options)
        assert list(st.RunStore(combo.store, s3.options).attrs()["layers"]) == list(combo.layers)
    # each combination ran as a subflow named after its model, dataset and layers
    runs = deployed.post("/flow_runs/filter", {"flow_runs": {"start_time": {"after_": second["start_time"]}}})
    assert "extract-tiny_cnn-images-sweep-conv1+conv2" in {r["name"] for r in runs}
