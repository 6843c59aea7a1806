"""Build the backend a ``BackendSpec`` names: ``make_backend(ConseSpec())``.

Apart from ``backend`` (interface and spec) so that no two modules import each other.
"""

from __future__ import annotations

from neuroscribe.scoring.backend import BackendSpec, ImageTextBackend, OpenClipSpec


def make_backend(spec: BackendSpec) -> ImageTextBackend:
    """Build the backend a spec names (loads weights; call once per process and reuse)."""
    # imported on use: open_clip and the ConSE classifier cost seconds to import, and a run needs one of them
    if isinstance(spec, OpenClipSpec):
        from neuroscribe.scoring.open_clip_backend import OpenClipBackend

        return OpenClipBackend(spec)
    from neuroscribe.scoring.conse import ConseBackend

    return ConseBackend(spec)
