"""neuroscribe: explain in natural language what each unit of a vision network detects.

The core package holds all logic as typed functions; ``flows/`` and ``tasks/`` are thin
Prefect wrappers over it.  Typical use from Python::

    from neuroscribe.models import load_model, list_layers
    loaded = load_model(ModelSpec(name="efficientnet_lite0"))
    print(list_layers(loaded))
"""

__version__ = "0.1.0"

from neuroscribe.errors import NeuroscribeError  # noqa: E402

__all__ = ["NeuroscribeError", "__version__"]
