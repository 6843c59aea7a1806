"""Pure geometry of one patch: activation map -> region in the original image -> square crop and mask.

    up, (x_lo, y_lo) = upsample_map(unit_map, prep.crop_box(w, h), (w, h))   # map in original pixels
    region = highest_region(up, threshold)                                   # bool mask, or None
    box = expand_box(region_bbox(region, (x_lo, y_lo)), margin=0.1, min_side=22, size=(w, h))
    window = square_window(box, (w, h))
    crop, mask = cut_patch(image, window, region, crop_size=128, mask_offset=(x_lo, y_lo))

Conventions: pixel ``p`` covers ``[p, p + 1)``, so its centre is ``p + 0.5``; boxes are
``(left, top, right, bottom)`` with an exclusive right and bottom.  A map of ``h x w`` cells tiles
the model input, which sits at ``Preprocessing.crop_box(W, H)`` in the original image; cell ``j``
is centred at ``left + (j + 0.5) * (right - left) / w``.  Upsampling is bilinear between cell
centres with the edges clamped (``align_corners=False`` in PyTorch terms), so a cell-aligned hot
square upsampled and thresholded halfway between its value and the background's comes back as
exactly the square's footprint in the original image.  Pixels the model never saw (outside the
crop box) never enter a region.
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image
from scipy import ndimage
from skimage.filters import threshold_otsu

Box = tuple[float, float, float, float]
# Neutral grey where a square window runs past the image edge (ImageNet's mean colour).
PAD_RGB = (124, 116, 104)
# 8-connectivity: diagonal neighbours belong to the same region, as in a dilated blob.
_CONNECTIVITY = np.ones((3, 3), dtype=bool)


def _linear_taps(lo: float, hi: float, extent: int, n_cells: int):
    """For the pixels whose centres lie in ``[lo, hi)``, clipped to ``[0, extent)``, of a span cut into
    ``n_cells`` cells: the first pixel, the two cells around each pixel centre and the weight of the
    second (bilinear, edges clamped)."""
    first = max(0, math.ceil(lo - 0.5))
    centres = np.arange(first, min(extent, math.ceil(hi - 0.5))) + 0.5
    u = np.clip((centres - lo) / ((hi - lo) / n_cells) - 0.5, 0.0, n_cells - 1)
    cell = np.floor(u).astype(np.intp)
    return first, cell, np.minimum(cell + 1, n_cells - 1), u - cell


def upsample_map(unit_map: np.ndarray, crop_box: Box, image_size: tuple[int, int]) -> tuple[np.ndarray, tuple[int, int]]:
    """The map resampled onto the original image's pixels inside the model's crop box: (values
    [rows, cols], (x_lo, y_lo)), covering pixels ``x_lo .. x_lo + cols`` and ``y_lo .. y_lo + rows``."""
    h, w = unit_map.shape
    left, top, right, bottom = crop_box
    # separable gathers, not matrix products: BLAS threads cost more than this tiny work
    y_lo, y0, y1, fy = _linear_taps(top, bottom, image_size[1], h)
    x_lo, x0, x1, fx = _linear_taps(left, right, image_size[0], w)
    m = unit_map.astype(np.float64)
    rows = m[y0] * (1.0 - fy)[:, None] + m[y1] * fy[:, None]
    return rows[:, x0] * (1.0 - fx) + rows[:, x1] * fx, (x_lo, y_lo)


def otsu_threshold(values: np.ndarray, bins: int = 256) -> float:
    """Otsu's threshold of a sample (scikit-image's ``threshold_otsu`` over a ``bins`` histogram): the
    upper edge of the bin it picks, not its centre, so ``values > t`` is exactly the upper class."""
    values = np.asarray(values, dtype=np.float64).ravel()
    values = values[np.isfinite(values)]
    if values.size == 0 or values.min() == values.max():
        return float(values.max()) if values.size else math.inf
    centre = threshold_otsu(values, nbins=bins)
    edges = np.histogram_bin_edges(values, bins=bins)
    return float(edges[np.searchsorted(edges, centre)])


def highest_region(values: np.ndarray, threshold: float) -> np.ndarray | None:
    """The connected region above ``threshold`` that holds the map's peak (bool mask), or None."""
    above = values > threshold
    if not above.any():
        return None
    labels, _ = ndimage.label(above, structure=_CONNECTIVITY)
    peak = np.unravel_index(int(np.argmax(values)), values.shape)
    return labels == labels[peak]


def region_bbox(region: np.ndarray, offset: tuple[int, int] = (0, 0)) -> Box:
    """Tight (left, top, right, bottom) of a mask's True pixels, shifted by ``offset`` (x, y)."""
    ys = np.flatnonzero(region.any(axis=1))
    xs = np.flatnonzero(region.any(axis=0))
    return (offset[0] + xs[0], offset[1] + ys[0], offset[0] + xs[-1] + 1, offset[1] + ys[-1] + 1)


def expand_box(box: Box, margin: float, min_side: float, size: tuple[int, int]) -> Box:
    """Grow a box by ``margin`` of its width/height on each side and to at least ``min_side``
    around its centre, then round outwards to whole pixels inside the image."""
    lo, hi = np.array(box[:2], np.float64), np.array(box[2:], np.float64)
    pad = margin * (hi - lo)
    lo, hi = lo - pad, hi + pad
    centre, short = (lo + hi) / 2, hi - lo < min_side
    lo, hi = np.where(short, centre - min_side / 2, lo), np.where(short, centre + min_side / 2, hi)
    return (*np.maximum(0, np.floor(lo + 1e-9)).tolist(), *np.minimum(size, np.ceil(hi - 1e-9)).tolist())


def square_window(box: Box, size: tuple[int, int]) -> Box:
    """The square (side = the box's longer side) centred on the box and slid inside the image
    where it fits; along an axis shorter than the side it stays centred and runs past the edge."""
    lo, hi, extent = np.array(box[:2], np.float64), np.array(box[2:], np.float64), np.array(size)
    side = (hi - lo).max()
    start = np.floor((lo + hi - side) / 2)
    start = np.where(side <= extent, np.clip(start, 0, extent - side), start)
    return (*start.tolist(), *(start + side).tolist())


def cut_patch(
    image: Image.Image, window: Box, mask: np.ndarray, crop_size: int, mask_offset: tuple[int, int] = (0, 0),
    keep: Box | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """(crop uint8 [S, S, 3], mask bool [S, S]) of the square ``window`` of ``image``; ``mask`` covers
    the image pixels from ``mask_offset`` (x, y) on.  Outside the image (and ``keep``) shows ``PAD_RGB``."""
    x0, y0, x1, y1 = (int(v) for v in window)
    side = x1 - x0
    canvas = Image.new("RGB", (side, side), PAD_RGB)
    shown = keep or (0, 0, image.width, image.height)
    sx0, sy0 = max(x0, int(shown[0]), 0), max(y0, int(shown[1]), 0)
    sx1, sy1 = min(x1, int(shown[2]), image.width), min(y1, int(shown[3]), image.height)
    if sx1 > sx0 and sy1 > sy0:
        canvas.paste(image.crop((sx0, sy0, sx1, sy1)), (sx0 - x0, sy0 - y0))
    mask_canvas, (ox, oy) = Image.new("L", (side, side), 0), mask_offset
    mask_canvas.paste(Image.fromarray(mask.astype(np.uint8) * 255), (ox - x0, oy - y0))  # PIL clips the rest
    crop = canvas.resize((crop_size, crop_size), Image.Resampling.BICUBIC)
    small_mask = mask_canvas.resize((crop_size, crop_size), Image.Resampling.BILINEAR)
    return np.asarray(crop), np.asarray(small_mask) >= 128
