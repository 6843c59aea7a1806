"""Units whose meaning is known, appended to a real classifier: ground truth for the quality benchmark.

    loaded = efficientnet_lite0_with_known_units()     # or, by name, in any config or CLI:
    #   --model neuroscribe.evaluation.known_units:efficientnet_lite0_with_known_units
    # layers: the base model's own (``classifier``, ``blocks.5``, ...) plus
    #   ``superclasses``  linear-kind, unit s = logsumexp of the logits of the classes under superclass s
    #   ``colours``       conv-kind, unit c = fraction of the pixels in each 16x16 cell named colour c
    superclass_labels() / colour_labels()              # (name, variants) per unit, in unit order

The wrapper registers the base model's children under their own names (so ``classifier`` is still
``classifier``) and returns the base model's logits: extraction, patches, scoring and ablation run
on the new layers exactly as on any other.

Colour naming (one place: ``name_colours``): each pixel, with the model's normalisation undone, is
converted to CIELAB (D65, scikit-image) and named by its lightness L*, chroma C* and hue angle h,
as the basic colour terms of Berlin & Kay partition colour space:
- achromatic (C* < 15): white when L* >= 80, black when L* <= 25, otherwise grey;
- nearly no light (L* <= 12): black, whatever the hue;
- otherwise by hue: red [350, 55), orange [55, 85), yellow [85, 115), green [115, 200),
  blue [200, 315), purple [315, 350) degrees; light reds (L* > 70) are pink, and dark or dull
  oranges (L* < 50 or C* < 30) are brown.
Grey, pink and brown compete for pixels but have no unit.  The hue bounds put the sRGB primaries
and the CSS colours of each name (red, orange, gold, yellowgreen, sky blue, blue, purple, violet) in
their own bin, navy blue in blue, tan and saddle brown in brown.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from neuroscribe.models.loading import LoadedModel, load_model
from neuroscribe.models.preprocessing import Preprocessing

COLOUR_UNITS = ("red", "orange", "yellow", "green", "blue", "purple", "white", "black")
# competing names without a unit: a pixel named one of these counts for no unit
_OTHER_COLOURS = ("grey", "pink", "brown")
_HUE_BINS = (  # (name, lower bound in degrees), upper bound = the next lower bound; red wraps around 0
    ("red", 0.0), ("orange", 55.0), ("yellow", 85.0), ("green", 115.0), ("blue", 200.0), ("purple", 315.0), ("red", 350.0),
)
COLOUR_CELL = 16  # pixels per side of a colour unit's map cell (14 x 14 cells at 224)


def name_colours(rgb: np.ndarray) -> np.ndarray:
    """Basic colour name of each pixel of ``rgb`` [..., 3] in [0, 1]: int [...] index into
    ``COLOUR_UNITS + _OTHER_COLOURS`` (see the module docstring for the rule)."""
    from skimage.color import rgb2lab

    names = COLOUR_UNITS + _OTHER_COLOURS
    index = {n: i for i, n in enumerate(names)}
    lab = rgb2lab(np.clip(rgb, 0.0, 1.0), channel_axis=-1)
    lightness, a, b = lab[..., 0], lab[..., 1], lab[..., 2]
    chroma = np.hypot(a, b)
    hue = np.degrees(np.arctan2(b, a)) % 360.0
    out = np.full(lightness.shape, index["grey"], dtype=np.int64)
    for name, lower in _HUE_BINS:
        out[hue >= lower] = index[name]
    out[(out == index["red"]) & (lightness > 70)] = index["pink"]
    out[(out == index["orange"]) & ((lightness < 50) | (chroma < 30))] = index["brown"]
    achromatic = chroma < 15
    out[achromatic] = index["grey"]
    out[achromatic & (lightness >= 80)] = index["white"]
    out[(achromatic & (lightness <= 25)) | (lightness <= 12)] = index["black"]
    return out


class ColourUnits(nn.Module):
    """Input pixels -> [B, len(COLOUR_UNITS), H/16, W/16]: the share of each cell's pixels named each colour."""

    def __init__(self, preprocessing: Preprocessing, cell: int = COLOUR_CELL):
        super().__init__()
        self.register_buffer("mean", torch.tensor(preprocessing.mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(preprocessing.std).view(1, 3, 1, 1), persistent=False)
        self.cell = cell

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rgb = (x * self.std + self.mean).permute(0, 2, 3, 1).detach().cpu().numpy()  # the model's normalisation undone
        named = torch.from_numpy(name_colours(rgb)).to(x.device)
        onehot = torch.stack([(named == c) for c in range(len(COLOUR_UNITS))], dim=1).to(x.dtype)
        return nn.functional.avg_pool2d(onehot, self.cell, ceil_mode=True)


class SuperclassUnits(nn.Module):
    """Logits [B, classes] -> [B, superclasses]: unit s = logsumexp of the logits of superclass s's classes
    (the log of the summed unnormalised class probabilities: a soft maximum over the group)."""

    def __init__(self, groups: list[tuple[int, ...]], n_classes: int):
        super().__init__()
        # -inf outside the group: logsumexp(logits + mask) sums over the group's classes only
        mask = torch.full((len(groups), n_classes), float("-inf"))
        for s, classes in enumerate(groups):
            mask[s, list(classes)] = 0.0
        self.register_buffer("mask", mask, persistent=False)

    def forward(self, logits: torch.Tensor) -> torch.Tensor:
        return torch.logsumexp(logits[:, None, :] + self.mask[None], dim=2)


class KnownUnitsModel(nn.Module):
    """A classifier plus ``superclasses`` and ``colours`` layers; returns the classifier's logits."""

    def __init__(self, base: nn.Module, preprocessing: Preprocessing, groups: list[tuple[int, ...]], n_classes: int):
        super().__init__()
        for name, child in base.named_children():  # the same modules: layer names and hooks are the base's
            self.add_module(name, child)
        self._base = (base,)  # a tuple keeps it out of the module tree (its children are registered above)
        self.colours = ColourUnits(preprocessing)
        self.superclasses = SuperclassUnits(groups, n_classes)

    def train(self, mode: bool = True) -> KnownUnitsModel:
        super().train(mode)
        self._base[0].train(mode)  # the base's own flag (timm's head dropout reads it)
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.colours(x)  # computed for its hook: extraction reads the output of every addressed layer
        logits = self._base[0](x)
        self.superclasses(logits)
        return logits


def with_known_units(loaded: LoadedModel) -> LoadedModel:
    """Wrap an ImageNet-1k classifier with the superclass and colour layers."""
    from neuroscribe.errors import NeuroscribeError
    from neuroscribe.models.loading import imagenet_class_names
    from neuroscribe.vocabulary.superclasses import imagenet_superclasses

    if list(loaded.class_names) != imagenet_class_names():
        raise NeuroscribeError(f"known units need an ImageNet-1k classifier; {loaded.name} has {len(loaded.class_names)} other classes")
    groups = [g.classes for g in imagenet_superclasses()]
    model = KnownUnitsModel(loaded.model, loaded.preprocessing, groups, len(loaded.class_names)).eval()
    return LoadedModel(model, loaded.preprocessing, list(loaded.class_names), f"{loaded.name}+known_units")


def efficientnet_lite0_with_known_units() -> LoadedModel:
    """EfficientNet-Lite0 (packaged weights) with the known-unit layers: the benchmark's default model."""
    return with_known_units(load_model("efficientnet_lite0"))


def superclass_labels() -> list[tuple[str, list[str]]]:
    """(name, name variants) of each ``superclasses`` unit: the superclass and its WordNet synonyms."""
    from neuroscribe.vocabulary.superclasses import imagenet_superclasses

    return [(g.name, list(g.synonyms)) for g in imagenet_superclasses()]


def colour_labels() -> list[tuple[str, list[str]]]:
    """(name, name variants) of each ``colours`` unit: the colour and the built-in colour concepts
    that are one modifier plus it (``blue``: ``navy blue``, ``sky blue``, ``light blue``, ``dark
    blue``; ``white``: ``off-white``; not ``black and white``)."""
    from neuroscribe.evaluation.truth import normalise
    from neuroscribe.vocabulary.sources import builtin_concepts

    shades = [(s, normalise(s).split()) for s in builtin_concepts("colors")]
    return [(c, [c, *[s for s, words in shades if len(words) == 2 and words[1] == c]]) for c in COLOUR_UNITS]
