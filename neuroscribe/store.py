"""The run store: a Zarr v3 group of arrays (local path or ``s3://``) beside a few side files.

    store = RunStore("runs/r50", storage_options)          # or cfg.run_store
    store.topk("layer4")["image_id"][:]                     # zarr arrays, under <store>/arrays
    store.shard_marker(3).write_json({...})                 # a side file: exists/read_*/write_*/uri
    store.table("layer4").write_table(frame)                # explanations/layer4.parquet and .csv

Every path of a run lives in ``RunStore``; no other module joins store paths.  Layout (the one
place it is documented; README links here)::

    <store>/arrays/zarr.json                 the Zarr group of all arrays (nothing else below arrays/);
                                             attrs["neuroscribe"]: layout, version, run_key, model,
                                             layers {name: kind, units, map_shape}, dataset, k
    <store>/arrays/activations/<layer>/max   float32 [images, units]  spatial max (NaN = skipped image)
    <store>/arrays/activations/<layer>/mean  float32 [images, units]  spatial mean
    <store>/arrays/activations/<layer>/cls   float32 [images, units]  token layers: class-token value
    <store>/arrays/topk/<layer>/value        float32 [units, k]       top-k spatial max, descending
    <store>/arrays/topk/<layer>/image_id     int64   [units, k]       their image ids (-1 = fewer than k)
    <store>/arrays/topk/<layer>/maps         float32 [units, k, H, W] their activation maps, native size
    <store>/arrays/patches/<layer>/...       patch crops and masks; a linear layer's once per image (neuroscribe.patches)
    <store>/lease/<generation:08d>.json      the writer lease: owner, host, pid, run, expiry (neuroscribe.lease)
    <store>/index.parquet                    id, path, label, status (ok|skipped|pending), reason
    <store>/shards/<shard:06d>.json          per-shard done marker: run_key, ok, skipped [{id, reason}]
    <store>/summary/<stage>.json             extract: images, ok, skipped, reasons, seconds, images/s;
                                             ablate-<layer>, sweep
    <store>/vocabulary/<name>.parquet|json   concept vocabularies, llm_cache/ (neuroscribe.vocabulary)
    <store>/explanations/<layer>.parquet|csv|json  one row per unit, and the manifest (neuroscribe.explanation)
    <store>/ablation/<layer>[.set-<key>][.units|.classes|.baseline].parquet|csv, .png, .html; parts/
                                             per unit and class accuracy drop (neuroscribe.ablation)
    <store>/gallery/<layer>.html, <layer>/   patch galleries and their strips
    <store>/embeddings/<layer>/<key>/<first>-<last>.npy, crops/<backend>/, <concepts>.npz
                                             cached patch and concept embeddings (neuroscribe.explanation, .scoring)
    <store>/explain_config.json              the explain run's config (secrets masked)
    <store>/inputs/images/<hash>.png, <hash>.tsv  images handed to the Python API in memory, and their
                                             file list (path, label); both named by content (neuroscribe.api)
    <store>/evaluation/evaluation.json|md|png  quality metrics (neuroscribe.evaluation); per layer
                                             evaluation/<layer>/{summary.json, units.parquet,
                                             compare.parquet, compare_units.parquet}, images/, vocabulary/

Layout 1 (neuroscribe before the split) kept the arrays at the store root beside the side files, so
``zarr.open_group`` warned about each of them; such a store is refused with a NeuroscribeError that
says to re-extract it.  Activation arrays are Zarr-sharded with one Zarr shard per dataset shard along
the image axis, so no two tasks ever write the same shard object.  Credentials come from
``storage_options`` or the standard AWS variables and are never logged.

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
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import fsspec
import pandas as pd
import zarr

from neuroscribe.errors import NeuroscribeError

LAYOUT_VERSION = 2  # 2: Zarr arrays under arrays/, side files beside it
ARRAYS_DIR = "arrays"
INPUTS_DIR = "inputs"
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
    """Open (``r``, ``r+``) or create-or-open (``a``) the run's Zarr group of arrays, ``<uri>/arrays``."""
    if not exists(uri, f"{ARRAYS_DIR}/zarr.json", storage_options):
        if exists(uri, "zarr.json", storage_options):
            raise NeuroscribeError(
                f"store {uri} has the old layout 1 (Zarr arrays at the store root); this neuroscribe reads layout "
                f"{LAYOUT_VERSION} (arrays under {full_uri(uri, ARRAYS_DIR)}): rerun `neuroscribe extract --overwrite` "
                "into it, or pass a new --store"
            )
        if mode != "a":
            raise NeuroscribeError(f"store {uri} holds no neuroscribe run; run `neuroscribe extract` into it first")
    with storage_errors(uri):
        store = _zarr_store(full_uri(uri, ARRAYS_DIR), storage_options, read_only=(mode == "r"))
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


def list_files(uri: str, reldir: str, storage_options: dict | None = None) -> list[str]:
    fs, path = _path(uri, reldir, storage_options)
    if not fs.exists(path):
        return []
    return sorted(posixpath.basename(p) for p in fs.ls(path, detail=False))


def remove(uri: str, storage_options: dict | None = None, keep: tuple[str, ...] = ()) -> None:
    """Delete the store's contents, except the writer lease of the run that is replacing them (and ``keep``)."""
    fs, root = filesystem(uri, storage_options)
    if fs.exists(root):
        for child in fs.ls(root, detail=False):
            if posixpath.basename(child.rstrip("/")) not in (LEASE_DIR, *keep):
                fs.rm(child, recursive=True)


def full_uri(uri: str, relpath: str) -> str:
    return uri.rstrip("/") + "/" + relpath


@dataclass(frozen=True)
class StoreFile:
    """One side file of a run store (a path in ``RunStore``'s layout) and what can be done with it."""

    uri_root: str
    relpath: str
    storage_options: dict | None = None

    @property
    def uri(self) -> str:
        return full_uri(self.uri_root, self.relpath)

    def exists(self) -> bool:
        return exists(self.uri_root, self.relpath, self.storage_options)

    def read_bytes(self) -> bytes:
        return read_bytes(self.uri_root, self.relpath, self.storage_options)

    def write_bytes(self, data: bytes) -> str:
        return write_bytes(self.uri_root, self.relpath, data, self.storage_options)

    def read_json(self) -> Any:
        return read_json(self.uri_root, self.relpath, self.storage_options)

    def write_json(self, obj: Any) -> str:
        return write_json(self.uri_root, self.relpath, obj, self.storage_options)

    def read_parquet(self) -> pd.DataFrame:
        return read_parquet(self.uri_root, self.relpath, self.storage_options)

    def write_parquet(self, frame: pd.DataFrame) -> str:
        return write_parquet(self.uri_root, self.relpath, frame, self.storage_options)

    def write_table(self, frame: pd.DataFrame) -> str:
        """This ``.parquet`` and a ``.csv`` beside it (for people); returns the parquet path."""
        path = self.write_parquet(frame)
        write_bytes(self.uri_root, self.relpath.removesuffix(".parquet") + ".csv", frame.to_csv(index=False).encode(), self.storage_options)
        return path

    def with_suffix(self, suffix: str) -> StoreFile:
        """The file of the same stem with another suffix (``explanations/x.parquet`` -> ``.json``)."""
        return StoreFile(self.uri_root, posixpath.splitext(self.relpath)[0] + suffix, self.storage_options)

    def folder(self, name: str) -> StoreFile:
        """A file in this one taken as a folder (content-named files such as cache entries and strips)."""
        return StoreFile(self.uri_root, f"{self.relpath}/{name}", self.storage_options)

    def list(self) -> list[str]:
        """Names in this folder (empty when it does not exist)."""
        return list_files(self.uri_root, self.relpath, self.storage_options)

    def locate(self) -> tuple[Any, str]:
        """(fsspec filesystem, path) for what whole-file reads and writes cannot do (the lease's exclusive create)."""
        return _path(self.uri_root, self.relpath, self.storage_options)

    def remove(self) -> None:
        """Delete this file or folder, if present (one recursive request on S3)."""
        fs, path = self.locate()
        if fs.exists(path):
            fs.rm(path, recursive=True)


class RunStore:
    """A run store: its URI and storage options, and one method per artifact of the layout above."""

    def __init__(self, uri: str, storage_options: dict | None = None):
        self.uri = uri
        self.storage_options = storage_options

    def __repr__(self) -> str:
        return f"RunStore({self.uri!r})"

    def _file(self, relpath: str) -> StoreFile:
        return StoreFile(self.uri, relpath, self.storage_options)

    # -- Zarr arrays (all under <store>/arrays) ------------------------------------------------
    def arrays(self, mode: str = "r") -> zarr.Group:
        """The Zarr group of the run's arrays; ``r`` read-only, ``r+`` write existing, ``a`` create."""
        return open_group(self.uri, mode, self.storage_options)

    def has_run(self) -> bool:
        """Whether an extraction created the arrays (an old-layout store counts, and fails on opening)."""
        return exists(self.uri, f"{ARRAYS_DIR}/zarr.json", self.storage_options) or self.old_layout()

    def old_layout(self) -> bool:
        """Whether this is a layout-1 store (arrays at the root), which this neuroscribe refuses to open."""
        return exists(self.uri, "zarr.json", self.storage_options) and not exists(self.uri, f"{ARRAYS_DIR}/zarr.json", self.storage_options)

    def attrs(self) -> dict[str, Any]:
        """The run's ``neuroscribe`` attrs: run_key, model, layers, dataset, ..."""
        return run_attrs(self.uri, self.storage_options)

    def _array_group(self, kind: str, layer: str, mode: str) -> zarr.Group | None:
        root = self.arrays(mode)
        return root.require_group(f"{kind}/{layer}") if mode == "a" else root.get(f"{kind}/{layer}")

    def activations(self, layer: str, mode: str = "r") -> zarr.Group | None:
        """``activations/<layer>``: max, mean, cls, samples, candidate_ids/maps (None if absent unless ``a``)."""
        return self._array_group("activations", layer, mode)

    def topk(self, layer: str, mode: str = "r") -> zarr.Group | None:
        """``topk/<layer>``: value, image_id, maps; attrs topk_key (None if absent unless ``a``)."""
        return self._array_group("topk", layer, mode)

    def patches(self, layer: str, mode: str = "r") -> zarr.Group | None:
        """``patches/<layer>``: crops, masks, boxes, ...; attrs patches_key (None if absent unless ``a``)."""
        return self._array_group("patches", layer, mode)

    def remove_patches(self, layer: str) -> None:
        """Drop a layer's patch arrays in one recursive delete, not one call per chunk through Zarr."""
        self._file(f"{ARRAYS_DIR}/patches/{layer}").remove()

    def remove(self, keep_inputs: bool = False) -> None:
        """Delete the store's contents, except the writer lease of the run that is replacing them and,
        with ``keep_inputs``, the images the Python API just wrote into it."""
        remove(self.uri, self.storage_options, (INPUTS_DIR,) if keep_inputs else ())

    # -- side files --------------------------------------------------------------------------
    def index(self) -> StoreFile:
        return self._file("index.parquet")

    def shard_marker(self, shard: int) -> StoreFile:
        return self._file(f"shards/{shard:06d}.json")

    def summary(self, stage: str) -> StoreFile:
        """``summary/<stage>.json``: ``extract``, ``sweep``, ``ablate-<layer>``."""
        return self._file(f"summary/{stage}.json")

    def summaries(self) -> StoreFile:
        return self._file("summary")

    def explain_config(self) -> StoreFile:
        return self._file("explain_config.json")

    def table(self, layer: str) -> StoreFile:
        """``explanations/<layer>.parquet`` (``write_table`` adds the .csv; ``with_suffix(".json")`` is its manifest)."""
        return self._file(f"explanations/{layer}.parquet")

    def gallery(self, layer: str) -> StoreFile:
        """``gallery/<layer>.html``; its strips are in ``gallery_strips(layer)``."""
        return self._file(f"gallery/{layer}.html")

    def gallery_strips(self, layer: str) -> StoreFile:
        return self._file(f"gallery/{layer}")

    def embeddings(self, layer: str, key: str, block: Sequence[int]) -> StoreFile:
        """One block of units' vectors (``[units, slots, d]``, NaN where a slot has none) under embedding
        ``key``; ``block`` lists the units (first and last name the file)."""
        return self._file(f"embeddings/{layer}/{key}/{block[0]:06d}-{block[-1]:06d}.npy")

    def crop_embeddings(self, backend_fingerprint: str) -> StoreFile:
        """The folder of per-crop embeddings of one backend (files named by crop content)."""
        return self._file(f"embeddings/crops/{backend_fingerprint}")

    def concept_embeddings(self, key: str) -> StoreFile:
        """A vocabulary's concept vectors under ``scoring.concepts.concept_cache_key``."""
        return self._file(f"embeddings/{key}.npy")

    def ablation(self, layer: str, variant: str = "", table: str = "") -> StoreFile:
        """``ablation/<layer>[.set-<variant>][.<table>].parquet``; ``table``: units, classes, baseline."""
        stem = f"ablation/{layer}" + (f".set-{variant}" if variant else "") + (f".{table}" if table else "")
        return self._file(stem + ".parquet")

    def ablation_part(self, layer: str, run_key: str, part_key: str) -> StoreFile:
        return self._file(f"ablation/parts/{layer}/{run_key}/{part_key}.parquet")

    def evaluation(self, suffix: str = ".json") -> StoreFile:
        """``evaluation/evaluation.json|md|png``: the run's report."""
        return self._file(f"evaluation/evaluation{suffix}")

    def evaluation_layer(self, layer: str, name: str) -> StoreFile:
        """``evaluation/<layer>/<name>``: summary.json, units.parquet, compare.parquet, compare_units.parquet."""
        return self._file(f"evaluation/{layer}/{name}")

    def evaluation_images(self, key: str) -> StoreFile:
        return self._file(f"evaluation/images/{key}.npz")

    def evaluation_vocabulary(self) -> RunStore:
        """The store the evaluation's own vocabularies are written to (``evaluation/vocabulary/...``)."""
        return RunStore(full_uri(self.uri, "evaluation"), self.storage_options)

    def vocabulary(self, name: str = "vocabulary") -> StoreFile:
        """``vocabulary/<name>.parquet`` (``with_suffix(".json")`` is its manifest)."""
        return self._file(f"vocabulary/{name}.parquet")

    def llm_cache(self) -> StoreFile:
        return self._file("vocabulary/llm_cache")

    def input_images(self) -> StoreFile:
        """The folder of images handed to the Python API in memory (files named by content); a file list
        in ``inputs/`` names them ``images/<name>``, relative to itself."""
        return self._file(f"{INPUTS_DIR}/images")

    def input_list(self, key: str) -> StoreFile:
        return self._file(f"{INPUTS_DIR}/{key}.tsv")

    def recorded(self, relpath: str) -> StoreFile:
        """A file whose path the store itself recorded (an ablation summary's ``table``, ``chart``, ...)."""
        return self._file(relpath)

    def leases(self) -> StoreFile:
        """The writer lease's folder (``neuroscribe.lease``); kept by ``remove``."""
        return self._file(LEASE_DIR)

    def lease(self, generation: int) -> StoreFile:
        return self._file(f"{LEASE_DIR}/{generation:08d}.json")


class WithRunStore:
    """Mixin of the configs that have ``store`` and ``store_options`` fields: ``cfg.run_store``."""

    @property
    def run_store(self) -> RunStore:
        return RunStore(self.store, self.store_options)  # type: ignore[attr-defined]
