"""Ground truth for explanations: each unit's known name, its synonyms, and whether the probe set shows it.

    truth = layer_truth("runs/r50", "fc")                        # classifier output: unit u = class u
    truth = layer_truth("runs/r50", "layer4", labels="units.csv")  # any layer, labels from a file
    truth.names[12], truth.variants[12], truth.present[12]

Sources of truth, in order:
- a labels file: ``.csv``/``.tsv`` with columns ``unit``, ``label`` and optionally ``variants``
  (synonyms separated by ``;``), or a ``.txt`` with one label per line (line i is unit i); a
  WordNet-style label (``tench, Tinca tinca``) names the unit by its first item, every item a variant;
- the model's classes, when the layer is the classifier's output (``linear``, one unit per class):
  unit u is class u, its variants the class's WordNet lemmas from timm (``ImageNetInfo``) for
  ImageNet-1k models, otherwise the comma-separated items of the class name.

``present`` marks units whose class has a decoded probe image (a logit unit of an absent class cannot
show its class among its top images), so exact match is reported over present units and over all
labelled units.  Units from a labels file are all present.
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd

from neuroscribe import store as st
from neuroscribe.ablation.dataset import model_label_map
from neuroscribe.errors import NeuroscribeError
from neuroscribe.models.loading import imagenet_class_names

_SEPARATORS = re.compile(r"[_\-/]+")
_DROPPED = re.compile(r"[^\w\s']+")


def normalise(text: str) -> str:
    """Case, underscores, hyphens and punctuation folded: ``Red-breasted_Merganser`` -> ``red breasted merganser``."""
    text = _SEPARATORS.sub(" ", str(text).casefold())
    return " ".join(_DROPPED.sub(" ", text).split())


def split_variants(label: str) -> list[str]:
    """``tench, Tinca tinca`` -> ``["tench", "Tinca tinca"]`` (a plain name stays one item)."""
    return [part.strip() for part in str(label).split(",") if part.strip()] or [str(label).strip()]


@dataclass(frozen=True)
class LayerTruth:
    """Per unit of one layer: its name (``None`` = unknown), name variants, and whether the probe set shows it."""

    names: list[str | None]
    variants: list[list[str]]
    present: np.ndarray  # bool [units]
    source: str  # "model classes" or the labels file
    variant_source: str

    @property
    def labelled(self) -> np.ndarray:
        return np.array([n is not None for n in self.names], dtype=bool)


@lru_cache(maxsize=1)
def _imagenet_lemmas() -> tuple[tuple[str, ...], ...] | None:
    """timm's WordNet lemmas of the 1000 ImageNet-1k classes, in class-index order (None without them)."""
    try:
        from timm.data import ImageNetInfo

        info = ImageNetInfo()
        return tuple(tuple(split_variants(info.index_to_description(i))) for i in range(info.num_classes()))
    except (ImportError, AttributeError, OSError, KeyError):
        return None


def class_variants(class_names: list[str]) -> tuple[list[list[str]], str]:
    """Name variants per class, and where they came from."""
    lemmas = _imagenet_lemmas()
    if lemmas is not None and list(class_names) == imagenet_class_names():
        return [[name, *lemma] for name, lemma in zip(class_names, lemmas)], "ImageNet WordNet lemmas (timm)"
    return [[name, *split_variants(name)] for name in class_names], "comma-separated items of the class names"


def read_labels_file(path: str, n_units: int) -> tuple[list[str | None], list[list[str]]]:
    """Names and variants per unit from a labels file (see the module docstring for its formats)."""
    p = Path(path)
    if not p.is_file():
        raise NeuroscribeError(f"labels file {path} does not exist; pass a .csv/.tsv with columns unit,label or a .txt with one label per line")
    names: list[str | None] = [None] * n_units
    variants: list[list[str]] = [[] for _ in range(n_units)]
    if p.suffix.lower() in (".csv", ".tsv"):
        frame = pd.read_csv(io.StringIO(p.read_text()), sep="\t" if p.suffix.lower() == ".tsv" else ",", dtype={"label": str})
        if not {"unit", "label"} <= set(frame.columns):
            raise NeuroscribeError(f"labels file {path} needs columns unit and label (found {list(frame.columns)}); add a header line")
        frame = frame.dropna(subset=["label"])
        extra = frame["variants"].fillna("").astype(str) if "variants" in frame.columns else [""] * len(frame)
        rows = list(zip(frame["unit"].astype(int), frame["label"], extra))
    else:
        rows = [(i, line.strip(), "") for i, line in enumerate(p.read_text().splitlines()) if line.strip()]
    for unit, label, extra in rows:
        if not 0 <= unit < n_units:
            raise NeuroscribeError(f"labels file {path} names unit {unit}, but the layer has units 0..{n_units - 1}; fix the unit column")
        items = split_variants(label)
        names[unit] = items[0]
        variants[unit] = [label, *items, *(v.strip() for v in extra.split(";") if v.strip())]
    return names, variants


def present_classes(store: str, class_names: list[str], storage_options: dict | None = None) -> np.ndarray:
    """bool [classes]: model classes with at least one decoded probe image."""
    run = st.RunStore(store, storage_options)
    attrs, index = run.attrs(), run.index().read_parquet()
    labels = index.loc[(index["status"] == "ok") & (index["label"] >= 0), "label"].to_numpy(dtype=np.int64)
    mapping = model_label_map(list(attrs.get("dataset", {}).get("classes", [])), class_names, attrs.get("dataset", {}).get("uri", store))
    if mapping is not None:
        labels = mapping[labels[labels < len(mapping)]]
    return np.isin(np.arange(len(class_names)), labels)


def layer_truth(store: str, layer: str, labels: str | None = None, storage_options: dict | None = None) -> LayerTruth | None:
    """Ground truth of ``layer``; ``None`` when it has none (not the classifier output, no labels file)."""
    attrs = st.RunStore(store, storage_options).attrs()
    if layer not in attrs.get("layers", {}):
        raise NeuroscribeError(f"layer {layer!r} is not in run {store}; choose one of {sorted(attrs.get('layers', {}))}")
    info = attrs["layers"][layer]
    if labels is not None:
        names, variants = read_labels_file(labels, int(info["units"]))
        present = np.array([n is not None for n in names], dtype=bool)
        return LayerTruth(names, variants, present, f"labels file {labels}", "labels file")
    class_names = list(attrs.get("class_names", []))
    if info.get("kind") != "linear" or int(info["units"]) != len(class_names):  # not the classifier's logits
        return None
    variants, variant_source = class_variants(class_names)
    present = present_classes(store, class_names, storage_options)
    return LayerTruth(class_names, variants, present, "model classes", variant_source)
