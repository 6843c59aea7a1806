"""The mergeable TopK against a sort of all values at once: merge order, tie-breaking, padding, skipped images."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from neuroscribe.stats.topk import TopK


def reference_topk(values: np.ndarray, ids: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Per unit, the k largest values of all images at once, ties to the lower id, padded with -inf / -1.

    Two stable argsorts: by id first, then by descending value, so equal values keep id order.
    """
    kept = ~np.isnan(values).any(axis=1)
    values, ids = values[kept], ids[kept]
    units = values.shape[1]
    out_values = np.full((units, k), -np.inf, dtype=np.float32)
    out_ids = np.full((units, k), -1, dtype=np.int64)
    by_id = np.argsort(ids, kind="stable")
    for unit in range(units):
        column = values[by_id, unit]
        order = by_id[np.argsort(-column, kind="stable")][:k]
        out_values[unit, : len(order)] = values[order, unit]
        out_ids[unit, : len(order)] = ids[order]
    return out_values, out_ids


def batches(seed: int, n_batches: int = 4, units: int = 6) -> list[tuple[np.ndarray, np.ndarray]]:
    """Disjoint image batches whose values repeat often (small integers), so ties are everywhere."""
    rng = np.random.default_rng(seed)
    sizes = rng.integers(1, 9, n_batches)
    ids = rng.permutation(1000)[: sizes.sum()]
    out = []
    for chunk in np.split(ids, np.cumsum(sizes)[:-1]):
        values = rng.integers(0, 4, (len(chunk), units)).astype(np.float32)
        out.append((values, chunk))
    return out


def topk_of(parts, k: int, units: int = 6) -> TopK:
    top = TopK(k, units)
    for values, ids in parts:
        top.add(values, ids)
    return top


def assert_same(a: TopK, b: TopK) -> None:
    (va, ia), (vb, ib) = a.result(), b.result()
    np.testing.assert_array_equal(va, vb)
    np.testing.assert_array_equal(ia, ib)


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("k", [1, 3, 40])
def test_merging_in_any_order_and_grouping_equals_one_sort_of_everything(seed, k):
    parts = batches(seed)
    expected = reference_topk(np.concatenate([v for v, _ in parts]), np.concatenate([i for _, i in parts]), k)

    for order in itertools.permutations(range(len(parts))):  # commutative
        merged = TopK(k, 6)
        for i in order:
            merged.merge(topk_of([parts[i]], k))
        np.testing.assert_array_equal(merged.result()[0], expected[0])
        np.testing.assert_array_equal(merged.result()[1], expected[1])

    a, b, c = topk_of(parts[:1], k), topk_of(parts[1:2], k), topk_of(parts[2:], k)
    left = topk_of(parts[:1], k).merge(b).merge(c)  # (a + b) + c
    right = a.merge(topk_of(parts[1:2], k).merge(topk_of(parts[2:], k)))  # a + (b + c)
    assert_same(left, right)
    assert_same(left, topk_of(parts, k))  # streaming adds agree with merges


def test_ties_go_to_the_lower_image_id_whichever_batch_brought_it():
    values = np.full((4, 2), 7.0, dtype=np.float32)
    values[:, 1] = [1.0, 9.0, 9.0, 1.0]
    top = TopK(k=2, units=2).add(values[:2], np.array([30, 12])).merge(TopK(2, 2).add(values[2:], np.array([5, 20])))
    result_values, result_ids = top.result()
    np.testing.assert_array_equal(result_ids, [[5, 12], [5, 12]])  # unit 0: all tied; unit 1: 9.0 at ids 12 and 5
    np.testing.assert_array_equal(result_values, [[7.0, 7.0], [9.0, 9.0]])


def test_fewer_images_than_k_are_padded_with_minus_inf_and_minus_one():
    values = np.array([[0.5, -2.0], [1.5, -1.0], [np.nan, 3.0]], dtype=np.float32)  # the NaN row is a skipped image
    result_values, result_ids = TopK(k=4, units=2).add(values, np.array([10, 11, 12])).result()
    np.testing.assert_array_equal(result_values, [[1.5, 0.5, -np.inf, -np.inf], [-1.0, -2.0, -np.inf, -np.inf]])
    np.testing.assert_array_equal(result_ids, [[11, 10, -1, -1], [11, 10, -1, -1]])
    assert result_values.dtype == np.float32 and result_ids.dtype == np.int64

    empty_values, empty_ids = TopK(k=3, units=2).result()
    assert np.isneginf(empty_values).all() and (empty_ids == -1).all() and empty_ids.shape == (2, 3)


def test_merging_a_topk_over_other_units_is_refused():
    with pytest.raises(ValueError, match="3 units into one over 2"):
        TopK(2, 2).merge(TopK(2, 3))
