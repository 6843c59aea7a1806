"""Evaluation paths: the logits of a batch under many ablations, sharing one pass over the batch.

    path = choose_path(loaded.model, info, mode="activation", fast="auto", probe=probe)
    state = path.prepare(x)                        # one forward: baseline logits (+ cached layer output)
    logits = path.ablated_logits(state, masks)     # [G, B, classes] for G unit sets (bool masks [G, units])

Every path computes the same thing: the model's logits with the target module's units (see
``neuroscribe.ablation.modes.target_module``) set to zero.  From fastest to most general:

- ``closed``: the target is followed only by global average pooling and one linear head (ResNet's
  ``layer4`` -> ``avgpool`` -> ``fc``), or is itself that head's input or its logits.  Logits are
  affine in the pooled activation ``p``, so ablating unit u changes them by ``-W[:, u] * p[:, u]``:
  one outer product per unit, no network at all.  Unit sets sum their columns.
- ``suffix``: the network after the target is a plain chain of modules (top-level children of a
  model whose forward chains them, and the rest of each enclosing ``nn.Sequential``).  The
  target's output is cached once per image batch, and only the chain after it runs, on G masked
  copies stacked along the batch axis.
- ``hook``: any model.  The whole network runs on G copies of the batch stacked along the batch
  axis; a hook zeroes unit set g in copy g.  No compute is saved per unit, but batches are large.
- ``naive``: the reference, one ablated forward per unit set with ``modes.ablate`` (in ``weights``
  mode it really zeroes the weights).

``auto`` takes the first of closed, suffix, hook whose structure applies and whose ablated logits
match the hook path's on a probe batch, so a model whose forward is not what its module order
suggests falls back instead of giving wrong numbers.  Tests check every path against ``naive``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from neuroscribe.ablation.modes import AblationMode, ablate, target_module, zero_units
from neuroscribe.errors import NeuroscribeError
from neuroscribe.hooks import edit_outputs
from neuroscribe.models.layers import LayerInfo

FastPath = Literal["auto", "closed", "suffix", "hook", "naive"]
PATH_ORDER = ("closed", "suffix", "hook")
# Modules that may sit between the target and the linear head of a closed-form path.
_PASS_THROUGH = (nn.Flatten, nn.Identity, nn.Dropout)


@dataclass
class State:
    """What ``prepare`` keeps of one image batch: the input, its baseline logits, a cached tensor."""

    x: torch.Tensor
    logits: torch.Tensor
    cached: torch.Tensor | None = None


def _capture(model: nn.Module, module_name: str, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(logits, a copy of the module's output); copied because later in-place ops (``out += identity``) would change it."""
    kept: dict[str, torch.Tensor] = {}

    def keep(out: torch.Tensor) -> torch.Tensor:
        kept["out"] = out.clone()
        return out

    with edit_outputs(model, {module_name: keep}):
        logits = model(x)
    return logits, kept["out"]


def _stacked(masks: torch.Tensor, batch: int) -> torch.Tensor:
    """Per-sample masks for G copies of a batch stacked along the batch axis: row g*B+i is ``masks[g]``."""
    return masks.repeat_interleave(batch, dim=0)


def _repeat(t: torch.Tensor, copies: int) -> torch.Tensor:
    return t.repeat(copies, *([1] * (t.ndim - 1)))


class NaivePath:
    name = "naive"

    def __init__(self, model: nn.Module, info: LayerInfo, mode: AblationMode):
        self.model, self.info, self.mode = model, info, mode

    def prepare(self, x: torch.Tensor) -> State:
        return State(x, self.model(x))

    def ablated_logits(self, state: State, masks: torch.Tensor) -> torch.Tensor:
        out = []
        for mask in masks:
            with ablate(self.model, self.info, mask.nonzero().flatten().tolist(), self.mode):
                out.append(self.model(state.x))
        return torch.stack(out)


class HookPath:
    name = "hook"

    def __init__(self, model: nn.Module, target: str):
        self.model, self.target = model, target

    def prepare(self, x: torch.Tensor) -> State:
        return State(x, self.model(x))

    def ablated_logits(self, state: State, masks: torch.Tensor) -> torch.Tensor:
        copies, batch = masks.shape[0], state.x.shape[0]
        per_sample = _stacked(masks, batch)
        with edit_outputs(self.model, {self.target: lambda out: zero_units(out, per_sample)}):
            logits = self.model(_repeat(state.x, copies))
        return logits.reshape(copies, batch, -1)


class Chain:
    """Modules applied in order; a ``Linear`` fed a [B, C, 1, 1] map gets it flattened, as
    classifier forwards do with ``torch.flatten(x, 1)`` between their pool and head."""

    def __init__(self, modules: Sequence[nn.Module]):
        self.steps = list(modules)

    def __call__(self, h: torch.Tensor) -> torch.Tensor:
        for module in self.steps:
            if isinstance(module, nn.Linear) and h.ndim == 4 and h.shape[2:] == (1, 1):
                h = torch.flatten(h, 1)
            h = module(h)
        return h


def suffix_modules(model: nn.Module, name: str) -> list[nn.Module] | None:
    """The modules after ``name`` if the network could be a chain from there on, else None.

    Inside the model only ``nn.Sequential`` containers (with their own forward) count as chains;
    the model's own forward is taken on trust here and checked on a probe by ``choose_path``.
    """
    container: nn.Module = model
    rests: list[list[nn.Module]] = []
    for depth, part in enumerate(name.split(".")):
        if depth > 0 and (not isinstance(container, nn.Sequential) or type(container).forward is not nn.Sequential.forward):
            return None
        children = list(container.named_children())
        names = [n for n, _ in children]
        if part not in names:
            return None
        position = names.index(part)
        rests.append([m for _, m in children[position + 1 :]])
        container = children[position][1]
    return [m for rest in reversed(rests) for m in rest]


class SuffixPath:
    name = "suffix"

    def __init__(self, model: nn.Module, target: str, chain: Chain):
        self.model, self.target, self.chain = model, target, chain

    def prepare(self, x: torch.Tensor) -> State:
        logits, cached = _capture(self.model, self.target, x)
        return State(x, logits, cached)

    def ablated_logits(self, state: State, masks: torch.Tensor) -> torch.Tensor:
        copies, batch = masks.shape[0], state.x.shape[0]
        masked = zero_units(_repeat(state.cached, copies), _stacked(masks, batch))
        return self.chain(masked).reshape(copies, batch, -1)


def _is_global_average(module: nn.Module) -> bool:
    if isinstance(module, nn.AdaptiveAvgPool2d):
        return module.output_size in (1, (1, 1))
    # timm's SelectAdaptivePool2d(pool_type="avg"); the probe check confirms it
    return type(module).__name__ == "SelectAdaptivePool2d" and getattr(module, "pool_type", "") == "avg"


def closed_head(modules: Sequence[nn.Module]) -> tuple[bool, nn.Linear | None]:
    """(applies, head): modules = global average pooling / pass-through steps then one Linear, or nothing."""
    if not modules:
        return True, None
    *between, head = modules
    if not isinstance(head, nn.Linear):
        return False, None
    ok = all(isinstance(m, _PASS_THROUGH) or _is_global_average(m) for m in between)
    return ok, head if ok else None


class ClosedPath:
    name = "closed"

    def __init__(self, model: nn.Module, target: str, head: nn.Linear | None):
        self.model, self.target, self.head = model, target, head

    def prepare(self, x: torch.Tensor) -> State:
        logits, out = _capture(self.model, self.target, x)
        pooled = out.mean(dim=(2, 3)) if out.ndim == 4 else out
        return State(x, logits, pooled)

    def ablated_logits(self, state: State, masks: torch.Tensor) -> torch.Tensor:
        logits, pooled = state.logits, state.cached
        if self.head is None:  # the target is the logits themselves
            return zero_units(logits.unsqueeze(0).expand(masks.shape[0], -1, -1), masks)
        weight = self.head.weight
        if bool((masks.sum(dim=1) == 1).all()):
            unit = masks.to(torch.int8).argmax(dim=1)
            delta = pooled[:, unit].T.unsqueeze(2) * weight[:, unit].T.unsqueeze(1)
        else:
            delta = torch.einsum("bc,gc,kc->gbk", pooled, masks.to(pooled.dtype), weight)
        return logits.unsqueeze(0) - delta


def _probe_masks(n_units: int, device: torch.device) -> torch.Tensor:
    masks = torch.zeros(3, n_units, dtype=torch.bool, device=device)
    masks[0, 0] = True
    masks[1, n_units // 2] = True
    masks[2, [0, n_units // 2, n_units - 1]] = True
    return masks


def _agree(a: torch.Tensor, b: torch.Tensor) -> bool:
    scale = max(1.0, float(b.abs().max()))
    return a.shape == b.shape and bool(torch.allclose(a, b, rtol=1e-4, atol=1e-4 * scale))


def _candidate(kind: str, model: nn.Module, target: str):
    """The path of that kind for this target, or a string saying why it does not apply."""
    if kind == "hook":
        return HookPath(model, target)
    modules = suffix_modules(model, target)
    if modules is None:
        return f"the network after {target} is not a chain of modules"
    if kind == "suffix":
        return SuffixPath(model, target, Chain(modules))
    ok, head = closed_head(modules)
    if not ok:
        return f"{target} is not followed by global average pooling and a linear head only"
    return ClosedPath(model, target, head)


def choose_path(model: nn.Module, info: LayerInfo, mode: AblationMode, fast: FastPath, probe: torch.Tensor | None = None):
    """The requested path (``auto``: the fastest valid one), checked against the hook path on ``probe``.

    Without a probe only the structure is checked: for re-creating a path that a plan already
    checked (on a worker, maybe on another device).
    """
    if fast == "naive":
        return NaivePath(model, info, mode)
    target = target_module(model, info, mode)
    reasons = []
    if probe is not None:
        reference = HookPath(model, target)
        masks = _probe_masks(info.units, probe.device)
        with torch.no_grad():
            reference_state = reference.prepare(probe)
            expected = reference.ablated_logits(reference_state, masks)
    for kind in PATH_ORDER if fast == "auto" else (fast,):
        path = _candidate(kind, model, target)
        if isinstance(path, str):
            reasons.append(path)
            continue
        if probe is None or kind == "hook":
            return path
        try:
            with torch.no_grad():
                state = path.prepare(probe)
                ok = _agree(state.logits, reference_state.logits) and _agree(path.ablated_logits(state, masks), expected)
            why = "its logits differ from the full network's on a probe batch"
        except (RuntimeError, ValueError, TypeError) as exc:  # shape mismatches in a wrong chain
            ok, why = False, f"{type(exc).__name__}: {exc}"
        if ok:
            return path
        reasons.append(f"the {kind} path for {target} failed its check ({why})")
    raise NeuroscribeError(f"--fast {fast} does not apply to layer {info.name}: {'; '.join(reasons)}; use --fast auto")
