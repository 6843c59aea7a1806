"""Read stored patches back: one unit as a list of ``Patch``, or a layer in blocks of units.

    for patch in load_unit_patches("runs/r50", "layer4", unit=12):
        patch.crop, patch.mask, patch.box, patch.image_id         # PIL image, bool [S, S], ...
    for block in load_layer_patches("runs/r50", "layer4", block_units=128):
        block.crops[block.image_id >= 0]                          # the scorer's input, unit-major
        block.unit_patches(0)                                     # list[Patch] of block.units[0]

An empty list means the unit has no patch (it never fires: label it "(inactive)").  Patches are
written by ``neuroscribe.patches.cut``; asking for units not computed yet raises.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image

from neuroscribe import store as st
from neuroscribe.errors import NeuroscribeError

NOT_COMPUTED = -2  # image_id of a slot whose block is not cut yet
NO_PATCH = -1  # image_id of an empty slot


@dataclass(frozen=True)
class Patch:
    image_id: int
    rank: int  # position in topk/<layer>
    crop: Image.Image  # square RGB crop of ``window``
    mask: np.ndarray  # bool [S, S]: the activated region in crop coordinates
    box: tuple[float, float, float, float]  # region box + margin in original-image pixels
    window: tuple[float, float, float, float]  # the square the crop shows, original-image pixels
    threshold: float
    fallback: bool  # the map never passes the unit's threshold (cut at its own mid-range)


@dataclass
class PatchBlock:
    """Arrays of consecutive units, as stored (see ``neuroscribe.patches.cut``)."""

    units: np.ndarray
    crops: np.ndarray
    masks: np.ndarray
    boxes: np.ndarray
    windows: np.ndarray
    image_id: np.ndarray
    rank: np.ndarray
    threshold: np.ndarray
    fallback: np.ndarray

    def unit_patches(self, i: int) -> list[Patch]:
        """The patches of ``self.units[i]`` in rank order (empty: inactive)."""
        return [
            Patch(
                image_id=int(self.image_id[i, j]),
                rank=int(self.rank[i, j]),
                crop=Image.fromarray(self.crops[i, j]),
                mask=self.masks[i, j],
                box=tuple(float(v) for v in self.boxes[i, j]),
                window=tuple(float(v) for v in self.windows[i, j]),
                threshold=float(self.threshold[i, j]),
                fallback=bool(self.fallback[i, j]),
            )
            for j in np.flatnonzero(self.image_id[i] >= 0)
        ]


def wanted_units(units: list[int] | None, n_units: int, layer: str) -> np.ndarray:
    """``units`` (default: all) sorted and unique; raises if one lies outside the layer."""
    wanted = np.arange(n_units) if units is None else np.unique(np.asarray(units, dtype=np.int64))
    if wanted.size and (wanted.min() < 0 or wanted.max() >= n_units):
        raise NeuroscribeError(f"units must lie in 0..{n_units - 1} for layer {layer!r}; got {list(units or [])[:5]}...")
    return wanted


def patches_group(store: str, layer: str, storage_options: dict | None = None):
    """The Zarr group ``patches/<layer>``; its attrs hold ``patches_key`` for downstream cache keys."""
    group = st.RunStore(store, storage_options).patches(layer)
    if group is None:
        raise NeuroscribeError(f"store {store} has no patches for layer {layer!r}; run extract_patches (the patches stage) first")
    return group


def _rows(array, units: np.ndarray) -> np.ndarray:
    """``array[units]`` read as contiguous slices (orthogonal indexing of sharded arrays is far slower)."""
    runs = np.split(units, np.flatnonzero(np.diff(units) != 1) + 1)
    return np.concatenate([array[run[0] : run[-1] + 1] for run in runs])


class ByteLRU:
    """Values by key, kept while they hold at most ``max_bytes`` (``nbytes(value)``; least recently
    used dropped first, the newest always kept); safe to share between threads."""

    def __init__(self, max_bytes: int, nbytes: Callable[[Any], int] = lambda value: value.nbytes):
        self.max_bytes, self.nbytes, self._items, self._bytes = max_bytes, nbytes, OrderedDict(), 0
        self._lock = threading.Lock()

    def get(self, key: Hashable, make: Callable[[], Any]) -> Any:
        """The value of ``key``, made by ``make()`` (outside the lock) when it is not kept."""
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
        value = make()
        with self._lock:
            self._items[key] = value
            self._bytes += self.nbytes(value)
            while self._bytes > self.max_bytes and len(self._items) > 1:
                self._bytes -= self.nbytes(self._items.popitem(last=False)[1])
        return value


def read_crops(sub, units: np.ndarray, image_id: np.ndarray, cache: ByteLRU | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(crops, masks) of ``units`` (ascending), whose patches' ``image_id`` rows are given: stored per
    (unit, slot), or for a linear layer gathered from its one crop per image (slots whose id a
    caller sets to -1 stay empty, so it reads only the crops it needs).  ``cache`` keeps the shards
    of those crops across calls (a gallery reads every block's crops from the same few shards)."""
    if "crops" in sub:
        return _rows(sub["crops"], units), _rows(sub["masks"], units)
    s = sub["image_crops"].shape[1]
    crops = np.zeros((*image_id.shape, s, s, 3), np.uint8)
    masks = np.zeros((*image_id.shape, s, s), bool)
    present = image_id >= 0
    wanted = np.unique(image_id[present])
    at = np.searchsorted(wanted, image_id[present])
    crops[present] = _gather(sub["image_crops"], wanted, cache)[at]
    masks[present] = _gather(sub["image_masks"], wanted, cache)[at]
    return crops, masks


def _gather(array, ids: np.ndarray, cache: ByteLRU | None) -> np.ndarray:
    """``array[ids]`` for sorted unique ``ids``, one read per shard touched (zarr's orthogonal
    indexing of sharded arrays is ~5x slower than reading the span)."""
    out = np.empty((len(ids), *array.shape[1:]), array.dtype)
    size = (array.shards or array.chunks)[0]
    for s in np.unique(ids // size):
        sel = np.flatnonzero(ids // size == s)
        # with a cache, the whole shard (kept for later calls); without, only the span of the rows wanted
        lo, hi = (s * size, (s + 1) * size) if cache is not None else (int(ids[sel[0]]), int(ids[sel[-1]]) + 1)
        rows = cache.get((array.path, int(s)), lambda lo=lo, hi=hi: array[lo:hi]) if cache is not None else array[lo:hi]
        out[sel] = rows[ids[sel] - lo]
    return out


def _read(sub, units: np.ndarray, layer: str) -> PatchBlock:
    per_unit = ("boxes", "windows", "image_id", "rank", "threshold", "fallback")  # crops, masks: read_crops
    arrays = {name: _rows(sub[name], units) for name in per_unit}
    pending = units[(arrays["image_id"] == NOT_COMPUTED).any(axis=1)]
    if pending.size:
        raise NeuroscribeError(
            f"patches of layer {layer!r} are not computed yet for units {pending[:5].tolist()}"
            f"{'...' if pending.size > 5 else ''}; rerun extract_patches to finish them"
        )
    arrays["crops"], arrays["masks"] = read_crops(sub, units, arrays["image_id"])
    return PatchBlock(units=units, **arrays)


def load_unit_patches(store: str, layer: str, unit: int, storage_options: dict | None = None) -> list[Patch]:
    sub = patches_group(store, layer, storage_options)
    n = sub["image_id"].shape[0]
    if not 0 <= unit < n:
        raise NeuroscribeError(f"unit {unit} is out of range for layer {layer!r}; pass 0..{n - 1}")
    return _read(sub, np.array([unit]), layer).unit_patches(0)


def load_layer_patches(
    store: str, layer: str, storage_options: dict | None = None, block_units: int = 64,
    units: list[int] | None = None,
) -> Iterator[PatchBlock]:
    """Blocks of ``block_units`` units (all, or ``units`` in ascending order), read lazily."""
    sub = patches_group(store, layer, storage_options)
    wanted = wanted_units(units, sub["image_id"].shape[0], layer)
    for start in range(0, wanted.size, block_units):
        yield _read(sub, wanted[start : start + block_units], layer)
