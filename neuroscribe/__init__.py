"""neuroscribe: explain in natural language what each unit of a vision network detects.

The Python API (``neuroscribe.api``, results in ``neuroscribe.results``), for notebooks::

    import neuroscribe as ns
    run = ns.explain(model, layers=["layer4"], images="data/val", store="runs/r50", backend="conse")
    run.table("layer4"); run.gallery("layer4"); run.unit("layer4", 559)
    drops = ns.ablate(model, layer="layer4", units=[559], images="data/val", store="runs/r50")
    report = ns.evaluate("runs/r50")
    run = ns.open_run("runs/r50")

The core package holds all logic as typed functions; ``flows/`` and ``tasks/`` are thin
Prefect wrappers over it.  ``import neuroscribe`` imports nothing heavy: the API's names load
on first use (a module ``__getattr__``).
"""

import importlib

__version__ = "0.1.0"

from neuroscribe.errors import NeuroscribeError

# public name -> the module that defines it, imported on first access
_LAZY = {
    "explain": "neuroscribe.api",
    "ablate": "neuroscribe.api",
    "evaluate": "neuroscribe.api",
    "open_run": "neuroscribe.api",
    "Run": "neuroscribe.results",
    "Gallery": "neuroscribe.results",
    "Unit": "neuroscribe.results",
    "Ablation": "neuroscribe.results",
    "Evaluation": "neuroscribe.results",
}

__all__ = [
    "Ablation",
    "Evaluation",
    "Gallery",
    "NeuroscribeError",
    "Run",
    "Unit",
    "__version__",
    "ablate",
    "evaluate",
    "explain",
    "open_run",
]


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'neuroscribe' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(__all__) | {name for name in globals() if name.startswith("__")})
