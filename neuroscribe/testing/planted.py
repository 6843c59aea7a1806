"""A tiny classifier with planted units, and images for it, for ablation tests and demos.

    loaded = load_model(ModelSpec(name="neuroscribe.testing.planted:planted_cnn"))
    x, y = planted_images(n_per_class=8)          # normalised tensors and labels
    write_planted_folder("data/planted", 4)      # the same kind of images as PNGs in class folders

Classes: red, green, blue, gray.  Layer ``conv`` (1x1, 6 units) feeds ``relu -> pool -> fc``:
unit 0 alone carries ``red`` (it fires on red pixels only and is ``red``'s only input), units 1
and 2 carry ``green`` and ``blue``, ``gray`` wins on its bias when nothing fires, and units 3-5
fire on many images but have zero weight in ``fc``, so ablating them changes nothing.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn

from neuroscribe.models.loading import LoadedModel
from neuroscribe.testing.tiny_models import TINY_PREPROCESSING

CLASSES = ("red", "green", "blue", "gray")
GRAY_BIAS = 0.25


class PlantedCNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 6, 1)
        self.relu = nn.ReLU()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(6, len(CLASSES))
        with torch.no_grad():
            # unit c of 0..2: 2*channel_c - the other two - 1.5, positive only where channel c dominates;
            # unit 3: brightness, 4: "not red", 5: green - blue
            others = torch.tensor([[1.0, 1.0, 1.0], [-1.0, 0.0, 0.0], [0.0, 1.0, -1.0]])
            self.conv.weight.copy_(torch.cat([3.0 * torch.eye(3) - 1.0, others])[:, :, None, None])
            self.conv.bias.copy_(torch.tensor([-1.5, -1.5, -1.5, 0.0, 0.0, 0.0]))
            # red, green and blue read units 0-2; gray reads no unit and wins on its bias
            self.fc.weight.copy_(torch.eye(len(CLASSES), 6) * torch.tensor([1.0, 1.0, 1.0, 0.0])[:, None])
            self.fc.bias.copy_(torch.tensor([0.0, 0.0, 0.0, GRAY_BIAS]))

    def forward(self, x):
        return self.fc(self.flatten(self.pool(self.relu(self.conv(x)))))


def planted_cnn() -> LoadedModel:
    return LoadedModel(PlantedCNN().eval(), TINY_PREPROCESSING, list(CLASSES), "planted_cnn")


def planted_images(n_per_class: int, size: int = 32, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Normalised images ([-1, 1]): a colour class has its channel at 1 and the others noisy in
    [-1, 0]; gray has equal channels noisy in [-0.3, 0.3].  Labels follow ``CLASSES``."""
    generator = torch.Generator().manual_seed(seed)
    labels = torch.arange(len(CLASSES)).repeat_interleave(n_per_class)
    images = []
    for label in labels.tolist():
        if label < 3:
            x = -torch.rand(3, size, size, generator=generator)
            x[label] = 1.0
        else:
            x = (torch.rand(1, size, size, generator=generator) * 0.6 - 0.3).expand(3, -1, -1).clone()
        images.append(x)
    return torch.stack(images), labels


def write_planted_folder(root: str | Path, n_per_class: int, seed: int = 0) -> Path:
    """``root/<class>/<i>.png`` with ``planted_images``; the model's preprocessing keeps their classes."""
    root = Path(root)
    x, y = planted_images(n_per_class, seed=seed)
    pixels = ((x * 0.5 + 0.5) * 255).round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()
    for i, (image, label) in enumerate(zip(pixels, y.tolist())):
        folder = root / CLASSES[label]
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.ascontiguousarray(image)).save(folder / f"{i:04d}.png")
    return root
