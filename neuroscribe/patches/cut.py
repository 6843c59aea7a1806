"""Cut each unit's top-k images into patches once, and store crops and masks in the run.

    cfg = PatchConfig(quantile=0.995, patches_per_unit=20)
    summary = extract_patches("runs/r50", "layer4", cfg)          # resumable, cached by content
    extract_patches("runs/r50", "layer4", cfg, units=[0, 1, 2])    # a slice (a flow's task)

For every (unit, rank) of ``topk/<layer>`` the stored activation map is upsampled onto the
original image through the model's own resize and centre crop (``neuroscribe.patches.geometry``)
and thresholded; the *highest* connected region (holding the map's peak) gives a box grown by
``margin`` (and to at least ``min_side``).  The crop is the square around that box (``fit="context"``:
image context on the short side; ``"pad"``: grey outside the box) resized to ``crop_size``; its
mask is the region in crop coordinates.  Linear units (no map) use the whole image, fully masked.

Thresholds and which images give a patch (documented choices):
- the unit's threshold is its ``quantile`` of all its map values over the dataset
  (``neuroscribe.extraction.unit_quantiles``), or Otsu's threshold of its pooled top-k maps;
- a map is cut at the lower of that threshold and its own mid-range: alone, a threshold the peak
  barely passes leaves a sliver, and on saturating activations (ReLU6: the 0.995 quantile *is*
  the cap) only the lines between saturated cells;
- a flat map (e.g. all zero), or one whose peak is neither positive nor above the threshold,
  gives no patch: the unit does not fire on that image;
- a map that fires (peak > 0) but never passes the threshold is still used (at its mid-range) and
  flagged ``fallback``: lower ranks in a small dataset often sit below a 0.995 quantile, and a
  visibly weaker patch beats a hole;
- a unit with no usable map gets ``image_id`` -1 everywhere: the caller labels it "(inactive)".

Store layout, under ``<store>/patches/<layer>/``: one Zarr chunk per unit inside one shard per
block of ``BLOCK_UNITS`` units.  Work is done and written a whole block at a time, so ``units``
is rounded out to whole blocks: concurrent tasks given disjoint blocks (``unit_blocks``;
``neuroscribe.explanation.unit_blocks`` rounds tasks to them) never write the same object.
Within one call each top image is decoded once (a bounded cache, ``IMAGE_CACHE_BYTES``)::

    crops      uint8   [units, P, S, S, 3]   square crops, S = crop_size
    masks      bool    [units, P, S, S]      the region in crop coordinates
    boxes      float32 [units, P, 4]         region box + margin (left, top, right, bottom), original px
    windows    float32 [units, P, 4]         the square the crop shows (may run past the image)
    image_id   int64   [units, P]            index id; -1 no patch; -2 not computed yet
    rank       int32   [units, P]            position in topk/<layer>
    threshold  float32 [units, P]            threshold applied to the map (upsampled values > it)
    fallback   bool    [units, P]            the map never passes the unit's threshold
    attrs      patches_key, run_key, layer, config, version

A linear layer's patch of an image is the same for every unit, so instead of ``crops``/``masks``
``prepare_patches`` stores it once per image (a row per index id; only top images are written),
and readers gather it by ``image_id`` (``neuroscribe.patches.load``)::

    image_crops    uint8   [images, S, S, 3]   the whole image, squared as ``fit`` says
    image_masks    bool    [images, S, S]      the image's area in the crop
    image_boxes    float32 [images, 4]         (0, 0, width, height)
    image_windows  float32 [images, 4]
    image_kept     bool    [images]            the image could be read

``patches_key`` hashes the run and top-k keys, the layer, the config and this code: a store with
another key is recomputed; with the same key only units still at -2 are computed.
"""

from __future__ import annotations

import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Literal

import numpy as np
from pydantic import Field

from neuroscribe import store as st
from neuroscribe.config import FrozenModel
from neuroscribe.data import ImageSkipped, load_image
from neuroscribe.errors import NeuroscribeError
from neuroscribe.extraction import unit_quantiles
from neuroscribe.fingerprint import code_version, content_key
from neuroscribe.models import Preprocessing
from neuroscribe.patches import geometry
from neuroscribe.patches.load import NO_PATCH, NOT_COMPUTED, ByteLRU, wanted_units

BLOCK_UNITS = 64
CODE_MODULES = ("neuroscribe.patches.cut", "neuroscribe.patches.geometry")


class PatchConfig(FrozenModel):
    """How activation maps become patches (see the module docstring for the rules)."""

    method: Literal["quantile", "otsu"] = Field(
        default="quantile", description="threshold: the unit's dataset quantile, or Otsu on its top-k maps"
    )
    quantile: float = Field(default=0.995, gt=0.0, lt=1.0, description="per-unit activation quantile (Network Dissection)")
    margin: float = Field(default=0.1, ge=0.0, le=2.0, description="box growth on each side, fraction of its width/height")
    min_side: float = Field(
        default=0.1, ge=0.0, le=1.0, description="smallest box side, fraction of the model view's shorter side"
    )
    patches_per_unit: int | None = Field(default=None, ge=1, description="patches kept per unit (default: all top-k)")
    crop_size: int = Field(default=128, ge=16, le=1024, description="side in pixels of the stored square crops")
    fit: Literal["context", "pad"] = Field(
        default="context", description="square the box with image context, or with grey padding"
    )


def patches_key(run_attrs: dict, topk_key: str | None, layer: str, cfg: PatchConfig) -> str:
    return content_key(
        {"run": run_attrs["run_key"], "topk": topk_key, "layer": layer, "config": cfg, "code": code_version(*CODE_MODULES)}
    )


def _layer_inputs(store: str, layer: str, storage_options: dict | None):
    run = st.RunStore(store, storage_options)
    attrs = run.attrs()
    if layer not in attrs.get("layers", {}):
        known = ", ".join(attrs.get("layers", {})) or "none"
        raise NeuroscribeError(f"layer {layer!r} was not extracted into {store} (extracted: {known}); extract it first")
    topk = run.topk(layer)
    if topk is None or "image_id" not in topk:
        raise NeuroscribeError(f"store {store} has no top-k images for layer {layer!r}; finish `neuroscribe extract` first")
    return attrs, run, topk


def prepare_patches(store: str, layer: str, cfg: PatchConfig, storage_options: dict | None = None, **image_options) -> dict[str, Any]:
    """Create ``patches/<layer>`` for this config (or keep it when its key matches); returns its attrs.

    A flow calls this once before fanning ``extract_patches(units=...)`` out.  For a linear layer it
    also cuts every top image's whole-image crop (``image_*``): one writer, so no shard is written
    twice.  ``image_options`` are ``extract_patches``' (image_storage_options, max_image_pixels, threads).
    """
    return _prepare(store, layer, cfg, storage_options, **image_options)[0]


def _prepare(
    store: str, layer: str, cfg: PatchConfig, storage_options: dict | None = None, *,
    image_storage_options: dict | None = None, max_image_pixels: int | None = None, threads: int = 4,
) -> tuple[dict[str, Any], int]:
    """``prepare_patches``, and how many images it decoded."""
    attrs, run, topk = _layer_inputs(store, layer, storage_options)
    key = patches_key(attrs, topk.attrs.get("topk_key"), layer, cfg)
    existing = run.patches(layer)
    if existing is not None and existing.attrs.get("patches_key") == key:
        return dict(existing.attrs), 0
    units, k = topk["image_id"].shape
    p, s = min(cfg.patches_per_unit or k, k), cfg.crop_size
    run.remove_patches(layer)
    sub = run.patches(layer, "a")
    whole = "maps" not in topk
    _create_arrays(sub, _unit_arrays(units, p, s, whole))
    loads = 0
    if whole:
        loads = _write_whole_image_crops(run, sub, topk, attrs, cfg, image_storage_options, max_image_pixels, threads)
    # the key goes last: arrays interrupted before this line are recreated on rerun
    meta = {"patches_key": key, "run_key": attrs["run_key"], "layer": layer}
    sub.attrs.update(meta | {"config": cfg.model_dump(mode="json"), "version": code_version(*CODE_MODULES)})
    return dict(sub.attrs), loads


def _unit_arrays(units: int, p: int, s: int, whole: bool) -> dict[str, tuple[tuple[int, ...], str, Any]]:
    """(shape, dtype, fill) of each per-(unit, slot) array; a linear layer's crops live once per image."""
    crops = {"crops": ((units, p, s, s, 3), "uint8", 0), "masks": ((units, p, s, s), "bool", False)}
    return ({} if whole else crops) | {
        "boxes": ((units, p, 4), "float32", np.nan),
        "windows": ((units, p, 4), "float32", np.nan),
        "image_id": ((units, p), "int64", NOT_COMPUTED),
        "rank": ((units, p), "int32", -1),
        "threshold": ((units, p), "float32", np.nan),
        "fallback": ((units, p), "bool", False),
    }


def _create_arrays(sub, specs: dict[str, tuple[tuple[int, ...], str, Any]]) -> None:
    """One Zarr chunk per row inside one shard per ``BLOCK_UNITS`` rows."""
    for name, (shape, dtype, fill) in specs.items():
        sub.create_array(
            name, shape=shape, chunks=(1, *shape[1:]), shards=(min(BLOCK_UNITS, shape[0]), *shape[1:]),
            dtype=dtype, fill_value=fill, overwrite=True,
        )


def _write_whole_image_crops(run, sub, topk, attrs, cfg, image_options, max_image_pixels, threads) -> int:
    """The ``image_*`` arrays of a linear layer (see the module docstring).  Only top images are
    decoded (each once); rows are written a shard at a time."""
    images = _DecodedImages(_image_paths(run), image_options, 0, max_image_pixels)
    n, s = len(images.paths), cfg.crop_size
    specs = {
        "image_crops": ((n, s, s, 3), "uint8", 0),
        "image_masks": ((n, s, s), "bool", False),
        "image_boxes": ((n, 4), "float32", np.nan),
        "image_windows": ((n, 4), "float32", np.nan),
        "image_kept": ((n,), "bool", False),
    }
    _create_arrays(sub, specs)
    ids = np.unique(topk["image_id"][:])
    ids = ids[ids >= 0]
    prep = Preprocessing(**attrs["preprocessing"])

    def whole_image_patch(image_id) -> dict | None:
        image = images._decode(int(image_id))  # not kept: each image is cut once
        return None if image is None else _one_patch(image, None, None, cfg, prep)

    with ThreadPoolExecutor(threads) as pool:
        for start in range(0, n, BLOCK_UNITS):
            wanted = ids[(ids >= start) & (ids < start + BLOCK_UNITS)]
            if not wanted.size:
                continue
            stop = min(start + BLOCK_UNITS, n)
            out = {name: np.full((stop - start, *shape[1:]), fill, dtype=dtype) for name, (shape, dtype, fill) in specs.items()}
            for image_id, patch in zip(wanted, pool.map(whole_image_patch, wanted)):
                if patch is not None:
                    for name, value in (patch | {"kept": True}).items():
                        if f"image_{name}" in out:
                            out[f"image_{name}"][image_id - start] = value
            _write_block(sub, start, out)
    return images.loads


def _image_paths(run: st.RunStore) -> dict[int, str]:
    index = run.index().read_parquet()
    return dict(zip(index["id"].to_numpy().tolist(), index["path"]))


def _usable(maps: np.ndarray | None, values: np.ndarray, ids: np.ndarray, thresholds: np.ndarray | None) -> np.ndarray:
    """[units, k] bool: which top-k entries can give a patch (the rules in the module docstring);
    ``thresholds`` None: they come from the usable maps themselves (Otsu)."""
    ok = ids >= 0
    if maps is None:
        flat_unit = (values.max(axis=1, keepdims=True) == values.min(axis=1, keepdims=True)) & (values <= 0)
        return ok & ~flat_unit
    peak, low = maps.max(axis=(2, 3)), maps.min(axis=(2, 3))
    ok &= peak > low
    return ok if thresholds is None else ok & ((peak > 0) | (peak > thresholds[:, None]))


def _write_block(sub, start: int, arrays: dict[str, np.ndarray]) -> None:
    # image_id last: it is the block's "done" marker
    for name in sorted(arrays, key=lambda name: name == "image_id"):
        sub[name][start : start + len(arrays[name])] = arrays[name]


def _one_patch(image, unit_map, threshold, cfg: PatchConfig, prep: Preprocessing) -> dict | None:
    width, height = image.size
    crop_box = prep.crop_box(width, height)
    if unit_map is None:
        box, region, offset, fallback, used = (0.0, 0.0, float(width), float(height)), np.ones((height, width), bool), (0, 0), False, np.nan
    else:
        up, offset = geometry.upsample_map(unit_map, crop_box, (width, height))
        if up.size == 0:
            return None
        fallback = not up.max() > threshold
        used = min(float(threshold), float(up.min() + 0.5 * (up.max() - up.min())))
        region = geometry.highest_region(up, used)
        if region is None:
            return None
        min_side = cfg.min_side * min(crop_box[2] - crop_box[0], crop_box[3] - crop_box[1])
        box = geometry.expand_box(geometry.region_bbox(region, offset), cfg.margin, min_side, (width, height))
    window = geometry.square_window(box, (width, height))
    crop, mask = geometry.cut_patch(image, window, region, cfg.crop_size, offset, box if cfg.fit == "pad" else None)
    return {"crops": crop, "masks": mask, "boxes": box, "windows": window, "threshold": used, "fallback": fallback}


# Decoded images kept by one extract_patches call: bounded, yet the top images of a few thousand units fit.
IMAGE_CACHE_BYTES = 1 << 30


class _DecodedImages(ByteLRU):
    """The images of one ``extract_patches`` call, decoded on first use and kept while they fit in
    ``max_bytes`` (least recently used dropped first)."""

    def __init__(self, paths: dict[int, str], image_options: dict | None, max_bytes: int, max_image_pixels: int | None = None):
        super().__init__(max_bytes, lambda image: 0 if image is None else image.width * image.height * 3)
        self.paths, self.image_options = paths, image_options
        self.max_image_pixels = max_image_pixels  # the extraction's limit, so an image is drafted or skipped alike
        self.loads = 0

    def _decode(self, image_id: int):
        """The decoded RGB image (not kept), or None when it is skipped (unreadable, corrupt, ...)."""
        with self._lock:
            self.loads += 1
        try:
            return load_image(self.paths[image_id], self.image_options, max_image_pixels=self.max_image_pixels)
        except ImageSkipped:
            return None

    def image(self, image_id: int):
        return self.get(image_id, lambda: self._decode(image_id))


class _StoredWholeImages:
    """A linear layer's whole-image patches, read back from the ``image_*`` rows ``prepare_patches``
    wrote: no image is decoded again, and no crop is copied per unit."""

    def __init__(self, sub):
        self.kept = sub["image_kept"][:]
        self.boxes, self.windows = sub["image_boxes"][:], sub["image_windows"][:]
        self.loads = 0

    def whole_image_patch(self, image_id: int) -> dict | None:
        if not self.kept[image_id]:
            return None  # unreadable: skipped, as extraction skipped it
        return {"boxes": self.boxes[image_id], "windows": self.windows[image_id], "threshold": np.nan, "fallback": False}


def _image_patches(image_id, jobs, maps, thresholds, cfg, prep, images) -> list[tuple[int, int, dict | None]]:
    """Cut every (unit position, rank) that wants one image, decoding it at most once per call."""
    if maps is None:
        return [(i, r, images.whole_image_patch(image_id)) for i, r in jobs]
    image = images.image(image_id)
    if image is None:
        return [(i, r, None) for i, r in jobs]
    return [(i, r, _one_patch(image, maps[i, r], thresholds[i], cfg, prep)) for i, r in jobs]


def _compute_block(start, stop, topk, thresholds, cfg, prep, p, images, pool) -> dict[str, np.ndarray]:
    """The arrays of units ``start:stop``, as ``_unit_arrays`` lays them out."""
    ids = topk["image_id"][start:stop]
    maps = topk["maps"][start:stop] if "maps" in topk else None
    n = stop - start
    block_thr = None if thresholds is None else thresholds[start:stop].astype(np.float64)
    usable = _usable(maps, topk["value"][start:stop], ids, block_thr)
    if maps is not None:
        if block_thr is None:  # Otsu: each unit's threshold from its own usable maps
            block_thr = np.array([geometry.otsu_threshold(m[u]) if u.any() else np.inf for m, u in zip(maps, usable)])
        usable &= np.isfinite(block_thr)[:, None]
    candidates = [list(np.flatnonzero(row)) for row in usable]
    found: list[dict[int, dict]] = [{} for _ in range(n)]
    while True:
        # the next candidates of every unit still short of p patches, grouped by image
        by_image: dict[int, list[tuple[int, int]]] = defaultdict(list)
        for i, cands in enumerate(candidates):
            want = max(p - len(found[i]), 0)
            take, candidates[i] = cands[:want], cands[want:]
            for r in take:
                by_image[int(ids[i, r])].append((i, int(r)))
        if not by_image:
            break
        # a linear layer's patches are rows already stored: threads would only add their overhead
        results = (map if maps is None else pool.map)(lambda item: _image_patches(item[0], item[1], maps, block_thr, cfg, prep, images), by_image.items())
        for batch in results:
            for i, r, patch in batch:
                if patch is not None:
                    found[i][r] = patch
    specs = _unit_arrays(n, p, cfg.crop_size, whole=maps is None)
    block = {name: np.full(shape, fill, dtype) for name, (shape, dtype, fill) in specs.items()}
    block["image_id"][:] = NO_PATCH  # what is left unfilled has no patch
    for i, patches in enumerate(found):
        for slot, r in enumerate(sorted(patches)[:p]):
            for name, value in (patches[r] | {"image_id": ids[i, r], "rank": r}).items():
                block[name][i, slot] = value
    return block


def unit_blocks(n_units: int) -> list[range]:
    """The blocks of units that are computed and written together (a flow's unit of work)."""
    return [range(b, min(b + BLOCK_UNITS, n_units)) for b in range(0, n_units, BLOCK_UNITS)]


def extract_patches(
    store: str, layer: str, cfg: PatchConfig, storage_options: dict | None = None,
    units: list[int] | None = None, *,
    image_storage_options: dict | None = None, max_image_pixels: int | None = None, threads: int = 4,
) -> dict[str, Any]:
    """Compute and store the patches of ``units`` (default: all, rounded out to whole blocks) of
    ``layer``; skip blocks already done.  ``image_storage_options`` are the fsspec options of the
    images at ``index.parquet``'s paths, ``max_image_pixels`` their decode limit (``DatasetSpec``'s)."""
    began = time.perf_counter()
    meta, prepared_loads = _prepare(
        store, layer, cfg, storage_options,
        image_storage_options=image_storage_options, max_image_pixels=max_image_pixels, threads=threads,
    )
    attrs, run, topk = _layer_inputs(store, layer, storage_options)
    sub = run.patches(layer, "r+")
    n_units, p = sub["image_id"].shape
    wanted = wanted_units(units, n_units, layer)
    done_ids = sub["image_id"][:]
    blocks = [b for b in unit_blocks(n_units) if np.isin(wanted, b).any()]
    todo = [b for b in blocks if (done_ids[b.start : b.stop] == NOT_COMPUTED).any()]
    summary: dict[str, Any] = {"layer": layer, "key": meta["patches_key"], "units": sum(map(len, todo)), "cached": not todo}
    made = 0
    if todo:
        # the dataset quantile per unit; None where each block's maps give it (Otsu) or none apply
        quantiles = "maps" in topk and cfg.method == "quantile"
        thresholds = unit_quantiles(store, layer, cfg.quantile, storage_options) if quantiles else None
        prep = Preprocessing(**attrs["preprocessing"])
        if "maps" in topk:
            images = _DecodedImages(_image_paths(run), image_storage_options, IMAGE_CACHE_BYTES, max_image_pixels)
        else:
            images = _StoredWholeImages(sub)
        with ThreadPoolExecutor(threads) as pool:
            for b in todo:
                block = _compute_block(b.start, b.stop, topk, thresholds, cfg, prep, p, images, pool)
                _write_block(sub, b.start, block)
                made += int((block["image_id"] >= 0).sum())
        summary["images_loaded"] = prepared_loads + images.loads
    final = sub["image_id"][:][wanted]
    seconds = time.perf_counter() - began
    return summary | {
        "patches": int((final >= 0).sum()),
        "inactive": int((final == NO_PATCH).all(axis=1).sum()),
        "fallback": int(sub["fallback"][:][wanted].sum()),
        "seconds": round(seconds, 3),
        "patches_per_second": round(made / seconds, 1) if made else None,
    }
