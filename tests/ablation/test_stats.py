"""Confidence intervals against hand computations, and the drop table's counts against per-image outcomes."""

from __future__ import annotations

import math
from statistics import NormalDist

import numpy as np
import pandas as pd
import pytest

from neuroscribe.ablation.accuracy import drop_table
from neuroscribe.ablation.stats import (
    min_support_to_tell,
    paired_drop_interval,
    wilson_interval,
)

Z = NormalDist().inv_cdf(0.975)


def _wilson_by_hand(k: int, n: int) -> tuple[float, float]:
    """Wilson (1927): (k + z^2/2 +- z sqrt(k(n-k)/n + z^2/4)) / (n + z^2)."""
    centre = k + Z * Z / 2
    half = Z * math.sqrt(k * (n - k) / n + Z * Z / 4)
    return (centre - half) / (n + Z * Z), (centre + half) / (n + Z * Z)


def _newcombe_by_hand(a: int, b: int, c: int, d: int) -> tuple[float, float]:
    """Newcombe (1998) method 10, step by step, for p1 - p2 with p1 = (a+b)/n, p2 = (a+c)/n."""
    n = a + b + c + d
    p1, p2 = (a + b) / n, (a + c) / n
    l1, u1 = _wilson_by_hand(a + b, n)
    l2, u2 = _wilson_by_hand(a + c, n)
    product = (a + b) * (c + d) * (a + c) * (b + d)
    cross = a * d - b * c
    if product == 0:
        phi = 0.0
    elif cross > n / 2:
        phi = (cross - n / 2) / math.sqrt(product)
    elif cross >= 0:
        phi = 0.0
    else:
        phi = cross / math.sqrt(product)
    dl = math.sqrt((p1 - l1) ** 2 - 2 * phi * (p1 - l1) * (u2 - p2) + (u2 - p2) ** 2)
    du = math.sqrt((u1 - p1) ** 2 - 2 * phi * (u1 - p1) * (p2 - l2) + (p2 - l2) ** 2)
    return max(-1.0, p1 - p2 - dl), min(1.0, p1 - p2 + du)


@pytest.mark.parametrize("k, n", [(0, 1), (1, 1), (3, 10), (10, 10), (17, 50), (0, 50)])
def test_wilson_matches_the_formula(k, n):
    low, high = wilson_interval([k], [n])
    assert (low[0], high[0]) == pytest.approx(_wilson_by_hand(k, n), abs=1e-9)


def test_wilson_is_nan_without_images_and_keeps_the_shape():
    low, high = wilson_interval(np.array([[1, 0], [2, 0]]), np.array([[2, 0], [4, 0]]))
    assert low.shape == (2, 2) and np.isnan(low[:, 1]).all() and np.isnan(high[:, 1]).all()
    assert low[0, 0] < low[1, 0] and high[0, 0] > high[1, 0]  # 1 of 2 is less certain than 2 of 4


# (both, lost, gained, neither): positive, negative and zero phi, a sign flip, all lost, nothing lost
@pytest.mark.parametrize("table", [(1, 1, 7, 12), (1, 7, 1, 12), (59, 6, 16, 80), (40, 10, 0, 0),
                                   (0, 5, 0, 0), (3, 0, 0, 7), (12, 5, 2, 21), (2, 2, 2, 2)])
def test_paired_drop_interval_matches_newcombe_by_hand(table):
    low, high = paired_drop_interval(*table)
    assert (float(low), float(high)) == pytest.approx(_newcombe_by_hand(*table), abs=1e-9)
    _, lost, gained, _ = table
    drop = (lost - gained) / sum(table)
    assert float(low) <= drop <= float(high)


def test_one_image_cannot_tell_but_two_can():
    low1, _ = paired_drop_interval(0, 1, 0, 0)  # the only image, lost
    low2, _ = paired_drop_interval(0, 2, 0, 0)
    assert float(low1) < 0 < float(low2)
    assert min_support_to_tell() == 2


def test_drop_table_counts_and_intervals_from_per_image_outcomes():
    rng = np.random.default_rng(0)
    rows = []
    outcomes = {}
    for unit in range(3):
        for cls, n in ((0, 1), (1, 7), (2, 30)):
            base = rng.random(n) < 0.8
            ablated = base & (rng.random(n) < 0.6) | (~base & (rng.random(n) < 0.3))
            outcomes[unit, cls] = (base, ablated)
            rows.append({"units": str(unit), "class": cls, "support": n, "baseline_correct": int(base.sum()),
                         "ablated_correct": int(ablated.sum()), "lost": int((base & ~ablated).sum())})
    table = drop_table(pd.DataFrame(rows), ["a", "b", "c"])
    for r in table.to_dict("records"):
        base, ablated = outcomes[int(r["units"]), r["class"]]
        both, lost, gained = int((base & ablated).sum()), int((base & ~ablated).sum()), int((~base & ablated).sum())
        assert (r["lost"], r["gained"]) == (lost, gained)
        assert r["drop"] == pytest.approx(base.mean() - ablated.mean())
        neither = len(base) - both - lost - gained
        assert (r["drop_low"], r["drop_high"]) == pytest.approx(_newcombe_by_hand(both, lost, gained, neither))
        assert (r["baseline_acc_low"], r["baseline_acc_high"]) == pytest.approx(_wilson_by_hand(int(base.sum()), len(base)))
        assert (r["ablated_acc_low"], r["ablated_acc_high"]) == pytest.approx(_wilson_by_hand(int(ablated.sum()), len(base)))
        assert r["resolved"] == (r["drop_low"] > 0 or r["drop_high"] < 0)
