"""Progress shown in two places at once: a Prefect progress artifact and a CLI progress bar.

    for shard in flow_progress(shards, "extract-shards", total=n_shards, done=already_done, unit="shard"):
        ...                                # both advance once the loop body has finished the item
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TypeVar

from prefect.artifacts import create_progress_artifact, update_progress_artifact
from tqdm.auto import tqdm

T = TypeVar("T")


def flow_progress(
    items: Iterable[T], key: str, total: int, done: int = 0, unit: str = "item", description: str | None = None
) -> Iterator[T]:
    """Yield ``items`` under a tqdm bar and the progress artifact ``key``, which counts ``done`` as finished."""
    artifact = create_progress_artifact(
        progress=100.0 * done / max(total, 1), key=key, description=description or f"{key}: {done}/{total} {unit}s"
    )
    bar = tqdm(items, total=total, initial=done, unit=unit, desc=key, leave=True)
    for finished, item in enumerate(bar, start=done + 1):
        yield item
        update_progress_artifact(artifact, progress=min(100.0, 100.0 * finished / max(total, 1)))
