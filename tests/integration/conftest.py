"""Real components on 127.0.0.1 for the integration tests, started and stopped here.

    prefect_server   a real ``prefect server start`` on SQLite (session)
    s3               a moto S3 server, the AWS variables that reach it, and an ``s3fs`` handle (session)
    start_cluster    a real ``dask scheduler`` plus ``dask worker`` processes, some declaring GPU=1
    flow_env         the environment of a flow process or worker: Prefect API, S3 credentials, results on S3

Every service runs in its own process group; finalizers stop each group they started
(terminate, wait, kill).  Flows run in ``python tests/integration/flowrun.py`` subprocesses, as a
user's CLI or deployment would run them.  Logs of every process land in the test's tmp folder.
"""

from __future__ import annotations

import importlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import urllib3

from neuroscribe.config import DatasetSpec, ExtractConfig, ModelSpec, RunnerSpec

REPO = Path(__file__).resolve().parents[2]
FLOWRUN = Path(__file__).with_name("flowrun.py")
# a credential that must never show up in a log, a Prefect parameter or an artifact
SECRET = f"never-logged-{uuid.uuid4().hex[:12]}"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Service:
    name: str
    proc: subprocess.Popen
    log: Path

    def stop(self, grace: float = 10.0) -> None:
        if self.proc.poll() is not None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(grace)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(5)
        except ProcessLookupError:
            pass

    def kill(self) -> None:
        """Like a machine that dies: SIGKILL to the whole process group, no clean-up."""
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)

    def tail(self, n: int = 4000) -> str:
        return self.log.read_text(errors="replace")[-n:] if self.log.exists() else ""


def start_service(name: str, cmd: list[str], env: dict, logdir: Path) -> Service:
    log = logdir / f"{name}.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=REPO, start_new_session=True)
    return Service(name, proc, log)


def wait_until(predicate, timeout: float, what: str, service: Service | None = None, every: float = 0.25):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if service is not None and service.proc.poll() is not None:
            raise RuntimeError(f"{service.name} exited with {service.proc.returncode} before {what}:\n{service.tail()}")
        try:
            value = predicate()
        except (OSError, ValueError, KeyError):  # not up yet: connection refused, half-written answer
            value = None
        if value:
            return value
        time.sleep(every)
    raise TimeoutError(f"timed out after {timeout} s waiting for {what}" + (f":\n{service.tail()}" if service else ""))


def _http_ok(url: str) -> bool:
    with urllib.request.urlopen(url, timeout=2) as response:
        return response.status == 200


@pytest.fixture(scope="session")
def logdir(tmp_path_factory) -> Path:
    """Logs of every process; NEUROSCRIBE_TEST_LOGS keeps them in a folder of your choice."""
    chosen = os.environ.get("NEUROSCRIBE_TEST_LOGS")
    if chosen:
        Path(chosen).mkdir(parents=True, exist_ok=True)
        return Path(chosen)
    return tmp_path_factory.mktemp("integration-logs")


@dataclass
class S3:
    endpoint: str
    env: dict[str, str]
    bucket: str
    fs: object = field(repr=False)

    def uri(self, *parts: str) -> str:
        return "s3://" + "/".join([self.bucket, *parts])

    @property
    def options(self) -> dict:
        """fsspec options for a config: credentials in the config, which must never be logged."""
        return {"key": self.env["AWS_ACCESS_KEY_ID"], "secret": SECRET, "client_kwargs": {"endpoint_url": self.endpoint}}

    def upload_images(self, name: str, tmp_path: Path, per_class: int) -> tuple[str, Path]:
        """Synthetic class folders (4 classes), locally and at s3://<bucket>/<name>."""
        from conftest import make_image_folder

        folder = make_image_folder(tmp_path / name, classes=4, per_class=per_class)
        self.fs.put(str(folder) + "/", self.uri(name) + "/", recursive=True)
        return self.uri(name), folder


@pytest.fixture(scope="session")
def s3(logdir):
    port = free_port()
    service = start_service("moto", [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)], dict(os.environ), logdir)
    endpoint = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: _http_ok(endpoint + "/moto-api/"), 60, "the moto S3 server", service)
        env = {
            "AWS_ACCESS_KEY_ID": "neuroscribe-test",
            "AWS_SECRET_ACCESS_KEY": SECRET,
            "AWS_ENDPOINT_URL": endpoint,
            "AWS_DEFAULT_REGION": "us-east-1",
        }
        import s3fs

        fs = s3fs.S3FileSystem(key=env["AWS_ACCESS_KEY_ID"], secret=SECRET, client_kwargs={"endpoint_url": endpoint})
        fs.mkdir("neuroscribe")
        yield S3(endpoint, env, "neuroscribe", fs)
    finally:
        service.stop()


@dataclass
class PrefectServer:
    api_url: str
    home: Path
    service: Service

    def get(self, path: str):
        return self._request("GET", path, None, timeout=10)

    def post(self, path: str, body: dict):
        return self._request("POST", path, body, timeout=30)

    def _request(self, method: str, path: str, body: dict | None, timeout: float):
        # the server answers 503 when its SQLite database was busy (a retryable error: nothing was written),
        # and Prefect's own client retries it; so do these calls, with the same kind of backoff
        retries = urllib3.Retry(total=6, status_forcelist=(503,), allowed_methods=None, backoff_factor=0.5)
        response = urllib3.request(method, self.api_url + path, json=body, timeout=timeout, retries=retries)
        if response.status >= 400:
            raise AssertionError(f"{method} {path}: HTTP {response.status} {response.data[:500]!r}")
        return response.json()


@pytest.fixture(scope="session")
def prefect_server(tmp_path_factory, logdir):
    home = tmp_path_factory.mktemp("prefect-server")
    port = free_port()
    env = dict(os.environ) | {
        "PREFECT_HOME": str(home),
        "PREFECT_API_DATABASE_CONNECTION_URL": f"sqlite+aiosqlite:///{home / 'prefect.db'}",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_UI_ENABLED": "false",
    }
    env.pop("PREFECT_API_URL", None)
    service = start_service("prefect-server", [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(port)], env, logdir)
    api = f"http://127.0.0.1:{port}/api"
    try:
        wait_until(lambda: _http_ok(api + "/health"), 120, "the Prefect server", service, every=0.5)
        yield PrefectServer(api, home, service)
    finally:
        service.stop()


@pytest.fixture(scope="session")
def flow_env(prefect_server, s3, tmp_path_factory) -> dict[str, str]:
    """Environment of every flow process and Dask worker: the real server, S3 credentials, results on S3."""
    home = tmp_path_factory.mktemp("prefect-client")
    env = dict(os.environ) | s3.env | {
        "PREFECT_API_URL": prefect_server.api_url,
        "PREFECT_HOME": str(home),
        "PREFECT_LOGGING_LEVEL": "INFO",
        "PREFECT_RESULTS_PERSIST_BY_DEFAULT": "true",
        "PREFECT_RESULTS_DEFAULT_STORAGE_BLOCK": "remote-file-system/neuroscribe-results",
        "PYTHONPATH": str(REPO),
        "TQDM_DISABLE": "1",
    }
    # Prefect's result storage on S3: a RemoteFileSystem block saved on the server, as a user would
    subprocess.run(
        [sys.executable, "deployments/result_storage.py", s3.uri("prefect-results")], env=env, check=True, cwd=REPO, timeout=120
    )
    return env


@dataclass
class Cluster:
    address: str
    scheduler: Service
    workers: dict[str, Service]
    names: dict[str, str] = field(default_factory=dict)  # worker address -> --name

    def client(self):
        from distributed import Client

        return Client(self.address, timeout=30, set_as_default=False)

    def stop(self) -> None:
        for service in [*self.workers.values(), self.scheduler]:
            service.stop()


@pytest.fixture(scope="session")
def start_cluster(flow_env, logdir):
    """``start_cluster("name", {"gpu": True, "cpu": False})``: a scheduler and one single-thread worker per name."""
    clusters: list[Cluster] = []

    def start(tag: str, workers: dict[str, bool]) -> Cluster:
        port = free_port()
        scheduler = start_service(
            f"{tag}-scheduler", [sys.executable, "-m", "dask", "scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard"], flow_env, logdir
        )
        address = f"tcp://127.0.0.1:{port}"
        services = {}
        for name, gpu in workers.items():
            # no nanny: one process per worker, so killing it is a machine going away, not a restart
            cmd = [sys.executable, "-m", "dask", "worker", address, "--name", name, "--nthreads", "1", "--no-nanny", "--no-dashboard", "--host", "127.0.0.1"]
            services[name] = start_service(f"{tag}-{name}", cmd + (["--resources", "GPU=1"] if gpu else []), flow_env, logdir)
        cluster = Cluster(address, scheduler, services)
        clusters.append(cluster)
        with cluster.client() as client:
            wait_until(lambda: len(client.scheduler_info(n_workers=-1)["workers"]) == len(workers), 90, "the Dask workers", scheduler)
            # the scheduler keeps a task stream (who ran which key) only once asked for it
            client.get_task_stream()
            cluster.names = {a: w["name"] for a, w in client.scheduler_info(n_workers=-1)["workers"].items()}
            # import torch and the stages once per worker now, not inside the first timed task
            client.run(importlib.import_module, "neuroscribe.extraction")
        return cluster

    yield start
    for cluster in reversed(clusters):
        cluster.stop()


@pytest.fixture(scope="session")
def tiny_clip():
    """A tiny open_clip architecture (seeded random weights), registered in this process."""
    from neuroscribe.testing.tiny_clip import register_tiny_clip

    return register_tiny_clip()


@pytest.fixture(scope="session")
def cluster(start_cluster, tiny_clip) -> Cluster:
    """The shared cluster: one worker declaring GPU=1, one CPU-only worker; both know the tiny CLIP."""
    from neuroscribe.testing.tiny_clip import register_tiny_clip

    cluster = start_cluster("shared", {"gpu": True, "cpu": False})
    with cluster.client() as client:
        client.run(register_tiny_clip)  # as a model installed on every worker
    return cluster


def task_stream(cluster: Cluster, since: float = 0.0) -> list[dict]:
    """Tasks the scheduler saw computed, started since a ``time.time()``: key, name, worker name, start, status."""
    with cluster.client() as client:
        records = client.get_task_stream(start=since, count=100000)
    out = []
    for r in records:
        start = min((s["start"] for s in r["startstops"] if s["action"] == "compute"), default=None)
        if start is not None and start >= since:
            name = r["key"].rsplit("-", 1)[0]
            out.append({"key": r["key"], "name": name, "worker": cluster.names.get(r["worker"], r["worker"]), "start": start, "status": r["status"]})
    return out


def wait_idle(cluster: Cluster, timeout: float = 60) -> None:
    """Until no worker executes anything, released work included."""
    with cluster.client() as client:
        # a lambda travels by value: the workers cannot import this test module
        executing = lambda dask_worker: len(dask_worker.state.executing)
        wait_until(lambda: not any(client.run(executing).values()), timeout, "idle workers", every=0.5)


TINY = ModelSpec(name="neuroscribe.testing.tiny_models:tiny_cnn")
LAYERS = ("conv1", "conv2")


def extract_config(dataset: str, store: str, address: str, options: dict, shard_size: int = 2) -> ExtractConfig:
    return ExtractConfig(
        model=TINY,
        layers=LAYERS,
        dataset=DatasetSpec(uri=dataset, shard_size=shard_size, storage_options=options),
        store=store,
        k=5,
        store_options=options,
        runner=RunnerSpec(dask_address=address, device="auto", batch_size=2),
    )


def local_run(cfg: ExtractConfig, folder, tmp_path) -> str:
    """The same extraction in this process, no Prefect, no Dask, local files only."""
    local = cfg.model_copy(
        update={"dataset": cfg.dataset.model_copy(update={"uri": str(folder), "storage_options": {}}), "store": str(tmp_path / "local"), "store_options": {}}
    )
    from neuroscribe.extraction import run_extraction

    run_extraction(local)
    return local.store


def write_config(path: Path, cfg) -> Path:
    # the test's own file, so the real values (endpoint, not masked) must be written
    path.write_text(json.dumps(cfg.model_dump(mode="python"), default=str))
    return path


def flow_command(flow_ref: str, config_file: Path, direct: bool = False) -> list[str]:
    return [sys.executable, str(FLOWRUN), flow_ref, str(config_file)] + (["--direct"] if direct else [])


def run_flow_process(flow_ref: str, config_file: Path, env: dict, log: Path, timeout: float = 240, direct: bool = False) -> dict:
    """Run a flow in its own process, as the CLI would; returns its summary (printed as the last JSON line)."""
    with open(log, "wb") as out:
        proc = subprocess.run(
            flow_command(flow_ref, config_file, direct), env=env, stdout=out, stderr=subprocess.STDOUT, cwd=REPO, timeout=timeout, check=False
        )
    text = log.read_text(errors="replace")
    if proc.returncode != 0:
        raise AssertionError(f"flow {flow_ref} failed with {proc.returncode}:\n{text[-6000:]}")
    return json.loads(next(line for line in reversed(text.splitlines()) if line.startswith("{")))


def shard_markers(fs, store: str) -> dict[str, bytes]:
    """The done markers of a store on S3: name -> bytes."""
    path = store.removeprefix("s3://") + "/shards"
    return {p.rsplit("/", 1)[-1]: fs.cat_file(p) for p in fs.ls(path, refresh=True)} if fs.exists(path) else {}


def assert_same_store(remote: str, options: dict, local: str) -> None:
    """Every array of the local run's store equals the remote one's (NaN-aware), and so do the index and attrs."""
    import numpy as np
    import pandas as pd
    import zarr

    from neuroscribe import store as st

    ours, theirs = st.RunStore(local).arrays("r"), st.RunStore(remote, options).arrays("r")
    arrays = {name: a for name, a in ours.members(max_depth=None) if isinstance(a, zarr.Array)}
    remote_arrays = {name for name, a in theirs.members(max_depth=None) if isinstance(a, zarr.Array)}
    assert remote_arrays == set(arrays)
    for name, array in arrays.items():
        np.testing.assert_array_equal(theirs[name][:], array[:], err_msg=name)  # NaN == NaN here
    mine, other = dict(ours.attrs["neuroscribe"]), dict(theirs.attrs["neuroscribe"])
    for attrs in (mine, other):  # the listing's paths (local vs s3://) and so the run key differ
        attrs.pop("run_key"), attrs["dataset"].pop("uri")
    assert other == mine
    columns = ["id", "label", "status", "reason"]
    pd.testing.assert_frame_equal(st.StoreFile(remote, "index.parquet", options).read_parquet()[columns], st.StoreFile(local, "index.parquet").read_parquet()[columns])
