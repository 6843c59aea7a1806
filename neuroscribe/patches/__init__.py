"""Patches: where in each top image a unit fires, cut once into crops and masks stored in the run.

    summary = extract_patches("runs/r50", "layer4", PatchConfig())   # writes patches/layer4/...
    patches = load_unit_patches("runs/r50", "layer4", unit=12)       # [] = inactive unit
    for block in load_layer_patches("runs/r50", "layer4"): ...       # for scorers

Geometry in ``neuroscribe.patches.geometry``, rules and layout in ``neuroscribe.patches.cut``.
"""

from neuroscribe.patches.cut import (
    BLOCK_UNITS,
    PatchConfig,
    extract_patches,
    patches_key,
    prepare_patches,
    unit_blocks,
)
from neuroscribe.patches.load import (
    Patch,
    PatchBlock,
    load_layer_patches,
    load_unit_patches,
    patches_group,
)

__all__ = [
    "BLOCK_UNITS",
    "Patch",
    "PatchBlock",
    "PatchConfig",
    "extract_patches",
    "load_layer_patches",
    "load_unit_patches",
    "patches_group",
    "patches_key",
    "prepare_patches",
    "unit_blocks",
]
