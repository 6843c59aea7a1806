"""Decode any image a dataset may hold into an RGB PIL image, or say why it was skipped.

    try:
        image = load_image("s3://bucket/img.jpg", storage_options, max_image_pixels=cfg.dataset.max_image_pixels)
    except ImageSkipped as skip:
        record(skip.reason)

Handled: grayscale, CMYK, palette (with transparency), 16-bit and float, alpha (composited on white),
EXIF orientation, very large images.  Missing, empty, truncated and non-image files raise ``ImageSkipped``.

Cost per image is bounded by ``max_image_pixels`` (default: PIL's own, about 179 Mpx), checked on the header
before anything is decoded: a JPEG over it (or over ``LARGE_IMAGE_PIXELS``) is decoded at a reduced DCT scale
(draft mode: 1/2, 1/4 or 1/8 per side, cheap); any other format over it, or a JPEG still over it at 1/8, is
skipped with a reason naming its size, the limit and ``--max-image-pixels``.

The header is read by the format's own PIL plugin, not ``Image.open``: its bomb check against the
process-global ``Image.MAX_IMAGE_PIXELS`` would refuse JPEGs that draft mode decodes cheaply and ignore a
per-run limit, and changing that global, even briefly, would change it for every thread.
"""

from __future__ import annotations

import io
import struct

import fsspec
import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from neuroscribe.config import pil_max_image_pixels
from neuroscribe.store import with_retries

# JPEGs over this many pixels are decoded at reduced scale even under the limit: models see a few hundred pixels.
LARGE_IMAGE_PIXELS = 40_000_000
DRAFT_MIN_SIDE = 1024
MAX_IMAGE_PIXELS_FLAG = "--max-image-pixels"


class ImageSkipped(Exception):
    """An image that cannot be used; ``reason`` is recorded in the run's index."""

    def __init__(self, path: str, reason: str):
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


def read_bytes(path: str, storage_options: dict | None = None) -> bytes:
    """The file's bytes; ``ImageSkipped`` when it is missing or unreadable."""
    try:
        # s3:// images get the store's retry policy: a throttled read must not turn into a skipped image
        with fsspec.open(path, "rb", **with_retries(path, storage_options)) as f:
            return f.read()
    except FileNotFoundError:
        raise ImageSkipped(path, "file not found") from None
    except OSError as exc:
        raise ImageSkipped(path, f"unreadable ({exc})") from None


def _to_rgb(img: Image.Image) -> Image.Image:
    if img.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        arr = np.asarray(img, dtype=np.float64)
        top = 65535.0 if (img.mode.startswith("I;16") or arr.max(initial=0) > 255) else 255.0
        if img.mode == "F":
            top = max(float(arr.max(initial=0)), 1e-12)
        img = Image.fromarray(np.clip(arr / top * 255.0 + 0.5, 0, 255).astype(np.uint8), "L")
    if img.mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
    if img.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        return Image.alpha_composite(Image.new("RGBA", img.size, "white"), img.convert("RGBA")).convert("RGB")
    return img.convert("RGB") if img.mode != "RGB" else img


def _open_header(data: bytes, path: str) -> Image.Image:
    """Parse the header without decoding pixels: ``Image.open``'s plugin search minus its pixel-limit check."""
    Image.init()  # registers every plugin once; what Image.open does lazily
    prefix = data[:16]
    for fmt in Image.ID:
        factory, accept = Image.OPEN[fmt]
        if accept is not None and (not (ok := accept(prefix)) or isinstance(ok, str)):
            continue
        try:
            return factory(io.BytesIO(data), path)
        except (SyntaxError, IndexError, TypeError, struct.error):  # not this format after all: try the next
            continue
    raise UnidentifiedImageError(path)


def _too_large(size: tuple[int, int], limit: int, how: str = "") -> str:
    w, h = size
    return (
        f"image too large ({w}x{h} = {w * h / 1e6:.1f} Mpx{how} over the limit of {limit / 1e6:.1f} Mpx; "
        f"raise it with {MAX_IMAGE_PIXELS_FLAG})"
    )


JPEG_SCALES = (1, 2, 4, 8)  # the reductions per side libjpeg decodes directly from the DCT


def _jpeg_scale(size: tuple[int, int], limit: int) -> int:
    """The largest of: the smallest scale that fits ``limit``, the largest that keeps ``DRAFT_MIN_SIDE``."""
    w, h = size
    fits = next((s for s in JPEG_SCALES if -(-w // s) * -(-h // s) <= limit), JPEG_SCALES[-1])
    keeps_detail = next((s for s in reversed(JPEG_SCALES) if min(w, h) // s >= DRAFT_MIN_SIDE), 1)
    return max(fits, keeps_detail)


def _bounded(img: Image.Image, path: str, limit: int) -> Image.Image:
    """``img`` ready to load at a bounded size: JPEGs drafted, anything else over ``limit`` refused."""
    size = img.size
    if img.format == "JPEG" and size[0] * size[1] > min(LARGE_IMAGE_PIXELS, limit):
        scale = _jpeg_scale(size, limit)
        img.draft("RGB", (max(1, size[0] // scale), max(1, size[1] // scale)))
        if img.width * img.height > limit:  # over 64 times the limit (or a JPEG draft cannot reduce)
            raise ImageSkipped(path, _too_large(size, limit, f", {img.width}x{img.height} at the smallest JPEG scale,"))
    elif size[0] * size[1] > limit:
        raise ImageSkipped(path, _too_large(size, limit))
    return img


def decode_image(data: bytes, path: str = "<bytes>", *, max_image_pixels: int | None = None) -> Image.Image:
    """Decode ``data`` to RGB; ``max_image_pixels`` None means PIL's default limit."""
    if not data:
        raise ImageSkipped(path, "empty file (0 bytes)")
    limit = pil_max_image_pixels() if max_image_pixels is None else max_image_pixels
    try:
        img = _bounded(_open_header(data, path), path, limit)
        img.load()
        return _to_rgb(ImageOps.exif_transpose(img))
    except UnidentifiedImageError:
        raise ImageSkipped(path, "not an image file (unidentified format)") from None
    except Image.DecompressionBombError as exc:  # a plugin's own per-frame or per-tile check (GIF, TIFF)
        raise ImageSkipped(path, f"image too large ({exc}; raise it with {MAX_IMAGE_PIXELS_FLAG})") from None
    except (OSError, SyntaxError, ValueError) as exc:
        reason = "truncated image" if "truncated" in str(exc).lower() else f"corrupt image ({exc})"
        raise ImageSkipped(path, reason) from None


def load_image(path: str, storage_options: dict | None = None, *, max_image_pixels: int | None = None) -> Image.Image:
    """Read and decode one image; ``ImageSkipped`` says why it cannot be used."""
    return decode_image(read_bytes(path, storage_options), path, max_image_pixels=max_image_pixels)
