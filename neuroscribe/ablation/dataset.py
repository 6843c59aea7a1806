"""Labelled evaluation images: labels mapped onto the model's classes, decoded in batches.

    frame, info = labelled_index(DatasetSpec(uri="/data/imagenet/val"), loaded.class_names)
    for x, y in image_batches(frame, loaded.preprocessing.transform(), batch_size=64, skipped=skipped):
        ...                                   # x: [B, 3, H, W] float, y: [B] model class indices

Dataset labels index the dataset's own classes (folder names or a class list); they become model
class indices by name (``golden retriever`` = ``golden_retriever``), by ImageNet wnid for
1000-class models, by number for numeric folder names, or by position when the dataset lists
exactly as many classes as the model has and none of them match by name.  A file list with
numeric labels and no class list is taken to hold model class indices already (ImageNet
``index`` columns, as in ``imagenet-samples/labels.tsv``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pandas as pd
import torch

from neuroscribe.config import DatasetSpec
from neuroscribe.data import ImageSkipped, build_index, load_image
from neuroscribe.errors import NeuroscribeError


def normalized_name(name: str) -> str:
    """A class name for matching: ``Golden_Retriever`` and ``golden  retriever`` -> ``golden retriever``."""
    return " ".join(str(name).replace("_", " ").lower().split())


def _imagenet_wnids() -> list[str]:
    try:
        from timm.data import ImageNetInfo

        return list(ImageNetInfo().label_names())
    except (ImportError, AttributeError, OSError):  # a timm without the label info: wnid folders just do not match
        return []


def model_label_map(dataset_classes: list[str], class_names: list[str], uri: str) -> np.ndarray | None:
    """Model class index for each dataset class index; None when labels already are model indices."""
    if not dataset_classes:
        return None
    n = len(class_names)
    by_name = {normalized_name(c): i for i, c in enumerate(class_names)}
    wnids = {w: i for i, w in enumerate(_imagenet_wnids())} if n == 1000 else {}

    def lookup(name: str) -> int | None:
        numbered = int(name) if name.isdigit() and int(name) < n else None
        return by_name.get(normalized_name(name), wnids.get(name, numbered))

    found = [lookup(c) for c in dataset_classes]
    if all(i is not None for i in found):
        return np.asarray(found, dtype=np.int64)
    if all(i is None for i in found) and len(dataset_classes) == n:
        return np.arange(n, dtype=np.int64)
    missing = [c for c, i in zip(dataset_classes, found) if i is None]
    raise NeuroscribeError(
        f"dataset classes {missing[:5]} of {uri} match no class of the model ({n} classes, e.g. {class_names[:3]}); "
        f"name class folders after the model's classes or ImageNet wnids, or label a file list with class indices"
    )


def labelled_index(spec: DatasetSpec, class_names: list[str]) -> tuple[pd.DataFrame, dict]:
    """(id, path, label as model class index) for the labelled images, and counts of what was left out."""
    index = build_index(spec)
    labelled = index[index["label"] >= 0].copy()
    if labelled.empty:
        raise NeuroscribeError(
            f"dataset {spec.uri} has no labels; ablation measures per-class accuracy, so pass an image folder "
            f"with one subfolder per class, or a file list with a label column"
        )
    mapping = model_label_map(index.attrs.get("classes", []), class_names, spec.uri)
    if mapping is not None:
        if int(labelled["label"].max()) >= len(mapping):
            raise NeuroscribeError(f"dataset {spec.uri} has labels beyond its class list; fix the list or the labels")
        labelled["label"] = mapping[labelled["label"].to_numpy()]
    bad = sorted(set(labelled.loc[labelled["label"] >= len(class_names), "label"].tolist()))
    if bad:
        raise NeuroscribeError(
            f"labels {bad[:5]} of dataset {spec.uri} are not classes of the model, which has classes "
            f"0..{len(class_names) - 1}; label images with the model's class indices"
        )
    return labelled.reset_index(drop=True), {"images": len(index), "unlabelled": int(len(index) - len(labelled))}


def _decode(path: str, transform: Callable, storage_options: dict | None, max_image_pixels: int | None = None):
    try:
        return transform(load_image(path, storage_options, max_image_pixels=max_image_pixels))
    except ImageSkipped as skip:
        return skip


def image_batches(
    frame: pd.DataFrame,
    transform: Callable,
    batch_size: int,
    threads: int = 2,
    storage_options: dict | None = None,
    skipped: list[dict] | None = None,
    max_image_pixels: int | None = None,
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Batches of (images, labels) in index order; undecodable images go to ``skipped`` with a reason.

    The next batch decodes in threads while the caller works on the current one.
    """
    chunks = [frame.iloc[s : s + batch_size] for s in range(0, len(frame), batch_size)]
    with ThreadPoolExecutor(max_workers=threads) as pool:

        def submit(chunk):
            return [pool.submit(_decode, p, transform, storage_options, max_image_pixels) for p in chunk["path"]]

        pending = submit(chunks[0]) if chunks else []
        for i, chunk in enumerate(chunks):
            results = [f.result() for f in pending]
            pending = submit(chunks[i + 1]) if i + 1 < len(chunks) else []
            keep = [j for j, r in enumerate(results) if not isinstance(r, ImageSkipped)]
            if skipped is not None:
                skipped.extend(
                    {"id": int(chunk["id"].iloc[j]), "path": r.path, "reason": r.reason}
                    for j, r in enumerate(results) if isinstance(r, ImageSkipped)
                )
            if keep:
                labels = torch.as_tensor(chunk["label"].to_numpy()[keep], dtype=torch.long)
                yield torch.stack([results[j] for j in keep]), labels
