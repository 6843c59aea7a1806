"""List a dataset into a stable index and cut it into fixed-size shards.

    index = build_index(DatasetSpec(uri="/data/places365/val", class_list="places365.txt"))
    index.columns  -> id, path, label        (label -1 when unknown)
    index.attrs["classes"]                   -> class names (folder names or from the list)
    shard_ranges(len(index), 256)            -> [(0, 256), (256, 512), ...]

Layouts:
- an image folder ``root/<class>/<image>`` (ImageNet, Places365 train/val); files directly in ``root``
  are unlabelled. Class index = position in ``class_list`` or in sorted folder names.
- a file list: ``.txt`` lines ``path [label]``, or ``.csv``/``.tsv`` with a header naming a path column
  (``PATH_COLUMNS``) and optionally a label column (``LABEL_COLUMNS``); paths relative to the list file.
Any fsspec URL works (``s3://bucket/val``). Ids are positions in the sorted (folder) or listed (file
list) order, so they are stable across runs.
"""

from __future__ import annotations

import io
import posixpath

import fsspec
import pandas as pd

from neuroscribe.config import DatasetSpec
from neuroscribe.errors import NeuroscribeError
from neuroscribe.fingerprint import content_key
from neuroscribe.store import is_local, with_retries

LIST_SUFFIXES = (".txt", ".csv", ".tsv")
PATH_COLUMNS = ("path", "file", "filename", "image")
LABEL_COLUMNS = ("label", "index", "target", "class_index", "class")


def _read_class_list(path: str, storage_options: dict) -> list[str]:
    try:
        with fsspec.open(path, "rt", **storage_options) as f:
            return [line.split()[0] for line in f.read().splitlines() if line.strip()]
    except FileNotFoundError:
        raise NeuroscribeError(f"class list {path} does not exist; pass a file with one class folder name per line") from None


def _full(fs, path: str) -> str:
    return path if is_local(fs) else fs.unstrip_protocol(path)


def _index_folder(fs, root: str, spec: DatasetSpec) -> tuple[list[str], list[int], list[str]]:
    rows = []
    for full in sorted(fs.find(root, maxdepth=2, withdirs=False)):
        parts = posixpath.relpath(full, root).split("/")
        if not any(p.startswith(".") for p in parts):  # hidden files and folders are not images
            rows.append((_full(fs, full), parts[0] if len(parts) == 2 else None))
    if not rows:
        raise NeuroscribeError(f"dataset folder {spec.uri} holds no files; pass a folder of class subfolders or a file list")
    folders = sorted({c for _, c in rows if c is not None})
    classes = _read_class_list(spec.class_list, spec.storage_options) if spec.class_list else folders
    position = {name: i for i, name in enumerate(classes)}
    unknown = [c for c in folders if c not in position]
    if unknown:
        raise NeuroscribeError(
            f"folders {unknown[:5]} of {spec.uri} are not in class list {spec.class_list}; fix the list or the folders"
        )
    return [p for p, _ in rows], [position[c] if c else -1 for _, c in rows], classes


def _pick(columns: list[str], candidates: tuple[str, ...]) -> str | None:
    lowered = {c.lower(): c for c in columns}
    return next((lowered[c] for c in candidates if c in lowered), None)


def _index_file_list(fs, root: str, spec: DatasetSpec) -> tuple[list[str], list[int], list[str]]:
    if not root.endswith(LIST_SUFFIXES):
        raise NeuroscribeError(f"dataset {spec.uri} is a file but not a list (.txt/.csv/.tsv); pass a folder or a list")
    text = fs.cat_file(root).decode()
    if root.endswith((".csv", ".tsv")):
        table = pd.read_csv(io.StringIO(text), sep="\t" if root.endswith(".tsv") else ",", dtype=str, keep_default_na=False)
        path_col = _pick(list(table.columns), PATH_COLUMNS)
        if path_col is None:
            raise NeuroscribeError(f"dataset list {spec.uri} has no path column; name one of {PATH_COLUMNS} in its header")
        label_col = _pick(list(table.columns), LABEL_COLUMNS)
        paths = table[path_col].tolist()
        raw_labels = table[label_col].tolist() if label_col else [""] * len(paths)
    else:
        lines = [line.split(None, 1) for line in text.splitlines() if line.strip() and not line.startswith("#")]
        paths = [parts[0] for parts in lines]
        raw_labels = [parts[1].strip() if len(parts) > 1 else "" for parts in lines]
    classes = _read_class_list(spec.class_list, spec.storage_options) if spec.class_list else []
    paths = [_full(fs, _join(posixpath.dirname(root), p)) if "://" not in p else p for p in paths]
    return paths, *_labels(raw_labels, classes, spec.uri)


def _labels(raw: list[str], classes: list[str], uri: str) -> tuple[list[int], list[str]]:
    """(label indices, class names): numbers as they are; names index ``classes`` or their sorted set."""
    if all(s == "" or s.lstrip("-").isdigit() for s in raw):
        return [int(s) if s else -1 for s in raw], classes
    names = classes or sorted({s for s in raw if s})
    position = {name: i for i, name in enumerate(names)}
    missing = sorted({s for s in raw if s and s not in position})
    if missing:
        raise NeuroscribeError(f"labels {missing[:5]} of {uri} are not in the class list; fix the list or the labels")
    return [position[s] if s else -1 for s in raw], names


def _join(base: str, rel: str) -> str:
    return rel if rel.startswith("/") else posixpath.normpath(posixpath.join(base, rel))


def build_index(spec: DatasetSpec) -> pd.DataFrame:
    try:
        fs, root = fsspec.core.url_to_fs(spec.uri, **with_retries(spec.uri, spec.storage_options))
    except Exception as exc:
        raise NeuroscribeError(
            f"dataset {spec.uri} cannot be opened ({exc}); check the URL and its credentials"
        ) from None
    if not fs.exists(root):
        raise NeuroscribeError(f"dataset {spec.uri} does not exist; pass an image folder or a file list (.txt/.csv/.tsv)")
    paths, labels, classes = (_index_folder if fs.isdir(root) else _index_file_list)(fs, root, spec)
    labels = pd.array(labels[: spec.limit], dtype="int64")
    frame = pd.DataFrame({"id": range(len(labels)), "path": paths[: spec.limit], "label": labels})
    frame.attrs["classes"] = classes
    return frame


def listing_key(index: pd.DataFrame) -> str:
    return content_key({"paths": index["path"].tolist(), "labels": index["label"].tolist(), "classes": index.attrs.get("classes", [])})


def shard_ranges(n_images: int, shard_size: int) -> list[tuple[int, int]]:
    return [(start, min(start + shard_size, n_images)) for start in range(0, n_images, shard_size)]
