"""Units whose meaning is known, appended to a real classifier: ground truth for the quality benchmark.

    loaded = efficientnet_lite0_with_known_units()     # or, by name, in any config or CLI:
    #   --model neuroscribe.evaluation.known_units:efficientnet_lite0_with_known_units
    # layers: the base model's own (``classifier``, ``blocks.5``, ...) plus
    #   ``superclasses``  linear-kind, unit s = logsumexp of the logits of the classes under superclass s
    #   ``colours``       conv-kind, unit c = fraction of the pixels in each 16x16 cell named colour c
    superclass_labels() / colour_labels()              # (name, variants) per unit, in unit order

The wrapper registers the base model's children under their own names (so ``classifier`` is still
``classifier``) and returns the base model's logits: extraction, patches, scoring and ablation run
on the new layers exactly as on any other.  Colour units name pixels with the project's one colour
rule, ``neuroscribe.scoring.colour.name_colours``.
"""

from __future__ import annotations

import torch
from torch import nn

from neuroscribe.errors import NeuroscribeError
from neuroscribe.evaluation.truth import normalise
from neuroscribe.models.loading import LoadedModel, imagenet_class_names, load_model
from neuroscribe.models.preprocessing import Preprocessing
from neuroscribe.scoring.colour import COLOUR_UNITS, name_colours
from neuroscribe.vocabulary.sources import builtin_concepts
from neuroscribe.vocabulary.superclasses import imagenet_superclasses


class ColourUnits(nn.Module):
    """Input pixels -> [B, len(COLOUR_UNITS), H/16, W/16]: the share of each cell's pixels named each colour."""

    def __init__(self, preprocessing: Preprocessing, cell: int = 16):  # 14 x 14 cells at 224
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
    return [(g.name, list(g.synonyms)) for g in imagenet_superclasses()]


def colour_labels() -> list[tuple[str, list[str]]]:
    """(name, name variants) of each ``colours`` unit: the colour and the built-in colour concepts
    that are one modifier plus it (``blue``: ``navy blue``, ``sky blue``, ``light blue``, ``dark
    blue``; ``white``: ``off-white``; not ``black and white``)."""
    shades = [(s, normalise(s).split()) for s in builtin_concepts("colors")]
    return [(c, [c, *[s for s, words in shades if len(words) == 2 and words[1] == c]]) for c in COLOUR_UNITS]
