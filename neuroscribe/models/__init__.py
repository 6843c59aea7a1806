"""Target models: loading by name, their preprocessing and class names, and their addressable layers.

    loaded = load_model(ModelSpec(name="resnet50", weights="IMAGENET1K_V2"))
    for info in list_layers(loaded):
        print(info.name, info.kind, info.units)
"""

from neuroscribe.models.layers import LayerInfo, list_layers, resolve_layers, unit_activations
from neuroscribe.models.loading import LoadedModel, Preprocessing, autocast, load_model, resolve_device

__all__ = [
    "LayerInfo", "LoadedModel", "Preprocessing", "autocast", "list_layers", "load_model", "resolve_device",
    "resolve_layers", "unit_activations",
]
