"""Durable JSON cache of LLM answers, one file per content key, local or on object storage.

    key = answer_key(resolve_llm(spec), spec.templates[0], "goldfish")
    cache = AnswerCache("runs/r50/vocabulary/llm_cache")
    cache.get(key) or cache.put(key, {...})
    cache = run_answer_cache(cfg)        # the run's own cache, backed by cfg.cache_dir when set

The key covers what decides an answer (model, system prompt, template text, class name,
temperature, seed), not the endpoint, response format or token limit: the same model on another
server reuses its answers.  Only valid answers are stored, so a rerun asks again for what failed.

A run's answers always land in its own ``<store>/vocabulary/llm_cache``; a shared ``cache_dir`` is a
second level whose hits are copied into the run's cache and which gets every new answer too.
"""

from __future__ import annotations

import json
import posixpath
from typing import TYPE_CHECKING, Any

from neuroscribe.fingerprint import content_key
from neuroscribe.store import StoreFile, filesystem

if TYPE_CHECKING:
    from neuroscribe.vocabulary.config import LLMSpec, PromptTemplate, VocabularyConfig

CACHE_FORMAT = 1


def answer_key(spec: LLMSpec, template: PromptTemplate, class_name: str) -> str:
    """The key of one answer; ``spec`` is resolved (``resolve_llm``), so its model is set."""
    return content_key(
        {
            "format": CACHE_FORMAT,
            **spec.model_dump(include={"model", "temperature", "seed"}),
            "system": spec.system_prompt,
            "template": template.text,
            "class_name": class_name,
        },
        length=32,
    )


class AnswerCache:
    """Answers under ``<uri>/<key>.json`` (``shared``: the second level); the directory is listed once."""

    def __init__(self, uri: str, storage_options: dict | None = None, shared: AnswerCache | None = None):
        self.uri = uri
        self.storage_options = storage_options or {}
        self.shared = shared
        self._fs, self._root = filesystem(uri, self.storage_options)
        self._known: set[str] | None = None

    def keys(self) -> set[str]:
        if self._known is None:  # find, unlike ls, lists a missing folder as empty
            names = self._fs.find(self._root, maxdepth=1)
            self._known = {posixpath.basename(n).removesuffix(".json") for n in names if n.endswith(".json")}
        return self._known

    def __contains__(self, key: str) -> bool:
        return key in self.keys() or (self.shared is not None and key in self.shared)

    def get(self, key: str) -> dict[str, Any] | None:
        record = self._read(key)
        if record is None and self.shared is not None and (record := self.shared.get(key)) is not None:
            self._write(key, record)  # the run keeps every answer it used
        return record

    def put(self, key: str, record: dict[str, Any]) -> None:
        self._write(key, record)
        if self.shared is not None:
            self.shared.put(key, record)

    def _read(self, key: str) -> dict[str, Any] | None:
        if key not in self.keys():
            return None
        try:
            record = json.loads(self._fs.cat_file(posixpath.join(self._root, f"{key}.json")))
        except (FileNotFoundError, json.JSONDecodeError):
            return None  # removed or half-written by someone else: ask again
        return record if record.get("key") == key else None

    def _write(self, key: str, record: dict[str, Any]) -> None:
        StoreFile(self.uri, f"{key}.json", self.storage_options).write_json({**record, "key": key})
        self.keys().add(key)


def run_answer_cache(cfg: VocabularyConfig) -> AnswerCache:
    """The run's own answer cache, with ``cfg.cache_dir`` (same storage options) as its shared level."""
    shared = AnswerCache(cfg.cache_dir, cfg.store_options) if cfg.cache_dir else None
    return AnswerCache(cfg.run_store.llm_cache().uri, cfg.store_options, shared)
