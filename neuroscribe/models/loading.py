"""Load a target classifier by name, with its preprocessing and class names.

    loaded = load_model(ModelSpec(name="resnet50", weights="IMAGENET1K_V2"))
    loaded = load_model(ModelSpec(name="resnet18", checkpoint="resnet18_places365.pth.tar",
                                  class_names_file="categories_places365.txt"))
    loaded = load_model(ModelSpec(name="timm:convnext_tiny"))
    loaded = load_model(ModelSpec(name="mypkg.models:build"))       # import path
    loaded = load_model(ModelSpec(name="efficientnet_lite0"))      # real weights, offline

torchvision weights come from their enums (downloaded where the network allows); a local
checkpoint is a state dict, a ``module.`` prefix is stripped, and its classifier width decides
``num_classes`` (365 for the CSAIL Places365 checkpoints).
"""

from __future__ import annotations

import importlib
import threading
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import torch
from torch import nn

from neuroscribe.config import ModelSpec
from neuroscribe.errors import NeuroscribeError
from neuroscribe.models.efficientnet_lite import LITE_VARIANTS, build_efficientnet_lite
from neuroscribe.models.preprocessing import Preprocessing


@dataclass
class LoadedModel:
    """A model in eval mode with what it needs to be fed and read."""

    model: nn.Module
    preprocessing: Preprocessing
    class_names: list[str]
    name: str
    num_prefix_tokens: int | None = None  # ViTs: tokens before the patch grid (class token, registers)
    extra: dict = field(default_factory=dict)
    # Hooks on a shared model see every thread's forward: hold this lock from hook registration
    # to removal whenever several tasks (Dask threads) may use the same cached model.
    lock: threading.RLock = field(default_factory=threading.RLock, repr=False)


@lru_cache(maxsize=1)
def imagenet_class_names() -> list[str]:
    """The 1000 ImageNet-1k names in torchvision's (sorted-wnid) order; shipped with torchvision."""
    from torchvision.models import ResNet50_Weights

    return list(ResNet50_Weights.IMAGENET1K_V1.meta["categories"])


def resolve_device(device: str = "auto") -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise NeuroscribeError("device 'cuda' was requested but no CUDA GPU is visible; use --device cpu or auto")
    return torch.device(device)


def read_class_names(path: str) -> list[str]:
    """One class per line; Places365's ``/a/abbey 0`` style lines become ``abbey``."""
    p = Path(path)
    if not p.is_file():
        raise NeuroscribeError(f"class-names file {path} does not exist; pass a file with one class name per line")
    names = []
    for line in p.read_text().splitlines():
        line = line.strip()
        if not line:
            continue
        token = line.split()[0] if line.startswith("/") else line
        if token.startswith("/"):
            token = token.split("/", 2)[-1]  # '/a/abbey' -> 'abbey', '/b/bus_interior' -> 'bus_interior'
        names.append(token.replace("/", " ").replace("_", " "))
    return names


def load_state_dict_file(path: str) -> dict[str, torch.Tensor]:
    p = Path(path)
    if not p.is_file():
        raise NeuroscribeError(f"checkpoint {path} does not exist; pass the path of a saved state dict")
    try:
        obj = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as exc:  # unpickling errors carry no input name
        raise NeuroscribeError(f"checkpoint {path} could not be read ({exc}); save it with torch.save(model.state_dict())") from None
    if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict):
        raise NeuroscribeError(f"checkpoint {path} does not hold a state dict")
    return {k.removeprefix("module."): v for k, v in obj.items()}


def _classifier_width(state: dict[str, torch.Tensor]) -> int | None:
    """Output width of the last 2-D weight, the classifier in torchvision's architectures."""
    weights = [v for k, v in state.items() if k.endswith("weight") and v.ndim == 2]
    return int(weights[-1].shape[0]) if weights else None


def _torchvision(spec: ModelSpec) -> LoadedModel:
    from torchvision import models as tvm

    try:
        builder = tvm.get_model_builder(spec.name)
    except ValueError:
        raise NeuroscribeError(_unknown_model_message(spec.name)) from None
    weights_enum = tvm.get_model_weights(spec.name)
    state = load_state_dict_file(spec.checkpoint) if spec.checkpoint else None
    weights = None
    if spec.weights:
        try:
            weights = weights_enum.DEFAULT if spec.weights.upper() == "DEFAULT" else weights_enum[spec.weights]
        except KeyError:
            valid = ", ".join(w.name for w in weights_enum)
            raise NeuroscribeError(f"--weights {spec.weights} is not a weight of {spec.name}; valid: {valid}, DEFAULT") from None
    meta_weights = weights or weights_enum.DEFAULT  # metadata (class names, transforms) is offline
    num_classes = _classifier_width(state) if state else len(meta_weights.meta["categories"])
    if weights is not None:
        try:
            model = builder(weights=weights)
        except Exception as exc:
            raise NeuroscribeError(
                f"could not fetch torchvision weights {spec.name}/{weights.name} ({exc.__class__.__name__}); "
                f"with no network, pass --checkpoint PATH to a local state dict"
            ) from None
    else:
        model = builder(weights=None, num_classes=num_classes)
    if state is not None:
        missing, unexpected = model.load_state_dict(state, strict=False)
        if missing or unexpected:
            raise NeuroscribeError(
                f"checkpoint {spec.checkpoint} does not fit {spec.name}: missing keys {missing[:5]}, "
                f"unexpected keys {unexpected[:5]}; pass the architecture it was trained with"
            )
    t = meta_weights.transforms()
    prep = Preprocessing(
        input_size=int(t.crop_size[0]),
        resize_size=int(t.resize_size[0]),
        interpolation=t.interpolation.value,
        mean=tuple(t.mean),
        std=tuple(t.std),
    )
    names = _class_names(spec, num_classes, list(meta_weights.meta["categories"]))
    prefix = 1 if hasattr(model, "class_token") else None
    return LoadedModel(model.eval(), prep, names, spec.name, num_prefix_tokens=prefix)


def _timm(spec: ModelSpec, arch: str) -> LoadedModel:
    import timm

    if arch not in timm.list_models(pretrained=False) and arch.split(".")[0] not in timm.list_models():
        raise NeuroscribeError(_unknown_model_message(f"timm:{arch}"))
    state = load_state_dict_file(spec.checkpoint) if spec.checkpoint else None
    kwargs = {"num_classes": _classifier_width(state)} if state else {}
    try:
        model = timm.create_model(arch, pretrained=spec.pretrained and state is None, **kwargs)
    except Exception as exc:
        raise NeuroscribeError(
            f"could not load timm:{arch} pretrained weights ({exc.__class__.__name__}); with no network, "
            f"pass --checkpoint PATH, or set pretrained: false for random weights"
        ) from None
    if state is not None:
        model.load_state_dict(state)
    cfg = timm.data.resolve_data_config({}, model=model)
    prep = Preprocessing.from_crop_pct(
        int(cfg["input_size"][-1]), float(cfg["crop_pct"]), interpolation=cfg["interpolation"],
        mean=tuple(cfg["mean"]), std=tuple(cfg["std"]),
    )
    names = _class_names(spec, model.num_classes)
    return LoadedModel(model.eval(), prep, names, spec.name, num_prefix_tokens=getattr(model, "num_prefix_tokens", None))


def _import_path(spec: ModelSpec) -> LoadedModel:
    module_name, _, attr = spec.name.partition(":")
    try:
        factory = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise NeuroscribeError(f"model {spec.name}: cannot import {attr} from {module_name} ({exc})") from None
    built = factory()
    if isinstance(built, LoadedModel):
        built.name = spec.name
        return built
    if not isinstance(built, nn.Module):
        raise NeuroscribeError(f"model factory {spec.name} returned {type(built).__name__}, not a torch.nn.Module")
    if spec.checkpoint:
        built.load_state_dict(load_state_dict_file(spec.checkpoint))
    prep = getattr(built, "preprocessing", None) or Preprocessing()
    out = _find_classifier_width(built)
    return LoadedModel(built.eval(), prep, _class_names(spec, out), spec.name)


def _find_classifier_width(model: nn.Module) -> int:
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    return linears[-1].out_features if linears else 0


def _class_names(spec: ModelSpec, num_classes: int, default: list[str] | None = None) -> list[str]:
    if spec.class_names_file:
        names = read_class_names(spec.class_names_file)
        if len(names) != num_classes:
            raise NeuroscribeError(
                f"class-names file {spec.class_names_file} has {len(names)} names but the model has {num_classes} outputs"
            )
        return names
    if default is not None and len(default) == num_classes:
        return default
    if num_classes == 1000:
        return imagenet_class_names()
    return [f"class {i}" for i in range(num_classes)]


def _unknown_model_message(name: str) -> str:
    return (
        f"unknown model {name!r}; use a torchvision classifier name (resnet50, vit_b_16, ...), "
        f"timm:<name>, one of {', '.join(LITE_VARIANTS)}, or an import path package.module:factory"
    )


def load_model(spec: ModelSpec | str) -> LoadedModel:
    """Build the model on CPU in eval mode; move it with ``loaded.model.to(device)``."""
    if isinstance(spec, str):
        spec = ModelSpec(name=spec)
    name = spec.name
    if name in LITE_VARIANTS:
        if spec.weights or spec.checkpoint:
            raise NeuroscribeError(f"{name} always loads its packaged weights; drop --weights/--checkpoint")
        model, prep = build_efficientnet_lite(name)
        return LoadedModel(model, prep, _class_names(spec, 1000), name)
    if name.startswith("timm:"):
        return _timm(spec, name.removeprefix("timm:"))
    if ":" in name:
        return _import_path(spec)
    if name.startswith("torchvision."):
        name = name.removeprefix("torchvision.")
        spec = spec.model_copy(update={"name": name})
    from torchvision.models import list_models

    if name in list_models():
        return _torchvision(spec)
    import timm

    if name in timm.list_models():
        return _timm(spec, name)
    raise NeuroscribeError(_unknown_model_message(name))
