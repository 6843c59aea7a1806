"""Every fast evaluation path gives the naive path's ablated logits, and ``auto`` picks the fastest valid one."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from neuroscribe.ablation.fast import choose_path
from neuroscribe.config import ModelSpec
from neuroscribe.errors import NeuroscribeError
from neuroscribe.models import load_model, resolve_layers
from neuroscribe.models.loading import LoadedModel
from neuroscribe.models.preprocessing import Preprocessing

PATHS = ("closed", "suffix", "hook")


def _wrap(model: nn.Module, size: int) -> LoadedModel:
    return LoadedModel(model.eval(), Preprocessing(input_size=size, resize_size=size), [], type(model).__name__)


@pytest.fixture(scope="module")
def tiny_cnn():
    return load_model(ModelSpec(name="neuroscribe.testing.tiny_models:tiny_cnn"))


@pytest.fixture(scope="module")
def tiny_vit():
    loaded = load_model(ModelSpec(name="neuroscribe.testing.tiny_models:tiny_vit"))
    torch.manual_seed(1)
    nn.init.normal_(loaded.model.heads.head.weight)  # torchvision zero-initialises the head: logits would be 0
    return loaded


@pytest.fixture(scope="module")
def resnet18():
    from torchvision.models import resnet18

    torch.manual_seed(0)
    return _wrap(resnet18(weights=None, num_classes=10), 64)


def _masks(units: int) -> torch.Tensor:
    masks = torch.zeros(4, units, dtype=torch.bool)
    masks[0, 0] = masks[1, units - 1] = True
    masks[2, [1, units // 2]] = True  # a set ablated together
    masks[3, units // 3] = True
    return masks


def _compare(loaded, layer, mode, expected_auto):
    model = loaded.model
    [info] = resolve_layers(loaded, [layer])
    size = loaded.preprocessing.input_size
    probe = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(7))
    x = torch.randn(6, 3, size, size, generator=torch.Generator().manual_seed(8))
    masks = _masks(info.units)
    naive = choose_path(model, info, mode, "naive", probe)
    with torch.no_grad():
        reference = naive.ablated_logits(naive.prepare(x), masks)
        baseline = model(x)
    assert not torch.allclose(reference, baseline.expand_as(reference)), "the ablations must change something"
    checked = []
    for kind in PATHS:
        try:
            path = choose_path(model, info, mode, kind, probe)
        except NeuroscribeError:
            continue
        with torch.no_grad():
            state = path.prepare(x)
            logits = path.ablated_logits(state, masks)
        torch.testing.assert_close(state.logits, baseline, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(logits, reference, rtol=1e-4, atol=1e-4 * float(reference.abs().max()))
        assert torch.equal(logits.argmax(-1), reference.argmax(-1))
        checked.append(kind)
    assert choose_path(model, info, mode, "auto", probe).name == expected_auto
    assert expected_auto in checked and "hook" in checked
    return checked


@pytest.mark.parametrize(
    "layer, mode, auto",
    [("conv1", "activation", "suffix"), ("relu2", "activation", "closed"), ("fc", "activation", "closed"),
     ("conv2", "weights", "closed"), ("conv2", "activation", "closed"), ("fc", "weights", "closed")],
)
def test_tiny_cnn_paths_equal_naive(tiny_cnn, layer, mode, auto):
    _compare(tiny_cnn, layer, mode, auto)


@pytest.mark.parametrize(
    "layer, mode, auto",
    [("layer4", "activation", "closed"), ("layer3", "activation", "suffix"), ("layer4.0", "activation", "suffix"),
     ("layer4.1", "activation", "closed"), ("layer4", "weights", "hook"), ("layer4.0.bn2", "weights", "hook"),
     ("avgpool", "activation", "closed")],
)
def test_resnet_paths_equal_naive(resnet18, layer, mode, auto):
    checked = _compare(resnet18, layer, mode, auto)
    if auto == "closed":
        assert "suffix" in checked  # the closed form is checked against the suffix path too


@pytest.mark.parametrize("layer, mode", [("encoder.layers.encoder_layer_1.mlp.0", "activation"),
                                         ("encoder.layers.encoder_layer_1.mlp.0", "weights")])
def test_vit_token_units_use_the_hook_path(tiny_vit, layer, mode):
    assert _compare(tiny_vit, layer, mode, "hook") == ["hook"]


def test_vit_logits_closed_form(tiny_vit):
    _compare(tiny_vit, "heads.head", "activation", "closed")


class ScaledHead(nn.Module):
    """Modules in closed-form order, but the forward scales the features in between: not a chain."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(8, 5)

    def forward(self, x):
        return self.fc(torch.flatten(self.pool(self.conv(x).relu() * 2.0), 1))


def test_a_forward_that_is_not_its_module_chain_falls_back_to_hooks():
    torch.manual_seed(0)
    loaded = _wrap(ScaledHead(), 16)
    assert _compare(loaded, "conv", "activation", "hook") == ["hook"]
    [info] = resolve_layers(loaded, ["conv"])
    with pytest.raises(NeuroscribeError, match="--fast closed does not apply to layer conv.*probe"):
        choose_path(loaded.model, info, "activation", "closed", torch.randn(2, 3, 16, 16))
