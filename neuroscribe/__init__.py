"""neuroscribe: explain in natural language what each unit of a vision network detects.

The Python API for notebooks (``ns.explain``, ``ns.ablate``, ``ns.evaluate``, ``ns.open_run``; see
``neuroscribe.api``, results in ``neuroscribe.results``): ``import neuroscribe as ns``.

The core package holds all logic as typed functions; ``flows/`` and ``tasks/`` are thin
Prefect wrappers over it.  ``import neuroscribe`` imports nothing heavy: the API's names load
on first use (a module ``__getattr__``).
"""

import importlib

__version__ = "0.1.0"

from neuroscribe.errors import NeuroscribeError

# public name -> the module that defines it, imported on first access
_API = ("explain", "ablate", "evaluate", "open_run")
_RESULTS = ("Run", "Gallery", "Unit", "Ablation", "Evaluation")
_LAZY = dict.fromkeys(_API, "neuroscribe.api") | dict.fromkeys(_RESULTS, "neuroscribe.results")
__all__ = ["NeuroscribeError", "__version__", *_LAZY]


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'neuroscribe' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(__all__) | {name for name in globals() if name.startswith("__")})
