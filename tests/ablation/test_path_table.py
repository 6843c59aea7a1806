"""The README's ablation path table is what ``choose_path`` picks today for the layers users name.

Run alone to print the table: ``python -m pytest tests/ablation/test_path_table.py -m slow -s``; a mismatch
prints the measured table to paste between the README's ``ablation-paths`` markers.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
from torch import nn

from neuroscribe.ablation.fast import choose_path
from neuroscribe.config import ModelSpec
from neuroscribe.models import load_model, resolve_layers

README = Path(__file__).resolve().parents[2] / "README.md"
MARKERS = re.compile(r"<!-- ablation-paths:begin -->\n(.*?)<!-- ablation-paths:end -->", re.DOTALL)

# torchvision models with random weights (weights=None); EfficientNet-Lite0 with its packaged weights
LAYERS = {
    "resnet50": ["conv1", "layer1", "layer2", "layer3", "layer4", "layer4.2.conv3", "layer4.2.bn3", "avgpool", "fc"],
    "alexnet": ["features.0", "features.3", "features.6", "features.8", "features.10", "features.12", "avgpool",
                "classifier.1", "classifier.4", "classifier.6"],
    "vit_b_16": ["conv_proj", "encoder.layers.encoder_layer_0", "encoder.layers.encoder_layer_6",
                 "encoder.layers.encoder_layer_11", "encoder.layers.encoder_layer_11.mlp.1",
                 "encoder.layers.encoder_layer_11.mlp.3", "encoder.ln", "heads.head"],
    "efficientnet_lite0": ["conv_stem", "blocks.0", "blocks.1", "blocks.2", "blocks.3", "blocks.4", "blocks.5",
                           "blocks.6", "blocks.6.0.bn3.act", "conv_head", "bn2", "bn2.act", "global_pool", "classifier"],
}


def measured_table() -> str:
    """The markdown table: per model and layer, the unit kind, the path ``auto`` picks, and where it starts."""
    lines = ["| model | layer | units | path | evaluated from |", "|---|---|---|---|---|"]
    for name, layers in LAYERS.items():
        loaded = load_model(ModelSpec(name=name, pretrained=name == "efficientnet_lite0"))
        if name == "vit_b_16":  # torchvision zero-initialises the head: every ablation would leave the logits at 0
            torch.manual_seed(0)
            nn.init.normal_(loaded.model.heads.head.weight, std=0.02)
        size = loaded.preprocessing.input_size
        probe = torch.randn(1, 3, size, size, generator=torch.Generator().manual_seed(0))
        for info in resolve_layers(loaded, layers):
            path = choose_path(loaded.model, info, "activation", "auto", probe)
            start = "" if path.target == info.name else f"`{path.target}`"
            lines.append(f"| {name} | `{info.name}` | {info.units} {info.kind} | {path.name} | {start} |")
    return "\n".join(lines) + "\n"


@pytest.mark.slow  # four ImageNet-size models, each layer checked on a probe: minutes on 2 cores
def test_readme_path_table_is_measured():
    measured = measured_table()
    print(measured)
    found = MARKERS.search(README.read_text())
    assert found, "README.md lacks the <!-- ablation-paths:begin/end --> markers"
    assert found.group(1) == measured, f"README's ablation path table is stale; measured:\n{measured}"
