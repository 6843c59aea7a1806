"""Benchmark activation extraction: images/s and peak memory, next to the model's pure forward speed.

    python benchmarks/extract.py --model resnet50 --layers layer3,layer4 \
        --dataset ../shared/data/imagenet-samples/labels.tsv --batch-size 64 --device cuda

Prints one JSON line: extraction images/s (JPEG decode + preprocessing + forward + statistics +
Zarr writes, in-process), the pure forward images/s on random tensors (same batch size, device,
precision: bf16 autocast and channels_last on CUDA), their ratio, and peak memory (process RSS high
water mark; CUDA max allocated).  ``--repeat N`` runs the dataset N times into fresh stores so
that the memory figure can be compared across dataset sizes (it should not grow).
"""

from __future__ import annotations

import argparse
import json
import resource
import tempfile
import time
from pathlib import Path

import torch

from neuroscribe.config import DatasetSpec, ExtractConfig, ModelSpec, RunnerSpec
from neuroscribe.extraction import cached_model, extract_shards, prepare_extraction
from neuroscribe.models import resolve_device


def forward_throughput(model_name: str, batch_size: int, device: torch.device, seconds: float = 10.0) -> float:
    loaded = cached_model(ModelSpec(name=model_name), str(device))
    size = loaded.preprocessing.input_size
    x = torch.randn(batch_size, 3, size, size, device=device)
    if device.type == "cuda":
        x = x.contiguous(memory_format=torch.channels_last)
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else torch.autocast("cpu", enabled=False)
    with torch.inference_mode(), autocast:
        for _ in range(3):
            loaded.model(x)
        if device.type == "cuda":
            torch.cuda.synchronize()
        n, began = 0, time.perf_counter()
        while time.perf_counter() - began < seconds:
            loaded.model(x)
            n += batch_size
        if device.type == "cuda":
            torch.cuda.synchronize()
    return n / (time.perf_counter() - began)


def extraction_throughput(args, device: torch.device, store: str) -> tuple[float, int]:
    cfg = ExtractConfig(
        model=ModelSpec(name=args.model),
        layers=args.layers,
        dataset=DatasetSpec(uri=args.dataset, shard_size=args.shard_size, limit=args.limit),
        store=store,
        k=args.k,
        runner=RunnerSpec(device=str(device.type), batch_size=args.batch_size, decode_threads=args.decode_threads),
    )
    plan = prepare_extraction(cfg)
    began = time.perf_counter()
    records = extract_shards(cfg, plan.pending)
    if device.type == "cuda":
        torch.cuda.synchronize()
    images = sum(r.get("ok", 0) + len(r.get("skipped", [])) for r in records)
    return images / (time.perf_counter() - began), images


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="efficientnet_lite0")
    parser.add_argument("--layers", default="blocks.5,classifier")
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--shard-size", type=int, default=256)
    parser.add_argument("--decode-threads", type=int, default=2)
    parser.add_argument("--k", type=int, default=50)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--forward-seconds", type=float, default=10.0)
    args = parser.parse_args()
    device = resolve_device(args.device)
    rates, images = [], 0
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.repeat):
            rate, images = extraction_throughput(args, device, str(Path(tmp) / f"store{i}"))
            rates.append(rate)
    forward = forward_throughput(args.model, args.batch_size, device, args.forward_seconds)
    result = {
        "model": args.model,
        "layers": args.layers,
        "device": torch.cuda.get_device_name() if device.type == "cuda" else f"cpu x{torch.get_num_threads()} threads",
        "batch_size": args.batch_size,
        "images": images,
        "extract_images_per_s": round(max(rates), 1),
        "forward_images_per_s": round(forward, 1),
        "extract_over_forward": round(max(rates) / forward, 3),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "cuda_max_allocated_mb": round(torch.cuda.max_memory_allocated() / 2**20, 1) if device.type == "cuda" else None,
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
