"""Quality benchmark: are units whose meaning is known named right, and does the confidence know when?

    python benchmarks/quality.py                                   # the shared ImageNet samples
    python benchmarks/quality.py --images /data/imagenet/val --out runs/quality --device cuda
    python benchmarks/quality.py --limit 40                        # a smoke run
    python benchmarks/quality.py --only demo                       # the demo's blocks.5 alone (~3 min)

Runs ``neuroscribe explain``'s pipeline in this process (no Prefect server) with its defaults apart
from the backend (``conse``) and the vocabulary, on EfficientNet-Lite0 with superclass and colour
units appended (``neuroscribe.evaluation.known_units``), plus the demo's ``blocks.5``; prints a
Markdown table per group and writes ``<out>/quality.json`` and ``quality.md``
(see ``neuroscribe.evaluation.benchmark``).  A rerun reuses every cached stage.

Cost on the 500 shared samples, CPU only: about 17 CPU-minutes (12.5 user + 4 system; 52 min of wall
time on a 2-core machine shared with other jobs), three quarters of it the known-units run, where
the patches of the 1000 logit units at the default k=50 (50,000 crops, 1.6 GB) dominate; about
2 GB of memory; 1.8 GB of disk under ``--out``.
"""

from __future__ import annotations

import argparse
import json

from neuroscribe.evaluation.benchmark import (
    GROUPS,
    KNOWN_UNITS_MODEL,
    BenchmarkConfig,
    benchmark_markdown,
    run_benchmark,
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", default="../shared/data/imagenet-samples/labels.tsv", help="probe image folder or file list")
    parser.add_argument("--out", default="runs/quality", help="folder for run stores and the report")
    parser.add_argument("--model", default=KNOWN_UNITS_MODEL)
    parser.add_argument("--limit", type=int, default=None, help="first N images only")
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    parser.add_argument("--only", choices=GROUPS, action="append", help="run only this group (repeatable): known units or the demo's blocks.5")
    parser.add_argument("--json", action="store_true", help="print the JSON result instead of Markdown")
    args = parser.parse_args()
    groups = tuple(args.only or GROUPS)
    result = run_benchmark(BenchmarkConfig(images=args.images, out=args.out, model=args.model, limit=args.limit, device=args.device), groups)
    print(json.dumps(result, indent=2) if args.json else benchmark_markdown(result))
    print(f"\nwritten under {args.out}; timings {result['timings']}")


if __name__ == "__main__":
    main()
