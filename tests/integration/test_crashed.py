"""A killed flow process shows as Crashed in a real ``prefect server``, once the next run takes its store over.

The first ``extract`` flow process is SIGKILLed mid-run: no engine is left to report, so its flow run
stays Running.  The next run on the same store finds the lease's process gone (same host; from
another host it would wait for the lease to expire, see tests/test_lease.py), takes the store over,
marks the dead run Crashed with a message, and finishes the extraction.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from integration.conftest import (
    FLOWRUN,
    REPO,
    TINY,
    run_flow_process,
    wait_until,
    write_config,
)
from neuroscribe.config import DatasetSpec, ExtractConfig, RunnerSpec
from neuroscribe.lease import holder

pytestmark = [pytest.mark.integration, pytest.mark.timeout(420)]

TTL_S = 6.0


def flow_run(prefect_server, run_id: str) -> dict:
    return prefect_server.get(f"/flow_runs/{run_id}")


def test_a_killed_flow_run_is_marked_crashed_by_the_run_that_takes_its_store_over(prefect_server, tmp_path, logdir):
    from conftest import make_image_folder

    folder = make_image_folder(tmp_path / "images", classes=12, per_class=12)  # 144 images, 72 shards
    cfg = ExtractConfig(
        model=TINY, layers=("conv1",), dataset=DatasetSpec(uri=str(folder), shard_size=2), store=str(tmp_path / "store"), k=3,
        runner=RunnerSpec(device="cpu", batch_size=2, store_lease_ttl_s=TTL_S, wait_for_store_s=120),
    )
    config_file = write_config(tmp_path / "cfg.json", cfg)
    env = dict(os.environ) | {
        "PREFECT_API_URL": prefect_server.api_url, "PREFECT_HOME": str(tmp_path / "prefect-client"), "PYTHONPATH": str(REPO),
        "PREFECT_LOGGING_LEVEL": "INFO", "TQDM_DISABLE": "1",
    }
    log = logdir / "crashed-first.log"
    with open(log, "wb") as out:  # the flow on Prefect's default thread-pool runner: no Dask needed here
        first = subprocess.Popen(
            [sys.executable, str(FLOWRUN), "neuroscribe.flows.extract:extract_flow", str(config_file), "--direct"],
            env=env, stdout=out, stderr=subprocess.STDOUT, cwd=REPO, start_new_session=True,
        )
    try:
        lease = wait_until(lambda: holder(cfg.store), 120, "the first run's lease", every=0.1)
        assert lease.flow_run_id and lease.pid == first.pid
        wait_until(lambda: os.path.isdir(f"{cfg.store}/shards") and os.listdir(f"{cfg.store}/shards"), 60, "a finished shard", every=0.1)
    finally:
        os.killpg(first.pid, signal.SIGKILL)  # the flow process is gone at once, mid-run
        first.wait(10)
    dead = flow_run(prefect_server, lease.flow_run_id)
    assert dead["state"]["type"] == "RUNNING", log.read_text()[-3000:]  # what the UI shows without help

    summary = run_flow_process("neuroscribe.flows.extract:extract_flow", config_file, env, logdir / "crashed-second.log", direct=True)
    assert summary["ok"] == 144 and summary["shards"] == 72
    dead = flow_run(prefect_server, lease.flow_run_id)
    assert dead["state"]["type"] == "CRASHED"
    assert f"pid {first.pid}" in dead["state"]["message"] and "stopped renewing the lease" in dead["state"]["message"]
    assert holder(cfg.store) is None  # the second run released it


def test_a_dead_holder_unknown_to_this_server_is_reported_not_fatal(prefect_server, caplog):
    """An earlier run may have reported to another (e.g. temporary) server: the takeover goes on."""
    import uuid
    from datetime import datetime, timezone

    from prefect.settings import PREFECT_API_URL, temporary_settings

    from neuroscribe.flows._run import mark_crashed
    from neuroscribe.lease import LeaseRecord

    now = datetime.now(timezone.utc)
    dead = LeaseRecord(
        generation=0, owner="x@y", host="y", pid=1, run_id="r", flow_run_id=str(uuid.uuid4()), acquired_at=now, renewed_at=now, expires_at=now,
    )
    with temporary_settings({PREFECT_API_URL: prefect_server.api_url}):
        mark_crashed(dead)
    assert f"flow run {dead.flow_run_id} of the dead holder could not be marked crashed" in caplog.text
