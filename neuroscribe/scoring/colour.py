"""Colour naming over an image region: which basic colour words describe it, and how much.

    colour_index("gray")                               # index of "grey" in COLOUR_NAMES (None for "stripes")
    share = region_colours(image)                      # float [11]: share of the pixels named each term
    share = region_colours(rgba_image)                 # alpha > 0 marks the region (a patch's mask)

``name_colours`` is the project's one definition of the eleven basic colour terms of English
(Berlin & Kay 1969), used by the ConSE backend on a patch's masked region and by the quality
benchmark's colour units (``neuroscribe.evaluation.known_units``).  A region's colours are the
shares of its pixels named each term, as Network Dissection (Bau et al., CVPR 2017) labels colours.

Each pixel, with the model's normalisation undone, is converted to CIELAB (D65, scikit-image) and
named by its lightness L*, chroma C* and hue angle h, as Berlin & Kay's terms partition colour space:
- achromatic (C* < 15): white when L* >= 80, black when L* <= 25, otherwise grey;
- nearly no light (L* <= 12): black, whatever the hue;
- otherwise by hue: red [350, 55), orange [55, 85), yellow [85, 115), green [115, 200),
  blue [200, 315), purple [315, 350) degrees; light reds (L* > 70) are pink, and dark or dull
  oranges (L* < 50 or C* < 30) are brown.
Grey, pink and brown compete for pixels but have no unit.  The hue bounds put the sRGB primaries
and the CSS colours of each name (red, orange, gold, yellowgreen, sky blue, blue, purple, violet) in
their own bin, navy blue in blue, tan and saddle brown in brown.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

COLOUR_UNITS = ("red", "orange", "yellow", "green", "blue", "purple", "white", "black")
# name_colours' index order: the eight colours with a benchmark unit, then the competing names
# without one (a pixel named one of these counts for no unit)
COLOUR_NAMES = COLOUR_UNITS + ("grey", "pink", "brown")
_HUE_BINS = (  # (name, lower bound in degrees), upper bound = the next lower bound; red wraps around 0
    ("red", 0.0), ("orange", 55.0), ("yellow", 85.0), ("green", 115.0), ("blue", 200.0), ("purple", 315.0), ("red", 350.0),
)


def name_colours(rgb: np.ndarray) -> np.ndarray:
    """Basic colour name of each pixel of ``rgb`` [..., 3] in [0, 1]: int [...] index into
    ``COLOUR_NAMES`` (see the module docstring for the rule)."""
    from skimage.color import rgb2lab

    index = {n: i for i, n in enumerate(COLOUR_NAMES)}
    lab = rgb2lab(np.clip(rgb, 0.0, 1.0), channel_axis=-1)
    lightness, a, b = lab[..., 0], lab[..., 1], lab[..., 2]
    chroma = np.hypot(a, b)
    hue = np.degrees(np.arctan2(b, a)) % 360.0
    out = np.full(lightness.shape, index["grey"], dtype=np.int64)
    for name, lower in _HUE_BINS:
        out[hue >= lower] = index[name]
    out[(out == index["red"]) & (lightness > 70)] = index["pink"]
    out[(out == index["orange"]) & ((lightness < 50) | (chroma < 30))] = index["brown"]
    achromatic = chroma < 15
    out[achromatic] = index["grey"]
    out[achromatic & (lightness >= 80)] = index["white"]
    out[(achromatic & (lightness <= 25)) | (lightness <= 12)] = index["black"]
    return out


# spellings that name the same basic term
COLOUR_SYNONYMS = {"gray": "grey"}
# pixels per region at most: the share of an evenly strided subsample is exact to ~1%
MAX_PIXELS = 4096


def colour_index(concept: str) -> int | None:
    """Position of ``concept`` in ``COLOUR_NAMES`` when it names a basic colour, else None."""
    word = concept.strip().lower()
    word = COLOUR_SYNONYMS.get(word, word)
    return COLOUR_NAMES.index(word) if word in COLOUR_NAMES else None


def region_colours(image: Image.Image) -> np.ndarray:
    """``[11]`` share of the region's pixels named each term: pixels with alpha > 0 for RGBA images, else
    all.  A region with no pixels (an all-zero mask) gets zeros: it says nothing about colour."""
    array = np.asarray(image if image.mode in ("RGB", "RGBA") else image.convert("RGB"))
    pixels = array[..., :3].reshape(-1, 3)
    if array.shape[-1] == 4:
        pixels = pixels[array[..., 3].reshape(-1) > 0]
    if len(pixels) > MAX_PIXELS:
        # a fixed stride, not a random draw: the same region always gives the same numbers
        pixels = pixels[:: int(np.ceil(len(pixels) / MAX_PIXELS))]
    if not len(pixels):
        return np.zeros(len(COLOUR_NAMES))
    named = name_colours(pixels.astype(np.float64) / 255.0)
    return np.bincount(named, minlength=len(COLOUR_NAMES))[: len(COLOUR_NAMES)] / len(pixels)
