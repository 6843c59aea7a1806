"""Geometry of one patch against independent computations (PyTorch's interpolation, brute force)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from neuroscribe.patches.geometry import (
    expand_box,
    highest_region,
    otsu_threshold,
    region_bbox,
    square_window,
    upsample_map,
)


def _torch_upsample(m: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    t = torch.from_numpy(m.astype(np.float64))[None, None]
    return F.interpolate(t, size=size, mode="bilinear", align_corners=False)[0, 0].numpy()


def test_upsample_over_whole_image_matches_torch_bilinear():
    m = np.random.default_rng(0).normal(size=(5, 7))
    up, offset = upsample_map(m, (0, 0, 50, 23), (50, 23))
    assert offset == (0, 0)
    np.testing.assert_allclose(up, _torch_upsample(m, (23, 50)), atol=1e-9)


def test_upsample_into_a_crop_box_is_offset_and_clipped():
    m = np.random.default_rng(1).normal(size=(4, 4))
    up, offset = upsample_map(m, (10, 3, 74, 67), (90, 70))
    assert offset == (10, 3)
    np.testing.assert_allclose(up, _torch_upsample(m, (64, 64)), atol=1e-9)
    # a box running past the image: only the image's pixels come back, still on the same grid
    clipped, offset = upsample_map(m, (-8, -8, 56, 56), (40, 50))
    assert offset == (0, 0) and clipped.shape == (50, 40)
    np.testing.assert_allclose(clipped, _torch_upsample(m, (64, 64))[8:58, 8:48], atol=1e-9)


def _brute_force_otsu_split(values: np.ndarray) -> float:
    """The cut between sorted distinct values with the largest between-class variance, from raw values."""
    best, best_cut = -1.0, None
    distinct = np.unique(values)
    for lo, hi in itertools.pairwise(distinct):
        a, b = values[values <= lo], values[values > lo]
        score = a.size * b.size * (a.mean() - b.mean()) ** 2
        if score > best:
            best, best_cut = score, (lo + hi) / 2
    return best_cut


def test_otsu_splits_a_bimodal_sample_like_brute_force():
    rng = np.random.default_rng(2)
    values = np.concatenate([rng.normal(0.1, 0.05, 900), rng.normal(2.0, 0.3, 100)])
    t = otsu_threshold(values)
    np.testing.assert_array_equal(values > t, values > _brute_force_otsu_split(values))
    assert otsu_threshold(np.zeros(10)) == 0.0  # flat: nothing lies above


def test_highest_region_is_the_component_holding_the_peak():
    values = np.zeros((20, 20))
    values[2:12, 2:12] = 1.0  # the larger blob
    values[15:18, 15:18] = 2.0  # the higher one
    values[18, 18] = 1.5  # touches only diagonally: still the same region
    region = highest_region(values, 0.5)
    assert region.sum() == 9 + 1 and region[16, 16] and region[18, 18]
    assert region_bbox(region, (100, 200)) == (115, 215, 119, 219)
    assert highest_region(values, 5.0) is None


@pytest.mark.parametrize(
    ("box", "margin", "min_side", "expected"),
    [
        ((10, 20, 30, 60), 0.1, 0, (8, 16, 32, 64)),  # 10% of 20 and of 40 on each side
        ((0, 0, 30, 60), 0.5, 0, (0, 0, 45, 90)),  # clipped at the image edge
        ((50, 50, 52, 51), 0.0, 10, (46, 45, 56, 56)),  # grown to 10 px around its centre
    ],
)
def test_expand_box(box, margin, min_side, expected):
    assert expand_box(box, margin, min_side, (100, 90)) == expected


def test_square_window_is_centred_and_slides_inside():
    assert square_window((20, 10, 40, 50), (100, 100)) == (10, 10, 50, 50)
    assert square_window((0, 10, 20, 50), (100, 100)) == (0, 10, 40, 50)  # slid right, not past the edge
    # longer than the image is wide: centred, running past both edges
    assert square_window((0, 0, 30, 80), (30, 100)) == (-25, 0, 55, 80)
