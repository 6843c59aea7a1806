"""Benchmark the whole explain pipeline, stage by stage, against its compute floor measured in the same run.

    # the demo configuration on the shared samples (EfficientNet-Lite0, classifier + blocks.5, k=5, ConSE)
    python benchmarks/pipeline.py --dataset ../shared/data/imagenet-samples
    # the final layer at k=50
    python benchmarks/pipeline.py --dataset ../shared/data/imagenet-samples --layers classifier --k 50
    # a synthetic ImageNet-like JPEG set (about 500x375, quality 90), written once and reused
    python benchmarks/pipeline.py --synthetic 5000 --synthetic-dir /tmp/synth5000
    # the GPU run of issue 13: ResNet-50 layer1-4 + fc over 50,000 synthetic JPEGs
    python benchmarks/pipeline.py --synthetic 50000 --synthetic-dir /tmp/synth50k --model resnet50 \
        --layers layer1,layer2,layer3,layer4,fc --k 50 --device cuda --batch-size 256 --shard-size 1024

The run is in-process (no Prefect server, no Dask), so it measures compute.  Stages: extraction
(decode, forward, statistics, Zarr writes), top-k reduce (with the maps of the winners), vocabulary,
patches, embeddings, scoring, galleries.  Each prints seconds, items/s and its peak RSS (sampled
every 20 ms; CUDA max allocated too on GPU).  The floor is one decode + forward of the target model
over the dataset (the same decode path and batch size, no hooks, no statistics) plus one backend
forward over the distinct crops the run embedded; ``whole / floor`` is the pipeline's overhead.
Both models are loaded before anything is timed, so neither side pays for weight loading.
Prints a table and, last, one JSON line.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import psutil
import torch
from PIL import Image

from neuroscribe.config import ModelSpec
from neuroscribe.data import build_index
from neuroscribe.demo import demo_config
from neuroscribe.explanation import (
    ExplainConfig,
    cached_backend,
    cut_patches,
    embed_unit_block,
    embedding_inputs,
    n_units,
    save_config,
    score_layer,
    unit_blocks,
)
from neuroscribe.extraction import (
    cached_model,
    extract_shards,
    finalize_extraction,
    forward_batches,
    prepare_extraction,
    reduce_topk,
)
from neuroscribe.gallery import render_gallery
from neuroscribe.models import resolve_device
from neuroscribe.vocabulary import build_vocabulary

SYNTHETIC_CLASSES = 1000


def _synthetic_image(i: int, path: str) -> None:
    """One JPEG with ImageNet-like size and compressibility: smooth colour fields plus texture."""
    rng = np.random.default_rng(i)
    width, height = (500, 375) if i % 4 else (375, 500)
    low = rng.integers(0, 256, size=(6, 8, 3), dtype=np.uint8)
    base = np.asarray(Image.fromarray(low).resize((width, height), Image.Resampling.BICUBIC), dtype=np.int16)
    noise = rng.normal(0, 18, size=(height, width, 1)).astype(np.int16)
    Image.fromarray(np.clip(base + noise, 0, 255).astype(np.uint8)).save(path, quality=90)


def synthetic_dataset(root: Path, n: int, workers: int) -> Path:
    """``root/<class>/<n>.JPEG`` for n images over 1000 classes; files already there are kept."""
    jobs = []
    for i in range(n):
        path = root / f"c{i % SYNTHETIC_CLASSES:04d}" / f"{i:07d}.JPEG"
        if not path.is_file():
            path.parent.mkdir(parents=True, exist_ok=True)
            jobs.append((i, str(path)))
    if jobs:
        with ProcessPoolExecutor(workers) as pool:
            list(pool.map(_synthetic_image, *zip(*jobs), chunksize=64))
    return root


class PeakMemory:
    """Peak RSS (and CUDA max allocated) inside a ``with`` block, sampled by a thread."""

    def __init__(self, interval: float = 0.02):
        self.interval, self.process = interval, psutil.Process()
        self.peak_rss = 0

    def _sample(self, stop: threading.Event) -> None:
        while not stop.wait(self.interval):
            self.peak_rss = max(self.peak_rss, self.process.memory_info().rss)

    @contextmanager
    def measure(self):
        self.peak_rss = self.process.memory_info().rss
        if torch.cuda.is_available():
            torch.cuda.reset_peak_memory_stats()
        stop = threading.Event()
        thread = threading.Thread(target=self._sample, args=(stop,), daemon=True)
        thread.start()
        try:
            yield self
        finally:
            stop.set()
            thread.join()
            self.peak_rss = max(self.peak_rss, self.process.memory_info().rss)


class Stages:
    def __init__(self, device: torch.device):
        self.device, self.rows = device, []

    @contextmanager
    def stage(self, name: str, items: int | None = None, unit: str = "items"):
        record = {"stage": name, "items": items, "unit": unit}
        with PeakMemory().measure() as mem:
            began = time.perf_counter()
            yield record
            if self.device.type == "cuda":
                torch.cuda.synchronize()
            record["seconds"] = time.perf_counter() - began
        record["peak_rss_mb"] = round(mem.peak_rss / 2**20, 1)
        if self.device.type == "cuda":
            record["cuda_peak_mb"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
        if record["items"]:
            record["items_per_s"] = round(record["items"] / record["seconds"], 1)
        self.rows.append(record)

    def total(self, names: set[str]) -> float:
        return sum(r["seconds"] for r in self.rows if r["stage"].split(" ")[0] in names)


def make_config(args, dataset: str, store: str, device: torch.device) -> ExplainConfig:
    """The demo's settings (``neuroscribe.demo.demo_config``); a flag given here overrides one of them."""
    base = demo_config(images=dataset, out=store, layers=tuple(args.layers.split(",")), limit=args.limit, **({"k": args.k} if args.k else {}))

    def given(**values):
        return {name: value for name, value in values.items() if value is not None}

    extract = base.extract.model_copy(update=given(
        model=ModelSpec(name=args.model) if args.model else None,
        store=store,
        dataset=base.extract.dataset.model_copy(update=given(shard_size=args.shard_size)),
        runner=base.extract.runner.model_copy(update=given(device=device.type, batch_size=args.batch_size, decode_threads=args.decode_threads)),
    ))
    return base.model_copy(update=given(
        extract=extract,
        backend=base.backend.model_copy(update=given(
            classifier=ModelSpec(name=args.backend_classifier) if args.backend_classifier else None, device=device.type,
        )),
        patches=base.patches.model_copy(update=given(crop_size=args.crop_size)),
        units_per_task=args.units_per_task,
    ))


def run_pipeline(cfg: ExplainConfig, stages: Stages) -> dict:
    """``neuroscribe.explanation.run_explain``'s calls, one timed stage each."""
    extract_cfg = cfg.extract
    with stages.stage("extract", unit="images") as rec:
        plan = prepare_extraction(extract_cfg)
        extract_shards(extract_cfg, plan.pending)
        rec["items"] = plan.n_images
    for layer in cfg.extract.layers:
        with stages.stage(f"topk {layer}", unit="layers") as rec:
            reduce_topk(extract_cfg, layer)
            rec["items"] = 1
    finalize_extraction(extract_cfg)
    save_config(cfg)
    with stages.stage("vocabulary", unit="sets"):
        vocabulary_uri = build_vocabulary(cfg.vocabulary_config()).uri
    for layer in cfg.extract.layers:
        units = n_units(cfg, layer)
        with stages.stage(f"patches {layer}", units, "units") as rec:
            summary = cut_patches(cfg, layer)
            rec["images_loaded"] = summary.get("images_loaded")
        with stages.stage(f"embed {layer}", units, "units") as rec:
            records = [embed_unit_block(cfg, layer, block) for block in unit_blocks(units, cfg.units_per_task)]
            rec["embedded"] = sum(r.get("embedded", 0) for r in records)
        with stages.stage(f"score {layer}", units, "units"):
            frame = score_layer(cfg, layer, vocabulary_uri)
        with stages.stage(f"gallery {layer}", units, "units"):
            render_gallery(cfg.extract.store, layer, frame, cfg.extract.store_options, cfg.gallery_patches)
    return {"images": plan.n_images}


def distinct_inputs(cfg: ExplainConfig) -> list[Image.Image]:
    """Every distinct input the run embeds (crops, or top images for linear layers): the least any
    backend must embed, loaded before the floor is timed."""
    seen: dict[bytes, Image.Image] = {}
    for layer in cfg.extract.layers:
        for block in unit_blocks(n_units(cfg, layer), cfg.units_per_task):
            inputs = embedding_inputs(cfg, layer, block)
            for i, digest in enumerate(inputs.digests):
                if digest not in seen and (item := inputs.load(i)) is not None:
                    seen[digest] = item if isinstance(item, Image.Image) else Image.fromarray(item)
    return list(seen.values())


def measure_floor(cfg: ExplainConfig, stages: Stages, device: torch.device) -> None:
    """Decode + forward of the target model over the dataset, and the backend over the distinct inputs."""
    loaded = cached_model(cfg.extract.model, str(device))
    index = build_index(cfg.extract.dataset)
    with stages.stage("floor:decode+forward", len(index), "images"):
        for _ in forward_batches(loaded, index, [], cfg.extract.runner.batch_size, device, cfg.extract.runner.decode_threads, cfg.extract.dataset.storage_options):
            pass
    inputs = distinct_inputs(cfg)
    backend = cached_backend(cfg.backend)
    with stages.stage("floor:backend", len(inputs), "inputs"):
        backend.embed_images(inputs)


def decode_throughput(paths: list[str], device: torch.device, batch_size: int = 256) -> float:
    """JPEG decode alone (nvjpeg on CUDA, libjpeg on CPU), images/s, bytes read beforehand."""
    from torchvision.io import ImageReadMode, decode_jpeg

    data = [torch.frombuffer(bytearray(Path(p).read_bytes()), dtype=torch.uint8) for p in paths if p.lower().endswith((".jpg", ".jpeg"))]
    if not data:
        return float("nan")
    decode_jpeg(data[:8], mode=ImageReadMode.RGB, device=device)  # warm-up (nvjpeg handles)
    if device.type == "cuda":
        torch.cuda.synchronize()
    began = time.perf_counter()
    for start in range(0, len(data), batch_size):
        decode_jpeg(data[start : start + batch_size], mode=ImageReadMode.RGB, device=device)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return len(data) / (time.perf_counter() - began)


def extraction_ceilings(cfg: ExplainConfig, stages: Stages, device: torch.device) -> dict:
    """Issue 13's GPU target: extraction images/s against min(decode alone, bf16 forward alone)."""
    from extract import forward_throughput  # benchmarks/extract.py, beside this script

    paths = build_index(cfg.extract.dataset)["path"].tolist()
    decode = decode_throughput(paths, device)
    forward = forward_throughput(cfg.extract.model.name, cfg.extract.runner.batch_size, device, seconds=10.0)
    extract = next(r for r in stages.rows if r["stage"] == "extract")
    ceiling = min(decode, forward)
    return {
        "decode_images_per_s": round(decode, 1), "forward_images_per_s": round(forward, 1),
        "extract_images_per_s": extract.get("items_per_s"), "extract_over_ceiling": round(extract["items_per_s"] / ceiling, 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", help="image folder or file list (or use --synthetic)")
    parser.add_argument("--synthetic", type=int, default=None, help="generate this many synthetic JPEGs and use them")
    parser.add_argument("--synthetic-dir", default=None, help="where the synthetic set lives (reused when present)")
    parser.add_argument("--model", default=None, help="default: the demo's")
    parser.add_argument("--layers", default="classifier,blocks.5")
    parser.add_argument("--k", type=int, default=None, help="default: the demo's")
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--backend-classifier", default=None, help="default: the demo's")
    parser.add_argument("--crop-size", type=int, default=None, help="default: the demo's")
    parser.add_argument("--units-per-task", type=int, default=None, help="default: the demo's")
    parser.add_argument("--batch-size", type=int, default=None, help="default: the demo's")
    parser.add_argument("--shard-size", type=int, default=None, help="default: the demo's")
    parser.add_argument("--decode-threads", type=int, default=None, help="default: the demo's")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--store", default=None, help="run store (default: a temporary folder)")
    parser.add_argument("--ceilings", action="store_true", help="also time decode alone and forward alone (always on CUDA)")
    args = parser.parse_args()
    device = resolve_device(args.device)
    if args.synthetic:
        folder = Path(args.synthetic_dir or tempfile.mkdtemp(prefix="synthetic-"))
        began = time.perf_counter()
        args.dataset = str(synthetic_dataset(folder, args.synthetic, max(1, psutil.cpu_count() or 1)))
        print(f"synthetic set: {args.synthetic} JPEGs in {folder} ({time.perf_counter() - began:.1f} s)")
    if not args.dataset:
        parser.error("pass --dataset or --synthetic N")
    with tempfile.TemporaryDirectory() as tmp:
        cfg = make_config(args, args.dataset, args.store or str(Path(tmp) / "store"), device)
        cached_model(cfg.extract.model, str(device))  # load weights before timing: neither side pays for them
        cached_backend(cfg.backend).class_embeddings()
        stages = Stages(device)
        began = time.perf_counter()
        info = run_pipeline(cfg, stages)
        whole = time.perf_counter() - began
        measure_floor(cfg, stages, device)
        ceilings = extraction_ceilings(cfg, stages, device) if args.ceilings or device.type == "cuda" else None
    floor = stages.total({"floor:decode+forward", "floor:backend"})
    print(f"{'stage':32s} {'seconds':>8s} {'items/s':>10s} {'peak RSS MB':>12s}")
    for r in stages.rows:
        rate = f"{r.get('items_per_s', '')} {r['unit']}" if r.get("items_per_s") else ""
        print(f"{r['stage']:32s} {r['seconds']:8.2f} {rate:>16s} {r['peak_rss_mb']:8.1f}" + (f"  cuda {r['cuda_peak_mb']} MB" if "cuda_peak_mb" in r else ""))
    print(f"whole {whole:.2f} s, floor {floor:.2f} s, whole/floor {whole / floor:.2f}x")
    if ceilings:
        print(f"extraction {ceilings['extract_images_per_s']} img/s; decode alone {ceilings['decode_images_per_s']}, "
              f"forward alone {ceilings['forward_images_per_s']}: {ceilings['extract_over_ceiling']:.0%} of the lower")
    result = {
        "model": cfg.extract.model.name, "layers": args.layers, "k": cfg.extract.k, "crop_size": cfg.patches.crop_size, "images": info["images"], "device": str(device),
        "threads": torch.get_num_threads(), "whole_s": round(whole, 2), "floor_s": round(floor, 2),
        "whole_over_floor": round(whole / floor, 3), "ceilings": ceilings,
        "peak_rss_mb": max(r["peak_rss_mb"] for r in stages.rows),
        "stages": [{k: (round(v, 3) if isinstance(v, float) else v) for k, v in r.items()} for r in stages.rows],
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
