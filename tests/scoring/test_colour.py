"""Colour naming over a region: shares of named pixels, masked regions, colour words."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from neuroscribe.scoring.colour import (
    COLOUR_NAMES,
    colour_index,
    name_colours,
    region_colours,
)


@pytest.mark.parametrize(
    "rgb, name",
    [((230, 20, 20), "red"), ((20, 20, 230), "blue"), ((20, 200, 20), "green"), ((250, 250, 60), "yellow"),
     ((250, 250, 250), "white"), ((10, 10, 10), "black"), ((255, 140, 0), "orange"), ((150, 150, 150), "grey")],
)
def test_a_uniform_region_is_all_its_colour(rgb, name):
    share = region_colours(Image.fromarray(np.full((20, 20, 3), rgb, dtype=np.uint8)))
    assert COLOUR_NAMES[int(share.argmax())] == name and share.max() == pytest.approx(1.0)


def test_shares_count_the_named_pixels_of_the_masked_region_only():
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, size=(32, 32, 3), dtype=np.uint8)
    mask = np.zeros((32, 32), dtype=np.uint8)
    mask[4:20, 8:30] = 255
    share = region_colours(Image.fromarray(np.dstack([pixels, mask]), "RGBA"))
    named = name_colours(pixels[mask > 0].astype(float) / 255.0)  # independent count over the region
    expected = np.array([(named == i).mean() for i in range(len(COLOUR_NAMES))])
    np.testing.assert_allclose(share, expected)
    empty = region_colours(Image.fromarray(np.dstack([pixels, np.zeros_like(mask)]), "RGBA"))
    assert not empty.any()


def test_colour_words_are_recognised_with_spellings():
    assert colour_index("Red") == COLOUR_NAMES.index("red")
    assert colour_index("gray") == colour_index("grey") == COLOUR_NAMES.index("grey")
    assert colour_index("stripes") is None and colour_index("navy blue") is None
