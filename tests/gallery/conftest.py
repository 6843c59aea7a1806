"""A tiny run with patches for gallery tests (built once per session, copied per test)."""

from __future__ import annotations

import numpy as np
import pytest
from patches.helpers import build_tiny_run, copy_run, set_unit

from neuroscribe.patches import PatchConfig, extract_patches


@pytest.fixture(scope="session")
def gallery_run_base(tmp_path_factory) -> str:
    store = build_tiny_run(tmp_path_factory.mktemp("gallery-run"))
    set_unit(store, "relu2", 3, [0, 1], [np.zeros((16, 16))] * 2)  # unit 3 never fires
    for layer in ("relu2", "fc"):
        extract_patches(store, layer, PatchConfig(crop_size=48))
    return store


@pytest.fixture
def gallery_run(gallery_run_base, tmp_path) -> str:
    return copy_run(gallery_run_base, tmp_path)
