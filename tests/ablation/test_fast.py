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
    masks = torch.zeros(5, units, dtype=torch.bool)
    masks[0, 0] = masks[1, units - 1] = True
    masks[2, [1, units // 2]] = True  # a set ablated together
    masks[3, units // 3] = True
    masks[4, ::2] = True  # half the layer: changes the logits even where single units sit idle
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


@pytest.mark.parametrize("layer, auto", [("encoder.layers.encoder_layer_0", "suffix"),
                                         ("encoder.layers.encoder_layer_1", "suffix"), ("encoder.ln", "closed")])
def test_vit_blocks_and_final_norm_use_the_known_head(tiny_vit, layer, auto):
    _compare(tiny_vit, layer, "activation", auto)


@pytest.fixture(scope="module")
def lite0():
    loaded = load_model(ModelSpec(name="efficientnet_lite0"))  # real weights, offline
    return _wrap(loaded.model, 96)  # any size works for the paths; small keeps the naive reference quick


@pytest.mark.parametrize(
    "layer, auto, start",
    [("bn2.act", "closed", "bn2"), ("bn2", "closed", "bn2"), ("conv_head", "closed", "conv_head"),
     ("blocks.6", "suffix", "blocks"), ("blocks.6.0.bn3.act", "suffix", "blocks"), ("blocks.5", "suffix", "blocks.5"),
     ("global_pool", "closed", "global_pool"), ("classifier", "closed", "classifier")],
)
def test_efficientnet_lite0_demo_layers(lite0, layer, auto, start):
    """The last operation inside a module is that module's output; conv_head and blocks.6 reach the head."""
    _compare(lite0, layer, "activation", auto)
    [info] = resolve_layers(lite0, [layer])
    assert choose_path(lite0.model, info, "activation", "auto", torch.randn(1, 3, 96, 96)).target == start


def test_rank_one_start_of_the_suffix_is_used_and_exact(lite0):
    """blocks.6 -> conv_head (1x1): a single unit's ablation is a rank-one change of conv_head's output."""
    [info] = resolve_layers(lite0, ["blocks.6"])
    path = choose_path(lite0.model, info, "activation", "suffix", torch.randn(1, 3, 96, 96))
    with torch.no_grad():
        state = path.prepare(torch.randn(3, 3, 96, 96, generator=torch.Generator().manual_seed(2)))
        assert state.first is not None and state.first.shape[1] == 1280
        single = torch.eye(info.units, dtype=torch.bool)[[0, 7, 319]]
        fast = path.ablated_logits(state, single)
        masked = path.chain(torch.where(single[:, None, :, None, None], 0.0, state.cached.unsqueeze(0)).flatten(0, 1))
    torch.testing.assert_close(fast, masked.reshape(3, 3, -1), rtol=1e-4, atol=1e-4)


@pytest.fixture(scope="module")
def alexnet():
    from torchvision.models import alexnet

    torch.manual_seed(0)
    return _wrap(alexnet(weights=None, num_classes=10), 64)


@pytest.mark.parametrize("layer, auto", [("features.10", "suffix"), ("features.12", "suffix"),
                                         ("classifier.1", "suffix"), ("classifier.4", "closed")])
def test_alexnet_classifier_sequential_is_unrolled(alexnet, layer, auto):
    _compare(alexnet, layer, "activation", auto)


@pytest.mark.parametrize("kind", ["hook", "suffix"])
def test_stacked_copies_stay_within_the_memory_budget(tiny_cnn, kind):
    """A budget for one copy at a time gives the same logits as the default, one copy per forward."""
    from neuroscribe.ablation import fast

    [info] = resolve_layers(tiny_cnn, ["conv1"])
    x = torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(3))
    masks = _masks(info.units)
    roomy = fast.choose_path(tiny_cnn.model, info, "activation", kind, x[:1])
    widest = 8 * 32 * 32 * 4 * 4  # conv1's output of 4 images, float32, the widest activation
    tight = type(roomy)(tiny_cnn.model, roomy.target, *([roomy.chain] if kind == "suffix" else []),
                        budget=widest * fast.ACTIVATION_FACTOR)
    with torch.no_grad():
        wide_state, tight_state = roomy.prepare(x), tight.prepare(x)
        assert wide_state.copies >= len(masks) and tight_state.copies == 1
        torch.testing.assert_close(tight.ablated_logits(tight_state, masks), roomy.ablated_logits(wide_state, masks))


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


def _conv_bn_head() -> LoadedModel:
    """conv -> relu -> 1x1 conv -> BatchNorm (running statistics) -> ReLU6 -> pool -> linear, as a Sequential."""
    torch.manual_seed(4)
    bn = nn.BatchNorm2d(12)
    with torch.no_grad():
        bn.running_mean.normal_()
        bn.running_var.uniform_(0.5, 2.0)
        bn.weight.normal_()
        bn.bias.normal_()
    model = nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), nn.ReLU(), nn.Conv2d(6, 12, 1), bn, nn.ReLU6(),
                          nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(12, 5))
    return _wrap(model, 8)


# an image's 1x1-conv output is 12 x 8 x 8 = 768 values and _compare's batch 6 images: every unit at once,
# 2 units per chunk, 2 images per chunk, a chunk smaller than one image (one image at a time)
@pytest.mark.parametrize("chunk", [1 << 20, 768 * 6 * 2, 768 * 2, 768 // 2])
def test_rank_one_update_folds_the_batchnorm_and_is_chunked_exactly(monkeypatch, chunk):
    """The BatchNorm after the 1x1 conv is folded into the rank-one term, whatever the chunking, and
    the logits are the naive path's (``_compare``)."""
    from neuroscribe.ablation import fast

    monkeypatch.setattr(fast, "CHUNK_ELEMENTS", chunk)
    loaded = _conv_bn_head()
    _compare(loaded, "1", "activation", "suffix")
    [info] = resolve_layers(loaded, ["1"])
    path = choose_path(loaded.model, info, "activation", "suffix", torch.randn(1, 3, 8, 8))
    assert path.norm is loaded.model[3] and len(path.rest.steps) == len(path.chain.steps) - 2


def test_lite0_blocks6_folds_timm_batchnorm_act(lite0):
    """blocks.6 -> conv_head -> bn2 (timm BatchNormAct2d): bn2's affine is folded, its activation kept."""
    [info] = resolve_layers(lite0, ["blocks.6"])
    path = choose_path(lite0.model, info, "activation", "suffix", torch.randn(1, 3, 96, 96))
    assert path.norm is lite0.model.bn2 and path.rest.steps[:2] == [lite0.model.bn2.drop, lite0.model.bn2.act]


def test_ablation_flops_against_a_hand_count():
    """conv 3x3 (3->6), 1x1 conv (6->12), linear (12->5) on 8x8: counted by hand, 2 flops per MAC."""
    from neuroscribe.ablation.fast import ablation_flops, forwards_per_ablation

    loaded = _conv_bn_head()
    [info] = resolve_layers(loaded, ["1"])
    probe = torch.randn(1, 3, 8, 8)
    forward_macs = 3 * 6 * 9 * 64 + 6 * 12 * 64 + 12 * 5
    suffix = choose_path(loaded.model, info, "activation", "suffix", probe)
    # prepare: the network, then the cached 1x1 conv once more; one ablation: the rank-one update is
    # elementwise, so only the linear head counts
    assert ablation_flops(suffix, probe, info.units) == (2 * (forward_macs + 6 * 12 * 64), 2 * 12 * 5)
    hook = choose_path(loaded.model, info, "activation", "hook", probe)
    assert ablation_flops(hook, probe, info.units) == (2 * forward_macs, 2 * forward_macs)
    assert forwards_per_ablation(hook, probe, info.units) == 1.0
