"""The run store: one Zarr v3 group (local path or ``s3://``) plus a few side files.

    group = open_group("runs/r50", mode="a")               # zarr.Group
    write_json("runs/r50", "shards/000003.json", {...})
    write_table("runs/r50", "explanations/layer4", frame)  # .parquet and .csv

Layout (the one place it is documented; README links here)::

    <store>/zarr.json                        group attrs["neuroscribe"]: version, run_key, model,
                                             layers {name: kind, units, map_shape}, dataset, k
    <store>/lease/<generation:08d>.json      the writer lease: owner, host, pid, run, expiry (neuroscribe.lease)
    <store>/index.parquet                    id, path, label, status (ok|skipped|pending), reason
    <store>/shards/<shard:06d>.json          per-shard done marker: run_key, ok, skipped [{id, reason}]
    <store>/activations/<layer>/max          float32 [images, units]  spatial max (NaN = skipped image)
    <store>/activations/<layer>/mean         float32 [images, units]  spatial mean
    <store>/activations/<layer>/cls          float32 [images, units]  token layers: class-token value
    <store>/topk/<layer>/value               float32 [units, k]       top-k spatial max, descending
    <store>/topk/<layer>/image_id            int64   [units, k]       their image ids (-1 = fewer than k)
    <store>/topk/<layer>/maps                float32 [units, k, H, W] their activation maps, native size
    <store>/summary/extract.json             images, ok, skipped, reasons, seconds, images/s
    <store>/vocabulary/...                   concept vocabularies (neuroscribe.vocabulary)
    <store>/patches/<layer>/...              patch crops and masks; a linear layer's once per image (neuroscribe.patches)
    <store>/explanations/<layer>.parquet|csv one row per unit (neuroscribe.tables)
    <store>/ablation/<layer>.parquet         per unit and class accuracy drop (neuroscribe.ablation)
    <store>/gallery/<layer>.html             patch galleries
    <store>/embeddings/...                   cached patch and concept embeddings (neuroscribe.explanation, .scoring)
    <store>/explain_config.json              the explain run's config (secrets masked)
    <store>/inputs/images/<hash>.png, <hash>.tsv  images handed to the Python API in memory, and their
                                             file list (path, label); both named by content (neuroscribe.api)
    <store>/evaluation/evaluation.json|md|png  quality metrics (neuroscribe.evaluation); per layer
                                             evaluation/<layer>/{summary.json, units.parquet,
                                             compare.parquet, compare_units.parquet}, images/, vocabulary/

Activation arrays are Zarr-sharded with one Zarr shard per dataset shard along the image axis,
so no two tasks ever write the same shard object.  Credentials come from ``storage_options``
or the standard AWS variables and are never logged.

Storage faults: on ``s3://`` every request (side files and Zarr chunks alike) is retried by botocore
in its ``standard`` mode (throttling, 5xx and dropped connections; up to ``S3_MAX_ATTEMPTS``
attempts with exponential backoff and jitter) and then by s3fs's own retries, unless the
``storage_options`` set ``config_kwargs.retries`` themselves.  Permanent faults (no such bucket,
access denied, disk full, read-only) raise one ``NeuroscribeError`` naming the path; what was
written before stays (a shard's done marker is written last, so a rerun resumes).
"""

from __future__ import annotations

import contextlib
import errno
import io
import json
import posixpath
import uuid
from collections.abc import Iterator
from typing import Any

import fsspec
import pandas as pd
import zarr

from neuroscribe.errors import NeuroscribeError

LEASE_DIR = "lease"  # kept by ``remove``: the lease of the run that replaces a store must survive it
S3_MAX_ATTEMPTS = 10
PERMANENT_ERRNOS = {errno.ENOSPC: "the disk is full", errno.EDQUOT: "the disk quota is exceeded", errno.EROFS: "the filesystem is read-only"}


def with_retries(uri: str, storage_options: dict | None) -> dict:
    """``storage_options`` plus botocore's standard retry mode for ``s3://`` stores (the caller's own settings win)."""
    options = dict(storage_options or {})
    if uri.startswith(("s3://", "s3a://")):
        config = dict(options.get("config_kwargs") or {})
        config.setdefault("retries", {"max_attempts": S3_MAX_ATTEMPTS, "mode": "standard"})
        options["config_kwargs"] = config
    return options


@contextlib.contextmanager
def storage_errors(path: str) -> Iterator[None]:
    """Turn a permanent storage fault into one NeuroscribeError naming ``path``; transient ones were retried below."""
    try:
        yield
    except PermissionError as exc:
        raise NeuroscribeError(f"access to {path} is denied ({exc}); check the credentials and the bucket policy") from None
    except FileNotFoundError as exc:
        if "bucket" not in str(exc).lower():
            raise
        raise NeuroscribeError(f"the bucket of {path} does not exist ({exc}); create it or fix the --store URL") from None
    except OSError as exc:
        if exc.errno not in PERMANENT_ERRNOS:
            raise
        raise NeuroscribeError(f"cannot write {path}: {PERMANENT_ERRNOS[exc.errno]}; free space or choose another --store, then rerun to resume") from None


def filesystem(uri: str, storage_options: dict | None = None):
    """(fsspec filesystem, root path without protocol) for a store URI."""
    try:
        return fsspec.core.url_to_fs(uri, **with_retries(uri, storage_options))
    except Exception as exc:
        raise NeuroscribeError(f"store {uri} cannot be opened ({exc}); check the URL and credentials") from None


def is_local(fs) -> bool:
    """Whether an fsspec filesystem is the local disk (which has folders, renames and O_EXCL)."""
    protocols = fs.protocol if isinstance(fs.protocol, (tuple, list)) else (fs.protocol,)
    return "file" in protocols or "local" in protocols


def _zarr_store(uri: str, storage_options: dict | None, read_only: bool):
    if "://" in uri and not uri.startswith("file://"):
        return zarr.storage.FsspecStore.from_url(uri, storage_options=with_retries(uri, storage_options), read_only=read_only)
    return zarr.storage.LocalStore(uri.removeprefix("file://"), read_only=read_only)


def open_group(uri: str, mode: str = "a", storage_options: dict | None = None) -> zarr.Group:
    """Open (``r``) or create-or-open (``a``) the run's Zarr group."""
    if mode == "r" and not exists(uri, "zarr.json", storage_options):
        raise NeuroscribeError(f"store {uri} holds no neuroscribe run; run `neuroscribe extract` into it first")
    with storage_errors(uri):
        store = _zarr_store(uri, storage_options, read_only=(mode == "r"))
        return zarr.open_group(store=store, mode=mode, zarr_format=3)


def run_attrs(uri: str, storage_options: dict | None = None) -> dict[str, Any]:
    return dict(open_group(uri, "r", storage_options).attrs.get("neuroscribe", {}))


def _path(uri: str, relpath: str, storage_options: dict | None) -> tuple[Any, str]:
    fs, root = filesystem(uri, storage_options)
    return fs, posixpath.join(root, relpath)


def exists(uri: str, relpath: str, storage_options: dict | None = None) -> bool:
    fs, path = _path(uri, relpath, storage_options)
    return fs.exists(path)


def write_bytes(uri: str, relpath: str, data: bytes, storage_options: dict | None = None) -> str:
    """Write a side file whole; local writes go through a temporary name and a rename."""
    fs, path = _path(uri, relpath, storage_options)
    with storage_errors(full_uri(uri, relpath)):
        if is_local(fs):
            # only local paths have folders (s3fs's makedirs would try to create a missing bucket)
            fs.makedirs(posixpath.dirname(path), exist_ok=True)
            # one temporary name per write: writers of the same file must not share (and move) one
            tmp = f"{path}.{uuid.uuid4().hex}.tmp"
            with fs.open(tmp, "wb") as f:
                f.write(data)
            fs.mv(tmp, path)
        else:
            with fs.open(path, "wb") as f:
                f.write(data)
    return path


def read_bytes(uri: str, relpath: str, storage_options: dict | None = None) -> bytes:
    fs, path = _path(uri, relpath, storage_options)
    try:
        with storage_errors(full_uri(uri, relpath)), fs.open(path, "rb") as f:
            return f.read()
    except FileNotFoundError:
        raise NeuroscribeError(f"{relpath} is missing from store {uri}; run the stage that writes it first") from None


def write_json(uri: str, relpath: str, obj: Any, storage_options: dict | None = None) -> str:
    return write_bytes(uri, relpath, json.dumps(obj, indent=2, default=str).encode(), storage_options)


def read_json(uri: str, relpath: str, storage_options: dict | None = None) -> Any:
    return json.loads(read_bytes(uri, relpath, storage_options))


def write_parquet(uri: str, relpath: str, frame: pd.DataFrame, storage_options: dict | None = None) -> str:
    buf = io.BytesIO()
    frame.to_parquet(buf, index=False)
    return write_bytes(uri, relpath, buf.getvalue(), storage_options)


def read_parquet(uri: str, relpath: str, storage_options: dict | None = None) -> pd.DataFrame:
    return pd.read_parquet(io.BytesIO(read_bytes(uri, relpath, storage_options)))


def write_table(uri: str, relstem: str, frame: pd.DataFrame, storage_options: dict | None = None) -> str:
    """Write ``<relstem>.parquet`` and ``<relstem>.csv``; returns the parquet path."""
    path = write_parquet(uri, relstem + ".parquet", frame, storage_options)
    write_bytes(uri, relstem + ".csv", frame.to_csv(index=False).encode(), storage_options)
    return path


def list_files(uri: str, reldir: str, storage_options: dict | None = None) -> list[str]:
    fs, path = _path(uri, reldir, storage_options)
    if not fs.exists(path):
        return []
    return sorted(posixpath.basename(p) for p in fs.ls(path, detail=False))


def remove(uri: str, storage_options: dict | None = None) -> None:
    """Delete the store's contents, except the writer lease of the run that is replacing them."""
    fs, root = filesystem(uri, storage_options)
    if fs.exists(root):
        for child in fs.ls(root, detail=False):
            if posixpath.basename(child.rstrip("/")) != LEASE_DIR:
                fs.rm(child, recursive=True)


def full_uri(uri: str, relpath: str) -> str:
    return uri.rstrip("/") + "/" + relpath
