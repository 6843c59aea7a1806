"""Are two run stores the same run?  Every Zarr array and every table, compared exactly.

    python benchmarks/store_identity.py /tmp/id_before/store /tmp/id_after/store

Proves that a refactor changed no result: run the demo (or any run) with the old and the new code
into two stores and compare them.  Reads both store layouts: layout 1 (the arrays at the store root,
beside the side files) and layout 2 (the arrays under ``<store>/arrays``), so a store of either
neuroscribe compares with one of the other.  Local paths only.

- Zarr arrays: the same names (relative to the arrays' root), dtypes and shapes, and the same bytes
  (NaN positions included), read a block of rows at a time so memory stays bounded.
- Tables (``*.parquet`` and ``*.csv`` outside the arrays: index, explanations, vocabulary, ablation,
  evaluation): the same relative paths and ``pandas.testing.assert_frame_equal`` with exact values.
- Cached embeddings (``*.npy``, ``*.npz``): the same vectors per path (a unit block's expanded ``.npy``
  of earlier versions and its compact ``.npz`` compare by what they hold; npz files carry zip times).  Names that are content keys
  including the code's version are paired where each store has one: a key folder
  (``embeddings/<layer>/<key>/``) or a key-named file (the concept vectors ``embeddings/<key>.npy``).
  A folder of ``.npz`` caches whose names differ (crop vectors named by digests that include the run
  key) is compared as the sorted rows of all the ``vectors`` it holds.
- Group and array attrs are compared with the keys that carry the code's version left out (``version``,
  ``layout``, ``run_key`` and every ``*_key``): a refactor changes those by design.  Side JSON files
  (markers, summaries, manifests) carry seconds and keys, so they are not compared.

Exit status 0 when the stores are identical, 1 with each difference listed otherwise.
"""

from __future__ import annotations

import argparse
import re
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import zarr

BLOCK_BYTES = 64 * 2**20
CODE_DEPENDENT = re.compile(r"^(version|layout|run_key|.*_key)$")
KEY_FOLDER = re.compile(r"^[0-9a-f]{12,}$")  # content keys name these folders


def arrays_root(store: Path) -> Path:
    """The Zarr group's folder: ``arrays/`` (layout 2) or the store itself (layout 1)."""
    for root in (store / "arrays", store):
        if (root / "zarr.json").is_file():
            return root
    raise SystemExit(f"{store} holds no Zarr group (neither {store}/arrays/zarr.json nor {store}/zarr.json)")


def zarr_members(store: Path) -> tuple[dict[str, zarr.Array], dict[str, dict]]:
    """(arrays by name, attrs by group or array name) of the store's Zarr group."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # layout 1 warns about each side file beside the arrays
        group = zarr.open_group(store=zarr.storage.LocalStore(arrays_root(store), read_only=True), mode="r")
        members = dict(group.members(max_depth=None))
    arrays = {name: m for name, m in members.items() if isinstance(m, zarr.Array)}
    attrs = {name: dict(m.attrs) for name, m in members.items()} | {"/": dict(group.attrs)}
    return arrays, attrs


def without_code_keys(value):
    if isinstance(value, dict):
        return {k: without_code_keys(v) for k, v in value.items() if not CODE_DEPENDENT.match(k)}
    if isinstance(value, list):
        return [without_code_keys(v) for v in value]
    return value


def same_array(a: zarr.Array, b: zarr.Array) -> str | None:
    """None when equal, else what differs."""
    if a.dtype != b.dtype or a.shape != b.shape:
        return f"dtype/shape {a.dtype}{a.shape} vs {b.dtype}{b.shape}"
    if not a.shape:
        return None if np.asarray(a[...]).tobytes() == np.asarray(b[...]).tobytes() else "values differ"
    row_bytes = max(1, a.nbytes // max(a.shape[0], 1))
    step = max(1, BLOCK_BYTES // row_bytes)
    for start in range(0, a.shape[0], step):
        x, y = np.ascontiguousarray(a[start : start + step]), np.ascontiguousarray(b[start : start + step])
        if x.tobytes() != y.tobytes():  # bytes: NaN positions (and payloads) must match too
            if x.dtype.kind == "f":
                differ = ~((x == y) | (np.isnan(x) & np.isnan(y)))
                return f"{int(differ.sum())} values differ in rows {start}..{start + len(x) - 1}, first at {np.argwhere(differ)[0].tolist()}"
            return f"values differ in rows {start}..{start + len(x) - 1}"
    return None


def side_files(store: Path, suffixes: tuple[str, ...]) -> dict[str, Path]:
    """Relative path -> file, outside the arrays, with one of ``suffixes``; key folders become ``<key>``
    where a parent holds exactly one of them (so stores of two code versions pair up)."""
    root = arrays_root(store)
    found = {}
    for path in sorted(store.rglob("*")):
        if not path.is_file() or path.suffix not in suffixes:
            continue
        if root != store and root in path.parents:
            continue
        parts = list(path.relative_to(store).parts)
        for i, part in enumerate(parts[:-1]):
            parent = store.joinpath(*parts[:i])
            if KEY_FOLDER.match(part) and sum(1 for p in parent.iterdir() if p.is_dir() and KEY_FOLDER.match(p.name)) == 1:
                parts[i] = "<key>"
        keyed = [p for p in path.parent.iterdir() if p.suffix == path.suffix and KEY_FOLDER.match(p.stem)]
        if KEY_FOLDER.match(path.stem) and keyed == [path]:
            parts[-1] = "<key>" + path.suffix
        found["/".join(parts)] = path
    return found


def pooled_vectors(files: list[Path]) -> np.ndarray:
    """Every ``vectors`` row of some ``.npz`` caches, sorted, as one array."""
    rows = [np.load(f)["vectors"] for f in files]
    stacked = np.concatenate(rows) if rows else np.zeros((0, 0), np.float32)
    return stacked[np.lexsort(stacked.T[::-1])] if stacked.size else stacked


def embedding_array(path: Path) -> np.ndarray:
    """What an embedding file holds, in either format: ``.npy`` as is, a compact block ``.npz`` (each
    input's vector once, ``slots`` per (unit, slot), -1 = none) expanded to ``[units, slots, d]``."""
    if path.suffix == ".npy":
        return np.load(path)
    with np.load(path) as stored:
        if "slots" not in stored:
            return stored["vectors"]
        vectors, slots = stored["vectors"], stored["slots"]
    return np.concatenate([vectors, np.full((1, vectors.shape[1]), np.nan, vectors.dtype)])[slots]


def read_table(path: Path) -> pd.DataFrame:
    return pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)


def compare(a: Path, b: Path) -> tuple[list[str], dict[str, int]]:
    problems: list[str] = []
    counts = {"arrays": 0, "tables": 0, "embedding files": 0, "attrs": 0}
    arrays_a, attrs_a = zarr_members(a)
    arrays_b, attrs_b = zarr_members(b)
    for name in sorted(set(arrays_a) ^ set(arrays_b)):
        problems.append(f"array {name} is only in {a if name in arrays_a else b}")
    for name in sorted(set(arrays_a) & set(arrays_b)):
        counts["arrays"] += 1
        if (why := same_array(arrays_a[name], arrays_b[name])) is not None:
            problems.append(f"array {name}: {why}")
    for name in sorted(set(attrs_a) & set(attrs_b)):
        counts["attrs"] += 1
        if without_code_keys(attrs_a[name]) != without_code_keys(attrs_b[name]):
            problems.append(f"attrs of {name} differ beyond code-version keys")
    for suffixes, kind in (((".parquet", ".csv"), "tables"), ((".npy", ".npz"), "embedding files")):
        files_a, files_b = side_files(a, suffixes), side_files(b, suffixes)
        if kind == "embedding files":  # a block file is .npy (expanded) or .npz (compact): pair them by stem
            files_a, files_b = ({rel.rsplit(".", 1)[0]: f for rel, f in files.items()} for files in (files_a, files_b))
        unpaired = sorted(set(files_a) ^ set(files_b))
        for folder in sorted({rel.rsplit("/", 1)[0] for rel in unpaired if (files_a | files_b)[rel].suffix == ".npz"}):
            pooled = [pooled_vectors([f for rel, f in files.items() if rel.rsplit("/", 1)[0] == folder]) for files in (files_a, files_b)]
            counts["embedding files"] += 1
            if pooled[0].shape != pooled[1].shape or pooled[0].tobytes() != pooled[1].tobytes():
                problems.append(f"{folder}: the .npz caches hold different vectors")
            unpaired = [rel for rel in unpaired if rel.rsplit("/", 1)[0] != folder]
        for rel in unpaired:
            problems.append(f"{rel} is only in {a if rel in files_a else b}")
        for rel in sorted(set(files_a) & set(files_b)):
            counts[kind] += 1
            if kind == "tables":
                try:
                    pd.testing.assert_frame_equal(read_table(files_a[rel]), read_table(files_b[rel]), check_exact=True)
                except AssertionError as exc:
                    problems.append(f"table {rel}: {str(exc).splitlines()[0]}")
            else:
                x, y = embedding_array(files_a[rel]), embedding_array(files_b[rel])
                if x.shape != y.shape or x.tobytes() != y.tobytes():
                    problems.append(f"{rel}: the vectors differ")
    return problems, counts


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("store_a", type=Path)
    parser.add_argument("store_b", type=Path)
    args = parser.parse_args()
    problems, counts = compare(args.store_a, args.store_b)
    compared = ", ".join(f"{n} {kind}" for kind, n in counts.items())
    layouts = ", ".join(f"{s}: layout {2 if arrays_root(s) != s else 1}" for s in (args.store_a, args.store_b))
    if problems:
        print(f"DIFFERENT ({layouts}; compared {compared}):")
        for problem in problems:
            print(f"  {problem}")
        return 1
    print(f"IDENTICAL ({layouts}): {compared}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
