"""Durable JSON cache of LLM answers, one file per content key, local or on object storage.

    key = answer_key(model="gpt-4o-mini", system=..., template=..., class_name="goldfish",
                     temperature=0.0, seed=0)
    cache = AnswerCache("runs/r50/vocabulary/llm_cache")
    cache.get(key) or cache.put(key, {...})

The key covers exactly what decides an answer: model, system prompt and template text, class
name, temperature and seed.  Endpoint URL, response format and token limit are left out on
purpose, so the same model served by another server reuses its answers.  Only valid answers are
stored, so a rerun asks again for what failed.
"""

from __future__ import annotations

import json
import posixpath
from typing import Any

from neuroscribe.fingerprint import content_key
from neuroscribe.store import filesystem, write_json

CACHE_FORMAT = 1


def answer_key(
    *, model: str, system: str, template: str, class_name: str, temperature: float | None, seed: int | None
) -> str:
    return content_key(
        {
            "format": CACHE_FORMAT,
            "model": model,
            "system": system,
            "template": template,
            "class_name": class_name,
            "temperature": temperature,
            "seed": seed,
        },
        length=32,
    )


class AnswerCache:
    """Answers under ``<uri>/<key>.json``; the directory is listed once, so lookups cost no I/O."""

    def __init__(self, uri: str, storage_options: dict | None = None):
        self.uri = uri
        self.storage_options = storage_options or {}
        self._fs, self._root = filesystem(uri, self.storage_options)
        self._known: set[str] | None = None

    def keys(self) -> set[str]:
        if self._known is None:
            try:
                names = self._fs.ls(self._root, detail=False) if self._fs.exists(self._root) else []
            except FileNotFoundError:
                names = []
            self._known = {posixpath.basename(n)[: -len(".json")] for n in names if n.endswith(".json")}
        return self._known

    def __contains__(self, key: str) -> bool:
        return key in self.keys()

    def get(self, key: str) -> dict[str, Any] | None:
        if key not in self.keys():
            return None
        try:
            record = json.loads(self._fs.cat_file(posixpath.join(self._root, f"{key}.json")))
        except (FileNotFoundError, json.JSONDecodeError):
            return None  # removed or half-written by someone else: ask again
        return record if record.get("key") == key else None

    def put(self, key: str, record: dict[str, Any]) -> None:
        write_json(self.uri, f"{key}.json", {**record, "key": key}, self.storage_options)
        self.keys().add(key)
