"""Datasets: listing, deterministic shards with stable ids, and robust image decoding.

    index = build_index(DatasetSpec(uri="/data/imagenet/val"))   # DataFrame: id, path, label
    image = load_image(path)                                      # RGB PIL image, or ImageSkipped
"""

from neuroscribe.data.datasets import build_index, listing_key, shard_ranges
from neuroscribe.data.images import ImageSkipped, load_image

__all__ = ["ImageSkipped", "build_index", "listing_key", "load_image", "shard_ranges"]
