"""Fault injection on real components: a Dask worker dies mid-extraction; the flow process dies mid-run.

40 images in 20 shards of 2, so that both faults strike while most shards are still to do.
The store must end up equal to a plain local run's: no gaps, no duplicates, no torn shards.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time

import pytest

from integration.conftest import (
    REPO,
    assert_same_store,
    extract_config,
    flow_command,
    local_run,
    run_flow_process,
    shard_markers,
    task_stream,
    wait_idle,
    wait_until,
    write_config,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(420)]

SHARDS = 20


@pytest.fixture(scope="module")
def images40(s3, tmp_path_factory):
    """40 images on S3 and locally, and the local run's store to compare with."""
    tmp = tmp_path_factory.mktemp("faults")
    dataset, folder = s3.upload_images("images-40", tmp, per_class=10)
    local = local_run(extract_config(dataset, "unused", "unused", {}), folder, tmp)
    return dataset, local


def start_flow_process(cfg, tmp_path, env, log):
    with open(log, "wb") as out:
        return subprocess.Popen(
            flow_command("neuroscribe.flows.extract:extract_flow", write_config(tmp_path / "cfg.json", cfg)),
            env=env, stdout=out, stderr=subprocess.STDOUT, cwd=REPO, start_new_session=True,
        )


def test_a_worker_killed_mid_extraction_loses_nothing(s3, flow_env, start_cluster, images40, tmp_path, logdir):
    dataset, local = images40
    cluster = start_cluster("kill-worker", {"gpu-a": True, "gpu-b": True})
    # credentials from the AWS variables of the flow process and workers this time, none in the config
    cfg = extract_config(dataset, s3.uri("runs", "kill-worker"), cluster.address, {})
    began = time.time()
    proc = start_flow_process(cfg, tmp_path, flow_env, logdir / "kill-worker-flow.log")
    try:
        # both workers are busy with shards; some are done
        wait_until(
            lambda: len(shard_markers(s3.fs, cfg.store)) >= 3 and {"gpu-a", "gpu-b"} <= {t["worker"] for t in task_stream(cluster, began)},
            180, "extraction under way on both workers", every=0.5,
        )
        cluster.workers["gpu-b"].kill()
        killed = time.time()
        done_at_kill = len(shard_markers(s3.fs, cfg.store))
        assert proc.wait(timeout=300) == 0, (logdir / "kill-worker-flow.log").read_text()[-4000:]
        after = task_stream(cluster, killed)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        cluster.stop()  # this cluster is this test's alone: free its processes now
    assert done_at_kill < SHARDS
    # from the kill on, the surviving worker did all the work, the dead one's share included
    assert after and {t["worker"] for t in after} == {"gpu-a"}
    assert "Remove worker" in cluster.scheduler.tail(100000)
    assert len(shard_markers(s3.fs, cfg.store)) == SHARDS
    assert_same_store(cfg.store, s3.options, local)


def resumed_shards(prefect_server) -> int:
    [artifact] = prefect_server.post("/artifacts/filter", {"artifacts": {"key": {"any_": ["extract-summary"]}}, "sort": "CREATED_DESC", "limit": 1})
    return int(re.search(r"\| resumed shards \| (\d+) \|", artifact["data"]).group(1))


def test_a_killed_flow_process_resumes_and_skips_finished_shards(s3, prefect_server, flow_env, cluster, images40, tmp_path, logdir):
    dataset, local = images40
    cfg = extract_config(dataset, s3.uri("runs", "kill-flow"), cluster.address, s3.options)
    proc = start_flow_process(cfg, tmp_path, flow_env, logdir / "kill-flow-first.log")
    try:
        wait_until(lambda: len(shard_markers(s3.fs, cfg.store)) >= 4, 180, "some shards done", every=0.3)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the flow process, like its machine, is gone at once
        proc.wait(10)
    # what the dead flow had sent to the workers still finishes there (a task is not interrupted)
    wait_idle(cluster)
    before = shard_markers(s3.fs, cfg.store)
    assert 4 <= len(before) < SHARDS

    began = time.time()
    summary = run_flow_process("neuroscribe.flows.extract:extract_flow", tmp_path / "cfg.json", flow_env, logdir / "kill-flow-rerun.log")
    assert (summary["ok"], summary["shards"]) == (40, SHARDS)
    # finished shards were skipped, not recomputed: their markers are byte for byte the same
    after = shard_markers(s3.fs, cfg.store)
    assert len(after) == SHARDS and all(after[name] == data for name, data in before.items())
    resumed = resumed_shards(prefect_server)
    assert resumed == len(before)
    rerun = [t for t in task_stream(cluster, began) if t["name"] == "extract_shards"]
    assert len(rerun) == SHARDS - resumed
    assert_same_store(cfg.store, s3.options, local)
