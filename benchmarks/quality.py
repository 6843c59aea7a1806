"""Quality benchmark: are units whose meaning is known named right, and does the confidence know when?

    python benchmarks/quality.py                                   # the shared ImageNet samples
    python benchmarks/quality.py --images /data/imagenet/val --out runs/quality --device cuda
    python benchmarks/quality.py --limit 40                        # a smoke run

Runs ``neuroscribe explain``'s pipeline in this process (no Prefect server) with its defaults apart
from the backend (``conse``) and the vocabulary, on EfficientNet-Lite0 with superclass and colour
units appended (``neuroscribe.evaluation.known_units``), plus the demo's ``blocks.5``; prints a
Markdown table per group and writes ``<out>/quality.json`` and ``quality.md``
(see ``neuroscribe.evaluation.benchmark``).  A rerun reuses every cached stage.
"""

from __future__ import annotations

import argparse
import json

from neuroscribe.evaluation.benchmark import (
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
    parser.add_argument("--json", action="store_true", help="print the JSON result instead of Markdown")
    args = parser.parse_args()
    result = run_benchmark(BenchmarkConfig(images=args.images, out=args.out, model=args.model, limit=args.limit, device=args.device))
    print(json.dumps(result, indent=2) if args.json else benchmark_markdown(result))
    print(f"\nwritten: {args.out}/quality.json, {args.out}/quality.md; timings {result['timings']}")


if __name__ == "__main__":
    main()
