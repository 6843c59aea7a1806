"""Colour naming from pixels: which basic colour words describe an image region, and how much.

    colour_index("grey")                               # 3: the basic term "gray" (None for "stripes")
    names = colour_names(rgb_pixels)                   # float [n, 11]: per pixel, soft membership per term
    share = region_colours(image)                      # float [11]: mean membership over the region
    share = region_colours(rgba_image)                 # alpha > 0 marks the region (a patch's mask)

The model is a nearest-prototype classifier in CIELAB, the colour space whose Euclidean distance
(Delta E) approximates perceived difference.  Each of the eleven basic colour terms of English
(Berlin & Kay 1969) has one focal sRGB prototype; a pixel's membership in a term is a softmax over
terms of ``-DeltaE^2 / (2 * SIGMA^2)``, so a pixel halfway between two prototypes belongs half to
each.  Network Dissection (Bau et al., CVPR 2017) likewise names colours from pixels, with the
eleven terms of van de Weijer et al.'s colour-naming model.  Used by the offline ConSE backend
(``neuroscribe.scoring.conse``) to score colour concepts on a patch's masked region; this module
is the one definition of basic-colour membership in the project.
"""

from __future__ import annotations

import numpy as np
from PIL import Image
from skimage.color import rgb2lab

# focal colours of the basic terms, sRGB 0-255 (Berlin & Kay's foci, as rendered on sRGB displays)
BASIC_COLOURS: dict[str, tuple[int, int, int]] = {
    "black": (0, 0, 0),
    "white": (255, 255, 255),
    "red": (200, 25, 30),
    "gray": (128, 128, 128),
    "green": (40, 150, 50),
    "blue": (30, 70, 200),
    "yellow": (245, 220, 30),
    "orange": (245, 130, 20),
    "brown": (120, 70, 30),
    "pink": (245, 150, 185),
    "purple": (120, 40, 150),
}
# spellings and near-synonyms that name the same basic term
COLOUR_SYNONYMS = {"grey": "gray", "violet": "purple"}
# Delta E at which membership falls off: about the distance between neighbouring prototypes' halves
SIGMA = 12.0
# pixels per region at most: the mean membership of a random subsample is exact to ~1%
MAX_PIXELS = 4096


def colour_index(concept: str) -> int | None:
    """Position of ``concept`` among ``BASIC_COLOURS`` when it names a basic colour, else None."""
    word = concept.strip().lower()
    word = COLOUR_SYNONYMS.get(word, word)
    names = list(BASIC_COLOURS)
    return names.index(word) if word in names else None


def _prototypes_lab() -> np.ndarray:
    rgb = np.array(list(BASIC_COLOURS.values()), dtype=np.float64)[None] / 255.0
    return rgb2lab(rgb)[0]


def colour_names(pixels: np.ndarray) -> np.ndarray:
    """``[n, 11]`` soft membership of each sRGB pixel (uint8 ``[n, 3]``) in each basic term; rows sum to 1."""
    rgb = np.asarray(pixels, dtype=np.float64).reshape(-1, 3) / 255.0
    if not len(rgb):
        return np.zeros((0, len(BASIC_COLOURS)))
    lab = rgb2lab(rgb[None])[0]
    dist2 = ((lab[:, None, :] - _prototypes_lab()[None]) ** 2).sum(-1)
    logits = -dist2 / (2 * SIGMA**2)
    logits -= logits.max(axis=1, keepdims=True)
    weights = np.exp(logits)
    return weights / weights.sum(axis=1, keepdims=True)


def region_colours(image: Image.Image) -> np.ndarray:
    """``[11]`` mean membership over the region: pixels with alpha > 0 for RGBA images, else all.

    A region with no pixels (an all-zero mask) gets zeros: it says nothing about colour.
    """
    array = np.asarray(image.convert("RGBA") if image.mode not in ("RGB", "RGBA") else image)
    pixels = array[..., :3].reshape(-1, 3)
    if array.shape[-1] == 4:
        pixels = pixels[array[..., 3].reshape(-1) > 0]
    if len(pixels) > MAX_PIXELS:
        # a fixed stride, not a random draw: the same region always gives the same numbers
        pixels = pixels[:: int(np.ceil(len(pixels) / MAX_PIXELS))]
    if not len(pixels):
        return np.zeros(len(BASIC_COLOURS))
    return colour_names(pixels).mean(axis=0)
