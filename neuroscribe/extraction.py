"""Stream a dataset through a model and store per-unit statistics and top-k examples in Zarr.

    plan = prepare_extraction(cfg)                  # index, store arrays, the shards still to do
    extract_shards(cfg, [0, 1, 2])                  # any worker, any order; skips finished shards
    reduce_topk(cfg, "layer4")                      # merge per-shard top-k, keep the maps
    summary = finalize_extraction(cfg)              # index statuses and summary/extract.json

``extract(cfg, execute)`` is the pipeline: ``run_extraction(cfg)`` runs it here under the store's lease,
``flows/extract.py`` as Prefect tasks on Dask.  Store layout: ``neuroscribe.store``.  A shard is done when
its marker ``shards/<n>.json`` carries the run key (a hash of the model, layers, dataset listing and code
version): a store made by a different extraction is never silently reused.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterable
from functools import cache, lru_cache

import numpy as np
import pandas as pd
import torch
from pydantic import BaseModel

from neuroscribe import store as st
from neuroscribe.config import ExtractConfig, ModelSpec
from neuroscribe.data import build_index, listing_key, shard_ranges
from neuroscribe.data.loader import image_batches
from neuroscribe.errors import NeuroscribeError
from neuroscribe.fingerprint import code_version, content_key
from neuroscribe.hooks import capture_outputs
from neuroscribe.lease import config_lease, require_lease
from neuroscribe.models import (
    LayerInfo,
    LoadedModel,
    autocast,
    load_model,
    resolve_device,
    resolve_layers,
    unit_activations,
)
from neuroscribe.stages import Executor, InProcess, Plan, Stage
from neuroscribe.stats import TopK

CODE_MODULES = (
    "neuroscribe.extraction", "neuroscribe.models.layers", "neuroscribe.models.preprocessing",
    "neuroscribe.data.images", "neuroscribe.data.loader",
)


class ExtractionPlan(BaseModel):
    n_images: int
    n_shards: int
    pending: list[int]


class ExtractionSummary(BaseModel):
    store: str
    images: int
    ok: int
    skipped: int
    skipped_reasons: dict[str, int]
    shards: int
    seconds: float
    images_per_second: float
    resumed_shards: int = 0  # shards this run found already done (a rerun resumes)


_BUILD_LOCK = threading.Lock()


@lru_cache(maxsize=4)
def _cached_model(spec: ModelSpec, device: str) -> LoadedModel:
    loaded = load_model(spec)
    # channels_last: measured 1.27x faster than NCHW for EfficientNet-Lite0 on this CPU, and the GPU norm
    loaded.model.to(torch.device(device), memory_format=torch.channels_last)
    return loaded


def cached_model(spec: ModelSpec, device: str) -> LoadedModel:
    """One model per process and device (a Dask worker runs many tasks with it), built under a lock:
    concurrent threads would otherwise build it twice, seeded factories interleaving torch's global draws."""
    with _BUILD_LOCK:
        return _cached_model(spec, device)


def _layer_attrs(info: LayerInfo) -> dict:
    return {"kind": info.kind, "units": info.units, "map_shape": list(info.map_shape or []), "prefix_tokens": info.prefix_tokens}


def _stat_names(info: LayerInfo) -> tuple[str, ...]:
    return ("max", "mean", "cls") if info.kind == "token" and info.prefix_tokens else ("max", "mean")


def _unit_chunk(units: int, limit: int = 256) -> int:
    # the largest divisor of `units` not above `limit`: Zarr shards must be whole multiples of chunks
    return max(d for d in range(1, min(units, limit) + 1) if units % d == 0)


SAMPLES_PER_SHARD = 1024


# A shard keeps the maps of its own top-k images per unit when they take at most this much (per
# layer): the reduce then needs no second pass over the data.  Bigger maps (early layers of large
# models at k=50) are recomputed for the winners only, in ``_collect_maps``.
CANDIDATE_MAP_BYTES = 64 * 2**20


def _create_arrays(store: st.RunStore, infos: list[LayerInfo], n_images: int, shard_size: int, k: int) -> None:
    n_shards = len(shard_ranges(n_images, shard_size))
    nan_floats = {"dtype": "float32", "fill_value": np.nan, "overwrite": True}
    for info in infos:
        group = store.activations(info.name, "a")
        if info.kind != "linear" and info.units * k * int(np.prod(info.map_shape)) * 4 <= CANDIDATE_MAP_BYTES:
            shape = (n_shards, info.units, k, *info.map_shape)
            group.create_array(
                "candidate_ids", shape=shape[:3], chunks=(1, *shape[1:3]), dtype="int64", fill_value=-1,
                overwrite=True,
            )
            group.create_array(
                "candidate_maps", shape=shape, chunks=(1, _unit_chunk(info.units, 64), *shape[2:]),
                shards=(1, *shape[1:]), **nan_floats,
            )
        if info.kind != "linear":
            shape = (n_shards, info.units, min(SAMPLES_PER_SHARD, shard_size * int(np.prod(info.map_shape))))
            group.create_array("samples", shape=shape, chunks=(1, *shape[1:]), **nan_floats)
        for stat in _stat_names(info):
            group.create_array(
                stat, shape=(n_images, info.units), chunks=(shard_size, _unit_chunk(info.units)),
                shards=(shard_size, info.units), **nan_floats,
            )


def validate_extraction(cfg: ExtractConfig) -> tuple[LoadedModel, list[LayerInfo], pd.DataFrame, str, str | None]:
    """Check model, layers, dataset and store before any work: (model, layers, index, key, stored key)."""
    loaded = cached_model(cfg.model, "cpu")
    infos = resolve_layers(loaded, cfg.layers)
    index = build_index(cfg.dataset)
    if index.empty:
        raise NeuroscribeError(f"dataset {cfg.dataset.uri} lists no images; check the path and --limit")
    key = content_key({
        "model": cfg.model,
        "layers": [_layer_attrs(i) | {"name": i.name} for i in infos],
        "listing": listing_key(index),
        "shard_size": cfg.dataset.shard_size,
        "max_image_pixels": cfg.dataset.max_image_pixels,  # decides which images are skipped or drafted
        "code": code_version(*CODE_MODULES),
    })
    store = cfg.run_store
    if cfg.overwrite and store.old_layout():
        previous = "layout 1"  # replaced like a different extraction; without --overwrite, attrs() says how to fix it
    else:
        previous = store.attrs().get("run_key") if store.has_run() else None
    if previous not in (None, key) and not cfg.overwrite:
        raise NeuroscribeError(
            f"store {cfg.store} holds a different extraction (key {previous}, this one is {key}); "
            f"pass a new --store, or --overwrite to replace it"
        )
    return loaded, infos, index, key, previous


def prepare_extraction(cfg: ExtractConfig) -> ExtractionPlan:
    """Check the inputs, create (or reopen) the store, and list the shards still to compute."""
    loaded, infos, index, key, previous = validate_extraction(cfg)
    store = cfg.run_store
    ranges = shard_ranges(len(index), cfg.dataset.shard_size)
    layers = {i.name: _layer_attrs(i) for i in infos}
    if previous not in (None, key):
        require_lease(cfg.store, "--overwrite", cfg.store_options)
        store.remove()  # validate_extraction let a different key through only with overwrite
    if previous != key:
        _create_arrays(store, infos, len(index), cfg.dataset.shard_size, cfg.k)
        store.index().write_parquet(index.assign(status="pending", reason=""))
        store.arrays("a").attrs["neuroscribe"] = {
            "layout": st.LAYOUT_VERSION, "version": code_version(*CODE_MODULES), "run_key": key,
            "model": cfg.model.model_dump(mode="json"), "class_names": loaded.class_names,
            "preprocessing": loaded.preprocessing.model_dump(mode="json"), "layers": layers,
            "dataset": {
                "uri": cfg.dataset.uri, "n_images": len(index), "shard_size": cfg.dataset.shard_size,
                "n_shards": len(ranges), "classes": index.attrs.get("classes", []),
            },
        }
    pending = [s for s in range(len(ranges)) if not _shard_done(cfg, s, key)]
    return ExtractionPlan(n_images=len(index), n_shards=len(ranges), pending=pending)


def _shard_done(cfg: ExtractConfig, shard: int, key: str) -> bool:
    marker = cfg.run_store.shard_marker(shard)
    return marker.exists() and marker.read_json().get("run_key") == key


def forward_batches(
    loaded: LoadedModel, rows: pd.DataFrame, layer_names: list[str], batch_size: int, device: torch.device,
    decode_threads: int = 2, storage_options: dict | None = None, max_image_pixels: int | None = None,
) -> Iterable[tuple[np.ndarray, dict[str, torch.Tensor], list[tuple[int, str]]]]:
    """Yield (row positions, layer outputs, skipped (position, reason)), rows decoded ahead of the model
    (``neuroscribe.data.loader``), one forward per batch for all layers.  Batches hold ``batch_size`` usable
    images whatever was skipped, so a shard's batches (and samples) do not depend on the decode path."""
    def forward(x: torch.Tensor) -> dict[str, torch.Tensor]:
        with loaded.lock, torch.inference_mode(), autocast(device), capture_outputs(loaded.model, layer_names) as outs:
            loaded.model(x)
        return outs

    batches = image_batches(
        rows, loaded.preprocessing.transform(), batch_size, device, workers=decode_threads,
        storage_options=storage_options, max_image_pixels=max_image_pixels,
    )
    pixels, positions, skipped = None, np.empty(0, dtype=np.int64), []
    for batch in batches:
        skipped.extend(batch.skipped)
        if batch.pixels is not None:
            pixels = batch.pixels if pixels is None else torch.cat([pixels, batch.pixels])
            positions = np.concatenate([positions, batch.positions])
        while len(positions) >= batch_size:
            yield positions[:batch_size], forward(pixels[:batch_size]), skipped
            pixels, positions, skipped = pixels[batch_size:], positions[batch_size:], []
    if len(positions):
        yield positions, forward(pixels), skipped
    elif skipped:
        yield positions, {}, skipped


def extract_shards(cfg: ExtractConfig, shard_ids: list[int]) -> list[dict]:
    """Compute and write the given shards; returns one small record per shard.  A permanent storage fault
    (disk full, access denied) is one NeuroscribeError naming the store; written shards keep their markers."""
    with st.storage_errors(cfg.store):
        attrs = cfg.run_store.attrs()
        key = attrs["run_key"]
        device = resolve_device(cfg.runner.device)
        loaded = cached_model(cfg.model, str(device))
        infos = resolve_layers(loaded, list(attrs["layers"]))
        group = {info.name: cfg.run_store.activations(info.name, "r+") for info in infos}
        size = attrs["dataset"]["shard_size"]
        records = []
        read_index = cache(cfg.run_store.index().read_parquet)  # once, only if a shard is to do
        for shard in shard_ids:
            if _shard_done(cfg, shard, key):
                records.append({"shard": shard, "resumed": True})
                continue
            rows = read_index().iloc[shard * size : (shard + 1) * size]
            records.append(_extract_one(cfg, loaded, infos, group, rows, shard, shard * size, key, device))
        return records


def _extract_one(cfg, loaded, infos, group, rows, shard, start, key, device) -> dict:
    began = time.perf_counter()
    n = len(rows)
    buffers = {
        (info.name, stat): np.full((n, info.units), np.nan, dtype=np.float32)
        for info in infos
        for stat in _stat_names(info)
    }
    samplers = {
        info.name: _ShardSampler(info.units, group[info.name]["samples"].shape[2], seed=shard)
        for info in infos
        if info.kind != "linear"
    }
    candidates = {
        info.name: _ShardTopMaps(group[info.name]["candidate_ids"].shape[2], info.units, info.map_shape)
        for info in infos
        if "candidate_ids" in group[info.name]
    }
    skipped = []
    ids = rows["id"].to_numpy()
    for positions, outputs, bad in forward_batches(
        loaded, rows, [i.name for i in infos], cfg.runner.batch_size, device, cfg.runner.decode_threads, cfg.dataset.storage_options,
        cfg.dataset.max_image_pixels,
    ):
        skipped.extend({"id": int(ids[p]), "reason": reason} for p, reason in bad)
        for info in infos:
            if not len(positions):
                break
            maps, cls = unit_activations(outputs[info.name], info)
            maps = maps.float()
            stats = {"max": maps.amax(dim=(2, 3)), "mean": maps.mean(dim=(2, 3)), "cls": cls}
            for stat in _stat_names(info):
                buffers[(info.name, stat)][positions] = stats[stat].float().cpu().numpy()
            if info.name in samplers:
                samplers[info.name].add(maps)
            if info.name in candidates:
                candidates[info.name].add(buffers[(info.name, "max")][positions], ids[positions], maps)
    for (layer, stat), values in buffers.items():
        group[layer][stat][start : start + n] = values
    for layer, sampler in samplers.items():
        group[layer]["samples"][shard] = sampler.result()
    for layer, top in candidates.items():
        group[layer]["candidate_ids"][shard], group[layer]["candidate_maps"][shard] = top.result()
    record = {
        "shard": shard, "run_key": key, "ok": n - len(skipped), "skipped": skipped,
        "seconds": time.perf_counter() - began, "resumed": False,
    }
    # the marker goes last: a shard interrupted before this line is recomputed on rerun
    cfg.run_store.shard_marker(shard).write_json(record)
    return record


class _ShardTopMaps:
    """Each unit's top-k images within one shard with their maps, ranked as ``TopK`` ranks them: every
    image of the dataset's top-k is in its shard's, so the reduce finds each winner's map here."""

    def __init__(self, k: int, units: int, map_shape: tuple[int, int]):
        self.top = TopK(k, units)
        self.maps = np.zeros((units, 0, *map_shape), dtype=np.float32)

    def add(self, values: np.ndarray, image_ids: np.ndarray, maps: torch.Tensor) -> None:
        units = values.shape[1]
        all_ids = np.concatenate([self.top.ids, np.broadcast_to(image_ids, (units, len(image_ids)))], axis=1)
        all_maps = np.concatenate([self.maps, maps.float().permute(1, 0, 2, 3).cpu().numpy()], axis=1)
        self.top.add(values, image_ids)
        # ids are distinct within a unit's row: find each kept id among the old and new candidates
        where = (all_ids[:, None, :] == self.top.ids[:, :, None]).argmax(axis=2)
        self.maps = np.take_along_axis(all_maps, where[:, :, None, None], axis=1)

    def result(self) -> tuple[np.ndarray, np.ndarray]:
        _, ids = self.top.result()
        pad = ((0, 0), (0, ids.shape[1] - self.maps.shape[1]), (0, 0), (0, 0))
        return ids, np.pad(self.maps, pad, constant_values=np.nan)


class _ShardSampler:
    """A uniform random sample (reservoir by random keys) of every unit's map values in one shard; the
    shards' samples, merged by concatenation, estimate per-unit quantiles (``unit_quantiles``)."""

    def __init__(self, units: int, size: int, seed: int):
        self.size = size
        self.rng = np.random.default_rng(seed)
        self.values = np.empty((units, 0), dtype=np.float32)
        self.keys = np.empty((units, 0), dtype=np.float32)

    def add(self, maps: torch.Tensor) -> None:
        values = maps.float().permute(1, 0, 2, 3).reshape(maps.shape[1], -1).cpu().numpy()
        self.values = np.concatenate([self.values, values], axis=1)
        self.keys = np.concatenate([self.keys, self.rng.random(values.shape, dtype=np.float32)], axis=1)
        if self.values.shape[1] > self.size:
            keep = np.argpartition(self.keys, self.size - 1, axis=1)[:, : self.size]
            self.values = np.take_along_axis(self.values, keep, axis=1)
            self.keys = np.take_along_axis(self.keys, keep, axis=1)

    def result(self) -> np.ndarray:
        return np.pad(self.values, ((0, 0), (0, self.size - self.values.shape[1])), constant_values=np.nan)


def unit_quantiles(store: str, layer: str, q: float, storage_options: dict | None = None) -> np.ndarray:
    """Per-unit ``q``-quantile of the layer's map values over the dataset, from the shard samples."""
    group = st.RunStore(store, storage_options).activations(layer)
    if group is None or "samples" not in group:
        raise NeuroscribeError(f"layer {layer!r} has no activation maps in store {store} (linear or not extracted)")
    return np.nanquantile(group["samples"][:], q, axis=(0, 2)).astype(np.float32)  # samples: [shards, units, m]


def reduce_topk(cfg: ExtractConfig, layer: str) -> dict:
    """Merge the per-shard top-k of ``layer`` and store the activation maps of the winners."""
    with st.storage_errors(cfg.store):
        attrs = cfg.run_store.attrs()
        units = attrs["layers"][layer]["units"]
        topk_key = content_key({"run": attrs["run_key"], "k": cfg.k, "layer": layer})
        topk = cfg.run_store.topk(layer)
        if topk is not None and topk.attrs.get("topk_key") == topk_key:
            return {"layer": layer, "cached": True}
        size = attrs["dataset"]["shard_size"]
        group = cfg.run_store.activations(layer)
        top = TopK(cfg.k, units)
        for start, stop in shard_ranges(attrs["dataset"]["n_images"], size):  # a shard at a time
            top.add(group["max"][start:stop], np.arange(start, stop))
        values, ids = top.result()
        sub = cfg.run_store.topk(layer, "a")
        sub.create_array("value", data=values, chunks=values.shape, overwrite=True)
        sub.create_array("image_id", data=ids, chunks=ids.shape, overwrite=True)
        if attrs["layers"][layer]["map_shape"]:
            maps = _candidate_maps(group, ids, size, cfg.k)
            if maps is None:
                maps = _collect_maps(cfg, layer, ids)
            sub.create_array(
                "maps", data=maps, chunks=(1, *maps.shape[1:]), shards=(min(units, 64), *maps.shape[1:]),
                overwrite=True,
            )
        sub.attrs["topk_key"] = topk_key
        return {"layer": layer, "cached": False, "images": len(np.unique(ids[ids >= 0]))}


def _candidate_maps(group, ids: np.ndarray, shard_size: int, k: int) -> np.ndarray | None:
    """The winners' maps from the layer's activation group's stored candidates; None when the shards
    kept none (or fewer than ``k`` per unit: a rerun with a larger k)."""
    if "candidate_ids" not in group or group["candidate_ids"].shape[2] < k:
        return None
    candidate_ids = group["candidate_ids"][:]  # [shards, units, k]
    stored = group["candidate_maps"]
    maps = np.zeros((*ids.shape, *stored.shape[3:]), dtype=np.float32)
    shard_of = np.where(ids >= 0, ids // shard_size, -1)
    for shard in np.unique(shard_of[shard_of >= 0]):
        units, ranks = np.nonzero(shard_of == shard)
        match = candidate_ids[shard, units] == ids[units, ranks][:, None]
        if not match.any(axis=1).all():
            return None
        maps[units, ranks] = stored[shard][units, match.argmax(axis=1)]
    return maps


def _collect_maps(cfg: ExtractConfig, layer: str, ids: np.ndarray) -> np.ndarray:
    """Rerun the model on each top image once and scatter its map to every (unit, rank) it holds."""
    device = resolve_device(cfg.runner.device)
    loaded = cached_model(cfg.model, str(device))
    [info] = resolve_layers(loaded, [layer])
    maps = np.zeros((*ids.shape, *info.map_shape), dtype=np.float32)
    wanted = np.unique(ids[ids >= 0])
    index = cfg.run_store.index().read_parquet().set_index("id", drop=False).loc[wanted]
    for positions, outputs, _ in forward_batches(
        loaded, index, [layer], cfg.runner.batch_size, device, cfg.runner.decode_threads, cfg.dataset.storage_options,
        cfg.dataset.max_image_pixels,
    ):
        if not len(positions):
            continue
        unit_maps = unit_activations(outputs[layer], info)[0].float().cpu().numpy()
        for row, image_id in zip(unit_maps, wanted[positions]):
            units, ranks = np.nonzero(ids == image_id)
            maps[units, ranks] = row[units]
    return maps


def finalize_extraction(cfg: ExtractConfig, wall_seconds: float | None = None, resumed_shards: int = 0) -> ExtractionSummary:
    """Record each image's status in the index and write ``summary/extract.json``."""
    attrs = cfg.run_store.attrs()
    index = cfg.run_store.index().read_parquet()
    status = np.full(len(index), "pending", dtype=object)
    reason = np.full(len(index), "", dtype=object)
    size, seconds = attrs["dataset"]["shard_size"], 0.0
    reasons: Counter[str] = Counter()
    for shard in range(attrs["dataset"]["n_shards"]):
        if not _shard_done(cfg, shard, attrs["run_key"]):
            continue
        record = cfg.run_store.shard_marker(shard).read_json()
        status[shard * size : (shard + 1) * size] = "ok"
        for item in record["skipped"]:
            status[item["id"]], reason[item["id"]] = "skipped", item["reason"]
            reasons[item["reason"].split(" (")[0]] += 1
        seconds += record["seconds"]
    index["status"], index["reason"] = status, reason
    cfg.run_store.index().write_parquet(index)
    ok, skipped = int((index["status"] == "ok").sum()), int((index["status"] == "skipped").sum())
    elapsed = wall_seconds if wall_seconds is not None else seconds
    summary = ExtractionSummary(
        store=cfg.store, images=len(index), ok=ok, skipped=skipped, skipped_reasons=dict(reasons),
        shards=attrs["dataset"]["n_shards"], seconds=round(elapsed, 3),
        images_per_second=round((ok + skipped) / elapsed, 2) if elapsed > 0 else 0.0,
        resumed_shards=resumed_shards,
    )
    cfg.run_store.summary("extract").write_json(summary.model_dump())
    return summary


def _shard_batches(cfg: ExtractConfig, plan: ExtractionPlan) -> Plan:
    size = cfg.runner.shards_per_task
    batches = [plan.pending[i : i + size] for i in range(0, len(plan.pending), size)]
    return Plan(batches, done=plan.n_shards - len(plan.pending))


SHARDS = Stage("extract-shards", extract_shards, plan=_shard_batches, unit="task", gpu=True, retries=2)
TOPK = Stage("reduce-topk", reduce_topk, gpu=True, retries=2)  # the default plan: each of cfg.layers


def extract(cfg: ExtractConfig, execute: Executor = InProcess()) -> ExtractionSummary:
    """The extraction pipeline: shards (any order, finished ones skipped), top-k per layer, summary."""
    began = time.perf_counter()
    plan = prepare_extraction(cfg)
    execute(SHARDS, cfg, plan)
    execute(TOPK, cfg, plan)
    return finalize_extraction(cfg, time.perf_counter() - began, plan.n_shards - len(plan.pending))


def run_extraction(cfg: ExtractConfig, execute: Executor = InProcess()) -> ExtractionSummary:
    """The whole extraction in this process, holding the store's writer lease."""
    with config_lease(cfg):
        return extract(cfg, execute)
