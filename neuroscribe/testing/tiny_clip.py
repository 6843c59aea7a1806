"""A 2-layer open_clip architecture with seeded random weights, for tests and Dask workers.

    spec = register_tiny_clip()                        # OpenClipSpec(arch="ns-tiny-clip", ...)
    client.run(register_tiny_clip)                     # the same arch on every Dask worker

Real CLIP architectures take seconds per batch on CPU; this one is instant.  open_clip only knows
an architecture registered in the same process, so each process (worker) registers it once.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

TINY_CLIP = "ns-tiny-clip"
TINY_CLIP_CONFIG = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 64, "layers": 2, "width": 64, "patch_size": 16},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 2},
}


def register_tiny_clip(batch_size: int = 16, device: str = "auto"):
    """Register the architecture with open_clip in this process; returns a backend spec that uses it."""
    import open_clip

    from neuroscribe.scoring.backend import OpenClipSpec

    if TINY_CLIP not in open_clip.list_models():
        folder = Path(tempfile.mkdtemp(prefix="ns-tiny-clip-"))
        (folder / f"{TINY_CLIP}.json").write_text(json.dumps(TINY_CLIP_CONFIG))
        open_clip.add_model_config(folder)
    return OpenClipSpec(arch=TINY_CLIP, pretrained=None, device=device, batch_size=batch_size)
