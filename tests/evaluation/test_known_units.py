"""Known-meaning units: the superclass layer is a logsumexp over its classes, colour units fire on their colour."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from neuroscribe.errors import NeuroscribeError
from neuroscribe.evaluation.known_units import (
    COLOUR_UNITS,
    ColourUnits,
    KnownUnitsModel,
    SuperclassUnits,
    colour_labels,
    name_colours,
    superclass_labels,
    with_known_units,
)
from neuroscribe.models.loading import LoadedModel, imagenet_class_names
from neuroscribe.models.preprocessing import Preprocessing
from neuroscribe.vocabulary.superclasses import imagenet_superclasses

PREP = Preprocessing()
# sRGB colours everyone names the same way (CSS colour keywords)
NAMED = {
    "red": (255, 0, 0), "orange": (255, 165, 0), "yellow": (255, 255, 0), "green": (0, 128, 0),
    "blue": (0, 0, 255), "purple": (128, 0, 128), "white": (255, 255, 255), "black": (0, 0, 0),
}


def _normalised(rgb: tuple[int, int, int], size: int = 64) -> torch.Tensor:
    pixels = torch.tensor(rgb, dtype=torch.float32).view(1, 3, 1, 1).expand(1, 3, size, size) / 255.0
    return (pixels - torch.tensor(PREP.mean).view(1, 3, 1, 1)) / torch.tensor(PREP.std).view(1, 3, 1, 1)


def test_superclass_units_equal_logsumexp_computed_independently():
    groups = [(0, 3, 5), (1,), (2, 4, 6, 7)]
    layer = SuperclassUnits(groups, n_classes=9)
    logits = torch.randn(4, 9, generator=torch.Generator().manual_seed(0)) * 5
    out = layer(logits)
    for s, classes in enumerate(groups):
        expected = np.log(np.exp(logits[:, list(classes)].double().numpy()).sum(axis=1))
        np.testing.assert_allclose(out[:, s].double().numpy(), expected, rtol=1e-5)
    assert out.shape == (4, 3)


@pytest.mark.parametrize("colour", COLOUR_UNITS)
def test_a_pure_colour_image_fires_its_own_colour_unit(colour):
    maps = ColourUnits(PREP)(_normalised(NAMED[colour]))
    assert maps.shape == (1, len(COLOUR_UNITS), 4, 4)
    peaks = maps.amax(dim=(2, 3))[0]
    assert COLOUR_UNITS[int(peaks.argmax())] == colour
    assert peaks[COLOUR_UNITS.index(colour)] == 1.0
    assert float(peaks.sum()) == 1.0  # every pixel has exactly one name


def test_colour_map_is_the_share_of_each_cell_in_that_colour():
    x = torch.cat([_normalised(NAMED["red"], 32), _normalised(NAMED["blue"], 32)], dim=3)  # left red, right blue
    maps = ColourUnits(PREP)(x)[0]
    red, blue = COLOUR_UNITS.index("red"), COLOUR_UNITS.index("blue")
    assert torch.equal(maps[red, :, :2], torch.ones(2, 2)) and torch.equal(maps[red, :, 2:], torch.zeros(2, 2))
    assert torch.equal(maps[blue, :, 2:], torch.ones(2, 2))


def test_grey_pink_and_brown_pixels_count_for_no_unit():
    rgb = np.array([[[128, 128, 128], [255, 192, 203], [139, 69, 19]]]) / 255.0
    assert (name_colours(rgb) >= len(COLOUR_UNITS)).all()


class _Classifier(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Conv2d(3, 4, 3, padding=1)
        self.classifier = nn.Linear(4, 1000)

    def forward(self, x):
        return self.classifier(self.features(x).mean(dim=(2, 3)))


def test_wrapper_keeps_the_base_layer_names_and_logits():
    from neuroscribe.models.layers import list_layers

    torch.manual_seed(0)
    base = _Classifier().eval()
    loaded = with_known_units(LoadedModel(base, PREP, imagenet_class_names(), "toy"))
    assert isinstance(loaded.model, KnownUnitsModel)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(loaded.model(x), base(x))
    kinds = {i.name: (i.kind, i.units) for i in list_layers(loaded)}
    assert kinds["classifier"] == ("linear", 1000) and kinds["features"][0] == "conv"
    assert kinds["superclasses"] == ("linear", len(imagenet_superclasses()))
    assert kinds["colours"] == ("conv", len(COLOUR_UNITS))
    assert set(loaded.model.state_dict()) == set(base.state_dict())


def test_wrapper_refuses_a_non_imagenet_classifier():
    with pytest.raises(NeuroscribeError, match="ImageNet-1k"):
        with_known_units(LoadedModel(_Classifier(), PREP, [f"c{i}" for i in range(1000)], "toy"))


def test_unit_labels_and_variants():
    assert [name for name, _ in superclass_labels()] == [g.name for g in imagenet_superclasses()]
    variants = dict(colour_labels())
    assert list(variants) == list(COLOUR_UNITS)
    assert "navy blue" in variants["blue"] and "red" in variants["red"] and "blue" not in variants["red"]
    assert "off-white" in variants["white"] and "black and white" not in variants["white"]
