"""Mergeable running statistics (baukit style): compute per shard, merge across shards."""

from neuroscribe.stats.topk import TopK

__all__ = ["TopK"]
