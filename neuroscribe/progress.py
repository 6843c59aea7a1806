"""The progress callback that long-running core functions accept.

    def embed_all(items, on_progress: ProgressFn = None): ...    # calls on_progress(n) as it goes

Each function's docstring says what ``n`` counts (items done so far, or since the last call).  These
report steps inside one stage item (batches of a backend); the executors in ``neuroscribe.stages``
show stage-level progress (a bar per stage in process, a Prefect artifact per stage in a flow).
"""

from __future__ import annotations

from collections.abc import Callable

ProgressFn = Callable[[int], None] | None
