"""The Python API for notebooks: explain, ablate and evaluate a model given by name or as an object.

    import neuroscribe as ns
    run = ns.explain(model, layers=["layer4"], images="data/val", store="runs/r50",
                     preprocessing=ResNet50_Weights.IMAGENET1K_V2, backend="conse")
    run.table("layer4"); run.gallery("layer4"); run.unit("layer4", 559)
    drops = ns.ablate(model, layer="layer4", units=[559], images="data/val", store="runs/r50")
    report = ns.evaluate("runs/r50")
    run = ns.open_run("runs/r50")            # any store: made by the CLI, a flow or this API

A thin layer: each call builds the config the CLI builds and runs the same stages, in this process
by default (with tqdm.auto progress bars), or as the CLI's Prefect flows on Dask with ``runner=``
("dask" for a local cluster, a scheduler address, or RunnerSpec fields).

Models: a name or import path as the CLI takes them, a ``ModelSpec``, or an ``nn.Module`` object
with ``preprocessing=`` (a torchvision transform or weights object, a timm data config, a dict of
``Preprocessing`` fields; timm models and modules with a ``.preprocessing`` attribute need none).
An object is fingerprinted by content (``neuroscribe.models.loading.model_object_spec``) and,
with a Dask runner, pickled to the workers: one that cannot be pickled fails before any work.

Images: a folder or file list (local or fsspec URL) as the CLI takes them, a list of paths or PIL
images, or a torch ``Dataset`` yielding (image, label); labels (for ablation) are model class indices
or class names.  In-memory images are written once into the store's ``inputs/`` as PNGs with a file
list, named by content (``neuroscribe.store``): any worker reads them, and the run key stays a content key.
"""

from __future__ import annotations

import hashlib
import io
import itertools
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pandas as pd

from neuroscribe import store as st
from neuroscribe.config import DatasetSpec, ModelSpec, RunnerSpec, load_config
from neuroscribe.errors import NeuroscribeError
from neuroscribe.fingerprint import content_key
from neuroscribe.results import Ablation, Evaluation, Run, user_facing

PNG_MODES = {"1", "L", "LA", "I", "I;16", "P", "RGB", "RGBA"}  # PNG keeps every pixel; others are converted first
WRITE_BLOCK = 64  # in-memory images encoded and written per block: bounded memory for any dataset size


def model_spec(model: Any, preprocessing: Any = None, class_names: Any = None, weights: Any = None, checkpoint: str | None = None) -> ModelSpec:
    """A ModelSpec from what a notebook holds: a name, a ModelSpec, an ``nn.Module`` or a ``LoadedModel``."""
    from torch import nn

    from neuroscribe.models.loading import LoadedModel, model_object_spec

    if isinstance(model, ModelSpec):
        return model
    if isinstance(model, (str, os.PathLike)):
        if preprocessing is not None or (class_names is not None and not isinstance(class_names, (str, os.PathLike))):
            raise NeuroscribeError(
                f"model {model!r} is a name: it brings its own preprocessing and class names; pass class_names as a file "
                f"with one name per line, or pass the model object to give preprocessing"
            )
        weights = getattr(weights, "name", weights)  # a torchvision weights enum member names itself
        return ModelSpec(name=str(model), weights=weights, checkpoint=checkpoint, class_names_file=str(class_names) if class_names else None)
    if isinstance(model, LoadedModel):
        preprocessing = preprocessing if preprocessing is not None else model.preprocessing
        class_names = class_names if class_names is not None else model.class_names
        return model_object_spec(model.model, preprocessing, class_names, name=model.name)
    if isinstance(model, nn.Module):
        if checkpoint is not None:
            raise NeuroscribeError("checkpoint= loads weights into a named model; load them into the module object yourself")
        return model_object_spec(model, preprocessing if preprocessing is not None else weights, class_names)
    raise NeuroscribeError(
        f"model of type {type(model).__name__} is not understood; pass a torch.nn.Module, a model name "
        f"(resnet50, timm:<name>, efficientnet_lite0) or an import path package.module:factory"
    )


def _png(image: Any) -> bytes:
    """PNG bytes of a dataset item's image: PIL, a uint8 HWC array, or a CHW tensor in [0, 1] or uint8."""
    import numpy as np
    import torch
    from PIL import Image
    from torchvision.transforms.functional import to_pil_image

    if isinstance(image, torch.Tensor) and image.is_floating_point() and (image.min() < 0 or image.max() > 1):
        raise NeuroscribeError(
            "the dataset yields normalised tensors; neuroscribe applies the model's preprocessing itself, so give the "
            "dataset no transform (yield PIL images) or at most ToTensor()"
        )
    if isinstance(image, torch.Tensor) or (isinstance(image, np.ndarray) and image.dtype == np.uint8):
        image = to_pil_image(image)
    elif not isinstance(image, Image.Image):
        raise NeuroscribeError(f"an image of type {type(image).__name__} is not understood; yield PIL images from the dataset")
    if image.mode not in PNG_MODES:
        image = image.convert("RGB")
    buf = io.BytesIO()
    image.save(buf, format="PNG", compress_level=1)  # measured 2.2x faster than the default 6, files 4% larger
    return buf.getvalue()


def _items(images: Any, labels: Sequence | None) -> Iterator[tuple[Any, Any]]:
    """(image, label) pairs from a list of images (with optional labels) or a Dataset of pairs."""
    for i in range(len(images)):
        item = images[i]
        if labels is None and isinstance(item, (tuple, list)) and len(item) == 2:
            yield item[0], item[1]
        else:
            yield item, (labels[i] if labels is not None else None)


def _label(value: Any) -> str:
    return "" if value is None else str(value.item() if hasattr(value, "item") else value)  # .item(): a tensor or numpy scalar


def _write_images(store: str, pairs: Iterable[tuple[Any, Any]], limit: int | None, storage_options: dict) -> list[tuple[str, str]]:
    """Write each image once as ``inputs/images/<hash>.png``; returns (relative path, label) rows."""
    folder = st.RunStore(store, storage_options).input_images()
    existing = set(folder.list())
    rows: list[tuple[str, str]] = []

    def write(pair) -> tuple[str, str]:
        data = _png(pair[0])
        name = hashlib.blake2b(data, digest_size=16).hexdigest() + ".png"
        if name not in existing:
            folder.folder(name).write_bytes(data)
        return f"images/{name}", _label(pair[1])  # relative to the file list in inputs/ (RunStore.input_list)

    pairs = itertools.islice(pairs, limit)
    with ThreadPoolExecutor(4) as pool:  # PNG encoding releases the GIL
        while block := list(itertools.islice(pairs, WRITE_BLOCK)):
            rows += pool.map(write, block)
    return rows


def _write_listing(store: str, rows: list[tuple[str, str]], storage_options: dict) -> str:
    """A ``path, label`` file list under ``inputs/``, named by its content; returns its URI."""
    if not rows:
        raise NeuroscribeError("no images were given; pass a folder, a file list, a list of paths or PIL images, or a Dataset")
    file = st.RunStore(store, storage_options).input_list(content_key(rows))
    if not file.exists():
        file.write_bytes(pd.DataFrame(rows, columns=["path", "label"]).to_csv(sep="\t", index=False).encode())
    return file.uri


def dataset_spec(images: Any, store: str, labels: Sequence | None = None, limit: int | None = None, storage_options: dict | None = None) -> DatasetSpec:
    """A DatasetSpec for any supported ``images`` (see the module docstring); writes in-memory images to the store."""
    from PIL import Image

    options = storage_options or {}
    if isinstance(images, DatasetSpec):
        return images
    if isinstance(images, (str, os.PathLike)):
        if labels is not None:
            raise NeuroscribeError("labels= goes with lists of images; a folder has class subfolders and a file list a label column")
        return DatasetSpec(uri=str(images), limit=limit, storage_options=options)
    if not hasattr(images, "__len__") or not hasattr(images, "__getitem__"):
        raise NeuroscribeError(
            f"images of type {type(images).__name__} are not understood; pass a folder, a file list, a list of paths or "
            f"PIL images, or a torch Dataset yielding (image, label)"
        )
    if labels is not None and len(labels) != len(images):
        raise NeuroscribeError(f"labels has {len(labels)} entries for {len(images)} images; pass one label per image")
    if isinstance(images, (list, tuple)) and images and all(isinstance(i, (str, os.PathLike)) for i in images):
        paths = [str(p) if "://" in str(p) else os.path.abspath(p) for p in images][:limit]
        rows = list(zip(paths, [_label(v) for v in (labels or [None] * len(paths))]))
        return DatasetSpec(uri=_write_listing(store, rows, options), storage_options=options)
    if isinstance(images, (list, tuple)) and any(isinstance(i, (str, os.PathLike)) for i in images):
        raise NeuroscribeError("images mixes paths and other objects; pass all paths or all PIL images")
    if isinstance(images, (list, tuple)) and images and not isinstance(images[0], (Image.Image, tuple, list)):
        raise NeuroscribeError(f"images holds {type(images[0]).__name__} objects; pass paths, PIL images or (image, label) pairs")
    rows = _write_images(store, _items(images, labels), limit, options)
    return DatasetSpec(uri=_write_listing(store, rows, options), storage_options=options)


def runner_spec(runner: Any, device: str | None, batch_size: int | None) -> tuple[RunnerSpec, bool]:
    """(RunnerSpec, whether to run the Prefect flows on Dask) from ``runner=``."""
    overrides = {k: v for k, v in {"device": device, "batch_size": batch_size}.items() if v is not None}
    if runner in (None, "in-process", "local", "dask"):  # this process, or a local Dask cluster
        return RunnerSpec(**overrides), runner == "dask"
    if isinstance(runner, RunnerSpec):
        return runner.model_copy(update=overrides), True
    if isinstance(runner, str) and "://" in runner:
        return RunnerSpec(dask_address=runner, **overrides), True
    if isinstance(runner, dict):
        return load_config(RunnerSpec, None, runner | overrides), True
    raise NeuroscribeError(
        f"runner={runner!r} is not understood; pass None (this process), 'dask' (a local Dask cluster), "
        f"a scheduler address tcp://host:8786, or a dict of RunnerSpec fields"
    )


def _execute(cfg: Any, on_dask: bool, in_process: Callable[[Any], Any], flow: str) -> Any:
    """``in_process(cfg)``, or the CLI's Prefect flow ``neuroscribe.flows.<flow>`` on the Dask runner ``cfg.runner``."""
    if not on_dask:
        return in_process(cfg)
    from neuroscribe.flows._run import run_flow
    from neuroscribe.flows.ablate import ablate_flow
    from neuroscribe.flows.evaluate import evaluate_flow
    from neuroscribe.flows.explain import explain_flow
    from neuroscribe.models.loading import require_picklable

    if (model := getattr(getattr(cfg, "extract", cfg), "model", None)) is not None:
        require_picklable(model)  # before a server or cluster starts
    return run_flow({"explain": explain_flow, "ablate": ablate_flow, "evaluate": evaluate_flow}[flow], cfg)


def _spec_overrides(value: Any, key: str, extra: dict) -> Any:
    """A spec field given as its short name (``backend="conse"``), a dict or the spec itself, plus ``extra``."""
    if isinstance(value, str):
        value = {key: value}
    if hasattr(value, "model_copy"):
        return value.model_copy(update=extra)
    return (value or {}) | extra


@user_facing
def explain(
    model: Any, layers: str | Sequence[str], images: Any, store: str, *,
    preprocessing: Any = None, class_names: Any = None, weights: Any = None, labels: Sequence | None = None,
    vocabulary: str | Sequence[str] | None = None, backend: str | dict | None = None,
    rule: str | dict | None = None, k: int | None = None, limit: int | None = None,
    runner: Any = None, device: str | None = None, batch_size: int | None = None,
    overwrite: bool = False, storage_options: dict | None = None, **fields: Any,
) -> Run:
    """Explain every unit of ``layers``: extract, vocabulary, patches, scoring, tables, galleries.

    ``vocabulary``: sources as on the CLI (``llm``, ``builtin:NAME[+NAME]``, ``file:PATH``);
    ``backend``: ``open_clip`` or ``conse`` (offline), or a dict of BackendSpec fields; ``rule``:
    ``seed`` or ``softwpmi``; any other ExplainConfig field as a keyword (``patches={...}``).
    Returns the ``Run``; a rerun with the same inputs reuses every finished stage.
    """
    from neuroscribe.explanation import ExplainConfig, run_explain, validate_explain
    from neuroscribe.extraction import validate_extraction

    options = storage_options or {}
    runner_cfg, on_dask = runner_spec(runner, device, batch_size)
    cfg = load_config(ExplainConfig, None, fields | {
        "model": model_spec(model, preprocessing, class_names, weights),
        "layers": [layers] if isinstance(layers, str) else list(layers),
        "dataset": dataset_spec(images, store, labels, limit, options),
        "store": store,
        "k": k,
        "vocabulary": {"sources": [vocabulary] if isinstance(vocabulary, str) else vocabulary},
        "backend": _spec_overrides(backend, "kind", {"device": device} if device else {}),
        "rule": _spec_overrides(rule, "name", {}),
        "runner": runner_cfg,
        "overwrite": overwrite or None,
        "store_options": options or None,
    })
    if cfg.extract.overwrite:  # replace a store holding another extraction, keeping the inputs just written
        *_, key, previous = validate_extraction(cfg.extract)
        if previous not in (None, key):
            cfg.run_store.remove(keep_inputs=True)
    validate_explain(cfg)
    _execute(cfg, on_dask, run_explain, "explain")  # in this process: a progress bar per stage
    return Run(store, options)


@user_facing
def ablate(
    model: Any, layer: str, units: Sequence[int] | str, images: Any, store: str, *,
    preprocessing: Any = None, class_names: Any = None, weights: Any = None, labels: Sequence | None = None,
    together: bool = False, mode: str | None = None, limit: int | None = None,
    runner: Any = None, device: str | None = None, batch_size: int | None = None,
    storage_options: dict | None = None, **fields: Any,
) -> Ablation:
    """Silence ``units`` of ``layer`` (one at a time, or ``together``) and measure each class's accuracy drop.

    ``units``: a list of unit indices, or ``"all"``.  ``images`` must be labelled (class folders,
    a labelled file list, ``labels=``, or a Dataset of (image, label)).  Any other AblateConfig
    field as a keyword (``fast="hook"``, ``units_per_pass=16``).
    """
    from neuroscribe.ablation.pipeline import AblateConfig, run_sweep

    if units is None or (isinstance(units, (list, tuple)) and not units):
        raise NeuroscribeError("say which units to ablate: units=[12, 559], or units='all' for every unit of the layer")
    options = storage_options or {}
    runner_cfg, on_dask = runner_spec(runner, device, batch_size)
    cfg = load_config(AblateConfig, None, fields | {
        "model": model_spec(model, preprocessing, class_names, weights),
        "layer": layer,
        "units": units,
        "dataset": dataset_spec(images, store, labels, limit, options),
        "store": store,
        "together": together or None,
        "mode": mode,
        "runner": runner_cfg,
        "store_options": options or None,
    })
    summary = _execute(cfg, on_dask, run_sweep, "ablate")
    return Ablation(store, summary["layer"], summary, options)


@user_facing
def evaluate(
    store: str | Run, *,
    layers: str | Sequence[str] | None = None, labels: dict[str, str] | None = None,
    compare: str | Sequence[str] | None = None,
    runner: Any = None, device: str | None = None, storage_options: dict | None = None, **fields: Any,
) -> Evaluation:
    """Evaluate a run's explanations (the CLI's ``neuroscribe evaluate``); returns the report.

    ``labels``: {layer: labels file} for layers with known unit names; ``compare``: any of
    ``rules``, ``k``, ``vocab``; any other EvaluateConfig field as a keyword (``bootstrap=0``).
    """
    from neuroscribe.evaluation import EvaluateConfig, run_evaluation

    if isinstance(store, Run):
        store, storage_options = store.store, storage_options or store.storage_options
    options = storage_options or {}
    runner_cfg, on_dask = runner_spec(runner, None, None)
    cfg = load_config(EvaluateConfig, None, fields | {
        "store": store,
        "layers": [layers] if isinstance(layers, str) else layers,
        "labels": labels,
        "compare": [compare] if isinstance(compare, str) else compare,
        "device": device,
        "runner": runner_cfg,
        "store_options": options or None,
    })
    _execute(cfg, on_dask, run_evaluation, "evaluate")
    return Run(store, options).evaluation()


@user_facing
def open_run(store: str | Path, storage_options: dict | None = None) -> Run:
    """Reopen a run store (local or ``s3://``) made by the CLI, a flow or this API."""
    store, options = str(store), storage_options or {}
    run = st.RunStore(store, options)
    if not (run.has_run() or run.summaries().list()):
        raise NeuroscribeError(
            f"store {store} holds no neuroscribe run (no extraction, explanation or ablation); pass the store of a run"
        )
    return Run(store, options)
