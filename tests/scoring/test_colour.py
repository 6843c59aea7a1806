"""Colour naming from pixels: prototypes, soft membership, masked regions."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from skimage.color import rgb2lab

from neuroscribe.scoring.colour import BASIC_COLOURS, SIGMA, colour_index, colour_names, region_colours

NAMES = list(BASIC_COLOURS)


def test_each_prototype_is_named_by_its_own_term():
    memberships = colour_names(np.array(list(BASIC_COLOURS.values()), dtype=np.uint8))
    assert [NAMES[i] for i in memberships.argmax(axis=1)] == NAMES
    np.testing.assert_allclose(memberships.sum(axis=1), 1.0)


@pytest.mark.parametrize(
    "rgb, name",
    [((230, 20, 20), "red"), ((20, 20, 230), "blue"), ((20, 200, 20), "green"), ((250, 250, 60), "yellow"),
     ((250, 250, 250), "white"), ((10, 10, 10), "black"), ((255, 140, 0), "orange"), ((150, 150, 150), "gray")],
)
def test_typical_pixels_get_their_basic_name(rgb, name):
    assert NAMES[int(colour_names(np.array([rgb], dtype=np.uint8))[0].argmax())] == name


def test_membership_is_a_softmax_of_lab_distances():
    pixel = np.array([[90, 160, 40]], dtype=np.uint8)
    lab = rgb2lab(pixel[None] / 255.0)[0, 0]
    protos = rgb2lab(np.array(list(BASIC_COLOURS.values()))[None] / 255.0)[0]
    logits = -((protos - lab) ** 2).sum(axis=1) / (2 * SIGMA**2)
    expected = np.exp(logits - logits.max()) / np.exp(logits - logits.max()).sum()
    np.testing.assert_allclose(colour_names(pixel)[0], expected, atol=1e-9)


def test_only_the_masked_region_counts():
    pixels = np.zeros((32, 32, 3), dtype=np.uint8)
    pixels[:, :16] = (220, 20, 20)  # left half red
    pixels[:, 16:] = (20, 40, 220)  # right half blue
    mask = np.zeros((32, 32), dtype=np.uint8)
    mask[:, :16] = 255
    red_region = region_colours(Image.fromarray(np.dstack([pixels, mask]), "RGBA"))
    whole = region_colours(Image.fromarray(pixels))
    assert NAMES[int(red_region.argmax())] == "red" and red_region[NAMES.index("red")] > 0.9
    assert whole[NAMES.index("red")] == pytest.approx(whole[NAMES.index("blue")], abs=0.15)
    empty = region_colours(Image.fromarray(np.dstack([pixels, np.zeros_like(mask)]), "RGBA"))
    assert not empty.any()


def test_colour_words_are_recognised_with_synonyms():
    assert colour_index("Red") == NAMES.index("red")
    assert colour_index("grey") == NAMES.index("gray")
    assert colour_index("stripes") is None and colour_index("navy blue") is None
