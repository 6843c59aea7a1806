"""The evaluation's config, and the run it evaluates.

    cfg = EvaluateConfig(store="runs/r50", compare=("rules", "k"))
    explain_cfg = resolve_explain_config(cfg)           # the run's ExplainConfig (explain_config.json)
    layers = evaluated_layers(cfg, explain_cfg)         # the layers asked for, checked to be explained

The run's config comes from ``<store>/explain_config.json`` (written by the explain stage), or
from ``EvaluateConfig.explain`` for a store without one.  Its secrets were masked when it was
written, so the evaluation's own ``store_options`` (also used for the images) replace them.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator

from neuroscribe.config import StoreConfig
from neuroscribe.errors import NeuroscribeError
from neuroscribe.explanation import ExplainConfig
from neuroscribe.scoring.backend import BackendSpec

CompareAxis = Literal["rules", "k", "vocab"]
MINILM = "minilm"
MPNET = "all-mpnet-base-v2"


class EvaluateConfig(StoreConfig):
    """One evaluation of an explained run (``store``): the ``evaluate`` flow's single parameter."""

    layers: tuple[str, ...] = Field(default=(), description="layers to evaluate; empty = every layer the run explained")
    labels: dict[str, str] = Field(
        default_factory=dict, description="layer -> labels file (.csv/.tsv unit,label[,variants] or .txt one per line)"
    )
    explain: ExplainConfig | None = Field(default=None, description="the run's config when the store has no explain_config.json")
    compare: tuple[CompareAxis, ...] = Field(default=(), description="rescoring comparisons: rules, k, vocab")
    compare_k: tuple[int, ...] = Field(default=(1, 2, 3, 5, 10, 20, 50), description="top images per unit compared (<= the run's k)")
    compare_vocabularies: tuple[str, ...] = Field(
        default=("builtin:imagenet", "builtin:colors+textures+materials", "builtin:imagenet+colors+textures+materials"),
        description="vocabularies compared, each a comma-separated union of sources (llm, builtin:NAME, file:PATH)",
    )
    sentence_models: tuple[str, ...] = Field(
        default=(MINILM, MPNET), description="sentence spaces for cosine similarity: minilm (bundled) or a sentence-transformers name/folder"
    )
    text_backends: tuple[BackendSpec, ...] = Field(
        default=(), description="more text spaces for cosine similarity, e.g. CLIP ViT-B-16 as the papers measure (open_clip text encoders)"
    )
    truth_text: Literal["name", "synonyms"] = Field(
        default="name", description="ground-truth text embedded: the class name, or all its synonyms comma-joined (CLIP-Dissect's labels file)"
    )
    permutations: int = Field(default=100, ge=0, description="random permutations of the ground truth for the chance baseline")
    random_images: int = Field(default=1000, ge=1, description="random probe images: AUC negatives (every image when fewer)")
    bootstrap: int = Field(default=10, ge=0, description="bootstrap resamples of the probe images for stability")
    seed: int = 0
    device: Literal["auto", "cpu", "cuda"] | None = Field(default=None, description="override the backend's device")

    @field_validator("layers", "compare", mode="before")
    @classmethod
    def _split(cls, value: Any) -> tuple:
        if isinstance(value, str):
            value = value.split(",")
        return tuple(v.strip() for v in value if v and v.strip())

    @field_validator("compare_k")
    @classmethod
    def _positive(cls, value: tuple[int, ...]) -> tuple[int, ...]:
        if any(k < 1 for k in value):
            raise ValueError("compare_k values must be >= 1 (top images per unit)")
        return tuple(sorted(set(value)))


def resolve_explain_config(cfg: EvaluateConfig) -> ExplainConfig:
    """The run's ExplainConfig, pointed at ``cfg.store`` with the evaluation's options and device."""
    if cfg.explain is not None:
        base = cfg.explain
    elif cfg.run_store.explain_config().exists():
        base = ExplainConfig.model_validate_json(cfg.run_store.explain_config().read_bytes())
    else:
        raise NeuroscribeError(
            f"store {cfg.store} has no explain_config.json (written by `neuroscribe explain`); "
            "pass the run's config with --explain-config FILE"
        )
    extract: dict[str, Any] = {"store": cfg.store}
    if cfg.store_options:
        extract["store_options"] = cfg.store_options
        extract["dataset"] = base.extract.dataset.model_copy(update={"storage_options": cfg.store_options})
    update: dict[str, Any] = {"extract": base.extract.model_copy(update=extract)}
    if cfg.device is not None:
        update["backend"] = base.backend.model_copy(update={"device": cfg.device})
    return base.model_copy(update=update)


def evaluated_layers(cfg: EvaluateConfig, explain_cfg: ExplainConfig) -> list[str]:
    layers = list(cfg.layers or explain_cfg.extract.layers)
    if missing := [layer for layer in layers if not cfg.run_store.table(layer).exists()]:
        raise NeuroscribeError(
            f"layers {missing} of {cfg.store} have no explanations; run `neuroscribe explain --layers {','.join(missing)}` first"
        )
    if unknown := sorted(set(cfg.labels) - set(layers)):
        raise NeuroscribeError(f"labels are given for layers {unknown} that are not evaluated; evaluate them with --layers")
    return layers
