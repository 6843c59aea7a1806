"""Ablation modes: what is zeroed, which module owns the weights, and exact restore (also after errors)."""

from __future__ import annotations

import pytest
import torch

from neuroscribe.ablation.modes import ablate, target_module, validate_units
from neuroscribe.config import ModelSpec
from neuroscribe.errors import NeuroscribeError
from neuroscribe.hooks import capture_outputs, edit_outputs, hook_count
from neuroscribe.models import load_model, resolve_layers

TINY_CNN = "neuroscribe.testing.tiny_models:tiny_cnn"


@pytest.fixture(scope="module")
def tiny():
    loaded = load_model(ModelSpec(name=TINY_CNN))
    x = torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    return loaded, x


def _layer(loaded, name):
    return resolve_layers(loaded, [name])[0]


def _params(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _bit_identical(before, model):
    after = model.state_dict()
    return all(torch.equal(before[k].view(torch.uint8) if before[k].is_floating_point() else before[k],
                           after[k].view(torch.uint8) if after[k].is_floating_point() else after[k]) for k in before)


@pytest.mark.parametrize("mode", ["activation", "weights"])
def test_ablated_units_output_zero_and_others_untouched(tiny, mode):
    loaded, x = tiny
    info = _layer(loaded, "conv2")
    with torch.no_grad():
        with capture_outputs(loaded.model, ["conv2"]) as out:
            loaded.model(x)
        clean = out["conv2"]
        # the capture hook is registered after the ablation's, so it sees the edited output
        with ablate(loaded.model, info, [3, 11], mode), capture_outputs(loaded.model, ["conv2"]) as out:
            loaded.model(x)
        ablated = out["conv2"]
    assert torch.count_nonzero(ablated[:, [3, 11]]) == 0
    keep = [u for u in range(info.units) if u not in (3, 11)]
    assert torch.equal(ablated[:, keep], clean[:, keep])
    assert torch.count_nonzero(clean[:, [3, 11]]) > 0


def test_linear_units(tiny):
    loaded, x = tiny
    info = _layer(loaded, "fc")
    for mode in ("activation", "weights"):
        with torch.no_grad():
            clean = loaded.model(x)
            with ablate(loaded.model, info, [1], mode):
                logits = loaded.model(x)
        assert torch.all(logits[:, 1] == 0)
        assert torch.equal(logits[:, [0, 2, 3]], clean[:, [0, 2, 3]])


def test_weights_restored_bit_identical_after_an_exception(tiny):
    loaded, x = tiny
    model = loaded.model
    before = _params(model)
    hooks = hook_count(model)
    info = _layer(loaded, "conv2")
    for mode in ("weights", "activation"):
        with pytest.raises(RuntimeError, match="mid-forward"), ablate(model, info, [0, 5, 15], mode):
            if mode == "weights":
                assert torch.count_nonzero(model.conv2.weight[[0, 5, 15]]) == 0
                assert torch.count_nonzero(model.conv2.bias[[0, 5, 15]]) == 0
            model(x)
            raise RuntimeError("mid-forward failure")
        assert _bit_identical(before, model)
        assert hook_count(model) == hooks


def test_negative_zero_and_nan_weights_restored_exactly(tiny):
    loaded, _ = tiny
    model = loaded.model
    info = _layer(loaded, "conv1")
    with torch.no_grad():
        saved = model.conv1.weight[2].clone(), model.conv1.bias[2].clone()
        model.conv1.weight[2, 0, 0, 0] = -0.0
        model.conv1.weight[2, 0, 0, 1] = float("nan")
    try:
        before = _params(model)
        with ablate(model, info, [2], "weights"):
            pass
        assert _bit_identical(before, model)
    finally:
        with torch.no_grad():
            model.conv1.weight[2], model.conv1.bias[2] = saved


def test_unit_out_of_range_is_named(tiny):
    loaded, _ = tiny
    info = _layer(loaded, "conv2")
    with pytest.raises(NeuroscribeError) as err:
        validate_units(info, [3, 16, 99, -1])
    message = str(err.value)
    assert "[-1, 16, 99]" in message and "conv2" in message and "0..15" in message
    with pytest.raises(NeuroscribeError, match="16"), ablate(loaded.model, info, [16]):
        pass


def test_weights_module_of_a_composite_layer_is_its_last_conv_not_the_shortcut():
    from torchvision.models import resnet18

    from neuroscribe.models.loading import LoadedModel
    from neuroscribe.models.preprocessing import Preprocessing

    torch.manual_seed(0)
    loaded = LoadedModel(resnet18(weights=None).eval(), Preprocessing(input_size=64, resize_size=72), [], "resnet18")
    model = loaded.model
    assert target_module(model, _layer(loaded, "layer4"), "weights") == "layer4.1.conv2"
    # block 0 registers its downsample conv after conv2; the shortcut is not the unit's producer
    assert target_module(model, _layer(loaded, "layer4.0"), "weights") == "layer4.0.conv2"
    assert target_module(model, _layer(loaded, "layer4.0.bn2"), "weights") == "layer4.0.bn2"
    assert target_module(model, _layer(loaded, "layer4"), "activation") == "layer4"
    with pytest.raises(NeuroscribeError, match="--mode activation"):
        target_module(model, _layer(loaded, "avgpool"), "weights")


def test_weights_mode_before_batchnorm_leaves_a_constant_not_zero():
    """The documented caveat: zeroing a conv channel's weights gives BatchNorm's constant after it."""
    from torchvision.models import resnet18

    from neuroscribe.models.loading import LoadedModel
    from neuroscribe.models.preprocessing import Preprocessing

    torch.manual_seed(0)
    model = resnet18(weights=None)
    with torch.no_grad():
        model.layer4[1].bn2.running_mean.uniform_(0.5, 1.0)
        model.layer4[1].bn2.bias.uniform_(-1.0, 1.0)
    loaded = LoadedModel(model.eval(), Preprocessing(input_size=64, resize_size=72), [], "resnet18")
    info = _layer(loaded, "layer4.1.conv2")
    bn = model.layer4[1].bn2
    x = torch.randn(2, 3, 64, 64)
    kept = {}

    def keep(out):  # a copy: the block adds its shortcut to this tensor in place afterwards
        kept["bn2"] = out.clone()
        return out

    with torch.no_grad(), ablate(model, info, [7], "weights"), edit_outputs(model, {"layer4.1.bn2": keep}):
        model(x)
    with torch.no_grad():
        expected = bn.bias[7] - bn.weight[7] * bn.running_mean[7] / torch.sqrt(bn.running_var[7] + bn.eps)
    channel = kept["bn2"][:, 7]
    assert torch.allclose(channel, expected.expand_as(channel), atol=1e-6)
    assert float(expected.abs()) > 0.1
