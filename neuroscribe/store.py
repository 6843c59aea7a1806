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
    <store>/arrays/activations/<layer>/samples, candidate_ids, candidate_maps  per dataset shard
    <store>/arrays/topk/<layer>/value        float32 [units, k]       top-k spatial max, descending; attrs topk_key
    <store>/arrays/topk/<layer>/image_id     int64   [units, k]       their image ids (-1 = fewer than k)
    <store>/arrays/topk/<layer>/maps         float32 [units, k, H, W] their activation maps, native size
    <store>/arrays/patches/<layer>/...       patch crops, masks, boxes (a linear layer's once per image); attrs patches_key
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
    <store>/embeddings/<layer>/<key>/<first>-<last>.npz, crops/<backend>/, <concepts>.npy
                                             cached patch and concept embeddings (neuroscribe.explanation, .scoring)
    <store>/explain_config.json              the explain run's config (secrets masked)
    <store>/inputs/images/<hash>.png, <hash>.tsv  images handed to the Python API in memory, and their
                                             file list (path, label); both named by content (neuroscribe.api)
    <store>/evaluation/evaluation.json|md|png  quality metrics (neuroscribe.evaluation); per layer
                                             evaluation/<layer>/{summary.json, units.parquet,
                                             compare.parquet, compare_units.parquet}, images/, vocabulary/

A layout-1 store (arrays at the store root, where Zarr warned about each side file) is refused with a
NeuroscribeError saying to re-extract it.  Activation arrays have one Zarr shard per dataset shard along
the image axis, so no two tasks write the same shard object.  Credentials come from ``storage_options``
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
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from neuroscribe.errors import NeuroscribeError

if TYPE_CHECKING:  # fsspec, pandas and zarr load on first use: every config imports this module, and `--help` must stay fast
    import pandas as pd
    import zarr

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
    import fsspec

    try:
        return fsspec.core.url_to_fs(uri, **with_retries(uri, storage_options))
    except Exception as exc:
        raise NeuroscribeError(f"store {uri} cannot be opened ({exc}); check the URL and credentials") from None


def is_local(fs) -> bool:
    """Whether an fsspec filesystem is the local disk (which has folders, renames and O_EXCL)."""
    protocols = fs.protocol if isinstance(fs.protocol, (tuple, list)) else (fs.protocol,)
    return "file" in protocols or "local" in protocols


def full_uri(uri: str, relpath: str) -> str:
    return uri.rstrip("/") + "/" + relpath


@dataclass(frozen=True)
class StoreFile:
    """One file (or folder) of a run store, at a path of ``RunStore``'s layout, and what can be done with it.

    Files are written whole: locally through a temporary name and a rename; every S3 request is retried."""

    store: str
    relpath: str
    storage_options: dict | None = None

    @property
    def uri(self) -> str:
        return full_uri(self.store, self.relpath)

    def locate(self) -> tuple[Any, str]:
        """(fsspec filesystem, path) for what whole-file reads and writes cannot do (the lease's exclusive create)."""
        fs, root = filesystem(self.store, self.storage_options)
        return fs, posixpath.join(root, self.relpath)

    def exists(self) -> bool:
        fs, path = self.locate()
        return fs.exists(path)

    def write_bytes(self, data: bytes) -> str:
        fs, path = self.locate()
        with storage_errors(self.uri):
            if is_local(fs):
                # only local paths have folders (s3fs's makedirs would try to create a missing bucket)
                fs.makedirs(posixpath.dirname(path), exist_ok=True)
                # one temporary name per write: writers of the same file must not share (and move) one
                tmp = f"{path}.{uuid.uuid4().hex}.tmp"
                fs.pipe_file(tmp, data)
                fs.mv(tmp, path)
            else:
                fs.pipe_file(path, data)
        return path

    def read_bytes(self) -> bytes:
        fs, path = self.locate()
        try:
            with storage_errors(self.uri):
                return fs.cat_file(path)
        except FileNotFoundError:
            raise NeuroscribeError(f"{self.relpath} is missing from store {self.store}; run the stage that writes it first") from None

    def write_json(self, obj: Any) -> str:
        return self.write_bytes(json.dumps(obj, indent=2, default=str).encode())

    def read_json(self) -> Any:
        return json.loads(self.read_bytes())

    def write_parquet(self, frame: pd.DataFrame) -> str:
        buf = io.BytesIO()
        frame.to_parquet(buf, index=False)
        return self.write_bytes(buf.getvalue())

    def read_parquet(self) -> pd.DataFrame:
        import pandas as pd

        return pd.read_parquet(io.BytesIO(self.read_bytes()))

    def write_table(self, frame: pd.DataFrame) -> str:
        """This ``.parquet`` and a ``.csv`` beside it (for people); returns the parquet path."""
        self.with_suffix(".csv").write_bytes(frame.to_csv(index=False).encode())
        return self.write_parquet(frame)

    def with_suffix(self, suffix: str) -> StoreFile:
        """The file of the same stem with another suffix (``explanations/x.parquet`` -> ``.json``)."""
        return StoreFile(self.store, posixpath.splitext(self.relpath)[0] + suffix, self.storage_options)

    def folder(self, name: str) -> StoreFile:
        """A file in this one taken as a folder (content-named files: cache entries, strips)."""
        return StoreFile(self.store, f"{self.relpath}/{name}", self.storage_options)

    def list(self) -> list[str]:
        """Names in this folder (none when it does not exist)."""
        fs, path = self.locate()
        return sorted(posixpath.basename(p) for p in fs.ls(path, detail=False)) if fs.exists(path) else []

    def remove(self) -> None:
        """Delete this file or folder, if present (one recursive request on S3)."""
        fs, path = self.locate()
        if fs.exists(path):
            fs.rm(path, recursive=True)


class RunStore:
    """A run store: its URI and storage options, and one method per artifact of the layout above.

    Array groups (``activations``, ``topk``, ``patches``) open read-only with ``mode="r"`` (None when
    absent), writable with ``r+`` and are created with ``a``; every other artifact is a ``StoreFile``."""

    def __init__(self, uri: str, storage_options: dict | None = None):
        self.uri, self.storage_options = uri, storage_options

    def __repr__(self) -> str:
        return f"RunStore({self.uri!r})"

    def _file(self, relpath: str) -> StoreFile:
        return StoreFile(self.uri, relpath, self.storage_options)

    def arrays(self, mode: str = "r") -> zarr.Group:
        """The Zarr group of the run's arrays, ``<store>/arrays``."""
        import zarr

        if not self._file(f"{ARRAYS_DIR}/zarr.json").exists():
            if self.old_layout():
                raise NeuroscribeError(
                    f"store {self.uri} has the old layout 1 (Zarr arrays at the store root); this neuroscribe reads layout "
                    f"{LAYOUT_VERSION} (arrays under {full_uri(self.uri, ARRAYS_DIR)}): rerun `neuroscribe extract --overwrite` "
                    "into it, or pass a new --store"
                )
            if mode != "a":
                raise NeuroscribeError(f"store {self.uri} holds no neuroscribe run; run `neuroscribe extract` into it first")
        uri, read_only = full_uri(self.uri, ARRAYS_DIR), mode == "r"
        with storage_errors(self.uri):
            if "://" in uri and not uri.startswith("file://"):
                store = zarr.storage.FsspecStore.from_url(uri, storage_options=with_retries(uri, self.storage_options), read_only=read_only)
            else:
                store = zarr.storage.LocalStore(uri.removeprefix("file://"), read_only=read_only)
            return zarr.open_group(store=store, mode=mode, zarr_format=3)

    def attrs(self) -> dict[str, Any]:
        """The run's ``neuroscribe`` attrs: layout, run_key, model, layers, dataset, class names."""
        return dict(self.arrays().attrs.get("neuroscribe", {}))

    def has_run(self) -> bool:
        """Whether an extraction created the arrays (an old-layout store counts, and fails on opening)."""
        return self._file(f"{ARRAYS_DIR}/zarr.json").exists() or self.old_layout()

    def old_layout(self) -> bool:
        """A layout-1 store: the Zarr group at the store root, beside the side files."""
        return self._file("zarr.json").exists() and not self._file(f"{ARRAYS_DIR}/zarr.json").exists()

    def _array_group(self, kind: str, layer: str, mode: str = "r") -> zarr.Group | None:
        root = self.arrays(mode)
        return root.require_group(f"{kind}/{layer}") if mode == "a" else root.get(f"{kind}/{layer}")

    # a layer's array groups: what they hold is in the layout above
    def activations(self, layer: str, mode: str = "r") -> zarr.Group | None:
        return self._array_group("activations", layer, mode)

    def topk(self, layer: str, mode: str = "r") -> zarr.Group | None:
        return self._array_group("topk", layer, mode)

    def patches(self, layer: str, mode: str = "r") -> zarr.Group | None:
        return self._array_group("patches", layer, mode)

    def remove_patches(self, layer: str) -> None:
        """Drop a layer's patch arrays in one recursive delete, not one call per chunk through Zarr."""
        self._file(f"{ARRAYS_DIR}/patches/{layer}").remove()

    def remove(self, keep_inputs: bool = False) -> None:
        """Delete all but the replacing run's lease (and, with ``keep_inputs``, the API's input images)."""
        fs, root = filesystem(self.uri, self.storage_options)
        keep = (LEASE_DIR, INPUTS_DIR) if keep_inputs else (LEASE_DIR,)
        for child in fs.ls(root, detail=False) if fs.exists(root) else []:
            if posixpath.basename(child.rstrip("/")) not in keep:
                fs.rm(child, recursive=True)

    # the side files of the layout above
    def index(self) -> StoreFile:
        return self._file("index.parquet")

    def shard_marker(self, shard: int) -> StoreFile:
        return self._file(f"shards/{shard:06d}.json")

    def summary(self, stage: str) -> StoreFile:
        return self._file(f"summary/{stage}.json")

    def summaries(self) -> StoreFile:
        return self._file("summary")

    def explain_config(self) -> StoreFile:
        return self._file("explain_config.json")

    def table(self, layer: str) -> StoreFile:
        """The explanations table; ``with_suffix(".json")`` is its manifest."""
        return self._file(f"explanations/{layer}.parquet")

    def gallery(self, layer: str) -> StoreFile:
        return self._file(f"gallery/{layer}.html")

    def gallery_strips(self, layer: str) -> StoreFile:
        return self._file(f"gallery/{layer}")

    def crop_embeddings(self, backend_fingerprint: str) -> StoreFile:
        """The folder of one backend's crop vectors (files named by content)."""
        return self._file(f"embeddings/crops/{backend_fingerprint}")

    def concept_embeddings(self, key: str) -> StoreFile:
        return self._file(f"embeddings/{key}.npy")

    def ablation_part(self, layer: str, run_key: str, part_key: str) -> StoreFile:
        return self._file(f"ablation/parts/{layer}/{run_key}/{part_key}.parquet")

    def evaluation_layer(self, layer: str, name: str) -> StoreFile:
        return self._file(f"evaluation/{layer}/{name}")

    def evaluation_images(self, key: str) -> StoreFile:
        return self._file(f"evaluation/images/{key}.npz")

    def llm_cache(self) -> StoreFile:
        return self._file("vocabulary/llm_cache")

    def input_images(self) -> StoreFile:
        """The Python API's in-memory images (named by content); file lists name them ``images/<name>``."""
        return self._file(f"{INPUTS_DIR}/images")

    def input_list(self, key: str) -> StoreFile:
        return self._file(f"{INPUTS_DIR}/{key}.tsv")

    def leases(self) -> StoreFile:
        return self._file(LEASE_DIR)

    def lease(self, generation: int) -> StoreFile:
        return self._file(f"{LEASE_DIR}/{generation:08d}.json")

    def recorded(self, relpath: str) -> StoreFile:
        """A file whose path the store itself recorded (an ablation summary's ``table``, ``chart``, ...)."""
        return self._file(relpath)

    def embeddings(self, layer: str, key: str, block: Sequence[int]) -> StoreFile:
        """One block of units' vectors: ``vectors [inputs, d]`` and ``slots [units, slots]`` (each slot's row
        of ``vectors``, -1 where it has none); its first and last unit name it."""
        return self._file(f"embeddings/{layer}/{key}/{block[0]:06d}-{block[-1]:06d}.npz")

    def ablation(self, layer: str, variant: str = "", table: str = "") -> StoreFile:
        return self._file(f"ablation/{layer}" + (f".set-{variant}" if variant else "") + (f".{table}" if table else "") + ".parquet")

    def evaluation(self, suffix: str = ".json") -> StoreFile:
        return self._file(f"evaluation/evaluation{suffix}")

    def evaluation_vocabulary(self) -> RunStore:
        """The store the evaluation's own vocabularies go to (``evaluation/vocabulary/...``)."""
        return RunStore(full_uri(self.uri, "evaluation"), self.storage_options)

    def vocabulary(self, name: str = "vocabulary") -> StoreFile:
        """A vocabulary table; ``with_suffix(".json")`` is its manifest."""
        return self._file(f"vocabulary/{name}.parquet")
