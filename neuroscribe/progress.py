"""The progress callback that long-running core functions accept.

    def embed_all(items, on_progress: ProgressFn = None) -> ...:
        ...
        if on_progress:
            on_progress(n)

Each function's docstring says what ``n`` counts (items done so far, or done since the last call).
The CLI passes a progress bar's update, the flows a ``FlowProgress``.
"""

from __future__ import annotations

from collections.abc import Callable

ProgressFn = Callable[[int], None] | None
