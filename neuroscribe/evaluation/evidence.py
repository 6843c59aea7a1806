"""What a scoring rule sees of each unit, kept slot by slot so evaluation can rescore without re-extraction.

    evidence = patch_evidence(cfg, "layer4")            # seed rule: one patch embedding per (unit, rank)
    evidence = image_evidence(cfg, "layer4", probe)     # softwpmi: the unit's top images, whole
    repeats = evidence.repeats(max_rank=3)              # use only each unit's 3 top-ranked images
    scores = rescore(evidence, repeats, RuleSpec(name="seed"), vectors, concepts)
    probe = probe_images(cfg, ["layer4"], random_images=1000)   # whole-image embeddings, cached

``repeats`` [units, slots] says how often each slot of an ``Evidence`` enters the rule: 1/0 to keep
or drop ranks (comparing k), counts for a bootstrap resample; all slots once reproduce
``explanations/<layer>``.  Patch embeddings are the explain stage's own content-keyed files
(``embed_unit_block`` computes the missing ones: a run scored with the other rule).  Whole-image
embeddings are the run's own files when its rule embeds whole images, otherwise rows of the
probe-image table the AUC check needs anyway: ``evaluation/images/<key>.npz``, keyed by the run,
the image ids, the backend fingerprint and this code.
"""

from __future__ import annotations

import io
from contextlib import suppress
from dataclasses import dataclass

import numpy as np

from neuroscribe.data import ImageSkipped, load_image
from neuroscribe.errors import NeuroscribeError
from neuroscribe.explanation import (
    ExplainConfig,
    cached_backend,
    embed_unit_block,
    embeds_whole_images,
    n_units,
    stored_vectors,
    unit_blocks,
)
from neuroscribe.fingerprint import code_version, content_key
from neuroscribe.patches.load import patches_group
from neuroscribe.scoring.rules import RuleSpec, UnitScore, explain_units

IMAGE_BATCH = 64  # images decoded and embedded together: bounds memory on 50k-image probe sets


@dataclass
class Evidence:
    """Slot-aligned rule inputs of every unit of one layer."""

    image_id: np.ndarray  # int64 [units, slots]; -1 = empty slot
    rank: np.ndarray  # int64 [units, slots]: the slot's position in topk/<layer>; -1 = empty
    vectors: np.ndarray  # float32 [units, slots, d]; NaN rows where there is no embedding

    @property
    def usable(self) -> np.ndarray:
        return (self.image_id >= 0) & ~np.isnan(self.vectors).any(axis=2)

    def repeats(self, max_rank: int | None = None) -> np.ndarray:
        """int [units, slots]: 1 for usable slots whose rank is below ``max_rank`` (all when None)."""
        below = True if max_rank is None else self.rank < max_rank
        return (self.usable & below).astype(np.int64)

    def unit_inputs(self, repeats: np.ndarray) -> list[np.ndarray]:
        """Per unit, its slot embeddings in slot (rank) order, each repeated ``repeats`` times."""
        repeats = np.where(self.usable, repeats, 0)
        return [np.repeat(self.vectors[u], repeats[u], axis=0) for u in range(len(self.vectors))]


def rule_config(cfg: ExplainConfig, rule: str) -> ExplainConfig:
    return cfg.model_copy(update={"rule": cfg.rule.model_copy(update={"name": rule})})


def patch_evidence(cfg: ExplainConfig, layer: str) -> Evidence:
    """Patch embeddings (the seed rule's inputs); embedded first if the run used another rule."""
    cfg = rule_config(cfg, "seed") if embeds_whole_images(cfg.rule) else cfg
    for block in unit_blocks(n_units(cfg, layer), cfg.units_per_task):
        embed_unit_block(cfg, layer, block)  # computed where missing (cached by content)
    group = patches_group(cfg.extract.store, layer, cfg.extract.store_options)
    image_id = group["image_id"][:].astype(np.int64)
    rank = np.where(image_id >= 0, group["rank"][:], -1).astype(np.int64)
    return Evidence(image_id, rank, stored_vectors(cfg, layer))


def image_evidence(cfg: ExplainConfig, layer: str, probe: ProbeImages | None = None) -> Evidence:
    """Whole top images in rank order (the softwpmi rule's inputs)."""
    # the explain stage embeds only units with at least one patch: the others are "(inactive)"
    active = (patches_group(cfg.extract.store, layer, cfg.extract.store_options)["image_id"][:] >= 0).any(axis=1)
    ids = np.where(active[:, None], cfg.run_store.topk(layer)["image_id"][:].astype(np.int64), -1)
    rank = np.where(ids >= 0, np.arange(ids.shape[1])[None, :], -1)
    if embeds_whole_images(cfg.rule):
        return Evidence(ids, rank, stored_vectors(cfg, layer))
    if probe is None:
        raise NeuroscribeError(f"rescoring {layer!r} on whole images needs the probe-image embeddings; call probe_images() first")
    return Evidence(ids, rank, probe.lookup(ids))


def evidence_for(cfg: ExplainConfig, layer: str, rule: RuleSpec, probe: ProbeImages | None = None) -> Evidence:
    return image_evidence(cfg, layer, probe) if embeds_whole_images(rule) else patch_evidence(cfg, layer)


def rescore(
    evidence: Evidence, repeats: np.ndarray, rule: RuleSpec, concept_vectors: np.ndarray, concepts: list[str]
) -> list[UnitScore]:
    """Score every unit on its repeated slots with ``rule`` (a unit left with none: "(inactive)")."""
    return explain_units(rule.name, evidence.unit_inputs(repeats), concept_vectors, concepts, **rule.kwargs())


@dataclass
class ProbeImages:
    """Whole-image embeddings of probe images, by image id; ``random`` is the random sample among them."""

    ids: np.ndarray  # int64 [m], ascending
    vectors: np.ndarray  # float32 [m, d]; NaN rows: unreadable
    random: np.ndarray  # int64: ids of the random sample (AUC negatives)

    def lookup(self, image_ids: np.ndarray) -> np.ndarray:
        """Vectors for an id array of any shape (NaN for -1 and for ids not in the table)."""
        image_ids = np.asarray(image_ids)
        out = np.full((*image_ids.shape, self.vectors.shape[1]), np.nan, dtype=np.float32)
        if not len(self.ids):
            return out
        pos = np.clip(np.searchsorted(self.ids, image_ids), 0, len(self.ids) - 1)
        found = (image_ids >= 0) & (self.ids[pos] == image_ids)
        out[found] = self.vectors[pos[found]]
        return out


def probe_image_ids(cfg: ExplainConfig, layers: list[str], random_images: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(ids to embed, the random sample): every decoded image when there are at most ``random_images``,
    else a seeded random sample of that many plus every top image of ``layers``."""
    index = cfg.run_store.index().read_parquet()
    ok = index.loc[index["status"] == "ok", "id"].to_numpy(dtype=np.int64)
    if len(ok) <= random_images:
        return ok, ok
    sample = np.sort(np.random.default_rng(seed).choice(ok, size=random_images, replace=False))
    tops = [cfg.run_store.topk(layer)["image_id"][:].ravel() for layer in layers]
    wanted = np.union1d(sample, np.concatenate(tops))
    return wanted[wanted >= 0], sample


def probe_images(
    cfg: ExplainConfig, layers: list[str], random_images: int = 1000, seed: int = 0
) -> ProbeImages:
    """Whole-image embeddings of the probe images evaluation needs, cached by content in the store."""
    ids, sample = probe_image_ids(cfg, layers, random_images, seed)
    backend = cached_backend(cfg.backend)
    key = content_key({"run": cfg.run_store.attrs().get("run_key"), "ids": content_key(ids.tolist()),
                       "backend": backend.fingerprint, "code": code_version(__name__)})
    file = cfg.run_store.evaluation_images(key)
    if file.exists():
        with np.load(io.BytesIO(file.read_bytes()), allow_pickle=False) as cached:
            if np.array_equal(cached["ids"], ids):
                return ProbeImages(ids, cached["vectors"], sample)
    index = cfg.run_store.index().read_parquet().set_index("id")
    vectors = np.full((len(ids), backend.dim), np.nan, dtype=np.float32)
    for start in range(0, len(ids), IMAGE_BATCH):
        images, rows = [], []
        for row, image_id in enumerate(ids[start : start + IMAGE_BATCH], start=start):
            with suppress(ImageSkipped):  # an unreadable image keeps its NaN row
                images.append(load_image(index.at[int(image_id), "path"], cfg.extract.dataset.storage_options, max_image_pixels=cfg.extract.dataset.max_image_pixels))
                rows.append(row)
        if images:
            vectors[rows] = backend.embed_images(images)
    buf = io.BytesIO()
    np.savez(buf, ids=ids, vectors=vectors)
    file.write_bytes(buf.getvalue())
    return ProbeImages(ids, vectors, sample)
