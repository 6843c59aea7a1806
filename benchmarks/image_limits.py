"""Measure what images that cost too much now cost: time and peak memory per decode, at the default limit.

    python benchmarks/image_limits.py            # one JSON line per image kind

Each kind decodes in a fresh process (``python -c``) so that its peak RSS (``ru_maxrss``) is its own;
``baseline`` decodes a 224x224 PNG, the floor of a process that imports the decoder.
"""

from __future__ import annotations

import json
import subprocess
import sys

KINDS = {
    "baseline": "png_of(224, 224)",
    "png_bomb_30000x30000": "bomb_png(30000, 30000)",
    "gif_bomb_30000x30000": "bomb_gif(30000, 30000)",
    "jpeg_16384x16384": "huge_jpeg(16384, 16384)",
}

PROBE = """
import io, json, resource, time
from PIL import Image
from neuroscribe.data.images import ImageSkipped, decode_image
from neuroscribe.testing.bombs import bomb_gif, bomb_png, huge_jpeg

def png_of(w, h):
    buf = io.BytesIO(); Image.new("RGB", (w, h), (9, 9, 9)).save(buf, "PNG"); return buf.getvalue()

data = {expr}
began = time.perf_counter()
try:
    out = "decoded %dx%d" % decode_image(data, "probe").size
except ImageSkipped as skip:
    out = "skipped: " + skip.reason
print(json.dumps({{"seconds": round(time.perf_counter() - began, 4), "bytes": len(data), "outcome": out,
                  "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}}))
"""


def main() -> None:
    for kind, expr in KINDS.items():
        line = subprocess.run([sys.executable, "-c", PROBE.format(expr=expr)], capture_output=True, text=True, check=True).stdout
        print(json.dumps({"kind": kind} | json.loads(line.strip().splitlines()[-1])))


if __name__ == "__main__":
    main()
