"""Tiny models addressable by import path, e.g. ``ModelSpec(name="neuroscribe.testing.tiny_models:tiny_cnn")``.

They are deterministic (seeded init), so every process, a Dask worker included, builds the same weights.
"""

from __future__ import annotations

import torch
from torch import nn

from neuroscribe.models.preprocessing import Preprocessing

TINY_PREPROCESSING = Preprocessing(input_size=32, resize_size=36, interpolation="bilinear", mean=(0.5,) * 3, std=(0.5,) * 3)


class TinyCNN(nn.Module):
    def __init__(self, num_classes: int = 4):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(8, 16, 3, stride=2, padding=1)
        self.relu2 = nn.ReLU()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(16, num_classes)
        self.preprocessing = TINY_PREPROCESSING

    def forward(self, x):
        return self.fc(self.flatten(self.pool(self.relu2(self.conv2(self.relu1(self.conv1(x)))))))


def tiny_cnn() -> nn.Module:
    torch.manual_seed(0)
    return TinyCNN()


def tiny_vit() -> nn.Module:
    from torchvision.models import VisionTransformer

    torch.manual_seed(0)
    model = VisionTransformer(image_size=32, patch_size=8, num_layers=2, num_heads=2, hidden_dim=16, mlp_dim=24, num_classes=4)
    model.preprocessing = TINY_PREPROCESSING
    return model


def tiny_cnn_dead_unit() -> nn.Module:
    """``tiny_cnn`` whose ``relu2`` channel 0 never fires (zero weights, negative bias)."""
    model = tiny_cnn()
    with torch.no_grad():
        model.conv2.weight[0].zero_()
        model.conv2.bias[0] = -1.0
    return model
