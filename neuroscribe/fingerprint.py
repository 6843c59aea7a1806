"""Content fingerprints for caches: a cache key is a hash of the inputs plus the code version.

    key = content_key({"model": spec.model_dump(), ...}, code=code_version("neuroscribe.extraction"))

Never key a cache on a file's existence: a store whose key differs from the run's is stale.
"""

from __future__ import annotations

import hashlib
import importlib
import inspect
import json
from functools import cache
from typing import Any

from neuroscribe import __version__


def _canonical(obj: Any) -> Any:
    if hasattr(obj, "model_dump"):
        return _canonical(obj.model_dump(mode="json"))
    if isinstance(obj, dict):
        return {str(k): _canonical(v) for k, v in sorted(obj.items(), key=lambda kv: str(kv[0]))}
    if isinstance(obj, (list, tuple)):
        return [_canonical(v) for v in obj]
    return obj


def content_key(payload: Any, length: int = 16) -> str:
    """A short sha256 of a JSON-able payload (pydantic models are dumped first)."""
    text = json.dumps(_canonical(payload), sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:length]


@cache
def code_version(*module_names: str) -> str:
    """Package version plus a hash of the named modules' source: changes when their code does."""
    digest = hashlib.sha256(__version__.encode())
    for name in sorted(module_names):
        digest.update(inspect.getsource(importlib.import_module(name)).encode())
    return f"{__version__}+{digest.hexdigest()[:12]}"
