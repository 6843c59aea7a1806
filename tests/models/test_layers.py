"""Addressable layers: kinds, unit counts, ViT patch grids, and wrong-name errors."""

from __future__ import annotations

import pytest

from neuroscribe.config import ModelSpec
from neuroscribe.errors import NeuroscribeError
from neuroscribe.models import list_layers, load_model, resolve_layers


def test_resnet_layers_kinds_and_shared_relu_excluded():
    loaded = load_model(ModelSpec(name="resnet50"))
    infos = {i.name: i for i in list_layers(loaded)}
    assert infos["layer4"].kind == "conv" and infos["layer4"].units == 2048 and infos["layer4"].map_shape == (7, 7)
    assert infos["layer3"].units == 1024 and infos["layer3"].map_shape == (14, 14)
    assert infos["fc"].kind == "linear" and infos["fc"].units == 1000
    assert "layer4.0.relu" not in infos  # called three times per block


def test_vit_mlp_hidden_neurons_are_token_units_on_the_patch_grid():
    loaded = load_model(ModelSpec(name="vit_b_16"))
    [info] = resolve_layers(loaded, ["encoder.layers.encoder_layer_5.mlp.1"])
    assert (info.kind, info.units, info.map_shape, info.prefix_tokens) == ("token", 3072, (14, 14), 1)


def test_wrong_layer_name_lists_closest_names():
    loaded = load_model(ModelSpec(name="resnet18"))
    with pytest.raises(NeuroscribeError, match=r"'layer5' is not an addressable layer of resnet18; closest valid names: layer.*"):
        resolve_layers(loaded, ["layer5"])
