"""Progress shown in two places at once: a Prefect progress artifact and a CLI progress bar.

    progress = FlowProgress("extract-shards", total=plan.n_shards, done=already_done, unit="shard")
    progress.advance(1)
    progress.close()
"""

from __future__ import annotations

from prefect.artifacts import create_progress_artifact, update_progress_artifact
from tqdm.auto import tqdm


class FlowProgress:
    def __init__(self, key: str, total: int, done: int = 0, unit: str = "item", description: str | None = None):
        self.total = max(total, 1)
        self.done = done
        self._artifact = create_progress_artifact(
            progress=100.0 * done / self.total, key=key, description=description or f"{key}: {done}/{total} {unit}s"
        )
        self._bar = tqdm(total=total, initial=done, unit=unit, desc=key, leave=True)

    def advance(self, n: int = 1) -> None:
        self.done += n
        self._bar.update(n)
        update_progress_artifact(self._artifact, progress=min(100.0, 100.0 * self.done / self.total))

    def close(self) -> None:
        self._bar.close()
