"""CLIP through open_clip: images and texts embedded by the two towers of one model.

    backend = OpenClipBackend(OpenClipSpec(arch="ViT-B-32", pretrained="openai"))     # tag, downloaded once
    backend = OpenClipBackend(OpenClipSpec(arch="ViT-B-32", checkpoint="vitb32.pt"))   # local weights file
    backend = OpenClipBackend(OpenClipSpec(arch="ViT-B-32", pretrained=None))          # random weights (tests)

Usually built through ``neuroscribe.scoring.make_backend``.  Random weights are initialised from
a fixed seed, so they are reproducible and their fingerprint is honest.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from neuroscribe.errors import NeuroscribeError
from neuroscribe.fingerprint import code_version, content_key
from neuroscribe.models import autocast, resolve_device
from neuroscribe.progress import ProgressFn
from neuroscribe.scoring.backend import (
    OpenClipSpec,
    batched_embed,
    file_digest,
    l2_normalise,
    precision,
)

RANDOM_INIT_SEED = 0
LOCAL_WEIGHTS_FIX = "download the weights once elsewhere and pass checkpoint: PATH (a local open_clip weights file)"


def _weights_source(spec: OpenClipSpec) -> tuple[str | None, str]:
    """(what open_clip's ``pretrained`` gets, the weights' identity for the fingerprint)."""
    import open_clip

    if spec.arch not in open_clip.list_models():
        close = difflib.get_close_matches(spec.arch, open_clip.list_models(), n=5, cutoff=0.5)
        hint = f"closest: {', '.join(close)}" if close else "see open_clip.list_models()"
        raise NeuroscribeError(f"open_clip arch {spec.arch!r} is unknown ({hint}); pass a listed arch")
    if spec.checkpoint:
        if not Path(spec.checkpoint).is_file():
            raise NeuroscribeError(
                f"open_clip checkpoint {spec.checkpoint} does not exist; "
                "pass the path of a local open_clip weights file"
            )
        return spec.checkpoint, f"file:{file_digest(spec.checkpoint)}"
    if spec.pretrained is None:
        return None, f"random-init:seed{RANDOM_INIT_SEED}"
    tags = open_clip.list_pretrained_tags_by_model(spec.arch)
    if spec.pretrained in tags:
        return spec.pretrained, f"tag:{spec.arch}/{spec.pretrained}"
    if Path(spec.pretrained).is_file():
        return spec.pretrained, f"file:{file_digest(spec.pretrained)}"
    raise NeuroscribeError(
        f"pretrained {spec.pretrained!r} is neither an open_clip tag of {spec.arch} (tags: {', '.join(tags) or 'none'}) "
        f"nor a file; {LOCAL_WEIGHTS_FIX}"
    )


class OpenClipBackend:
    """An open_clip model in eval mode on the spec's device; bf16 autocast on CUDA."""

    def __init__(self, spec: OpenClipSpec):
        import open_clip

        pretrained, weights_id = _weights_source(spec)
        self.spec = spec
        self.device = resolve_device(spec.device)
        self.templates = spec.resolved_templates
        from_file = weights_id.startswith("file:")
        label = Path(pretrained).name if from_file else (pretrained or "random")
        self.name = f"open_clip:{spec.arch}:{label}"
        try:
            # random weights are reproducible, and the caller's RNG state is left as it was
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(RANDOM_INIT_SEED)
                model, _, preprocess = open_clip.create_model_and_transforms(
                    spec.arch,
                    pretrained=pretrained,
                    # random weights must stay random: no text-tower weights fetched from the hub either
                    pretrained_text=pretrained is not None,
                    require_pretrained=pretrained is not None,
                )
            self.tokenizer = open_clip.get_tokenizer(spec.arch)
        except Exception as exc:  # noqa: BLE001 - download, hub and state-dict failures share the fix
            fix = "pass the arch the file was saved from, or another file" if from_file else LOCAL_WEIGHTS_FIX
            detail = " ".join(str(exc).split())[:300]
            raise NeuroscribeError(
                f"open_clip {spec.arch} weights {pretrained!r} could not be loaded "
                f"({exc.__class__.__name__}: {detail}); {fix}"
            ) from None
        self.model = model.to(self.device).eval()
        self.preprocess = preprocess
        self.dim = int(model.visual.output_dim)
        self.fingerprint = content_key(
            {
                "kind": "open_clip",
                "arch": spec.arch,
                "weights": weights_id,
                "precision": precision(self.device),
                "open_clip": open_clip.__version__,
                "code": code_version("neuroscribe.scoring.open_clip_backend"),
            }
        )

    def embed_images(self, images: Sequence, on_progress: ProgressFn = None) -> np.ndarray:
        return batched_embed(images, self.spec.batch_size, self._image_batch, self.dim, on_progress)

    def embed_texts(self, texts: Sequence[str], on_progress: ProgressFn = None) -> np.ndarray:
        return batched_embed(list(texts), self.spec.batch_size, self._text_batch, self.dim, on_progress)

    def _image_batch(self, images: Sequence) -> np.ndarray:
        pixels = torch.stack([self.preprocess(img) for img in images]).to(self.device)
        with torch.inference_mode(), autocast(self.device):
            return l2_normalise(self.model.encode_image(pixels))

    def _text_batch(self, texts: Sequence[str]) -> np.ndarray:
        tokens = self.tokenizer(list(texts)).to(self.device)
        with torch.inference_mode(), autocast(self.device):
            return l2_normalise(self.model.encode_text(tokens))

