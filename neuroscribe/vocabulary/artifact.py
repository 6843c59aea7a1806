"""The vocabulary artifact: a versioned Parquet table with a content hash, read by URI.

    vocab = load_vocabulary("runs/r50")                              # <store>/vocabulary/vocabulary.parquet
    vocab = load_vocabulary("s3://bucket/r50/vocabulary/mine.parquet")
    vocab.concepts, vocab.content_hash, vocab.frame                   # list[str], str, DataFrame

Layout under a run store::

    <store>/vocabulary/<name>.parquet   concept, count, n_classes, sources, classes, aliases
                                        (sorted by concept; format and content hash in its metadata)
    <store>/vocabulary/<name>.json      manifest: format, content hash, config (no secrets), summary
    <store>/vocabulary/llm_cache/       one JSON file per LLM answer (neuroscribe.vocabulary.cache)

The content hash covers every row and column, so any change to the vocabulary changes it;
later stages key their caches on it.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from neuroscribe.errors import NeuroscribeError
from neuroscribe.fingerprint import content_key
from neuroscribe.store import (
    exists,
    full_uri,
    read_json,
    read_parquet,
    write_json,
    write_parquet,
)

FORMAT_VERSION = 1
_LIST_COLUMNS = ("sources", "classes", "aliases")


@dataclass
class Vocabulary:
    concepts: list[str]
    content_hash: str
    frame: pd.DataFrame
    uri: str
    manifest: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.concepts)


def frame_hash(frame: pd.DataFrame) -> str:
    """Content hash of a vocabulary frame, independent of how Parquet returns list columns."""
    rows = []
    for row in frame.to_dict("records"):
        rows.append({k: [str(x) for x in v] if k in _LIST_COLUMNS else (str(v) if k == "concept" else int(v)) for k, v in row.items()})
    return content_key({"format": FORMAT_VERSION, "rows": rows})


def artifact_paths(name: str) -> tuple[str, str]:
    """(parquet, manifest) paths of a vocabulary relative to the run store."""
    return f"vocabulary/{name}.parquet", f"vocabulary/{name}.json"


def write_vocabulary(
    store: str, name: str, frame: pd.DataFrame, manifest: dict[str, Any], storage_options: dict | None = None
) -> tuple[str, str]:
    """Write the table and its manifest; returns (parquet URI, content hash)."""
    digest = frame_hash(frame)
    frame = frame.copy()
    frame.attrs = {"neuroscribe_vocabulary": {"format": FORMAT_VERSION, "content_hash": digest}}
    parquet_rel, manifest_rel = artifact_paths(name)
    write_parquet(store, parquet_rel, frame, storage_options)
    write_json(store, manifest_rel, {"format": FORMAT_VERSION, "content_hash": digest, "n_concepts": len(frame), **manifest}, storage_options)
    return full_uri(store, parquet_rel), digest


def _locate(uri: str) -> tuple[str, str]:
    if uri.endswith(".parquet"):
        return posixpath.dirname(uri) or ".", posixpath.basename(uri)
    return uri, artifact_paths("vocabulary")[0]


def load_vocabulary(uri: str, storage_options: dict | None = None) -> Vocabulary:
    """A vocabulary by the URI of its ``.parquet`` file, or of the run store holding the default one."""
    base, rel = _locate(uri)
    if not exists(base, rel, storage_options):
        raise NeuroscribeError(f"no vocabulary at {full_uri(base, rel)}; build one with `neuroscribe vocabulary --store {base}`")
    frame = read_parquet(base, rel, storage_options)
    meta = frame.attrs.get("neuroscribe_vocabulary", {})
    if meta.get("format") != FORMAT_VERSION:
        raise NeuroscribeError(
            f"{full_uri(base, rel)} is not a vocabulary of format {FORMAT_VERSION} (found {meta.get('format')}); rebuild it"
        )
    for column in _LIST_COLUMNS:
        frame[column] = frame[column].map(list)
    digest = frame_hash(frame)
    if digest != meta.get("content_hash"):
        raise NeuroscribeError(f"{full_uri(base, rel)} was changed after it was written (hash mismatch); rebuild it")
    manifest_rel = rel[: -len(".parquet")] + ".json"
    manifest = read_json(base, manifest_rel, storage_options) if exists(base, manifest_rel, storage_options) else {}
    return Vocabulary(frame["concept"].tolist(), digest, frame, full_uri(base, rel), manifest)
