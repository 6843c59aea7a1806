"""What validating an extraction twice costs: the CLI validates, then the flow's prepare step validates again
(in the same process, as ``neuroscribe extract`` runs the flow): the model comes from the per-process cache,
only the dataset listing and the run key are computed again.

    python benchmarks/validate_twice.py ../shared/data/imagenet-samples [--model efficientnet_lite0 --layer blocks.6]
"""

from __future__ import annotations

import argparse
import tempfile
import time

from neuroscribe.config import ExtractConfig
from neuroscribe.extraction import validate_extraction


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dataset", help="image folder or file list")
    parser.add_argument("--model", default="efficientnet_lite0")
    parser.add_argument("--layer", default="blocks.6")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        cfg = ExtractConfig(model={"name": args.model}, layers=args.layer, dataset={"uri": args.dataset}, store=f"{tmp}/store")
        for label in ("in the CLI", "again in the flow"):
            began = time.perf_counter()
            validate_extraction(cfg)
            print(f"validate_extraction {label}: {time.perf_counter() - began:.2f} s")


if __name__ == "__main__":
    main()
