"""A streaming, mergeable per-unit top-k over images.

    top = TopK(k=50, units=512)
    top.add(values, image_ids)        # values [n_images, units] (NaN rows ignored), ids [n_images]
    top.merge(other_top)              # the top-k of the union
    values, ids = top.result()        # [units, k] each, descending; ties broken by lower image id

Padding when fewer than k images were seen: value -inf, id -1.
"""

from __future__ import annotations

import numpy as np


class TopK:
    def __init__(self, k: int, units: int):
        self.k = k
        self.units = units
        self.values = np.full((units, 0), -np.inf, dtype=np.float32)
        self.ids = np.full((units, 0), -1, dtype=np.int64)

    def add(self, values: np.ndarray, image_ids: np.ndarray) -> TopK:
        values = np.asarray(values, dtype=np.float32)
        keep = ~np.isnan(values).any(axis=1)
        vals = values[keep].T  # [units, n]
        ids = np.broadcast_to(np.asarray(image_ids, dtype=np.int64)[keep], vals.shape)
        return self._fold(vals, ids)

    def merge(self, other: TopK) -> TopK:
        if other.units != self.units:
            raise ValueError(f"cannot merge TopK over {other.units} units into one over {self.units}")
        return self._fold(other.values, other.ids)

    def _fold(self, vals: np.ndarray, ids: np.ndarray) -> TopK:
        all_vals = np.concatenate([self.values, vals], axis=1)
        all_ids = np.concatenate([self.ids, ids], axis=1)
        # lexsort: last key is primary -> descending value, then ascending id (padding ids sort last)
        id_key = np.where(all_ids < 0, np.iinfo(np.int64).max, all_ids)
        order = np.lexsort((id_key, -all_vals), axis=1)[:, : self.k]
        self.values = np.take_along_axis(all_vals, order, axis=1)
        self.ids = np.take_along_axis(all_ids, order, axis=1)
        return self

    def result(self) -> tuple[np.ndarray, np.ndarray]:
        pad = ((0, 0), (0, self.k - self.values.shape[1]))  # _fold keeps at most k: the pad is never negative
        return np.pad(self.values, pad, constant_values=-np.inf), np.pad(self.ids, pad, constant_values=-1)
