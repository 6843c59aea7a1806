"""The progress callback that long-running core functions accept.

    def embed_all(items, on_progress: ProgressFn = None) -> ...:
        ...
        if on_progress:
            on_progress(n)

Each function's docstring says what ``n`` counts (items done so far, or done since the last call).
Stage-level progress (a bar per stage in process, a Prefect artifact per stage in a flow) comes from the
executors in ``neuroscribe.stages``; these callbacks report finer steps inside one item (batches of a backend).
"""

from __future__ import annotations

from collections.abc import Callable

ProgressFn = Callable[[int], None] | None
