"""Everything one layer's evaluation reads from the run, loaded once.

    explain_cfg = resolve_explain_config(cfg)           # neuroscribe.evaluation.config
    ctx = layer_context(cfg, explain_cfg, "fc", probe)  # table, vocabulary, concept vectors, truth, ...
    ctx.text_vectors(["tench", "(inactive)"])            # concept embeddings of explanations, NaN rows
    spaces, notes = text_spaces(explain_cfg.backend, cfg.sentence_models, cfg.text_backends)
    # the backend's space, MiniLM, mpnet if cached, text_backends (CLIP ViT-B-16 for the papers' number)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache, partial
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from neuroscribe.evaluation.config import MINILM, EvaluateConfig
from neuroscribe.evaluation.evidence import ProbeImages
from neuroscribe.evaluation.metrics import TextSpace
from neuroscribe.evaluation.truth import LayerTruth, layer_truth
from neuroscribe.explanation import ExplainConfig, cached_backend
from neuroscribe.patches.load import patches_group
from neuroscribe.scoring.backend import BackendSpec
from neuroscribe.scoring.concepts import concept_embeddings
from neuroscribe.scoring.factory import make_backend
from neuroscribe.scoring.rules import INACTIVE
from neuroscribe.vocabulary import load_vocabulary
from neuroscribe.vocabulary.embedder import embed_sentences


def _sentence_model_path(name: str) -> str | None:
    """A loadable sentence-transformers model for ``name``, or None when it is not available offline."""
    if Path(name).is_dir():
        return name
    repo = name if "/" in name else f"sentence-transformers/{name}"
    try:
        from huggingface_hub import try_to_load_from_cache

        cached = try_to_load_from_cache(repo, "modules.json")
    except Exception:  # noqa: BLE001 - any cache lookup failure means "not available"
        return None
    return repo if isinstance(cached, str) else None


@lru_cache(maxsize=4)
def text_spaces(
    backend_spec: BackendSpec, sentence_models: tuple[str, ...], text_backends: tuple[BackendSpec, ...]
) -> tuple[tuple[TextSpace, ...], tuple[str, ...]]:
    """The embedding spaces for cosine similarity, and notes on the ones that could not be used."""
    # one set per process and backend: the steps of an evaluation embed the same truths and concepts
    backend = cached_backend(backend_spec)
    spaces = [TextSpace(f"backend ({backend.name})", backend.embed_texts)]
    spaces += [TextSpace(extra.name, extra.embed_texts) for extra in map(make_backend, text_backends)]
    backend_is_minilm = backend_spec.kind == "conse" and backend_spec.sentence_model is None
    notes = []
    for name in sentence_models:
        if name == MINILM:
            spaces.append(TextSpace("MiniLM (all-MiniLM-L6-v2)", embed_sentences, same_as=spaces[0] if backend_is_minilm else None))
        elif (path := _sentence_model_path(name)) is None:
            notes.append(f"sentence model {name} is not available offline (not in the Hugging Face cache); its cosine is not reported")
        else:
            spaces.append(TextSpace(Path(name).name, partial(embed_sentences, model=path)))
    return tuple(spaces), tuple(notes)


@dataclass
class LayerContext:
    """What evaluating one layer reads from the run."""

    cfg: EvaluateConfig
    explain: ExplainConfig
    layer: str
    table: pd.DataFrame  # explanations/<layer>.parquet
    vocabulary: Any  # neuroscribe.vocabulary.Vocabulary
    concept_vectors: np.ndarray
    truth: LayerTruth | None
    probe: ProbeImages
    fired_ids: np.ndarray  # [units, P] images with a patch (the unit fired): AUC positives
    topk_ids: np.ndarray  # [units, k]
    spaces: list[TextSpace] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def k(self) -> int:
        return int(self.topk_ids.shape[1])  # the run's top images per unit

    @property
    def explanations(self) -> list[str]:
        return self.table.sort_values("unit")["explanation"].astype(str).tolist()

    def vectors_for(self, vocabulary) -> np.ndarray:
        """Concept embeddings of a vocabulary in the backend's space, exactly as scoring computes them."""
        return concept_embeddings(
            cached_backend(self.explain.backend), vocabulary.concepts, self.explain.backend.resolved_templates,
            self.explain.extract.store, vocabulary.content_hash, self.explain.extract.store_options,
        )

    def text_vectors(self, explanations: list[str], vocabulary=None, vectors: np.ndarray | None = None) -> np.ndarray:
        """[units, d] the concept embedding of each explanation; NaN rows for "(inactive)"."""
        vocabulary = vocabulary or self.vocabulary
        vectors = self.concept_vectors if vectors is None else vectors
        row = {c: i for i, c in enumerate(vocabulary.concepts)}
        rows = np.array([row.get(t, -1) if t != INACTIVE else -1 for t in explanations], dtype=np.int64)
        out = np.full((len(explanations), vectors.shape[1]), np.nan, dtype=np.float32)
        out[rows >= 0] = vectors[rows[rows >= 0]]
        return out


def layer_context(cfg: EvaluateConfig, explain_cfg: ExplainConfig, layer: str, probe: ProbeImages) -> LayerContext:
    manifest = cfg.run_store.table(layer).with_suffix(".json").read_json()
    vocabulary = load_vocabulary(manifest["vocabulary"], cfg.store_options)
    spaces, notes = text_spaces(explain_cfg.backend, cfg.sentence_models, cfg.text_backends)
    ctx = LayerContext(
        cfg=cfg,
        explain=explain_cfg,
        layer=layer,
        table=cfg.run_store.table(layer).read_parquet(),
        vocabulary=vocabulary,
        concept_vectors=np.empty((0, 0)),
        truth=layer_truth(cfg.store, layer, cfg.labels.get(layer), cfg.store_options),
        probe=probe,
        fired_ids=patches_group(cfg.store, layer, cfg.store_options)["image_id"][:].astype(np.int64),
        topk_ids=explain_cfg.run_store.topk(layer)["image_id"][:].astype(np.int64),
        spaces=list(spaces),
        notes=list(notes),
    )
    ctx.concept_vectors = ctx.vectors_for(vocabulary)
    return ctx
