"""Addressable layers of a model and how their outputs become per-unit maps.

    infos = list_layers(loaded)                       # every module whose output is a unit tensor
    [info] = resolve_layers(loaded, ["layer4"])       # unknown names raise with the closest valid ones
    maps, cls = unit_activations(output, info)        # maps: [B, units, H, W]

Kinds of unit:
- ``conv``: a channel of a [B, C, H, W] output; its map is H x W.
- ``token``: a ViT MLP hidden neuron of a [B, T, C] output, one value per token; the patch tokens
  form the map (the patch grid), prefix tokens (the class token) are returned separately as ``cls``.
- ``linear``: a unit of a [B, C] output; no map (returned as 1 x 1).
A module called more than once per forward (ResNet's shared ``relu``) is not addressable: a hook
on it could not tell the calls apart.
"""

from __future__ import annotations

import difflib
import math
from dataclasses import dataclass
from typing import Literal

import torch

from neuroscribe.errors import NeuroscribeError
from neuroscribe.hooks import capture_outputs, count_calls


@dataclass(frozen=True)
class LayerInfo:
    name: str
    kind: Literal["conv", "token", "linear"]
    units: int
    map_shape: tuple[int, int] | None
    module_type: str
    prefix_tokens: int = 0


def _describe(name: str, module: torch.nn.Module, out: torch.Tensor, declared_prefix: int | None) -> LayerInfo | None:
    kind = type(module).__name__
    if out.ndim == 4:
        return LayerInfo(name, "conv", int(out.shape[1]), (int(out.shape[2]), int(out.shape[3])), kind)
    if out.ndim == 3:  # prefix: the declared one, else a class token or none, whichever leaves a square grid
        tokens = int(out.shape[1])
        candidates = (1, 0) if declared_prefix is None else (declared_prefix,)
        prefix = next((p for p in candidates if tokens > p and math.isqrt(tokens - p) ** 2 == tokens - p), None)
        if prefix is None:
            return None
        side = math.isqrt(tokens - prefix)
        return LayerInfo(name, "token", int(out.shape[2]), (side, side), kind, prefix)
    if out.ndim == 2:
        return LayerInfo(name, "linear", int(out.shape[1]), None, kind)
    return None


def list_layers(loaded) -> list[LayerInfo]:
    """Probe the model with one blank input and describe every addressable module, in model order."""
    if loaded.extra.get("_layers") is not None:
        return loaded.extra["_layers"]
    model = loaded.model
    modules = {name: module for name, module in model.named_modules() if name}
    size = loaded.preprocessing.input_size
    device = next(model.parameters(), torch.empty(0)).device
    with loaded.lock, torch.no_grad(), count_calls(model, modules) as calls, capture_outputs(model, modules) as outputs:
        model(torch.zeros(1, 3, size, size, device=device))
    described = (
        _describe(name, module, outputs[name], loaded.num_prefix_tokens)
        for name, module in modules.items()
        if calls.get(name, 0) == 1 and isinstance(outputs.get(name), torch.Tensor)
    )
    infos = [info for info in described if info is not None]
    loaded.extra["_layers"] = infos
    return infos


def resolve_layers(loaded, names) -> list[LayerInfo]:
    by_name = {info.name: info for info in list_layers(loaded)}
    for name in names:
        if name not in by_name:
            close = difflib.get_close_matches(name, list(by_name), n=5, cutoff=0.5)
            hint = f"closest valid names: {', '.join(close)}" if close else "run `neuroscribe layers --model ...` to list them"
            raise NeuroscribeError(f"layer {name!r} is not an addressable layer of {loaded.name}; {hint}")
    return [by_name[name] for name in names]


def unit_activations(output: torch.Tensor, info: LayerInfo) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(maps [B, units, H, W], class-token values [B, units] or None) from a layer's output."""
    if info.kind == "conv":
        return output, None
    if info.kind == "token":
        h, w = info.map_shape
        maps = output[:, info.prefix_tokens :, :].reshape(output.shape[0], h, w, info.units).permute(0, 3, 1, 2)
        return maps, output[:, 0, :] if info.prefix_tokens else None
    return output[:, :, None, None], None
