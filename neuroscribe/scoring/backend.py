"""Image-text backends: one embedding space for image patches and concept texts.

    backend = make_backend(OpenClipSpec(arch="ViT-B-32", pretrained="openai"))
    backend = make_backend(OpenClipSpec(checkpoint="weights/ViT-B-32.pt"))   # offline
    backend = make_backend(ConseSpec())                      # offline: ImageNet classifier + MiniLM
    images = backend.embed_images(pil_images)                # float32 [n, d], rows L2-normalised
    texts = backend.embed_texts(["a photo of stripes."])     # float32 [m, d], same space
    backend.fingerprint                                      # content key used by caches

``BackendSpec`` is the union of the kinds' specs, chosen by ``kind`` (a YAML ``backend: {kind: conse}``):
``open_clip`` (``neuroscribe.scoring.open_clip_backend``) or ``conse`` (``neuroscribe.scoring.conse``,
no CLIP weights).  ``concept_embeddings`` applies templates; ``embed_texts`` embeds texts as given.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal, Protocol, runtime_checkable

import numpy as np
import torch
from pydantic import Discriminator, Field, Tag, field_validator, model_validator

from neuroscribe.config import FrozenModel, ModelSpec
from neuroscribe.errors import NeuroscribeError
from neuroscribe.progress import ProgressFn

DEFAULT_TEMPLATES = {
    # CLIP was trained on captions: the prompt closes most of the gap to bare words (Radford et al. 2021)
    "open_clip": ("a photo of {}.",),
    # sentence embedders compare phrases directly; a template would only add shared words
    "conse": ("{}",),
}


@runtime_checkable
class ImageTextBackend(Protocol):
    """What scoring needs from a vision-language model; both outputs live in one space."""

    name: str
    fingerprint: str  # content key of the config and weight identity (cache keys use it)
    templates: tuple[str, ...]  # default prompt templates for concept texts
    dim: int

    def embed_images(self, images: Sequence[Any], on_progress: ProgressFn = None) -> np.ndarray:
        """float32 ``[len(images), dim]`` with unit rows; ``on_progress(n_done)`` after each batch."""

    def embed_texts(self, texts: Sequence[str], on_progress: ProgressFn = None) -> np.ndarray:
        """float32 ``[len(texts), dim]`` with unit rows."""


class _BackendBase(FrozenModel):
    """What every backend kind takes: prompt templates, device and batch size."""

    templates: tuple[str, ...] | None = Field(default=None, description="prompt templates with '{}'; None = per-kind default")
    device: Literal["auto", "cpu", "cuda"] = "auto"
    batch_size: int = Field(default=64, ge=1)

    @model_validator(mode="before")
    @classmethod
    def _fields_of_other_kinds(cls, data: Any) -> Any:
        # name the kind a stray field belongs to, instead of pydantic's bare "extra inputs are not permitted"
        for name in set(data) - set(cls.model_fields) if isinstance(data, dict) else ():
            owner = next((k.model_fields["kind"].default for k in _BackendBase.__subclasses__() if name in k.model_fields), None)
            if owner:
                raise ValueError(f"backend field {name!r} applies only to kind {owner!r}, not {cls.model_fields['kind'].default!r}; remove it or set kind: {owner}")
        return data

    @field_validator("templates")
    @classmethod
    def _check_templates(cls, value: tuple[str, ...] | None) -> tuple[str, ...] | None:
        if value == ():
            raise ValueError("templates is empty; give at least one template such as 'a photo of {}.' or leave it unset")
        return None if value is None else check_templates(value)

    @property
    def resolved_templates(self) -> tuple[str, ...]:
        return self.templates or DEFAULT_TEMPLATES[self.kind]


class OpenClipSpec(_BackendBase):
    """A CLIP model: ``arch`` with ``pretrained`` (an open_clip tag, downloaded once; ``None`` = random
    weights, for tests) or ``checkpoint`` (a local weights file, needs no network)."""

    kind: Literal["open_clip"] = "open_clip"
    arch: str = Field(default="ViT-B-32", description="open_clip architecture (open_clip.list_models())")
    pretrained: str | None = Field(default="openai", description="open_clip pretrained tag; None = random weights")
    checkpoint: str | None = Field(default=None, description="local weights file (wins over pretrained)")


class ConseSpec(_BackendBase):
    """ConSE: the ``top_t`` likeliest labels of ``classifier`` (a model name or ModelSpec with ImageNet-style
    class names) combined in ``sentence_model``'s space, with optional class-probability and colour blocks."""

    kind: Literal["conse"] = "conse"
    classifier: ModelSpec = Field(default=ModelSpec(name="efficientnet_lite2"), description="the classifier")
    # Norouzi et al. (2014) report their best ImageNet zero-shot results with T = 10
    top_t: int = Field(default=10, ge=1, description="labels combined per image")
    sentence_model: str | None = Field(default=None, description="sentence-transformers model; None = bundled MiniLM")
    class_scores: bool = Field(default=True, description="score the classifier's own class names from its probabilities")
    colour_names: bool = Field(default=True, description="score basic colour terms from the patch's pixels")

    @field_validator("classifier", mode="before")
    @classmethod
    def _classifier_name(cls, value: Any) -> Any:
        return {"name": value} if isinstance(value, str) else value


def _backend_kind(value: Any) -> str:
    # a spec given without `kind` is open_clip, the default backend
    return value.get("kind", "open_clip") if isinstance(value, dict) else getattr(value, "kind", "open_clip")


BackendSpec = Annotated[Annotated[OpenClipSpec, Tag("open_clip")] | Annotated[ConseSpec, Tag("conse")], Discriminator(_backend_kind)]


def check_templates(templates: Sequence[str]) -> tuple[str, ...]:
    """``templates`` as a tuple, after checking that each has one ``{}`` where the concept goes."""
    bad = [t for t in templates if t.count("{}") != 1]
    if bad:
        raise NeuroscribeError(f"templates {bad} must each contain '{{}}' exactly once, where the concept goes")
    return tuple(templates)


def precision(device: torch.device) -> str:
    """The arithmetic a device computes embeddings in; part of fingerprints since it changes the values."""
    return "bf16-autocast" if device.type == "cuda" else "fp32"


def l2_normalise(vectors: torch.Tensor) -> np.ndarray:
    """float32 numpy rows of unit length (an all-zero row stays zero instead of becoming NaN)."""
    return torch.nn.functional.normalize(vectors.float(), dim=-1).cpu().numpy().astype(np.float32, copy=False)


def batched_embed(
    items: Sequence[Any],
    batch_size: int,
    embed_batch: Callable[[Sequence[Any]], np.ndarray],
    dim: int,
    on_progress: ProgressFn = None,
) -> np.ndarray:
    """Run ``embed_batch`` over slices of ``items``; ``on_progress`` gets the running count."""
    chunks = []
    for start in range(0, len(items), batch_size):
        chunks.append(embed_batch(items[start : start + batch_size]))
        if on_progress:
            on_progress(min(start + batch_size, len(items)))
    return np.concatenate(chunks, axis=0) if chunks else np.zeros((0, dim), dtype=np.float32)


@lru_cache(maxsize=16)
def _file_digest(path: str, size: int, mtime_ns: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 22):
            digest.update(chunk)
    return digest.hexdigest()[:16]


def file_digest(path: str) -> str:
    """sha256 of a weights file, hashed once per (path, size, mtime) in a process."""
    stat = os.stat(path)
    return _file_digest(str(Path(path).resolve()), stat.st_size, stat.st_mtime_ns)

