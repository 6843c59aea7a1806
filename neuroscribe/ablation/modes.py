"""Ablation modes: silence a set of units of one layer, and leave the model exactly as it was.

    with ablate(model, info, units=(12, 559)):                     # mode="activation", the default
        logits = model(x)        # the layer's units 12 and 559 forced to exactly zero by a hook
    with ablate(model, info, units=(12,), mode="weights"):
        logits = model(x)        # the weights and bias that produce unit 12 are zeroed

Modes:
- ``activation``: a forward hook replaces the layer's output with a copy whose ablated units are
  zero (``torch.where``, so even non-finite values become exactly 0).
- ``weights`` (the seed paper's definition): zero the weight rows and biases that produce the
  unit's map: a conv's output channel, a linear layer's row, a norm layer's scale and shift.  For
  a composite layer (a ResNet stage or block) they are those of its last conv/linear with that
  many outputs, skipping residual shortcuts (``weights_module``).  What follows is not silenced:
  after a BatchNorm the channel is its constant ``beta - gamma * mean / sqrt(var + eps)``, not
  zero, and a residual block adds its shortcut back.  Name the exact sublayer (``layer4.2.bn3``)
  to choose another module.

Either way ``target_module`` is the module whose unit outputs become zero, which is what the fast
evaluation paths (``neuroscribe.ablation.fast``) rely on.  Parameters are restored bit for bit
in ``finally``, also after an exception.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Literal

import torch
from torch import nn

from neuroscribe.errors import NeuroscribeError
from neuroscribe.hooks import edit_outputs
from neuroscribe.models.layers import LayerInfo

AblationMode = Literal["activation", "weights"]
# Sub-modules on a residual shortcut: zeroing them would not silence the block's main path.
SHORTCUT_NAMES = ("downsample", "shortcut", "skip")
_NORMS = (nn.modules.batchnorm._NormBase, nn.GroupNorm, nn.LayerNorm)


def validate_units(info: LayerInfo, units: Iterable[int]) -> tuple[int, ...]:
    """Sorted unique units, or an error naming the ones outside ``0..units-1``."""
    units = tuple(sorted({int(u) for u in units}))
    if not units:
        raise NeuroscribeError(f"no units given for layer {info.name}; pass --units 12,559 or --all")
    bad = [u for u in units if not 0 <= u < info.units]
    if bad:
        raise NeuroscribeError(
            f"units {bad[:10]} are out of range for layer {info.name}, which has units 0..{info.units - 1}"
        )
    return units


def unit_dim(ndim: int) -> int:
    """The axis of a layer output that indexes units: channels of [B, C, H, W], else the last."""
    return 1 if ndim == 4 else -1


def zero_units(output: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``output`` with the units where ``mask`` is True set to 0.

    ``mask`` is [units] (every sample) or [batch, units] (one set of units per sample).
    """
    dim = unit_dim(output.ndim)
    shape = [output.shape[0] if mask.ndim == 2 else 1] + [1] * (output.ndim - 1)
    shape[dim] = output.shape[dim]
    return torch.where(mask.to(output.device).reshape(shape), torch.zeros((), dtype=output.dtype, device=output.device), output)


def units_mask(units: Sequence[int], n_units: int, device: torch.device | str = "cpu") -> torch.Tensor:
    mask = torch.zeros(n_units, dtype=torch.bool, device=device)
    mask[list(units)] = True
    return mask


def _owns_unit_weights(module: nn.Module) -> bool:
    if isinstance(module, _NORMS):
        return getattr(module, "weight", None) is not None and module.weight.ndim == 1
    # a transposed conv's weight's first axis is the input channel
    weighted = isinstance(module, (nn.modules.conv._ConvNd, nn.Linear))
    return weighted and not isinstance(module, nn.modules.conv._ConvTransposeNd)


def _out_width(module: nn.Module) -> int:
    return int(module.weight.shape[0])


def weights_module(model: nn.Module, info: LayerInfo) -> str:
    """The module whose weights produce ``info``'s units (see the module docstring)."""
    layer = dict(model.named_modules())[info.name]
    if _owns_unit_weights(layer):
        if _out_width(layer) != info.units:
            raise NeuroscribeError(f"layer {info.name}'s weights have {_out_width(layer)} outputs, not {info.units} units")
        return info.name
    # Registration order: torchvision and timm blocks register their output conv after the others.
    candidates = [
        f"{info.name}.{sub}" for sub, m in layer.named_modules()
        if sub and _owns_unit_weights(m) and not isinstance(m, _NORMS) and _out_width(m) == info.units
        and not any(part in SHORTCUT_NAMES for part in sub.split("."))
    ]
    if not candidates:
        raise NeuroscribeError(
            f"layer {info.name} ({type(layer).__name__}) holds no conv or linear with {info.units} outputs whose "
            f"weights could be zeroed; use --mode activation, or name a conv/linear/norm layer"
        )
    return candidates[-1]


def target_module(model: nn.Module, info: LayerInfo, mode: AblationMode) -> str:
    """The module whose output units are zero under this ablation."""
    if mode == "activation":
        return info.name
    if mode == "weights":
        return weights_module(model, info)
    raise NeuroscribeError(f"ablation mode {mode!r} is unknown; use 'activation' or 'weights'")


@contextmanager
def zero_activations(model: nn.Module, module_name: str, units: Sequence[int]) -> Iterator[None]:
    def edit(out: torch.Tensor) -> torch.Tensor:
        return zero_units(out, units_mask(units, out.shape[unit_dim(out.ndim)], out.device))

    with edit_outputs(model, {module_name: edit}):
        yield


@contextmanager
def zero_weights(model: nn.Module, module_name: str, units: Sequence[int]) -> Iterator[None]:
    module = dict(model.named_modules())[module_name]
    params = [p for p in (module.weight, getattr(module, "bias", None)) if p is not None]
    index = torch.as_tensor(list(units), dtype=torch.long, device=params[0].device)
    saved = [p.detach()[index].clone() for p in params]
    try:
        with torch.no_grad():
            for p in params:
                p[index] = 0
        yield
    finally:
        with torch.no_grad():
            for p, s in zip(params, saved):
                p[index] = s


@contextmanager
def ablate(model: nn.Module, info: LayerInfo, units: Iterable[int], mode: AblationMode = "activation") -> Iterator[None]:
    """Ablate ``units`` of layer ``info`` together for the duration of the block."""
    units = validate_units(info, units)
    module_name = target_module(model, info, mode)
    zero = zero_activations if mode == "activation" else zero_weights
    with zero(model, module_name, units):
        yield
