"""Fixtures of the scoring tests: a tiny open_clip architecture (random weights, fast on CPU)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

TINY_ARCH = "neuroscribe-test-tiny-clip"
TINY_DIM = 32


@pytest.fixture(scope="session")
def tiny_clip_arch(tmp_path_factory) -> str:
    """Register a 2-layer CLIP config with open_clip; the real architectures take seconds per batch on CPU."""
    import open_clip

    folder = tmp_path_factory.mktemp("open_clip_configs")
    config = {
        "embed_dim": TINY_DIM,
        "vision_cfg": {"image_size": 64, "layers": 2, "width": 64, "patch_size": 16},
        "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 2},
    }
    (folder / f"{TINY_ARCH}.json").write_text(json.dumps(config))
    open_clip.add_model_config(folder)
    return TINY_ARCH


@pytest.fixture(scope="session")
def tiny_clip(tiny_clip_arch):
    from neuroscribe.scoring import OpenClipSpec, make_backend

    return make_backend(OpenClipSpec(arch=tiny_clip_arch, pretrained=None, device="cpu", batch_size=4))


@pytest.fixture(scope="session")
def small_images() -> list[Image.Image]:
    rng = np.random.default_rng(0)
    return [Image.fromarray(rng.integers(0, 256, size=(50 + 7 * i, 70, 3), dtype=np.uint8)) for i in range(6)]
