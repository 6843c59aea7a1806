"""One writer per store: a lease kept on the store itself (local or ``s3://``), renewed by a heartbeat.

    with store_lease("s3://bucket/r50", storage_options, wait_s=600, flow_run_id=...) as lease:
        ...                                  # write the store; readers need no lease
    require_lease(store, "--overwrite")      # inside: refuse a destructive step without the lease

Every writer (extract, explain, ablate, vocabulary, demo, each sweep combination) enters ``store_lease``
at the top of its run; re-entering it for a store this context holds is a no-op.  A second writer gets
one ``NeuroscribeError`` naming the holder and since when, or polls for up to ``wait_s`` seconds.  A
heartbeat thread renews the lease every ``ttl_s / 4``; a dead holder's lease expires after ``ttl_s`` (at
once for a gone process of this host) and the next run takes it over, telling ``on_takeover`` whom it
replaced (so the dead run can be marked crashed).

The holder is the highest generation of ``<store>/lease/<generation:08d>.json`` (a ``LeaseRecord``)
unless released or expired.  Acquiring *exclusively creates* the next generation (``open("xb")``, i.e.
``O_EXCL``, locally; ``PutObject`` with ``If-None-Match: *`` on S3), so of two runs racing for it exactly
one wins, with no compare-and-swap; the file is read back to catch a filesystem without exclusive
create.  Limits: expiry compares wall clocks, so hosts' clocks must agree to well within ``ttl_s``; a
holder stalled for longer can lose the lease to a new run and only finds out at its next heartbeat
(the run then fails at the end with a clear error; writes in between are not fenced: object stores
have no fencing tokens).
"""

from __future__ import annotations

import contextlib
import getpass
import os
import posixpath
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from datetime import datetime, timedelta, timezone

import psutil
from pydantic import BaseModel, ValidationError

from neuroscribe.errors import NeuroscribeError
from neuroscribe.store import RunStore, is_local, storage_errors

DEFAULT_TTL_S = 60.0
POLL_S = 2.0

# stores whose lease this context (thread or task) holds: nested writers of one run re-enter freely
_HELD: ContextVar[frozenset[str]] = ContextVar("neuroscribe_held_leases", default=frozenset())


class LeaseRecord(BaseModel):
    generation: int
    owner: str
    host: str
    pid: int
    run_id: str
    flow_run_id: str | None = None
    acquired_at: datetime
    renewed_at: datetime
    expires_at: datetime
    released: bool = False

    def live(self, now: datetime) -> bool:
        """Unreleased, unexpired, and not a process of this host that no longer exists."""
        # a holder on this host is checked directly: a SIGKILLed run frees its store at once, not after ttl_s
        running = self.host != socket.gethostname() or psutil.pid_exists(self.pid)
        return not self.released and self.expires_at > now and running

    def describe(self) -> str:
        flow = f", flow run {self.flow_run_id}" if self.flow_run_id else ""
        return f"{self.owner} (pid {self.pid} on {self.host}, run {self.run_id}{flow}) since {self.acquired_at:%Y-%m-%d %H:%M:%S} UTC"


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _owner() -> str:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # a container user without a passwd entry
        user = f"uid{os.getuid()}"
    return f"{user}@{socket.gethostname()}"


def _key(store: str) -> str:
    return store.rstrip("/")


class _LeaseFiles:
    """The lease folder of one store on its fsspec filesystem."""

    def __init__(self, store: str, storage_options: dict | None):
        self.run = RunStore(store, storage_options)
        self.fs, self.folder = self.run.leases().locate()

    def path(self, generation: int) -> str:
        return self.run.lease(generation).locate()[1]

    def generations(self) -> list[int]:
        self.fs.invalidate_cache(self.folder)  # s3fs caches listings; another writer may have added one
        try:
            names = self.fs.ls(self.folder, detail=False)
        except FileNotFoundError:
            return []
        return sorted(int(n) for n in (posixpath.basename(p).removesuffix(".json") for p in names) if n.isdigit())

    def read(self, generation: int) -> LeaseRecord | None:
        for attempt in range(3):
            try:
                return LeaseRecord.model_validate_json(self.fs.cat_file(self.path(generation)))
            except FileNotFoundError:
                return None
            except ValidationError:  # caught between a local create and its write: read again
                time.sleep(0.1 * (attempt + 1))
        raise NeuroscribeError(f"lease file {self.path(generation)} of store {self.run.uri} is unreadable; delete it if no run is writing the store")

    def top(self) -> LeaseRecord | None:
        """The highest generation; listed again if a newer holder pruned it between listing and reading."""
        while generations := self.generations():
            if (record := self.read(generations[-1])) is not None:
                return record
        return None

    def create(self, record: LeaseRecord) -> bool:
        """Exclusively create ``record``'s generation; False when another run created it first."""
        path, data = self.path(record.generation), record.model_dump_json().encode()
        try:
            if is_local(self.fs):
                self.fs.makedirs(self.folder, exist_ok=True)  # object stores have no folders (nor should a bucket be made)
                # open's "x" is O_EXCL; fsspec's local pipe_file(mode="create") checks, then writes (not atomic)
                with self.fs.open(path, "xb") as f:
                    f.write(data)
            else:
                self.fs.pipe_file(path, data, mode="create")
        except FileExistsError:
            return False
        return getattr(self.read(record.generation), "run_id", None) == record.run_id  # read back: was it ours?

    def write(self, record: LeaseRecord) -> None:
        self.fs.pipe_file(self.path(record.generation), record.model_dump_json().encode())

    def prune(self, below: int) -> None:
        for generation in (g for g in self.generations() if g < below):
            with contextlib.suppress(FileNotFoundError):
                self.fs.rm_file(self.path(generation))


def holder(store: str, storage_options: dict | None = None) -> LeaseRecord | None:
    """The live lease of ``store``, or None when no run is writing it."""
    top = _LeaseFiles(store, storage_options).top()
    return top if top is not None and top.live(_now()) else None


def _held_error(store: str, top: LeaseRecord) -> NeuroscribeError:
    return NeuroscribeError(
        f"store {store} is being written by {top.describe()}; its lease runs until {top.expires_at:%H:%M:%S} UTC "
        f"while it lives. Wait for that run to finish, pass --wait SECONDS to queue behind it, or write to another --store"
    )


def ensure_free(store: str, storage_options: dict | None = None, wait_s: float = 0.0) -> None:
    """Fail early (before servers and clusters start) when another run writes ``store`` and we would not
    wait; only a courtesy: the run's own ``store_lease`` is what excludes a second writer."""
    if wait_s <= 0 and (live := holder(store, storage_options)) is not None:
        raise _held_error(store, live)


def _acquire(
    files: _LeaseFiles, ttl_s: float, wait_s: float, flow_run_id: str | None, on_takeover: Callable[[LeaseRecord], None] | None
) -> LeaseRecord:
    deadline = time.monotonic() + wait_s
    run_id = uuid.uuid4().hex
    while True:
        top = files.top()
        now = _now()
        if top is None or not top.live(now):
            record = LeaseRecord(
                generation=0 if top is None else top.generation + 1, owner=_owner(), host=socket.gethostname(), pid=os.getpid(),
                run_id=run_id, flow_run_id=flow_run_id, acquired_at=now, renewed_at=now, expires_at=now + timedelta(seconds=ttl_s),
            )
            if files.create(record):
                files.prune(below=record.generation)
                if top is not None and not top.released and on_takeover is not None:
                    on_takeover(top)  # its holder stopped renewing: it died or was cut off
                return record
            continue  # another run created this generation first: look again
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise _held_error(files.run.uri, top)
        time.sleep(min(POLL_S, remaining))


class _Heartbeat(threading.Thread):
    """Renews the lease every ``ttl_s / 4`` until stopped; notices when another run took it over."""

    def __init__(self, files: _LeaseFiles, record: LeaseRecord, ttl_s: float):
        super().__init__(name=f"lease-heartbeat-{record.generation}", daemon=True)
        self.files, self.record, self.ttl_s = files, record, ttl_s
        self.stopped = threading.Event()
        self.lost_to: LeaseRecord | None = None

    def run(self) -> None:
        while not self.stopped.wait(self.ttl_s / 4):
            with contextlib.suppress(OSError):  # a storage fault: the next beat retries, well before the lease expires
                top = self.files.top()
                if top is not None and top.generation > self.record.generation:
                    self.lost_to = top
                    return
                now = _now()
                self.record = self.record.model_copy(update={"renewed_at": now, "expires_at": now + timedelta(seconds=self.ttl_s)})
                self.files.write(self.record)

    def stop(self) -> None:
        self.stopped.set()
        self.join()


def config_lease(config, **kwargs):
    """``store_lease`` of a config's store (an ExplainConfig's is its extraction's), waiting and expiring as its runner says."""
    base = getattr(config, "extract", config)
    return store_lease(base.store, base.store_options, wait_s=base.runner.wait_for_store_s, ttl_s=base.runner.store_lease_ttl_s, **kwargs)


@contextlib.contextmanager
def store_lease(
    store: str, storage_options: dict | None = None, *, wait_s: float = 0.0, ttl_s: float = DEFAULT_TTL_S,
    flow_run_id: str | None = None, on_takeover: Callable[[LeaseRecord], None] | None = None,
) -> Iterator[LeaseRecord | None]:
    """Hold ``store``'s writer lease for the block (None when this context already holds it)."""
    key = _key(store)
    if key in _HELD.get():
        yield None
        return
    files = _LeaseFiles(store, storage_options)
    with storage_errors(files.folder):
        record = _acquire(files, ttl_s, wait_s, flow_run_id, on_takeover)
    heartbeat = _Heartbeat(files, record, ttl_s)
    heartbeat.start()
    token = _HELD.set(_HELD.get() | {key})
    try:
        yield record
    finally:
        _HELD.reset(token)
        heartbeat.stop()
        if heartbeat.lost_to is None:
            files.write(heartbeat.record.model_copy(update={"released": True, "renewed_at": _now()}))
    if heartbeat.lost_to is not None:  # reached only when the block succeeded: its own error comes first
        raise NeuroscribeError(
            f"run {record.run_id} lost the lease of store {store} to {heartbeat.lost_to.describe()} (no heartbeat for "
            f"{ttl_s:.0f} s: the process was stalled or the store unreachable); both runs wrote it, rerun one alone"
        )


def require_lease(store: str, action: str, storage_options: dict | None = None) -> None:
    """Refuse ``action`` (e.g. ``--overwrite``) unless this context, or this process, holds ``store``'s lease."""
    if _key(store) in _HELD.get():
        return
    live = holder(store, storage_options)
    if live is None or (live.pid, live.host) != (os.getpid(), socket.gethostname()):
        raise NeuroscribeError(
            f"{action} on store {store} needs the store's writer lease; run it through a neuroscribe command or flow, "
            f"or inside `with store_lease({store!r})`"
        )
