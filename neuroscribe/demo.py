"""The offline demo: the whole method with embedded defaults, on a real model and real photos.

    cfg = demo_config(images="../shared/data/imagenet-samples", out="runs/demo")
    run_flow(explain_flow, cfg)        # what `neuroscribe demo` does

Defaults (no network, no GPU): EfficientNet-Lite0 with its packaged ImageNet weights; layers
``classifier`` (the 1000 logit units, whose class name is the ground truth) and ``blocks.5`` (192
conv channels); k=5 top images per unit; the default built-in vocabulary (ImageNet class names, their
WordNet superclasses, colours, textures, materials); the offline ConSE backend (EfficientNet-Lite0
probabilities over MiniLM sentence embeddings); the default (percentile) scoring rule.

Probe images: the folder or file list you pass, else the ~20 photographs scikit-image ships in
``skimage/data`` (astronaut, cat, coffee, rocket, ...; public domain or CC0 per its data README):
too few to see the method work, so pass a real image folder (e.g. ImageNet val, or
``../shared/data/imagenet-samples`` in this repo's workplace).
"""

from __future__ import annotations

from pathlib import Path

from neuroscribe.config import DatasetSpec, ModelSpec, RunnerSpec
from neuroscribe.errors import NeuroscribeError
from neuroscribe.explanation import ExplainConfig
from neuroscribe.patches.cut import PatchConfig
from neuroscribe.scoring.backend import ConseSpec

DEMO_LAYERS = ("classifier", "blocks.5")
# skimage/data files that are photographs (not masks, charts or scans)
SKIMAGE_PHOTOS = (
    "astronaut.png", "brick.png", "camera.png", "chelsea.png", "coffee.png", "coins.png", "color.png", "grass.png",
    "gravel.png", "hubble_deep_field.jpg", "ihc.png", "moon.png", "motorcycle_left.png", "motorcycle_right.png",
    "page.png", "retina.jpg", "rocket.jpg", "text.png", "logo.png", "horse.png",
)


def builtin_probe_set(out: str) -> str:
    """Write a file list of scikit-image's bundled photographs under ``out``; returns its path."""
    import skimage  # only when no --images are given

    data = Path(skimage.__file__).parent / "data"
    files = [str(data / name) for name in SKIMAGE_PHOTOS if (data / name).is_file()]
    if not files:
        raise NeuroscribeError(f"no bundled photographs found in {data}; pass --images FOLDER")
    listing = Path(out) / "builtin_probe_set.txt"
    listing.parent.mkdir(parents=True, exist_ok=True)
    listing.write_text("\n".join(files) + "\n")
    return str(listing)


def demo_config(
    images: str | None = None, out: str = "runs/demo", layers: tuple[str, ...] = DEMO_LAYERS, k: int = 5, limit: int | None = None,
    overwrite: bool = False, max_image_pixels: int | None = None, wait: float = 0.0,
) -> ExplainConfig:
    """The demo's ExplainConfig; ``wait``: seconds to queue behind another run writing the store."""
    uri = images or builtin_probe_set(out)
    return ExplainConfig(
        model=ModelSpec(name="efficientnet_lite0"),
        layers=layers,
        dataset=DatasetSpec(uri=uri, shard_size=64, limit=limit, **({"max_image_pixels": max_image_pixels} if max_image_pixels else {})),
        store=str(Path(out) / "store"),
        k=k,
        backend=ConseSpec(classifier=ModelSpec(name="efficientnet_lite0"), device="cpu"),
        patches=PatchConfig(crop_size=112),
        units_per_task=1024,  # one task per demo layer (crops are embedded once per run whatever the blocks): least task overhead on 2 cores
        # one worker (the default) running one task at a time: torch already uses every core, two would oversubscribe
        runner=RunnerSpec(threads_per_worker=1, device="cpu", batch_size=32, wait_for_store_s=wait),
        overwrite=overwrite,
    )
