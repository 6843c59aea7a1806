"""The vocabulary artifact: a versioned Parquet table with a content hash, read by URI.

    vocab = load_vocabulary("runs/r50")                              # <store>/vocabulary/vocabulary.parquet
    vocab = load_vocabulary("s3://bucket/r50/vocabulary/mine.parquet")
    vocab.concepts, vocab.content_hash, vocab.frame                   # list[str], str, DataFrame

Layout under a run store::

    <store>/vocabulary/<name>.parquet   concept, count, n_classes, sources, classes, aliases
                                        (sorted by concept; format and content hash in its metadata)
    <store>/vocabulary/<name>.json      manifest: format, content hash, config (no secrets), summary
    <store>/vocabulary/llm_cache/       one JSON file per LLM answer (neuroscribe.vocabulary.cache)

The content hash covers every row and column (any change changes it); later stages key their caches on it.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from neuroscribe.errors import NeuroscribeError
from neuroscribe.fingerprint import content_key
from neuroscribe.store import RunStore, StoreFile

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
    rows = [
        {k: [str(x) for x in v] if k in _LIST_COLUMNS else (str(v) if k == "concept" else int(v)) for k, v in row.items()}
        for row in frame.to_dict("records")
    ]
    return content_key({"format": FORMAT_VERSION, "rows": rows})


def write_vocabulary(
    store: str, name: str, frame: pd.DataFrame, manifest: dict[str, Any], storage_options: dict | None = None
) -> None:
    """Write the table, with its format and content hash in the Parquet metadata, and its manifest."""
    digest = frame_hash(frame)
    frame = frame.copy()
    frame.attrs = {"neuroscribe_vocabulary": {"format": FORMAT_VERSION, "content_hash": digest}}
    file = RunStore(store, storage_options).vocabulary(name)
    file.write_parquet(frame)
    file.with_suffix(".json").write_json({"format": FORMAT_VERSION, "content_hash": digest, "n_concepts": len(frame), **manifest})


def load_vocabulary(uri: str, storage_options: dict | None = None) -> Vocabulary:
    """A vocabulary by the URI of its ``.parquet`` file, or of the run store holding the default one."""
    if uri.endswith(".parquet"):  # a vocabulary file anywhere, with its manifest beside it
        file = StoreFile(posixpath.dirname(uri) or ".", posixpath.basename(uri), storage_options)
    else:
        file = RunStore(uri, storage_options).vocabulary()
    if not file.exists():
        raise NeuroscribeError(f"no vocabulary at {file.uri}; build one with `neuroscribe vocabulary --store {file.store}`")
    frame = file.read_parquet()
    meta = frame.attrs.get("neuroscribe_vocabulary", {})
    if meta.get("format") != FORMAT_VERSION:
        raise NeuroscribeError(
            f"{file.uri} is not a vocabulary of format {FORMAT_VERSION} (found {meta.get('format')}); rebuild it"
        )
    frame = frame.assign(**{column: frame[column].map(list) for column in _LIST_COLUMNS})
    digest = frame_hash(frame)
    if digest != meta.get("content_hash"):
        raise NeuroscribeError(f"{file.uri} was changed after it was written (hash mismatch); rebuild it")
    manifest = file.with_suffix(".json")
    return Vocabulary(frame["concept"].tolist(), digest, frame, file.uri, manifest.read_json() if manifest.exists() else {})
