"""Decode any image a dataset may hold into an RGB PIL image, or say why it was skipped.

    try:
        image = load_image("s3://bucket/img.jpg", storage_options)
    except ImageSkipped as skip:
        record(skip.reason)

Handled: grayscale, CMYK, palette (with transparency), 16-bit and float, alpha (composited on
white), EXIF orientation, and very large images (JPEGs over ``LARGE_IMAGE_PIXELS`` are decoded
at a reduced DCT scale).  Zero-byte, truncated and non-image files raise ``ImageSkipped``.
"""

from __future__ import annotations

import io
import warnings

import fsspec
import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

# Beyond this many pixels a JPEG is decoded at reduced scale: models see a few hundred pixels.
LARGE_IMAGE_PIXELS = 40_000_000
# Refuse only absurd sizes (PIL's own bomb check stops at ~179 Mpx, which real scans exceed).
MAX_IMAGE_PIXELS = 1_000_000_000
DRAFT_MIN_SIDE = 1024


class ImageSkipped(Exception):
    """An image that cannot be used; ``reason`` is recorded in the run's index."""

    def __init__(self, path: str, reason: str):
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


def read_bytes(path: str, storage_options: dict | None = None) -> bytes:
    with fsspec.open(path, "rb", **(storage_options or {})) as f:
        return f.read()


def _to_rgb(img: Image.Image) -> Image.Image:
    mode = img.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        arr = np.asarray(img, dtype=np.float64)
        top = 65535.0 if (mode.startswith("I;16") or arr.max(initial=0) > 255) else 255.0
        if mode == "F":
            top = max(float(arr.max(initial=0)), 1e-12)
        img = Image.fromarray(np.clip(arr / top * 255.0 + 0.5, 0, 255).astype(np.uint8), "L")
        mode = "L"
    if mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
        mode = img.mode
    if mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return img.convert("RGB") if mode != "RGB" else img


def decode_image(data: bytes, path: str = "<bytes>") -> Image.Image:
    if not data:
        raise ImageSkipped(path, "empty file (0 bytes)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            previous, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, MAX_IMAGE_PIXELS
            try:
                img = Image.open(io.BytesIO(data))
                if img.format == "JPEG" and img.width * img.height > LARGE_IMAGE_PIXELS:
                    img.draft("RGB", (DRAFT_MIN_SIDE, DRAFT_MIN_SIDE))
                img.load()
            finally:
                Image.MAX_IMAGE_PIXELS = previous
        img = ImageOps.exif_transpose(img)
        return _to_rgb(img)
    except UnidentifiedImageError:
        raise ImageSkipped(path, "not an image file (unidentified format)") from None
    except Image.DecompressionBombError as exc:
        raise ImageSkipped(path, f"image too large ({exc})") from None
    except (OSError, SyntaxError, ValueError) as exc:
        reason = "truncated image" if "truncated" in str(exc).lower() else f"corrupt image ({exc})"
        raise ImageSkipped(path, reason) from None


def load_image(path: str, storage_options: dict | None = None) -> Image.Image:
    try:
        data = read_bytes(path, storage_options)
    except FileNotFoundError:
        raise ImageSkipped(path, "file not found") from None
    except OSError as exc:
        raise ImageSkipped(path, f"unreadable ({exc})") from None
    return decode_image(data, path)
