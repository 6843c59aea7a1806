"""Explanations: embed each unit's patches, score them against the vocabulary, write per-layer tables.

    cfg = ExplainConfig(model=ModelSpec(name="efficientnet_lite0"), layers=("classifier",),
                        dataset=DatasetSpec(uri="images/"), store="runs/demo",
                        backend=ConseSpec())
    embed_unit_block(cfg, "classifier", units=range(0, 256))     # a flow task; GPU when present
    frame = score_layer(cfg, "classifier", vocabulary_uri)        # explanations/<layer>.parquet|csv

Stages and what each is keyed on (a rerun recomputes only stages whose key changed):
- extraction and patches: see ``neuroscribe.extraction`` and ``neuroscribe.patches``;
- patch embeddings ``embeddings/<layer>/<key>/<first unit>.npz``: the patches key, the backend's
  fingerprint and what the rule embeds (seed: patches; softwpmi: whole top images); each distinct
  crop or top image is embedded once per run (``embed_distinct``);
- concept embeddings: backend fingerprint, vocabulary hash, templates (``neuroscribe.scoring``);
- the table ``explanations/<layer>.parquet``: all of the above plus the rule; its key is in
  ``explanations/<layer>.json``.  A new vocabulary therefore reruns only concept embedding and scoring.
"""

from __future__ import annotations

import hashlib
import io
import json
import threading
from collections import Counter
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from contextlib import suppress
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
import pandas as pd
from PIL import Image
from pydantic import BaseModel, Field, model_validator

from neuroscribe import store as st
from neuroscribe.config import ExtractConfig, FrozenModel, StoreConfig, deep_merge
from neuroscribe.data import ImageSkipped, load_image
from neuroscribe.errors import NeuroscribeError
from neuroscribe.extraction import extract, validate_extraction
from neuroscribe.fingerprint import code_version, content_key
from neuroscribe.gallery import render_gallery
from neuroscribe.lease import config_lease
from neuroscribe.patches import cut as patch_cut
from neuroscribe.patches.cut import PatchConfig, extract_patches, prepare_patches
from neuroscribe.patches.load import load_layer_patches, patches_group
from neuroscribe.scoring.backend import BackendSpec, OpenClipSpec
from neuroscribe.scoring.concepts import concept_embeddings
from neuroscribe.scoring.factory import make_backend
from neuroscribe.scoring.rules import INACTIVE, UNCERTAIN_BELOW, RuleSpec, explain_units
from neuroscribe.stages import Executor, InProcess, Stage
from neuroscribe.vocabulary.build import build_vocabulary
from neuroscribe.vocabulary.config import VocabularyConfig, VocabularySpec

CODE_MODULES = (
    "neuroscribe.explanation", "neuroscribe.scoring.rules", "neuroscribe.scoring.seed_rule", "neuroscribe.scoring.softwpmi", "neuroscribe.scoring.percentile",
)


class ExplainConfig(FrozenModel):
    """Everything one explanation run needs: the flow's single parameter.

    ``extract`` is the run's extraction (model, layers, dataset, store, k, runner, ...); the flat form
    (``ExplainConfig(model=..., layers=..., store=...)``, a YAML file, CLI overrides) is accepted too.
    """

    extract: ExtractConfig
    vocabulary: VocabularySpec = VocabularySpec()
    vocabulary_uri: str | None = Field(default=None, description="use this prebuilt vocabulary artifact instead")
    backend: BackendSpec = OpenClipSpec()
    rule: RuleSpec = RuleSpec()
    patches: PatchConfig = PatchConfig()
    units_per_task: int = Field(default=256, ge=1, description="units per patch/embedding task (rounded up to whole 64-unit patch shards)")
    gallery_patches: int = Field(default=6, ge=1, description="patches shown per unit in the gallery")

    @model_validator(mode="before")
    @classmethod
    def _lift_flat_fields(cls, data: Any) -> Any:
        """The flat form: ExtractConfig's fields go into ``extract``; ``llm``, ``filter``, ``places365_file``,
        ``vocabulary_sources`` and ``vocabulary_classes`` (pre-``vocabulary`` names) into ``vocabulary``;
        nested dicts merge key by key, as ``load_config`` merges overrides."""
        if not isinstance(data, dict):
            return data
        vocabulary = {"vocabulary_sources": "sources", "vocabulary_classes": "classes"} | {k: k for k in ("llm", "filter", "places365_file")}
        for part, names in {"extract": {k: k for k in ExtractConfig.model_fields}, "vocabulary": vocabulary}.items():
            flat, given = {names[k]: v for k, v in data.items() if k in names}, data.get(part) or {}
            if not flat or not isinstance(given, dict | BaseModel):
                continue  # nothing to lift, or not a config: pydantic's own error names it
            merged = dict(given)  # of a config object: its field objects, so an in-memory model rides along
            for name, value in flat.items():
                both_dicts = isinstance(value, dict) and isinstance(merged.get(name), dict)
                merged[name] = deep_merge(merged[name], value) if both_dicts else value
            data = {k: v for k, v in data.items() if k not in names} | {part: merged}
        return data

    def vocabulary_config(self) -> VocabularyConfig:
        return VocabularyConfig(**dict(self.vocabulary), **{name: getattr(self.extract, name) for name in StoreConfig.model_fields})

    @property
    def run_store(self) -> st.RunStore:
        return self.extract.run_store


_BACKEND_LOCK = threading.Lock()
EMBED_BATCH = 256  # inputs decoded and embedded together (and saved as one file): bounds memory per task
DECODE_THREADS = 4  # threads decoding the next batch of top images while the backend runs


@lru_cache(maxsize=2)
def _cached_backend(spec: BackendSpec):
    return make_backend(spec)


def cached_backend(spec: BackendSpec):
    """One backend per process (weights load once per Dask worker), built under a lock."""
    with _BACKEND_LOCK:
        return _cached_backend(spec)


def embeds_whole_images(rule: RuleSpec) -> bool:
    # CLIP-Dissect's rule scores a unit's top images; the seed rule scores its patches
    return rule.name == "softwpmi"


def embeds_top_images(cfg: ExplainConfig, layer: str) -> bool:
    """Whether ``layer``'s units are embedded from their original top images: for the softwpmi rule,
    and for linear layers, whose patch *is* the whole image - the backend then reads it at its own
    input size, not through the stored crop (a 128 px crop costs ConSE's classifier ~6 points)."""
    kind = cfg.run_store.attrs().get("layers", {}).get(layer, {}).get("kind")
    return embeds_whole_images(cfg.rule) or kind == "linear"


def embedding_key(cfg: ExplainConfig, layer: str, backend_fingerprint: str) -> str:
    patches_key = patches_group(cfg.extract.store, layer, cfg.extract.store_options).attrs["patches_key"]
    return content_key(
        {"patches": patches_key, "backend": backend_fingerprint, "images": embeds_top_images(cfg, layer), "code": code_version("neuroscribe.explanation")}
    )


def unit_blocks(n_units: int, size: int) -> list[list[int]]:
    """The units of each task: ``size`` rounded up to whole patch shards (``BLOCK_UNITS`` units), so
    that every shard of ``patches/<layer>`` is cut and written by exactly one task."""
    size = -(-size // patch_cut.BLOCK_UNITS) * patch_cut.BLOCK_UNITS
    return [list(range(s, min(s + size, n_units))) for s in range(0, n_units, size)]


def _content_digest(image) -> bytes:
    pixels = np.ascontiguousarray(np.asarray(image))
    return hashlib.blake2b(pixels.tobytes() + repr(pixels.shape).encode(), digest_size=16).digest()


def _image_digest(run_key: str, image_id: int) -> bytes:
    # the run key pins the dataset index (paths and order), so an image id names one image's content
    return hashlib.blake2b(f"{run_key}:image:{image_id}".encode(), digest_size=16).digest()


def _known_vectors(cfg: ExplainConfig, backend_fingerprint: str) -> dict[bytes, np.ndarray]:
    """Every crop vector this run has stored for the backend, by content digest."""
    folder = cfg.run_store.crop_embeddings(backend_fingerprint)
    known: dict[bytes, np.ndarray] = {}
    for name in folder.list():
        if name.endswith(".npz"):
            with np.load(io.BytesIO(folder.folder(name).read_bytes())) as stored:
                known.update(zip((d.tobytes() for d in stored["digests"]), stored["vectors"]))
    return known


@dataclass(frozen=True)
class EmbeddingInputs:
    """What one block of units embeds: a digest per input (its cache key), ``load(i)`` giving input i
    (an RGBA crop array or a PIL image; None when it cannot be read), and for each (unit, slot) its
    input index or -1."""

    digests: list[bytes]
    load: Callable[[int], Any]
    slots: np.ndarray


def embed_distinct(cfg: ExplainConfig, backend, inputs: EmbeddingInputs) -> tuple[np.ndarray, int]:
    """Embed each distinct input once per run: (vectors, how many were embedded now).

    Vectors are kept by digest in ``embeddings/crops/<backend fingerprint>/<key>.npz``, shared by all
    blocks and layers; only new digests are loaded, ``EMBED_BATCH`` at a time (a rerun keeps the
    batches saved before an interruption).  Unreadable inputs get NaN rows (dropped by the scorer)."""
    digests = inputs.digests
    known = _known_vectors(cfg, backend.fingerprint) if digests else {}
    first = {d: i for i, d in reversed([*enumerate(digests)]) if d not in known}  # new digests' first inputs
    todo, embedded = sorted(first.items(), key=lambda item: item[1]), 0
    batches = [todo[start : start + EMBED_BATCH] for start in range(0, len(todo), EMBED_BATCH)]
    with ThreadPoolExecutor(DECODE_THREADS) as pool:
        # threads decode the next batch while the backend embeds this one (PIL releases the GIL):
        # at most two batches of decoded inputs are in memory, whatever the block's size
        ahead = [pool.submit(inputs.load, i) for _, i in batches[0]] if batches else []
        for batch, following in zip(batches, [*batches[1:], []]):
            loaded = {d: future.result() for (d, _), future in zip(batch, ahead)}
            ahead = [pool.submit(inputs.load, i) for _, i in following]
            embedded += _embed_batch(cfg, backend, loaded, known)
    unreadable = np.full(backend.dim, np.nan, np.float32)
    return np.array([known.get(d, unreadable) for d in digests], np.float32).reshape(-1, backend.dim), embedded


def _embed_batch(cfg: ExplainConfig, backend, loaded: dict[bytes, Any], known: dict[bytes, np.ndarray]) -> int:
    """Embed one batch of loaded inputs (None: unreadable), save it under the crop cache and add it to ``known``."""
    readable = [d for d, item in loaded.items() if item is not None]
    if not readable:
        return 0
    batch = [loaded[d] if isinstance(loaded[d], Image.Image) else Image.fromarray(loaded[d]) for d in readable]
    vectors = np.asarray(backend.embed_images(batch), dtype=np.float32)
    buf = io.BytesIO()
    np.savez(buf, digests=np.frombuffer(b"".join(readable), np.uint8).reshape(len(readable), -1), vectors=vectors)
    name = content_key(sorted(d.hex() for d in readable))
    cfg.run_store.crop_embeddings(backend.fingerprint).folder(f"{name}.npz").write_bytes(buf.getvalue())
    known.update(zip(readable, vectors))
    return len(readable)


def embedding_inputs(cfg: ExplainConfig, layer: str, units: list[int]) -> EmbeddingInputs:
    """The inputs to embed for ``units``: RGBA crops (patches), or original top images for units
    embedded whole (``embeds_top_images``)."""
    if not embeds_top_images(cfg, layer):
        [block] = list(load_layer_patches(cfg.extract.store, layer, cfg.extract.store_options, block_units=len(units), units=units))
        present = block.image_id >= 0
        slots = np.where(present, np.cumsum(present).reshape(present.shape) - 1, -1)  # row-major, as crops
        # the mask rides along as alpha, for backends that read the region (ConSE's colours)
        pairs = zip(block.crops[present], block.masks[present])
        crops = [np.dstack([crop, mask.astype(np.uint8) * 255]) for crop, mask in pairs]
        return EmbeddingInputs([_content_digest(c) for c in crops], crops.__getitem__, slots)
    # the patches' images, slot for slot (what a linear layer embeds)
    ids = patches_group(cfg.extract.store, layer, cfg.extract.store_options)["image_id"][units[0] : units[-1] + 1]
    if embeds_whole_images(cfg.rule):
        # softwpmi scores every top image of an active unit, in top-k order
        top = cfg.run_store.topk(layer)["image_id"][units[0] : units[-1] + 1]
        ids = np.where((ids >= 0).any(axis=1, keepdims=True), top, -1)
    wanted = np.unique(ids[ids >= 0]).tolist()
    slots = np.where(ids >= 0, np.searchsorted(wanted, ids), -1)
    run_key = cfg.run_store.attrs()["run_key"]
    index = cfg.run_store.index().read_parquet().set_index("id")

    def load(n: int):
        with suppress(ImageSkipped):  # an unreadable image loads as None
            return load_image(index.at[wanted[n], "path"], cfg.extract.dataset.storage_options, max_image_pixels=cfg.extract.dataset.max_image_pixels)

    return EmbeddingInputs([_image_digest(run_key, i) for i in wanted], load, slots)


def _image_reading(cfg: ExplainConfig) -> dict:
    # images are read as extraction read them: the dataset's fsspec options and pixel limit
    return {"image_storage_options": cfg.extract.dataset.storage_options, "max_image_pixels": cfg.extract.dataset.max_image_pixels}


def prepare_layer_patches(cfg: ExplainConfig, layer: str) -> str:
    """Create ``patches/<layer>`` once, before tasks cut its blocks (a linear layer's whole-image crops
    are cut here); returns the patches key."""
    return prepare_patches(cfg.extract.store, layer, cfg.patches, cfg.extract.store_options, **_image_reading(cfg))["patches_key"]


def cut_patches(cfg: ExplainConfig, layer: str, units: list[int] | None = None) -> dict:
    """The patches stage for ``units`` (default: all) of ``layer``, reading images as extraction did."""
    return extract_patches(cfg.extract.store, layer, cfg.patches, cfg.extract.store_options, units=units, **_image_reading(cfg))


def embed_unit_block(cfg: ExplainConfig, layer: str, units: Iterable[int]) -> dict:
    """Embed what the rule needs for ``units``; skipped when the block's content-keyed file exists."""
    units = list(units)
    require_extracted(cfg, layer)
    backend = cached_backend(cfg.backend)
    file = cfg.run_store.embeddings(layer, embedding_key(cfg, layer, backend.fingerprint), units)
    summary = {"layer": layer, "first_unit": units[0], "units": len(units)}
    if file.exists():
        return summary | {"cached": True}
    inputs = embedding_inputs(cfg, layer, units)
    vectors, embedded = embed_distinct(cfg, backend, inputs)
    buf = io.BytesIO()
    # each input's vector once, and its row per (unit, slot): the expanded array is ~k times larger
    np.savez(buf, vectors=vectors, slots=inputs.slots)
    file.write_bytes(buf.getvalue())
    return summary | {"cached": False, "inputs": len(inputs.digests), "embedded": embedded}


def stored_vectors(cfg: ExplainConfig, layer: str, key: str | None = None) -> np.ndarray:
    """``[units, slots, d]``: every block file of ``layer`` under the embedding ``key`` (default: the
    run's config), slots as stored; raises if a block is not embedded yet."""
    key = key or embedding_key(cfg, layer, cached_backend(cfg.backend).fingerprint)
    blocks = []
    for block in unit_blocks(n_units(cfg, layer), cfg.units_per_task):
        file = cfg.run_store.embeddings(layer, key, block)
        if not file.exists():
            raise NeuroscribeError(
                f"units {block[0]}..{block[-1]} of {layer!r} have no {cfg.rule.name} embeddings in {cfg.extract.store} yet; "
                "rerun `neuroscribe explain` (or evaluation's embedding step) with the run's config"
            )
        with np.load(io.BytesIO(file.read_bytes())) as stored:
            # one gather: slot -1 picks the NaN row appended last
            blocks.append(np.pad(stored["vectors"], ((0, 1), (0, 0)), constant_values=np.nan)[stored["slots"]])
    return np.concatenate(blocks)


def _load_embeddings(cfg: ExplainConfig, layer: str, key: str) -> list[np.ndarray]:
    """Each unit's vectors in slot order, empty slots dropped (the scorer's input)."""
    return [rows[~np.isnan(rows).any(axis=1)] for rows in stored_vectors(cfg, layer, key)]


def table_key(cfg: ExplainConfig, embeddings_key: str, vocabulary_hash: str) -> str:
    return content_key(
        {
            "embeddings": embeddings_key,
            "vocabulary": vocabulary_hash,
            "templates": cfg.backend.resolved_templates,
            "rule": cfg.rule,
            "code": code_version(*CODE_MODULES),
        }
    )


def require_extracted(cfg: ExplainConfig, layer: str) -> None:
    extracted = cfg.run_store.attrs().get("layers", {})
    if layer not in extracted:
        raise NeuroscribeError(
            f"layer {layer!r} was not extracted into {cfg.extract.store} (extracted: {', '.join(extracted) or 'none'}); "
            f"add it to --layers and rerun"
        )


def score_layer(cfg: ExplainConfig, layer: str, vocabulary_uri: str) -> pd.DataFrame:
    """Score every unit of ``layer`` against the vocabulary and write ``explanations/<layer>``."""
    from neuroscribe.vocabulary import load_vocabulary

    require_extracted(cfg, layer)
    vocabulary = load_vocabulary(vocabulary_uri, cfg.extract.store_options)
    if not vocabulary.concepts:
        raise NeuroscribeError(f"vocabulary {vocabulary_uri} is empty; build it with other sources (see `neuroscribe vocabulary --help`)")
    backend = cached_backend(cfg.backend)
    embeddings_key = embedding_key(cfg, layer, backend.fingerprint)
    key = table_key(cfg, embeddings_key, vocabulary.content_hash)
    table = cfg.run_store.table(layer)
    manifest = table.with_suffix(".json")
    if manifest.exists() and manifest.read_json().get("key") == key:
        return table.read_parquet()
    embeddings = _load_embeddings(cfg, layer, embeddings_key)
    concepts = concept_embeddings(
        backend, vocabulary.concepts, cfg.backend.resolved_templates, cfg.extract.store, vocabulary.content_hash, cfg.extract.store_options
    )
    scores = explain_units(cfg.rule.name, embeddings, concepts, vocabulary.concepts, **cfg.rule.kwargs())
    top_ids = cfg.run_store.topk(layer)["image_id"][:]
    frame = pd.DataFrame(
        {
            "layer": layer,
            "unit": np.arange(len(scores)),
            "explanation": [s.best for s in scores],
            "score": [s.score for s in scores],
            "margin": [s.margin for s in scores],
            "confidence": [s.confidence for s in scores],
            "uncertain": [s.best != INACTIVE and s.confidence < UNCERTAIN_BELOW for s in scores],
            "agreement": [s.agreement for s in scores],
            "alternatives": [[{"concept": c, "score": v} for c, v in s.alternatives] for s in scores],
            "top_image_ids": [row[row >= 0].tolist() for row in top_ids],
        }
    )
    table.write_parquet(frame)
    csv = frame.assign(alternatives=frame.alternatives.map(json.dumps), top_image_ids=frame.top_image_ids.map(json.dumps))
    table.with_suffix(".csv").write_bytes(csv.to_csv(index=False).encode())
    manifest.write_json(
        {"key": key, "vocabulary": vocabulary_uri, "vocabulary_hash": vocabulary.content_hash, "backend": cfg.backend.model_dump(mode="json"), "rule": cfg.rule.model_dump()},
    )
    return frame


def layer_summary(frame: pd.DataFrame, top: int = 5) -> dict:
    """Units explained, the most frequent concepts and the mean score of one layer's table."""
    active = frame[frame.explanation != INACTIVE]
    return {
        "layer": str(frame.layer.iloc[0]) if len(frame) else "",
        "units": len(frame),
        "explained": len(active),
        "inactive": int(len(frame) - len(active)),
        "most_frequent": ", ".join(f"{c} ({n})" for c, n in Counter(active.explanation).most_common(top)),
        "mean_score": round(float(active.score.mean()), 4) if len(active) else None,
    }


def validate_explain(cfg: ExplainConfig) -> None:
    """Fail on a bad model, layers, dataset or store before any work (the config checks vocabulary sources)."""
    validate_extraction(cfg.extract)


def save_config(cfg: ExplainConfig) -> None:
    """Keep the run's config in the store (secrets masked) so ``evaluate`` and reruns can read it."""
    cfg.run_store.explain_config().write_bytes(cfg.model_dump_json(indent=2).encode())


def n_units(cfg: ExplainConfig, layer: str) -> int:
    return int(cfg.run_store.attrs()["layers"][layer]["units"])


def _layer_blocks(cfg: ExplainConfig) -> list[tuple[str, list[int]]]:
    return [(layer, block) for layer in cfg.extract.layers for block in unit_blocks(n_units(cfg, layer), cfg.units_per_task)]


def cut_block(cfg: ExplainConfig, item: tuple[str, list[int]]) -> dict:
    return cut_patches(cfg, *item)


def embed_block(cfg: ExplainConfig, item: tuple[str, list[int]]) -> dict:
    return embed_unit_block(cfg, *item)


def _layers_with_vocabulary(cfg: ExplainConfig, vocabulary_uri: str) -> list[tuple[str, str]]:
    return [(layer, vocabulary_uri) for layer in cfg.extract.layers]


def score_layer_item(cfg: ExplainConfig, item: tuple[str, str]) -> dict:
    layer, vocabulary_uri = item
    return layer_summary(score_layer(cfg, layer, vocabulary_uri)) | {"table": cfg.run_store.table(layer).uri}


def gallery_item(cfg: ExplainConfig, layer: str) -> str:
    frame = cfg.run_store.table(layer).read_parquet()
    return render_gallery(cfg.extract.store, layer, frame, cfg.extract.store_options, cfg.gallery_patches)


PREPARE_PATCHES = Stage("prepare-patches", prepare_layer_patches)
PATCHES = Stage("cut-patches", cut_block, plan=_layer_blocks, unit="block", retries=2)
EMBEDDINGS = Stage("embed-units", embed_block, plan=_layer_blocks, unit="block", gpu=True, retries=2)
SCORES = Stage("score-layer", score_layer_item, plan=_layers_with_vocabulary, retries=1)
GALLERIES = Stage("render-gallery", gallery_item)


def explain(cfg: ExplainConfig, execute: Executor = InProcess()) -> dict:
    """The whole method, stage by stage; each stage skips work whose content-keyed output is stored."""
    extraction = extract(cfg.extract, execute)
    save_config(cfg)  # after extraction: --overwrite may have cleared the store
    vocabulary_uri = cfg.vocabulary_uri or build_vocabulary(cfg.vocabulary_config(), execute).uri
    execute(PREPARE_PATCHES, cfg)  # once per layer, before its blocks are cut
    execute(PATCHES, cfg)
    execute(EMBEDDINGS, cfg)
    summaries = execute(SCORES, cfg, vocabulary_uri)
    galleries = dict(zip(cfg.extract.layers, execute(GALLERIES, cfg)))
    return {"store": cfg.extract.store, "vocabulary": vocabulary_uri, "layers": summaries, "galleries": galleries, "extraction": extraction.model_dump()}


def run_explain(cfg: ExplainConfig) -> dict[str, pd.DataFrame]:
    """``explain`` in this process under the store's writer lease; each layer's table."""
    with config_lease(cfg):
        explain(cfg)
    return {layer: cfg.run_store.table(layer).read_parquet() for layer in cfg.extract.layers}
