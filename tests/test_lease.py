"""One writer per store: two processes against one local store and one S3 (moto) store.

A holder is a real subprocess that enters ``store_lease`` and sleeps; it is released by exiting,
or killed with SIGKILL (a holder that died: its lease expires and is taken over).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from neuroscribe.errors import NeuroscribeError
from neuroscribe.lease import holder, require_lease, store_lease

REPO = Path(__file__).resolve().parents[1]
HOLD = """
import json, sys, time
from neuroscribe.lease import store_lease
store, options, ttl, seconds, ready = sys.argv[1], json.loads(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4]), sys.argv[5]
with store_lease(store, options, ttl_s=ttl, flow_run_id="flow-run-of-the-holder") as lease:
    open(ready, "w").write(lease.run_id)
    time.sleep(seconds)
"""


def start_holder(store: str, options: dict, tmp_path: Path, ttl: float = 60.0, seconds: float = 60.0) -> tuple[subprocess.Popen, str]:
    ready = tmp_path / f"ready-{time.monotonic_ns()}"
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.Popen([sys.executable, "-c", HOLD, store, json.dumps(options), str(ttl), str(seconds), str(ready)], env=env)
    deadline = time.monotonic() + 60
    while not ready.exists() or not ready.read_text():
        assert proc.poll() is None and time.monotonic() < deadline, "the holder process did not take the lease"
        time.sleep(0.05)
    return proc, ready.read_text()


@pytest.fixture(params=["local", "s3"])
def store(request, tmp_path):
    """(store URI, fsspec options) on local disk or on a moto S3 server."""
    if request.param == "local":
        return str(tmp_path / "store"), {}
    options = request.getfixturevalue("s3_options")
    return f"s3://test/runs/{tmp_path.name}", options


def test_a_second_writer_gets_one_error_naming_the_holder_and_since_when(store, tmp_path):
    uri, options = store
    proc, run_id = start_holder(uri, options, tmp_path)
    try:
        live = holder(uri, options)
        assert live is not None and live.pid == proc.pid and live.run_id == run_id
        with pytest.raises(NeuroscribeError) as info, store_lease(uri, options):
            pass
        message = str(info.value)
        for part in (uri, f"pid {proc.pid}", run_id, "flow-run-of-the-holder", f"since {live.acquired_at:%Y-%m-%d %H:%M:%S}", "--wait"):
            assert part in message
    finally:
        proc.kill()
        proc.wait()


def test_wait_queues_behind_the_holder_until_it_releases(store, tmp_path):
    uri, options = store
    proc, first = start_holder(uri, options, tmp_path, seconds=3)
    began = time.monotonic()
    with store_lease(uri, options, wait_s=60) as lease:
        waited = time.monotonic() - began
        assert proc.wait(10) == 0  # the holder finished and released; then we got the next generation
        assert lease.run_id != first and holder(uri, options).run_id == lease.run_id
    assert 1.0 < waited < 30
    assert holder(uri, options) is None  # released on exit


def test_an_expired_lease_of_a_dead_holder_on_another_host_is_taken_over(store, tmp_path, monkeypatch):
    uri, options = store
    proc, dead_run = start_holder(uri, options, tmp_path, ttl=3)
    os.kill(proc.pid, signal.SIGKILL)  # no release, no more heartbeats
    proc.wait()
    monkeypatch.setattr(socket, "gethostname", lambda: "another-host")  # its pid cannot be checked from there
    with pytest.raises(NeuroscribeError, match="is being written by"), store_lease(uri, options):
        pass  # not yet expired
    replaced = []
    with store_lease(uri, options, wait_s=30, on_takeover=replaced.append) as lease:
        assert lease.generation == 1
    assert [(r.run_id, r.pid, r.flow_run_id) for r in replaced] == [(dead_run, proc.pid, "flow-run-of-the-holder")]


def test_a_dead_holder_on_this_host_is_taken_over_at_once(tmp_path):
    uri = str(tmp_path / "store")
    proc, dead_run = start_holder(uri, {}, tmp_path, ttl=600)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    replaced = []
    began = time.monotonic()
    with store_lease(uri, on_takeover=replaced.append):  # no --wait needed
        assert time.monotonic() - began < 5
    assert [r.run_id for r in replaced] == [dead_run]


def test_the_heartbeat_keeps_a_short_lease_alive(store, tmp_path):
    uri, options = store
    proc, run_id = start_holder(uri, options, tmp_path, ttl=2, seconds=5)
    try:
        time.sleep(3)  # longer than the ttl: only renewals keep it
        assert holder(uri, options).run_id == run_id
        with pytest.raises(NeuroscribeError, match="is being written by"), store_lease(uri, options):
            pass
    finally:
        proc.wait(20)


def test_racing_writers_exactly_one_wins(store):
    uri, options = store
    won, refused = [], []
    barrier = threading.Barrier(6)

    def writer():
        barrier.wait()
        try:
            with store_lease(uri, options) as lease:
                won.append(lease.run_id)
                time.sleep(1.5)  # hold while the others try
        except NeuroscribeError:
            refused.append(1)

    threads = [threading.Thread(target=writer) for _ in range(6)]  # each thread is its own context
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(won) == 1 and len(refused) == 5


def test_the_same_context_re_enters_and_overwrite_needs_the_lease(tmp_path):
    uri = str(tmp_path / "store")
    with pytest.raises(NeuroscribeError, match="--overwrite on store .* needs the store's writer lease"):
        require_lease(uri, "--overwrite")
    with store_lease(uri) as outer:
        with store_lease(uri) as inner:  # e.g. run_explain calling run_extraction
            assert inner is None
        require_lease(uri, "--overwrite")
        assert holder(uri).run_id == outer.run_id


def test_the_cli_refuses_a_second_writer_in_one_line(image_folder, tmp_path):
    store = str(tmp_path / "store")
    proc, _ = start_holder(store, {}, tmp_path)
    try:
        cli = subprocess.run(
            [sys.executable, "-c", "from neuroscribe.cli import main; main()", "extract", "--model",
             "neuroscribe.testing.tiny_models:tiny_cnn", "--layers", "conv1", "--dataset", str(image_folder), "--store", store],
            capture_output=True, text=True, timeout=300, env=dict(os.environ, PYTHONPATH=str(REPO)), check=False,
        )
    finally:
        proc.kill()
        proc.wait()
    assert cli.returncode == 2 and "Traceback" not in cli.stderr
    assert "is being written by" in cli.stderr and f"pid {proc.pid}" in cli.stderr and "--wait" in cli.stderr


@pytest.mark.slow  # a Prefect server and a Dask LocalCluster: ~1 min on 2 cores
def test_a_sweep_takes_each_combinations_lease_and_reports_a_held_one_as_failed(image_folder, tmp_path):
    from neuroscribe.flows._run import prefect_api
    from neuroscribe.flows.sweep import sweep_flow
    from neuroscribe.config import DatasetSpec, ModelSpec, RunnerSpec
    from neuroscribe.sweep import SweepConfig, combination_done, plan_sweep

    cfg = SweepConfig(
        flow="extract", root=str(tmp_path / "sweep"), models=[ModelSpec(name="neuroscribe.testing.tiny_models:tiny_cnn")],
        datasets=[DatasetSpec(uri=str(image_folder), shard_size=4)], layers=["conv1", "conv2"], settings={"k": 2},
        runner=RunnerSpec(n_workers=1, threads_per_worker=1, device="cpu"),
    )
    free, held = plan_sweep(cfg)
    proc, _ = start_holder(held.store, {}, tmp_path, seconds=600)  # another process writes the second combination's store
    try:
        with prefect_api():
            state = sweep_flow(cfg, return_state=True)
    finally:
        proc.kill()
        proc.wait()
    assert state.is_failed() and held.name in state.message
    assert combination_done(free, {}) and not combination_done(held, {})
    assert holder(free.store) is None  # released after its run and its done mark


def test_overwrite_removes_the_store_but_not_the_lease_of_the_run_replacing_it(store):
    from neuroscribe import store as st

    uri, options = store
    st.StoreFile(uri, "zarr.json", options).write_json({})
    st.StoreFile(uri, "shards/000000.json", options).write_json({})
    with store_lease(uri, options) as lease:
        st.RunStore(uri, options).remove()
        assert not st.StoreFile(uri, "zarr.json", options).exists() and not st.StoreFile(uri, "shards/000000.json", options).exists()
        assert holder(uri, options).run_id == lease.run_id


def test_exclusive_create_lets_exactly_one_of_racing_creators_have_each_generation(tmp_path):
    """The primitive under the lease, raced hard on local disk: an exists-then-write create lets two win."""
    from neuroscribe.lease import LeaseRecord, _LeaseFiles, _now

    files = _LeaseFiles(str(tmp_path / "store"), None)
    for generation in range(1, 41):
        barrier, wins = threading.Barrier(8), []

        def create(i: int, generation: int = generation, barrier: threading.Barrier = barrier, wins: list = wins) -> None:
            now = _now()
            record = LeaseRecord(generation=generation, owner="test", host="h", pid=i, run_id=f"run-{i}",
                                 acquired_at=now, renewed_at=now, expires_at=now)
            barrier.wait()
            if files.create(record):
                wins.append(i)

        threads = [threading.Thread(target=create, args=(i,)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(wins) == 1, f"generation {generation}: {len(wins)} creators won"
