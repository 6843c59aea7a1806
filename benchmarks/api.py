"""Benchmark: what the Python API adds on top of the stages (model fingerprints, in-memory images).

    python benchmarks/api.py                          # EfficientNet-Lite0 and ResNet50 (random init), 200 images
    python benchmarks/api.py --images 500 --store /tmp/api-bench

Measures, at the API's defaults: the content fingerprint of a model object (taken once per
``ns.explain``/``ns.ablate`` call, and again when a process loads the model), ``load_model`` on an
object (fingerprint check plus deep copy), the cloudpickled size of the object (what each Dask task
carries), and writing in-memory PIL images into ``<store>/inputs/`` (PNG encode + write), first and
again (a rerun encodes each image to find its name, and writes nothing).  Images are the shared ImageNet samples when present, else
seeded random 500x375 images.  Prints one JSON line per measurement.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

import cloudpickle
import numpy as np
from PIL import Image

from neuroscribe.api import dataset_spec
from neuroscribe.models import load_model
from neuroscribe.models.efficientnet_lite import build_efficientnet_lite
from neuroscribe.models.loading import model_object_spec

SAMPLES = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "imagenet-samples"


def _models():
    from torchvision.models import ResNet50_Weights, resnet50

    lite, prep = build_efficientnet_lite("efficientnet_lite0")
    yield "efficientnet_lite0", lite, prep
    yield "resnet50 (random init)", resnet50(), ResNet50_Weights.IMAGENET1K_V2


def _images(n: int) -> list[Image.Image]:
    files = sorted(SAMPLES.glob("*.JPEG"))[:n]
    if files:
        return [Image.open(f).convert("RGB") for f in files]
    rng = np.random.default_rng(0)
    return [Image.fromarray(rng.integers(0, 256, (375, 500, 3), dtype=np.uint8)) for _ in range(n)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--store", default=None, help="store folder (default: a temporary one, removed after)")
    args = parser.parse_args()
    for name, model, preprocessing in _models():
        began = time.perf_counter()
        spec = model_object_spec(model, preprocessing)
        fingerprint = time.perf_counter() - began
        began = time.perf_counter()
        load_model(spec)
        load = time.perf_counter() - began
        params = sum(p.numel() for p in model.parameters())
        print(json.dumps({"model": name, "parameters": params, "fingerprint_s": round(fingerprint, 3), "load_model_s": round(load, 3),
                          "pickled_mb": round(len(cloudpickle.dumps(spec)) / 2**20, 1)}))
    images = _images(args.images)
    store = args.store or tempfile.mkdtemp(prefix="ns-api-bench-")
    try:
        for attempt in ("first", "rerun"):
            began = time.perf_counter()
            dataset_spec(images, store)
            seconds = time.perf_counter() - began
            print(json.dumps({"in_memory_images": len(images), "write": attempt, "seconds": round(seconds, 2),
                              "images_per_s": round(len(images) / seconds, 1)}))
    finally:
        if args.store is None:
            shutil.rmtree(store, ignore_errors=True)


if __name__ == "__main__":
    main()
