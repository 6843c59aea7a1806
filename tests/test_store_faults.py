"""Storage faults: transient ones are survived by the store's retries, permanent ones give one clear error.

Faults are injected at the transport layer, under every retry: an HTTP proxy in front of the moto S3
server answers chosen requests with 503 SlowDown (throttling), 500 InternalError, or a dropped
connection, and passes the others through.  Extraction and explanation then read the images and
write the store on ``s3://`` through the proxy, and the store must equal a clean run's: every Zarr
array and every table identical, no image skipped.
"""

from __future__ import annotations

import errno
import http.client
import itertools
import socket
import threading
import urllib.parse
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pandas as pd
import pytest
import zarr

from neuroscribe import store as st
from neuroscribe.config import DatasetSpec, ModelSpec, RunnerSpec
from neuroscribe.errors import NeuroscribeError
from neuroscribe.explanation import ExplainConfig, run_explain

SLOW_DOWN = b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>'
INTERNAL = b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>InternalError</Code><Message>We encountered an internal error.</Message></Error>'
DENIED = b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>'
KINDS = ("throttle", "5xx", "drop")


class FaultyProxy:
    """Forwards S3 requests to ``upstream``; every ``every``-th request of ``methods`` fails, ``budget`` in all.

    ``deny`` answers every request of ``methods`` with 403 AccessDenied (a permanent fault).
    """

    def __init__(self, upstream: str, every: int = 5, budget: int = 0, methods=("GET", "PUT", "HEAD", "POST", "DELETE"), deny=False):
        self.upstream = urllib.parse.urlsplit(upstream)
        self.every, self.budget, self.methods, self.deny = every, budget, set(methods), deny
        self.seen = 0
        self.injected: Counter[str] = Counter()
        self.kinds = itertools.cycle(KINDS)
        self.lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def fault(self, method: str) -> str | None:
        if method not in self.methods:
            return None
        if self.deny:
            return "deny"
        with self.lock:
            self.seen += 1
            if self.seen % self.every or sum(self.injected.values()) >= self.budget:
                return None
            kind = next(self.kinds)
            self.injected[kind] += 1
            return kind

    def _handler(self):
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # quiet
                pass

            def _body(self) -> bytes:
                if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                    out = b""
                    while (size := int(self.rfile.readline().split(b";")[0], 16)) > 0:
                        out += self.rfile.read(size)
                        self.rfile.readline()
                    self.rfile.readline()
                    return out
                return self.rfile.read(int(self.headers.get("Content-Length") or 0))

            def _reply(self, status: int, body: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/xml")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def handle_any(self):
                body = self._body()
                fault = proxy.fault(self.command)
                if fault == "drop":  # the connection goes away mid-request, no answer
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                if fault in ("throttle", "5xx", "deny"):
                    status, text = {"throttle": (503, SLOW_DOWN), "5xx": (500, INTERNAL), "deny": (403, DENIED)}[fault]
                    return self._reply(status, b"" if self.command == "HEAD" else text)
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("transfer-encoding", "connection", "content-length")}
                upstream = http.client.HTTPConnection(proxy.upstream.hostname, proxy.upstream.port, timeout=60)
                upstream.request(self.command, self.path, body=body, headers=headers | {"Content-Length": str(len(body))})
                answer = upstream.getresponse()
                data = answer.read()
                self.send_response(answer.status)
                for key, value in answer.getheaders():
                    if key.lower() not in ("transfer-encoding", "connection", "content-length", "server", "date"):
                        self.send_header(key, value)
                self.send_header("Content-Length", answer.getheader("Content-Length") if self.command == "HEAD" else str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)
                upstream.close()

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = handle_any

        return Handler

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def tiny_clip_spec():
    from neuroscribe.testing.tiny_clip import register_tiny_clip

    return register_tiny_clip(device="cpu")


def _config(dataset: str, store: str, options: dict, concept_file, backend) -> ExplainConfig:
    return ExplainConfig(
        model=ModelSpec(name="neuroscribe.testing.tiny_models:tiny_cnn"), layers=("relu2", "fc"),
        dataset=DatasetSpec(uri=dataset, shard_size=4, storage_options=options), store=store, store_options=options, k=3,
        vocabulary={"sources": (f"file:{concept_file}",)}, backend=backend, units_per_task=8, runner=RunnerSpec(device="cpu"),
    )


def _through(proxy: FaultyProxy, s3_options: dict) -> dict:
    return s3_options | {"client_kwargs": s3_options["client_kwargs"] | {"endpoint_url": proxy.endpoint}}


def test_extraction_into_s3_survives_faults_on_every_kind_of_request(image_folder, tmp_path, s3_options):
    """The quick one: local images, the store on S3 through the proxy, against a clean local store."""
    from neuroscribe.config import ExtractConfig
    from neuroscribe.extraction import run_extraction

    def config(store: str, options: dict) -> ExtractConfig:
        return ExtractConfig(
            model=ModelSpec(name="neuroscribe.testing.tiny_models:tiny_cnn"), layers="conv2", k=3,
            dataset=DatasetSpec(uri=str(image_folder), shard_size=4), store=store, store_options=options, runner=RunnerSpec(device="cpu"),
        )

    run_extraction(config(str(tmp_path / "clean"), {}))
    with FaultyProxy(s3_options["client_kwargs"]["endpoint_url"], every=3, budget=9) as proxy:
        summary = run_extraction(config("s3://test/faulty", _through(proxy, s3_options)))
        assert proxy.injected == {"throttle": 3, "5xx": 3, "drop": 3}
    assert summary.ok == 12
    assert_same_run("s3://test/faulty", str(tmp_path / "clean"), s3_options, {}, tables=["index.parquet"])


def assert_same_run(faulty: str, clean: str, options: dict, clean_options: dict | None = None, tables: list[str] | None = None) -> None:
    clean_options = options if clean_options is None else clean_options
    ours, theirs = st.RunStore(clean, clean_options).arrays("r"), st.RunStore(faulty, options).arrays("r")
    arrays = {name: a for name, a in ours.members(max_depth=None) if isinstance(a, zarr.Array)}
    assert {name for name, a in theirs.members(max_depth=None) if isinstance(a, zarr.Array)} == set(arrays)
    assert len(arrays) >= 6
    for name, array in arrays.items():
        np.testing.assert_array_equal(theirs[name][:], array[:], err_msg=name)  # NaN == NaN here
    assert dict(theirs.attrs) == dict(ours.attrs)
    index = st.StoreFile(clean, "index.parquet", clean_options).read_parquet()
    assert (index.status == "ok").all()  # no transient fault turned into a skipped image
    for table in tables or ["index.parquet", "explanations/relu2.parquet", "explanations/fc.parquet"]:
        pd.testing.assert_frame_equal(st.StoreFile(faulty, table, options).read_parquet(), st.StoreFile(clean, table, clean_options).read_parquet(), obj=table)


@pytest.mark.slow  # two explain runs over S3 (~1,400 requests each) and the retries' backoff: ~2-3 min on 2 cores
def test_extraction_and_explain_survive_throttling_5xx_and_dropped_connections(image_folder, tmp_path, s3_options, tiny_clip_spec):
    """Images and store on S3; the faulty run reads and writes both through the proxy, the clean one directly."""
    import s3fs

    s3fs.S3FileSystem(**s3_options).put(str(image_folder) + "/", "test/images/", recursive=True)
    concepts = tmp_path / "concepts.txt"
    concepts.write_text("red\ngreen\nblue\nstripes\ndots\ngrass\nsky\nmetal\n")
    run_explain(_config("s3://test/images", "s3://test/clean", s3_options, concepts, tiny_clip_spec))
    with FaultyProxy(s3_options["client_kwargs"]["endpoint_url"], every=4, budget=60) as proxy:
        run_explain(_config("s3://test/images", "s3://test/faulty", _through(proxy, s3_options), concepts, tiny_clip_spec))
        print(f"faults injected and survived: {dict(proxy.injected)} among {proxy.seen} requests")
        assert proxy.injected == {"throttle": 20, "5xx": 20, "drop": 20}
    assert_same_run("s3://test/faulty", "s3://test/clean", s3_options)


def test_permanent_faults_name_the_path(tmp_path, s3_options, monkeypatch):
    with pytest.raises(NeuroscribeError, match=r"the bucket of s3://no-such-bucket/run/index.parquet does not exist"):
        st.StoreFile("s3://no-such-bucket/run", "index.parquet", s3_options).write_bytes(b"x")
    st.StoreFile("s3://test/denied", "kept.json", s3_options).write_bytes(b"{}")
    with (
        FaultyProxy(s3_options["client_kwargs"]["endpoint_url"], methods=("PUT",), deny=True) as proxy,
        pytest.raises(NeuroscribeError, match=r"access to s3://test/denied/index.parquet is denied"),
    ):
        st.StoreFile("s3://test/denied", "index.parquet", _through(proxy, s3_options)).write_bytes(b"x")
    assert st.StoreFile("s3://test/denied", "kept.json", s3_options).read_bytes() == b"{}"  # nothing already written is lost

    store = str(tmp_path / "store")
    st.StoreFile(store, "kept.json").write_bytes(b"{}")

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    from fsspec.implementations import local

    monkeypatch.setattr(local.LocalFileOpener, "write", full)
    with pytest.raises(NeuroscribeError, match=rf"cannot write {store}/index.parquet: the disk is full"):
        st.StoreFile(store, "index.parquet").write_bytes(b"x")
    monkeypatch.undo()
    assert st.StoreFile(store, "kept.json").read_bytes() == b"{}"


def test_a_full_disk_during_array_writes_is_one_error_and_finished_shards_stay(image_folder, tmp_path, monkeypatch):
    from zarr.storage import LocalStore

    from neuroscribe.config import ExtractConfig
    from neuroscribe.extraction import extract_shards, prepare_extraction

    cfg = ExtractConfig(
        model=ModelSpec(name="neuroscribe.testing.tiny_models:tiny_cnn"), layers="conv2", k=3,
        dataset=DatasetSpec(uri=str(image_folder), shard_size=4), store=str(tmp_path / "store"), runner=RunnerSpec(device="cpu"),
    )
    extract_shards(cfg, prepare_extraction(cfg).pending[:1])  # shard 0 is written and marked done
    marker = st.StoreFile(cfg.store, "shards/000000.json").read_bytes()

    async def full(self, key, value):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(LocalStore, "set", full)
    with pytest.raises(NeuroscribeError, match=rf"cannot write {cfg.store}: the disk is full"):
        extract_shards(cfg, prepare_extraction(cfg).pending)
    monkeypatch.undo()
    assert st.StoreFile(cfg.store, "shards/000000.json").read_bytes() == marker  # nothing already written is lost
    assert prepare_extraction(cfg).pending == [1, 2]  # and a rerun resumes with the other shards
