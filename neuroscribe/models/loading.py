"""Load a target classifier by name, with its preprocessing and class names.

    loaded = load_model(ModelSpec(name="resnet50", weights="IMAGENET1K_V2"))
    loaded = load_model(ModelSpec(name="resnet18", checkpoint="resnet18_places365.pth.tar",
                                  class_names_file="categories_places365.txt"))
    loaded = load_model(ModelSpec(name="timm:convnext_tiny"))
    loaded = load_model(ModelSpec(name="mypkg.models:build"))       # import path
    loaded = load_model(ModelSpec(name="efficientnet_lite0"))      # real weights, offline
    loaded = load_model(model_object_spec(my_module, preprocessing=transform))   # an nn.Module object

torchvision weights come from their enums (downloaded where the network allows); a local
checkpoint is a state dict, a ``module.`` prefix is stripped, and its classifier width decides
``num_classes`` (365 for the CSAIL Places365 checkpoints).

An in-memory ``nn.Module`` gets a spec that carries it (cloudpickled to Dask workers) and whose
``fingerprint`` hashes its content, so run and cache keys stay content keys.  ``load_model`` checks the
fingerprint again and hands the pipeline a deep copy: the caller's module is never moved, switched to
eval mode or hooked (one that cannot be copied, e.g. holding a lock, is used in place).
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import importlib
import pickle
import threading
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

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


def autocast(device: torch.device) -> contextlib.AbstractContextManager:
    """bfloat16 autocast on CUDA, for every forward (models and scoring backends); nothing on CPU."""
    return torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else contextlib.nullcontext()


def read_class_names(path: str) -> list[str]:
    """One class per line; Places365's ``/a/abbey 0`` style lines become ``abbey``."""
    p = Path(path)
    if not p.is_file():
        raise NeuroscribeError(f"class-names file {path} does not exist; pass a file with one class name per line")
    lines = filter(None, map(str.strip, p.read_text().splitlines()))
    names = (line.split()[0].split("/", 2)[-1] if line.startswith("/") else line for line in lines)
    return [name.replace("/", " ").replace("_", " ") for name in names]


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

    builder = tvm.get_model_builder(spec.name)  # load_model calls this only for names torchvision lists
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
    prep = _preset_preprocessing(meta_weights.transforms())
    names = _class_names(spec, num_classes, list(meta_weights.meta["categories"]))
    return LoadedModel(model.eval(), prep, names, spec.name, num_prefix_tokens=_prefix_tokens(model))


def _preset_preprocessing(t) -> Preprocessing:
    """From torchvision's ``ImageClassification`` preset (what ``weights.transforms()`` returns)."""
    return Preprocessing(
        input_size=int(t.crop_size[0]), resize_size=int(t.resize_size[0]),
        interpolation=t.interpolation.value, mean=tuple(t.mean), std=tuple(t.std),
    )


def _timm_preprocessing(data_config: dict) -> Preprocessing:
    """From a timm data config (``timm.data.resolve_data_config``): resize to size / crop_pct, crop."""
    return Preprocessing.from_crop_pct(
        int(data_config["input_size"][-1]), float(data_config["crop_pct"]), interpolation=data_config["interpolation"],
        mean=tuple(data_config["mean"]), std=tuple(data_config["std"]),
    )


def _prefix_tokens(model: nn.Module) -> int | None:
    """ViTs: tokens before the patch grid (timm says so; torchvision's ViT has one class token)."""
    prefix = getattr(model, "num_prefix_tokens", None)
    return int(prefix) if prefix is not None else (1 if hasattr(model, "class_token") else None)


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
    prep = _timm_preprocessing(timm.data.resolve_data_config({}, model=model))
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
    return LoadedModel(built.eval(), prep, _class_names(spec, _find_classifier_width(built)), spec.name)


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
    if spec.fingerprint is not None:
        return _in_memory(spec)
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
    name = name.removeprefix("torchvision.")
    spec = spec.model_copy(update={"name": name})
    from torchvision.models import list_models

    if name in list_models():
        return _torchvision(spec)
    import timm

    if name in timm.list_models():
        return _timm(spec, name)
    raise NeuroscribeError(_unknown_model_message(name))


@dataclass(unsafe_hash=True)
class ModelObject:
    """An ``nn.Module`` handed over as an object, with how to feed it and what its outputs are.  Equal when
    their fingerprints (taken when handed over) are: per-process model caches must see one model in the new
    object a Dask worker unpickles with every task."""

    model: nn.Module = field(compare=False)
    preprocessing: Preprocessing = field(compare=False)
    class_names: list[str] = field(compare=False)
    num_prefix_tokens: int | None = field(default=None, compare=False)
    key: str = ""

    def __post_init__(self) -> None:
        self.key = self.key or self.fingerprint()

    def fingerprint(self) -> str:
        """Hash of class, architecture, every state-dict tensor, preprocessing and class names."""
        digest = hashlib.blake2b(digest_size=16)
        kind = type(self.model)
        digest.update(f"{kind.__module__}.{kind.__qualname__}\n{self.model!r}".encode())
        for key, tensor in self.model.state_dict().items():
            t = tensor.detach().cpu().contiguous()
            digest.update(f"{key}:{t.dtype}:{tuple(t.shape)}".encode())
            digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())  # raw bytes: any dtype, bfloat16 too
        digest.update(self.preprocessing.model_dump_json().encode())
        digest.update("\n".join(self.class_names).encode())
        digest.update(str(self.num_prefix_tokens).encode())
        return digest.hexdigest()


TRANSFORM_HELP = (
    "pass preprocessing= as a torchvision Compose of Resize(int), CenterCrop(int), ToTensor/PILToTensor and "
    "Normalize, a torchvision weights object (e.g. ResNet50_Weights.IMAGENET1K_V2), a timm data config "
    "(timm.data.resolve_data_config({}, model=model)), or a dict of input_size, resize_size, interpolation, mean, std"
)
# what copying or pickling an object that holds a lock, a file or a local function raises
UNPICKLABLE = (TypeError, AttributeError, RuntimeError, pickle.PicklingError)
# transforms that only change the tensor's type or range: no effect on where a pixel lands
_TYPE_TRANSFORMS = {"ToTensor", "PILToTensor", "ToImage", "ToDtype", "ConvertImageDtype", "ToPureTensor"}


def _compose_preprocessing(transforms: list) -> Preprocessing:
    """Resize-shorter-side + centre-crop + normalise, read from a torchvision Compose (v1 or v2)."""
    fields: dict[str, Any] = {"mean": (0.0, 0.0, 0.0), "std": (1.0, 1.0, 1.0)}  # when no Normalize
    for t in transforms:
        kind = type(t).__name__
        if kind == "Resize":
            size = t.size if isinstance(t.size, int) else (t.size[0] if len(t.size) == 1 else None)
            if size is None:
                raise NeuroscribeError(f"Resize({t.size}) resizes to a fixed shape; use Resize(int) (shorter side) and CenterCrop; {TRANSFORM_HELP}")
            interpolation = getattr(t.interpolation, "value", str(t.interpolation))
            fields |= {"resize_size": int(size), "interpolation": interpolation}
        elif kind == "CenterCrop":
            height, width = t.size if len(t.size) == 2 else (t.size[0], t.size[0])
            if height != width:
                raise NeuroscribeError(f"CenterCrop({t.size}) is not square; {TRANSFORM_HELP}")
            fields["input_size"] = int(height)
        elif kind == "Normalize":
            fields |= {"mean": tuple(float(v) for v in t.mean), "std": tuple(float(v) for v in t.std)}
        elif kind not in _TYPE_TRANSFORMS:
            # activations are mapped back onto the image through this geometry: nothing else may move pixels
            raise NeuroscribeError(f"transform {kind} is not supported in the model's preprocessing; {TRANSFORM_HELP}")
    if "resize_size" not in fields or "input_size" not in fields:
        raise NeuroscribeError(f"the preprocessing transform needs a Resize(int) and a CenterCrop(int); {TRANSFORM_HELP}")
    try:
        return Preprocessing(**fields)
    except ValueError as exc:
        raise NeuroscribeError(f"preprocessing {fields} is not usable ({exc}); {TRANSFORM_HELP}") from None


def resolve_preprocessing(value: Any, model: nn.Module) -> Preprocessing:
    """The model's ``Preprocessing`` from what a caller gives, or from the model itself (timm, ``.preprocessing``)."""
    if isinstance(value, Preprocessing):
        return value
    if value is None:
        if isinstance(getattr(model, "preprocessing", None), Preprocessing):
            return model.preprocessing
        if getattr(model, "pretrained_cfg", None):
            import timm

            return _timm_preprocessing(timm.data.resolve_data_config({}, model=model))
        raise NeuroscribeError(f"model object {type(model).__name__} does not say how its inputs are preprocessed; {TRANSFORM_HELP}")
    if hasattr(value, "transforms") and hasattr(value, "meta"):  # a torchvision weights enum member
        value = value.transforms()
    if hasattr(value, "crop_size") and hasattr(value, "resize_size"):  # torchvision's ImageClassification preset
        return _preset_preprocessing(value)
    if hasattr(value, "transforms") and isinstance(value.transforms, (list, tuple)):  # Compose
        return _compose_preprocessing(list(value.transforms))
    if isinstance(value, dict):
        try:
            return _timm_preprocessing(value) if "crop_pct" in value else Preprocessing(**value)
        except (ValueError, KeyError, TypeError) as exc:
            raise NeuroscribeError(f"preprocessing {value} is not usable ({exc}); {TRANSFORM_HELP}") from None
    raise NeuroscribeError(f"preprocessing of type {type(value).__name__} is not understood; {TRANSFORM_HELP}")


def model_object_spec(
    model: nn.Module, preprocessing: Any = None, class_names: list[str] | str | None = None,
    name: str | None = None,
) -> ModelSpec:
    """A spec for an ``nn.Module`` object: content-fingerprinted, carrying the object.  ``preprocessing``:
    see ``resolve_preprocessing`` (torchvision weights also give the class names).  ``class_names``: a list
    or a one-per-line file; default: the weights' categories, ImageNet's for 1000 outputs, else ``class i``."""
    if not isinstance(model, nn.Module):
        raise NeuroscribeError(f"model is a {type(model).__name__}, not a torch.nn.Module; pass a module, a model name or package.module:factory")
    categories = list(preprocessing.meta.get("categories") or []) if hasattr(preprocessing, "meta") else None
    prep = resolve_preprocessing(preprocessing, model)
    width = int(getattr(model, "num_classes", 0) or 0) or _find_classifier_width(model)
    if class_names is None:
        names = _class_names(ModelSpec(), width, categories)
    else:
        names = read_class_names(class_names) if isinstance(class_names, str) else [str(c) for c in class_names]
        if width and len(names) != width:
            raise NeuroscribeError(f"class_names has {len(names)} names but the model has {width} outputs; pass one name per output")
    obj = ModelObject(model, prep, names, _prefix_tokens(model))
    spec = ModelSpec(name=name or type(model).__name__, fingerprint=obj.key)
    spec._object = obj
    return spec


def _in_memory(spec: ModelSpec) -> LoadedModel:
    obj: ModelObject | None = spec._object
    if obj is None:
        raise NeuroscribeError(
            f"model {spec.name} (fingerprint {spec.fingerprint}) was an in-memory object that this process does not hold; "
            f"pass the model object again, or a name or import path package.module:factory that any process can build"
        )
    if obj.fingerprint() != spec.fingerprint:
        raise NeuroscribeError(f"model object {spec.name} changed after it was handed over (its weights differ); pass it again")
    try:
        model = copy.deepcopy(obj.model)
    except UNPICKLABLE:  # a module holding a lock or a file cannot be copied: use it in place
        model = obj.model
    return LoadedModel(model.eval(), obj.preprocessing, list(obj.class_names), spec.name, num_prefix_tokens=obj.num_prefix_tokens)


def require_picklable(spec: ModelSpec) -> None:
    """Fail before any work when an in-memory model cannot travel to Dask workers, saying what to do."""
    if spec._object is None:
        return
    import cloudpickle

    try:
        cloudpickle.dumps(spec._object)
    except UNPICKLABLE as exc:
        raise NeuroscribeError(
            f"model object {spec.name} cannot be pickled ({type(exc).__name__}: {exc}), so it cannot travel to Dask workers; "
            f"run it in this process (runner=None), remove what cannot be pickled (a lock, an open file, a generator) "
            f"from the module, or pass a name or import path package.module:factory that workers build the model from"
        ) from None
