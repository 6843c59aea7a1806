"""Explained runs for the evaluation tests, each built once per session and copied per test when written to.

- ``tiny_run``: tiny_cnn over 16 coloured images, layers conv2/relu2/fc, ConSE over tiny_cnn itself
  (its 4 classes named red/green/blue/gray) and a 10-concept file vocabulary: seconds on CPU.
- ``samples_run``: EfficientNet-Lite0's logit layer over real ImageNet samples, ConSE over
  EfficientNet-Lite0 and the built-in ImageNet class names (the setting of the issue's test).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from neuroscribe.config import DatasetSpec, ModelSpec, RunnerSpec
from neuroscribe.explanation import ExplainConfig, run_explain
from neuroscribe.patches.cut import PatchConfig
from neuroscribe.scoring.backend import ConseSpec
from neuroscribe.scoring.rules import RuleSpec

TINY_CNN = "neuroscribe.testing.tiny_models:tiny_cnn"
COLOURS = {"red": (220, 30, 30), "green": (30, 200, 40), "blue": (30, 40, 220), "gray": (128, 128, 128)}
CONCEPTS = [*COLOURS, "stripes", "water", "wood", "sky", "grass", "metal"]
SAMPLE_IMAGES = 60
SAMPLE_K = 3


def _tiny_images(root: Path) -> Path:
    rng = np.random.default_rng(3)
    for c, colour in enumerate(COLOURS.values()):
        folder = root / f"class{c}"
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(4):
            arr = rng.integers(0, 60, size=(40 + 6 * i, 48, 3)).astype(np.uint8)
            arr[6:30, 8:40] = colour
            Image.fromarray(arr).save(folder / f"img{i}.png")
    return root


def tiny_explain_config(root: Path) -> ExplainConfig:
    names = root / "class_names.txt"
    names.write_text("\n".join(COLOURS) + "\n")
    concepts = root / "concepts.txt"
    concepts.write_text("\n".join(CONCEPTS) + "\n")
    model = ModelSpec(name=TINY_CNN, class_names_file=str(names))
    return ExplainConfig(
        model=model,
        layers=("conv2", "relu2", "fc"),
        dataset=DatasetSpec(uri=str(_tiny_images(root / "images")), shard_size=8),
        store=str(root / "run"),
        k=4,
        vocabulary={"sources": (f"file:{concepts}",)},
        # the plain ConSE space and the seed rule: these tests check the evaluation machinery against
        # independent computations in that space (text side = MiniLM); the default rule and blocks
        # are tested in tests/scoring and compared here through the "rules" axis
        backend=ConseSpec(classifier=model, top_t=4, device="cpu", batch_size=16, class_scores=False, colour_names=False),
        rule=RuleSpec(name="seed"),
        patches=PatchConfig(crop_size=32),
        units_per_task=8,
        runner=RunnerSpec(device="cpu", batch_size=8, decode_threads=1),
    )


@pytest.fixture(scope="session")
def tiny_run_base(tmp_path_factory) -> ExplainConfig:
    cfg = tiny_explain_config(tmp_path_factory.mktemp("tiny-explained"))
    run_explain(cfg)
    return cfg


@pytest.fixture
def tiny_run(tiny_run_base, tmp_path) -> ExplainConfig:
    """A private copy of the tiny explained run (tests write evaluation results into it)."""
    shutil.copytree(tiny_run_base.extract.store, tmp_path / "run")
    return ExplainConfig(**dict(tiny_run_base), store=str(tmp_path / "run"))  # the flat store goes into extract


@pytest.fixture(scope="session")
def samples_run(samples_dir, tmp_path_factory) -> ExplainConfig:
    cfg = ExplainConfig(
        model=ModelSpec(name="efficientnet_lite0"),
        layers=("classifier",),
        dataset=DatasetSpec(uri=str(samples_dir / "labels.tsv"), limit=SAMPLE_IMAGES),
        store=str(tmp_path_factory.mktemp("samples-explained") / "run"),
        k=SAMPLE_K,
        vocabulary={"sources": ("builtin:imagenet",)},
        backend=ConseSpec(classifier="efficientnet_lite0", device="cpu"),
        # one block: a logit unit's patches are whole images shared by many units, embedded once per block
        units_per_task=1000,
        runner=RunnerSpec(device="cpu"),
    )
    run_explain(cfg)
    return cfg
