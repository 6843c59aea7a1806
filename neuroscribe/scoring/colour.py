"""Colour naming over an image region: which basic colour words describe it, and how much.

    colour_index("gray")                               # index of "grey" in COLOUR_NAMES (None for "stripes")
    share = region_colours(image)                      # float [11]: share of the pixels named each term
    share = region_colours(rgba_image)                 # alpha > 0 marks the region (a patch's mask)

Each pixel gets one of the eleven basic colour terms of English (Berlin & Kay 1969) by
``neuroscribe.evaluation.known_units.name_colours``, the project's one definition of basic colour
names (CIELAB lightness, chroma and hue bins; the colour units of the quality benchmark use it
too).  A region's colours are the shares of its pixels named each term, as Network Dissection
(Bau et al., CVPR 2017) labels colours from pixels.  Used by the offline ConSE backend
(``neuroscribe.scoring.conse``) to score colour concepts on a patch's masked region.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from neuroscribe.evaluation.known_units import COLOUR_UNITS, name_colours

# name_colours' index order: the eight colours with a benchmark unit, then the other basic terms
COLOUR_NAMES = (*COLOUR_UNITS, "grey", "pink", "brown")
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
    """``[11]`` share of the region's pixels named each term: pixels with alpha > 0 for RGBA images, else all.

    A region with no pixels (an all-zero mask) gets zeros: it says nothing about colour.
    """
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
