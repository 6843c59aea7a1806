"""Benchmark: a full-layer ablation sweep, fast paths against the naive one-forward-per-unit loop.

    python benchmarks/ablate.py                                  # ResNet50 (random init) layer4, CPU
    python benchmarks/ablate.py --device cuda --images 1024 --batch-size 256 --naive-units 8
    python benchmarks/ablate.py --sweep                          # `--all` on the demo layers, end to end

``--sweep`` runs ``run_ablation`` (what ``neuroscribe ablate --all --local`` runs: decoding, the
plan's probe checks, every part, tables, chart and report) with default settings for each of
``--layers`` of ``--model`` (EfficientNet-Lite0 by default, real weights) on the shared samples'
``labels.tsv``, each layer in a fresh process, and prints per layer the path, seconds, peak
resident memory (``ru_maxrss``) and the ratio to the closed-form layer's time (``--reference``),
``x_closed_form``.  Why a layer is slower is measured in the same run: ``ablation_seconds`` (the
path's ablation compute alone, timed on one batch and scaled to every image), ``floor_seconds``
(the closed-form sweep's seconds plus that compute: the least any sweep of this layer can take on
this path), ``x_floor`` (how far the sweep is from it) and ``floor_x_closed_form`` (above 2: the
2x goal is out of reach because of compute, not overhead), with the counts behind it:
``macs_forward`` per image, ``macs_per_ablation`` per (unit, image), and ``macs_x_closed_form``:
(the path's forward + units x the ablation's MACs) over the closed form's one forward, per image.

What it shows on EfficientNet-Lite0 (see the README's ablation section for numbers): ``blocks.6``
(320 units, 7x7) reaches the head through ``conv_head``, a 1x1 convolution, so one unit's ablation
changes conv_head's output by a rank-one term and only BN, ReLU6, pooling and the classifier run per
(unit, image): 1.3M MACs against a 385M-MAC forward (2.1x the closed form's MACs for 320 units, but as
one large matrix product, faster per MAC than the forward: 1.1x in time).  ``blocks.5`` (192 units) has a
whole inverted-residual block (expand 1x1, depthwise 3x3, project 1x1) and conv_head after it:
51M MACs per (unit, image), i.e. 192 x 51M = 9.7 GMAC per image against the closed form's one
385M-MAC forward, about 26x the closed form's work; no evaluation order can bring that within 2x.

Images are the shared ImageNet samples when present (else seeded random tensors), decoded once
before timing so that only evaluation is measured.  The naive loop is timed on ``--naive-units``
units and extrapolated to the whole layer (it is linear in the number of units); the fast paths
sweep every unit.  Counts of the fast paths are checked against the naive ones on the units both
ran.  Prints one JSON line per path and a summary with the speed-up ratios and the throughput
in unit-images per second (units x images / seconds).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from neuroscribe.ablation.accuracy import count_correct
from neuroscribe.ablation.fast import ablation_flops, choose_path
from neuroscribe.config import ModelSpec
from neuroscribe.data import load_image
from neuroscribe.models import load_model, resolve_device, resolve_layers

SAMPLES = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "imagenet-samples"


def _images(loaded, n: int) -> tuple[torch.Tensor, torch.Tensor, str]:
    size = loaded.preprocessing.input_size
    labels_file = SAMPLES / "labels.tsv"
    if labels_file.is_file():
        import pandas as pd

        rows = pd.read_csv(labels_file, sep="\t").head(n)
        transform = loaded.preprocessing.transform()
        x = torch.stack([transform(load_image(str(SAMPLES / f))) for f in rows["file"]])
        y = torch.tensor(rows["index"].tolist(), dtype=torch.long)
        if len(x) < n:  # more images than samples: repeat them
            reps = -(-n // len(x))
            x, y = x.repeat(reps, 1, 1, 1)[:n], y.repeat(reps)[:n]
        return x, y, f"imagenet-samples ({n} images)"
    generator = torch.Generator().manual_seed(0)
    return torch.randn(n, 3, size, size, generator=generator), torch.randint(0, 1000, (n,), generator=generator), "random tensors"


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def _sweep(path, batches, units, n_units, per_pass, device) -> tuple[float, np.ndarray]:
    _synchronize(device)
    began = time.perf_counter()
    counts = count_correct(path, batches, [(u,) for u in units], n_units, per_pass)
    _synchronize(device)
    return time.perf_counter() - began, counts.ablated_correct


DEMO_LAYERS = "classifier,bn2,bn2.act,conv_head,blocks.6,blocks.5"
TIMED_ABLATIONS = 64  # units whose ablation compute is timed per layer (it is linear in the units)
TIMED_REPEATS = 3


def _sweep_layer(model: str, layer: str, images: int, device: str, threads: int | None, store: str,
                 fast: str = "auto", n_units: int | None = None) -> dict:
    """One ``--all`` sweep in this process (run in a fresh one per layer): path, seconds, peak RSS."""
    import resource

    from neuroscribe.ablation.pipeline import AblateConfig, run_ablation
    from neuroscribe.config import DatasetSpec, RunnerSpec

    if threads:
        torch.set_num_threads(threads)
    cfg = AblateConfig(model=ModelSpec(name=model), layer=layer, units=None if n_units is None else tuple(range(n_units)),
                       store=store, fast=fast,
                       dataset=DatasetSpec(uri=str(SAMPLES / "labels.tsv"), limit=images), runner=RunnerSpec(device=device))
    began = time.perf_counter()
    result = run_ablation(cfg)
    seconds = time.perf_counter() - began
    row = {"layer": layer, "path": result.summary["path"], "starts_from": result.summary["path_start"],
           "units": result.summary["ablations"], "images": result.summary["images"], "seconds": round(seconds, 1),
           "peak_rss_gb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2),
           "drops_resolved": result.summary["statistics"]["drops_resolved"], "drops": result.summary["statistics"]["drops"]}
    return row | _ablation_compute(cfg, layer, result.summary["images"], result.summary["ablations"])


def _ablation_compute(cfg, layer: str, images: int, units: int) -> dict:
    """The work of the ablations alone, without decoding or the forward every path makes once per image.

    ``macs_forward``: multiply-accumulates per image of the forward the path makes (``prepare``: the
    network, and on the suffix path its cached first step); ``macs_per_ablation``: of one
    unit's ablation on one image, on the path the sweep took (FlopCounterMode: convolutions and matrix
    products).  ``ablation_seconds``: ``ablated_logits`` timed on one batch of ``cfg.runner.batch_size``
    samples over ``TIMED_ABLATIONS`` of the units (the best of ``TIMED_REPEATS`` runs: a busy machine
    only ever adds time), scaled to ``units`` x ``images``: the compute a sweep cannot skip on this path.
    """
    device = resolve_device(cfg.runner.device)
    loaded = load_model(cfg.model)
    loaded.model.to(device)
    [info] = resolve_layers(loaded, [layer])
    probe = torch.randn(1, 3, loaded.preprocessing.input_size, loaded.preprocessing.input_size,
                        generator=torch.Generator().manual_seed(0)).to(device)
    path = choose_path(loaded.model, info, cfg.mode, cfg.fast, probe)
    forward, ablation = ablation_flops(path, probe, info.units)
    x = _images(loaded, min(images, cfg.runner.batch_size))[0].to(device)
    timed = min(units, TIMED_ABLATIONS)
    masks = torch.eye(info.units, dtype=torch.bool, device=device)[:timed]
    runs = []
    with torch.no_grad():
        state = path.prepare(x)
        for _ in range(TIMED_REPEATS):
            _synchronize(device)
            began = time.perf_counter()
            for start in range(0, timed, cfg.units_per_pass):
                path.ablated_logits(state, masks[start : start + cfg.units_per_pass])
            _synchronize(device)
            runs.append(time.perf_counter() - began)
    return {"macs_forward": forward // 2, "macs_per_ablation": ablation // 2,
            "ablation_seconds": round(min(runs) * units / timed * images / len(x), 1)}


def _floor(row: dict, reference: dict) -> dict:
    """How far a layer's sweep is from the closed form, and why: the least any path can do is the
    closed-form sweep's work plus this layer's ablation compute (``ablation_seconds``), so
    ``floor_x_closed_form`` above 2 means 2x the closed form is out of reach on this machine, and
    ``macs_x_closed_form`` says the same in operations: this path's MACs per image (its forward, with
    any cached first step, + units x the ablation's MACs) over the closed form's (one forward: its
    ablations are outer products, no MACs counted)."""
    floor = reference["seconds"] + row["ablation_seconds"]
    return {"x_closed_form": round(row["seconds"] / reference["seconds"], 2),
            "floor_seconds": round(floor, 1), "x_floor": round(row["seconds"] / floor, 2),
            "floor_x_closed_form": round(floor / reference["seconds"], 2),
            "macs_x_closed_form": round((row["macs_forward"] + row["units"] * row["macs_per_ablation"])
                                        / reference["macs_forward"], 2)}


def sweep_main(args) -> None:
    import multiprocessing
    import tempfile

    if not (SAMPLES / "labels.tsv").is_file():
        raise SystemExit(f"--sweep needs the shared samples at {SAMPLES}")
    context = multiprocessing.get_context("spawn")
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for layer in args.layers.split(","):
            with context.Pool(1) as pool:  # a fresh process per layer: its own peak memory, no warm caches
                row = pool.apply(_sweep_layer, (args.model, layer, args.images, args.device, args.threads,
                                                f"{tmp}/{layer}", args.fast, args.sweep_units))
            results[layer] = row
            print(json.dumps(row), flush=True)
    reference = results.get(args.reference)
    if reference:
        print(json.dumps({"summary": {layer: {"path": r["path"], "seconds": r["seconds"], **_floor(r, reference),
                                              "peak_rss_gb": r["peak_rss_gb"]} for layer, r in results.items()},
                          "reference": args.reference}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sweep", action="store_true", help="time `--all` sweeps end to end on --layers")
    parser.add_argument("--layers", default=DEMO_LAYERS, help="with --sweep: layers to sweep")
    parser.add_argument("--reference", default="bn2", help="with --sweep: the closed-form layer others are compared to")
    parser.add_argument("--fast", default="auto", help="with --sweep: force a path, e.g. hook to measure its memory")
    parser.add_argument("--sweep-units", type=int, default=None, help="with --sweep: the first N units instead of --all")
    parser.add_argument("--model", default="resnet50")
    parser.add_argument("--layer", default="layer4")
    parser.add_argument("--images", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--naive-units", type=int, default=4, help="units timed with the naive loop (then extrapolated)")
    parser.add_argument("--hook-units", type=int, default=32, help="units timed with the hook path (then extrapolated)")
    parser.add_argument("--units-per-pass", type=int, default=32)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    args = parser.parse_args()
    if args.sweep:
        if args.model == "resnet50":
            args.model = "efficientnet_lite0"
        if args.images == 32:
            args.images = 500
        return sweep_main(args)
    if args.threads:
        torch.set_num_threads(args.threads)

    device = resolve_device(args.device)
    loaded = load_model(ModelSpec(name=args.model, pretrained=False))  # torchvision: weights=None, random init
    loaded.model.to(device)
    [info] = resolve_layers(loaded, [args.layer])
    x, y, source = _images(loaded, args.images)
    batches = [(x[i : i + args.batch_size].to(device), y[i : i + args.batch_size].to(device)) for i in range(0, len(x), args.batch_size)]
    probe = x[:1].to(device)
    all_units = list(range(info.units))
    naive_units = all_units[: args.naive_units]
    setup = {"model": args.model, "layer": args.layer, "units": info.units, "images": len(x), "batch_size": args.batch_size,
             "source": source, "device": str(device), "torch_threads": torch.get_num_threads(),
             "units_per_pass": args.units_per_pass}
    print(json.dumps({"setup": setup}))

    naive_seconds, naive_counts = _sweep(choose_path(loaded.model, info, "activation", "naive"), batches, naive_units,
                                         info.units, args.units_per_pass, device)
    naive_full = naive_seconds / len(naive_units) * info.units
    results = {"naive": {"units_timed": len(naive_units), "seconds": naive_seconds, "full_layer_seconds_extrapolated": naive_full}}
    print(json.dumps({"naive": results["naive"]}))
    for kind in ("closed", "suffix", "hook"):
        path = choose_path(loaded.model, info, "activation", kind, probe)
        units = all_units if kind != "hook" else all_units[: max(args.hook_units, len(naive_units))]
        seconds, counts = _sweep(path, batches, units, info.units, args.units_per_pass, device)
        full = seconds / len(units) * info.units
        equal = bool(np.array_equal(counts[: len(naive_units)], naive_counts))
        results[kind] = {
            "units_timed": len(units), "seconds": seconds, "full_layer_seconds": full,
            "speedup_vs_naive": naive_full / full, "unit_images_per_second": info.units * len(x) / full,
            "counts_equal_naive": equal,
        }
        print(json.dumps({kind: results[kind]}))
    print(json.dumps({"summary": {k: round(v.get("speedup_vs_naive", 1.0), 1) for k, v in results.items()},
                      "naive_unit_images_per_second": info.units * len(x) / naive_full}))


if __name__ == "__main__":
    main()
