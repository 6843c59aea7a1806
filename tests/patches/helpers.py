"""A tiny real run store (tiny_cnn over a few non-square images) whose top-k maps tests can overwrite.

    base = build_tiny_run(tmp_dir)                 # extraction of conv2 (16 x 16 maps), relu2 and fc
    store = copy_run(base, tmp_path)               # a private copy per test
    set_unit(store, "conv2", unit=0, image_ids=[...], maps=[...])
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from neuroscribe import store as st
from neuroscribe.config import DatasetSpec, ExtractConfig, ModelSpec, RunnerSpec
from neuroscribe.extraction import run_extraction

TINY_CNN = "neuroscribe.testing.tiny_models:tiny_cnn"
TINY_VIT = "neuroscribe.testing.tiny_models:tiny_vit"
# (width, height): landscape, portrait, square, wide; none matches the model's 36 px resize
SIZES = [(90, 60), (50, 75), (40, 40), (120, 64), (66, 90), (80, 48)]


def _write_images(root: Path) -> None:
    rng = np.random.default_rng(7)
    for i, (w, h) in enumerate(SIZES):
        folder = root / f"class{i % 2}"
        folder.mkdir(parents=True, exist_ok=True)
        arr = rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)
        arr[h // 4 : h // 2, w // 3 : w // 2] = (250, 40 * i, 20)  # a bright block so units differ
        Image.fromarray(arr).save(folder / f"img{i:02d}.png")


def build_tiny_run(root: Path, k: int = 4, model: str = TINY_CNN, layers: tuple[str, ...] = ("conv2", "relu2", "fc")) -> str:
    _write_images(root / "images")
    cfg = ExtractConfig(
        model=ModelSpec(name=model),
        layers=layers,
        dataset=DatasetSpec(uri=str(root / "images"), shard_size=4),
        store=str(root / "run"),
        k=k,
        runner=RunnerSpec(device="cpu", batch_size=4, decode_threads=1),
    )
    run_extraction(cfg)
    return cfg.store


def copy_run(base: str, dest: Path) -> str:
    shutil.copytree(base, dest / "run")
    return str(dest / "run")


def index_frame(store: str) -> pd.DataFrame:
    return st.StoreFile(store, "index.parquet").read_parquet().set_index("id")


def image_size(store: str, image_id: int) -> tuple[int, int]:
    with Image.open(index_frame(store).loc[image_id, "path"]) as img:
        return img.size


def set_unit(store: str, layer: str, unit: int, image_ids: list[int], maps: list[np.ndarray]) -> None:
    """Make ``unit``'s top-k the given images with the given maps (the rest padding)."""
    group = st.RunStore(store).arrays("a")
    k = group[f"topk/{layer}/image_id"].shape[1]
    h, w = group[f"topk/{layer}/maps"].shape[2:]
    ids = np.full(k, -1, dtype=np.int64)
    all_maps = np.zeros((k, h, w), dtype=np.float32)
    ids[: len(image_ids)] = image_ids
    for r, m in enumerate(maps):
        all_maps[r] = m
    group[f"topk/{layer}/image_id"][unit] = ids
    group[f"topk/{layer}/value"][unit] = all_maps.max(axis=(1, 2))
    group[f"topk/{layer}/maps"][unit] = all_maps


def set_samples(store: str, layer: str, value: float) -> None:
    """Every stored map sample = ``value``, so every unit's dataset quantile is exactly ``value``."""
    group = st.RunStore(store).arrays("a")
    arr = group[f"activations/{layer}/samples"]
    arr[:] = np.full(arr.shape, value, dtype=np.float32)


def hot_square(shape: tuple[int, int], rows: tuple[int, int], cols: tuple[int, int], value: float = 1.0) -> np.ndarray:
    m = np.zeros(shape, dtype=np.float32)
    m[rows[0] : rows[1], cols[0] : cols[1]] = value
    return m
