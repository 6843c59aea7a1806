"""Evaluation paths: the logits of a batch under many ablations, sharing one pass over the batch.

    path = choose_path(loaded.model, info, mode="activation", fast="auto", probe=probe)
    state = path.prepare(x)                        # one forward: baseline logits (+ cached layer output)
    logits = path.ablated_logits(state, masks)     # [G, B, classes] for G unit sets (bool masks [G, units])

Every path computes the model's logits with the target module's units (``modes.target_module``)
set to zero.  From fastest to most general:

- ``closed``: the target is followed only by per-channel modules (eval BatchNorm, timm's
  ``BatchNormAct2d``, activations, dropout), global average pooling and one linear head
  (ResNet's ``layer4`` -> ``avgpool`` -> ``fc``; EfficientNet's ``conv_head`` -> ``bn2`` ->
  ``global_pool`` -> ``classifier``), or is that head's input or its logits.  A per-channel
  module maps a zeroed channel u to a constant ``c_u`` and leaves the others alone, and the
  logits are affine in the pooled activation ``p``, so ablating u changes them by
  ``-W[:, u] * (p[:, u] - c_u)``: an outer product per unit (unit sets sum their columns).
- ``suffix``: the network after the target is a plain chain of modules (``suffix_modules``).  The
  target's output is cached once per batch and only the chain runs, on G masked copies stacked
  along the batch axis.  When the chain starts with a 1x1 convolution or a linear layer, its
  output is cached too and a single unit's ablation subtracts a rank-one term instead; an eval
  BatchNorm right after it is folded into that term, the steps up to the pooling run on chunks of
  ``CHUNK_ELEMENTS`` (in cache) and the head once on all pairs.
- ``hook``: any model.  The whole network runs on G stacked copies of the batch; a hook zeroes
  unit set g in copy g.
- ``naive``: the reference, one ``modes.ablate`` forward per unit set (``weights`` mode really
  zeroes the weights).

``auto`` takes the first of closed, suffix, hook whose structure applies and whose ablated logits
match the hook path's on a probe batch, so a model whose forward is not what its module order
suggests falls back instead of giving wrong numbers.  Tests check every path against ``naive``.

A module whose output *is* an enclosing module's output is evaluated from the outermost such
module (``equivalent_target``), so every name of one tensor gets the same path.

Memory: ``suffix`` and ``hook`` cap the stacked copies per forward so that the largest
activation, times ``ACTIVATION_FACTOR`` live tensors, stays within ``MEMORY_BUDGET`` bytes
(measured on each batch by a hook that records sizes, never tensors).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import takewhile
from typing import Literal

import torch
from torch import nn

from neuroscribe.ablation.modes import AblationMode, ablate, target_module, units_mask, zero_units
from neuroscribe.errors import NeuroscribeError
from neuroscribe.hooks import capture_outputs, count_calls, edit_outputs
from neuroscribe.models.layers import LayerInfo

FastPath = Literal["auto", "closed", "suffix", "hook", "naive"]
PATH_ORDER = ("closed", "suffix", "hook")
# Modules that may sit between the target and the linear head of a closed-form path.
_PASS_THROUGH = (nn.Flatten, nn.Identity, nn.Dropout)
# Elementwise modules: output channel c depends on input channel c only.
_ELEMENTWISE = (
    nn.Identity, nn.Dropout, nn.ReLU, nn.ReLU6, nn.SiLU, nn.GELU, nn.Hardswish, nn.Hardsigmoid, nn.Sigmoid,
    nn.Tanh, nn.LeakyReLU, nn.ELU, nn.Mish,
)
# A stacked forward holds about this many activations of the widest layer at once (its input, its
# output, a temporary); benchmarks/ablate.py checks the resulting process memory.
ACTIVATION_FACTOR = 4
MEMORY_BUDGET = 1 << 30  # bytes of activations per stacked forward (suffix and hook paths)
# Elements of the rank-one path's working buffer: 4 MiB of float32 stays in a core's L2 cache, where
# the per-position steps after the update (BatchNorm, activation, pooling) run several times faster.
CHUNK_ELEMENTS = 1 << 20


@dataclass
class State:
    """What ``prepare`` keeps of one image batch: the input, its baseline logits, cached tensors."""

    x: torch.Tensor
    logits: torch.Tensor
    cached: torch.Tensor | None = None
    first: torch.Tensor | None = None  # the suffix chain's first (linear) step applied to ``cached`` (and a folded BatchNorm)
    copies: int = 1  # stacked copies of the batch per forward within the memory budget


def _forward_measured(
    model: nn.Module, x: torch.Tensor, budget: int, watched: Sequence[nn.Module] | None = None
) -> tuple[torch.Tensor, int]:
    """(logits, stacked copies of ``x`` per forward within ``budget`` bytes), from the widest output of
    the leaf modules of ``watched`` (default: the whole model), the ones the stacked forward runs."""
    inside = {id(m) for w in (watched if watched is not None else [model]) for m in w.modules()}
    leaves = [n for n, m in model.named_modules() if id(m) in inside and next(m.children(), None) is None]
    widest = [0]

    def record(out):
        if isinstance(out, torch.Tensor):
            widest[0] = max(widest[0], out.numel() * out.element_size())
        return out

    with edit_outputs(model, dict.fromkeys(leaves, record)):
        logits = model(x)
    return logits, max(1, budget // (max(1, widest[0]) * ACTIVATION_FACTOR))


def _capture(
    model: nn.Module, module_name: str, x: torch.Tensor, budget: int, watched: Sequence[nn.Module] | None = None
) -> tuple[torch.Tensor, torch.Tensor, int]:
    """(logits, a copy of the module's output, copies per stacked forward of ``watched``).

    Copied because later in-place ops (``out += identity``) would change it.
    """
    kept: dict[str, torch.Tensor] = {}

    def keep(out: torch.Tensor) -> torch.Tensor:
        kept["out"] = out.clone()
        return out

    with edit_outputs(model, {module_name: keep}):
        logits, copies = _forward_measured(model, x, budget, watched)
    # the chain also holds the stacked copies of the module's output itself
    copies = min(copies, max(1, budget // (kept["out"].numel() * kept["out"].element_size() * ACTIVATION_FACTOR)))
    return logits, kept["out"], copies


def _zeroed_copies(t: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """G copies of batch ``t`` stacked along the batch axis, unit set ``masks[g]`` zeroed in copy g."""
    return zero_units(torch.cat([t] * len(masks)), masks.repeat_interleave(len(t), dim=0))


class _StackedPath:
    """A path whose ``_run`` evaluates masks on copies of the batch, at most ``state.copies`` at a time."""

    def ablated_logits(self, state: State, masks: torch.Tensor) -> torch.Tensor:
        starts = range(0, len(masks), state.copies)
        return torch.cat([self._run(state, masks[s : s + state.copies]) for s in starts])


def equivalent_target(model: nn.Module, target: str, probe: torch.Tensor) -> str:
    """The outermost module enclosing ``target`` whose output is the same tensor on ``probe`` (else ``target``).

    ``bn2.act`` -> ``bn2`` (the activation is the last operation of timm's ``BatchNormAct2d``);
    ``blocks.6.0.bn3.act`` -> ``blocks`` when nothing follows inside.  Zeroing a unit of either
    is the same edit, so the fast paths can start from the outer one.
    """
    parts = target.split(".")
    enclosing = [".".join(parts[:i]) for i in range(len(parts) - 1, 0, -1)]
    if not enclosing:
        return target
    names = [target, *enclosing]
    with torch.no_grad(), count_calls(model, names) as calls, capture_outputs(model, names) as outputs:
        model(probe)
    inner = outputs[target]

    def same(name: str) -> bool:
        out = outputs.get(name)
        return isinstance(out, torch.Tensor) and calls.get(name) == 1 and out.shape == inner.shape and (
            out is inner or torch.equal(out, inner))

    return [target, *takewhile(same, enclosing)][-1]


class NaivePath:
    name = "naive"

    def __init__(self, model: nn.Module, info: LayerInfo, mode: AblationMode):
        self.model, self.info, self.mode, self.target = model, info, mode, info.name

    def prepare(self, x: torch.Tensor) -> State:
        return State(x, self.model(x))

    def ablated_logits(self, state: State, masks: torch.Tensor) -> torch.Tensor:
        out = []
        for mask in masks:
            with ablate(self.model, self.info, mask.nonzero().flatten().tolist(), self.mode):
                out.append(self.model(state.x))
        return torch.stack(out)


class HookPath(_StackedPath):
    name = "hook"

    def __init__(self, model: nn.Module, target: str, budget: int = MEMORY_BUDGET):
        self.model, self.target, self.budget = model, target, budget

    def prepare(self, x: torch.Tensor) -> State:
        logits, copies = _forward_measured(self.model, x, self.budget)
        return State(x, logits, copies=copies)

    def _run(self, state: State, masks: torch.Tensor) -> torch.Tensor:
        per_sample = masks.repeat_interleave(len(state.x), dim=0)  # row g*B+i of the stacked batch: masks[g]
        with edit_outputs(self.model, {self.target: lambda out: zero_units(out, per_sample)}):
            return self.model(torch.cat([state.x] * len(masks))).reshape(len(masks), len(state.x), -1)


def _flattened(h: torch.Tensor, module: nn.Module) -> torch.Tensor:
    # classifier forwards call torch.flatten(x, 1) between their pooling and their first Linear
    return torch.flatten(h, 1) if isinstance(module, nn.Linear) and h.ndim == 4 else h


class Chain:
    """Modules applied in order; a ``Linear`` fed a 4-d map gets it flattened first."""

    def __init__(self, modules: Sequence[nn.Module]):
        self.steps = list(modules)

    def __call__(self, h: torch.Tensor, start: int = 0) -> torch.Tensor:
        for module in self.steps[start:]:
            h = module(_flattened(h, module))
        return h


def _until_small(chain: Chain, h: torch.Tensor, split: int | None) -> tuple[torch.Tensor, int]:
    """Run ``chain`` on a chunk up to step ``split``, or (on the first chunk, ``split`` None) up to the
    first step whose output is an eighth of a sample's input or less, e.g. the pooling; (output, split)."""
    size, step = h[0].numel(), 0
    while step < len(chain.steps) and (step < split if split is not None else h[0].numel() * 8 > size):
        h = chain.steps[step](_flattened(h, chain.steps[step]))
        step += 1
    return h, step


def _is_chain(module: nn.Module) -> bool:
    return isinstance(module, nn.Sequential) and type(module).forward is nn.Sequential.forward


def _unrolled(modules: Sequence[nn.Module]) -> list[nn.Module]:
    """Plain ``nn.Sequential`` steps replaced by their children, recursively (AlexNet's ``classifier``)."""
    return [leaf for m in modules for leaf in (_unrolled(list(m.children())) if _is_chain(m) else [m])]


class ClassToken(nn.Module):
    """``x[:, 0]``: the class token, which torchvision's ViT head takes from the encoder's output."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, 0]


class HeadOf(nn.Module):
    """A model's own ``forward_head`` as a step (timm models: pooling, norm, dropout and classifier)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.forward_head = model.forward_head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(x)


def known_tail(container: nn.Module, child: str) -> list[nn.Module] | None:
    """What the forward of a container that is not an ``nn.Sequential`` does after child ``child``,
    for the classifier heads of torchvision's and timm's vision transformers; None when unknown."""
    from torchvision.models import vision_transformer as tv_vit

    if isinstance(container, tv_vit.VisionTransformer) and child == "encoder":
        return [ClassToken(), container.heads]
    if isinstance(container, tv_vit.Encoder) and child == "layers":
        return [container.ln]
    if type(container).__name__ == "VisionTransformer" and child == "blocks" and hasattr(container, "forward_head"):
        return [container.norm, HeadOf(container)]  # timm: forward_features ends with norm
    return None


def suffix_modules(model: nn.Module, name: str) -> list[nn.Module] | None:
    """The modules after ``name`` if the network could be a chain from there on, else None.

    Inside the model only ``nn.Sequential`` containers (with their own forward; nested ones
    unrolled) and the known heads of ``known_tail`` (torchvision's and timm's vision transformers)
    count as chains; the model's own forward is taken on trust here (unless ``known_tail`` knows
    it) and checked on a probe by ``choose_path``.
    """
    container: nn.Module = model
    rests: list[list[nn.Module]] = []
    for depth, part in enumerate(name.split(".")):
        children = dict(container.named_children())
        if part not in children:
            return None
        tail = known_tail(container, part)
        if tail is None and depth > 0 and not _is_chain(container):
            return None
        rests.append(tail if tail is not None else list(children.values())[list(children).index(part) + 1 :])
        container = children[part]
    return _unrolled([m for rest in reversed(rests) for m in rest])


def _rank_one_first(module: nn.Module | None) -> bool:
    """A first step whose change under one zeroed input unit is a rank-one term: a 1x1 conv or a Linear."""
    return isinstance(module, nn.Linear) or (
        isinstance(module, nn.Conv2d) and module.kernel_size == (1, 1) and module.stride == (1, 1)
        and module.groups == 1 and module.padding in ((0, 0), "valid") and type(module).forward is nn.Conv2d.forward
    )


def _foldable_norm(module: nn.Module | None) -> list[nn.Module] | None:
    """What follows the affine map inside ``module`` when it is an eval-mode BatchNorm with running
    statistics (``x * scale + shift`` per channel): nothing for ``nn.BatchNorm2d``, the dropout and
    activation of timm's ``BatchNormAct2d``; None for anything else."""
    if not isinstance(module, nn.BatchNorm2d) or module.training or module.running_var is None:
        return None
    if type(module) is nn.BatchNorm2d:
        return []
    if type(module).__name__ == "BatchNormAct2d" and set(dict(module.named_children())) == {"drop", "act"}:
        return [module.drop, module.act]  # its forward: batch_norm, then drop, then act
    return None


def _norm_affine(module: nn.BatchNorm2d) -> tuple[torch.Tensor, torch.Tensor]:
    """(scale, shift) of an eval BatchNorm (``_foldable_norm``), from its current buffers and parameters."""
    scale = torch.rsqrt(module.running_var + module.eps)
    if module.weight is not None:
        scale = scale * module.weight
    shift = -module.running_mean * scale
    if module.bias is not None:
        shift = shift + module.bias
    return scale, shift


class SuffixPath(_StackedPath):
    name = "suffix"

    def __init__(self, model: nn.Module, target: str, chain: Chain, budget: int = MEMORY_BUDGET):
        self.model, self.target, self.chain, self.budget = model, target, chain, budget
        self.first = chain.steps[0] if chain.steps and _rank_one_first(chain.steps[0]) else None
        # an eval BatchNorm right after a rank-one 1x1 conv is affine per channel: folded into the update
        # (its scale multiplies W's rows), so the per-(unit, image) work skips one pass over the map
        folds = isinstance(self.first, nn.Conv2d) and len(chain.steps) > 1
        after = _foldable_norm(chain.steps[1]) if folds else None
        self.norm = chain.steps[1] if after is not None else None
        self.rest = Chain(after + chain.steps[2:]) if after is not None else Chain(chain.steps[1:])

    def prepare(self, x: torch.Tensor) -> State:
        logits, cached, copies = _capture(self.model, self.target, x, self.budget, self.chain.steps)
        # a Linear after a 4-d map sees flattened positions, not units: no rank-one shortcut then
        usable = self.first is not None and not (isinstance(self.first, nn.Linear) and cached.ndim == 4)
        first = self.first(cached) if usable else None
        if first is not None and self.norm is not None:
            scale, shift = _norm_affine(self.norm)
            first = first * scale[:, None, None] + shift[:, None, None]
        return State(x, logits, cached, first, copies)

    def _single_units(self, state: State, units: torch.Tensor) -> torch.Tensor:
        """The logits with one input unit per copy removed, [G, B, classes]: the rank-one update of the
        module docstring, ``first - W[:, u] x_u``, chunk by chunk in one reused buffer."""
        cached, first, rest = state.cached, state.first, self.rest
        weight = self.first.weight.reshape(self.first.weight.shape[0], -1)  # [out, in] (1x1 conv or Linear)
        if self.norm is not None:  # folded into ``first`` by prepare
            weight = weight * _norm_affine(self.norm)[0][:, None]
        batch = cached.shape[0]
        if cached.ndim == 2:  # Linear: the whole [G, B, out] update is small
            h = first.unsqueeze(0) - weight[:, units].T[:, None, :] * cached[:, units].T[:, :, None]
            return rest(h.flatten(0, 1)).reshape(len(units), batch, -1)
        per_image = first[0].numel()
        rows = max(1, min(batch, CHUNK_ELEMENTS // per_image))  # images per chunk
        per_chunk = max(1, CHUNK_ELEMENTS // (per_image * batch)) if rows == batch else 1  # units per chunk
        buffer = first.new_empty(per_chunk * rows * per_image)
        pooled, split = [], None
        for g in range(0, len(units), per_chunk):
            group = units[g : g + per_chunk]
            for b in range(0, batch, rows):
                x = cached[b : b + rows, group].transpose(0, 1).unsqueeze(2)  # [g, rows, 1, H, W]
                w = weight[:, group].T[:, None, :, None, None]  # [g, 1, out, 1, 1]
                out = buffer[: len(group) * x.shape[1] * per_image].view(len(group), x.shape[1], *first.shape[1:])
                torch.addcmul(first[b : b + rows].unsqueeze(0), w, x, value=-1, out=out)
                h, split = _until_small(rest, out.flatten(0, 1), split)
                if h.untyped_storage().data_ptr() == buffer.untyped_storage().data_ptr():
                    h = h.clone()  # nothing shrank it: the next chunk reuses the buffer
                pooled.append(h.reshape(len(group), x.shape[1], *h.shape[1:]))
        # chunks are (unit group, image rows) in order: reassemble [G, B, ...]
        h = torch.cat([torch.cat(pooled[i : i + -(-batch // rows)], dim=1) for i in range(0, len(pooled), -(-batch // rows))])
        return rest(h.flatten(0, 1), start=split).reshape(len(units), batch, -1)

    def _run(self, state: State, masks: torch.Tensor) -> torch.Tensor:
        batch = len(state.x)
        single = masks.sum(dim=1) == 1
        if state.first is None or not bool(single.any()):
            return self.chain(_zeroed_copies(state.cached, masks)).reshape(len(masks), batch, -1)
        out = self._single_units(state, masks[single].to(torch.int8).argmax(dim=1))
        if bool(single.all()):
            return out
        merged = out.new_empty(len(masks), batch, out.shape[-1])
        merged[single] = out
        together = self.chain(_zeroed_copies(state.cached, masks[~single]))
        merged[~single] = together.reshape(-1, batch, out.shape[-1])
        return merged


def _is_global_average(module: nn.Module) -> bool:
    if isinstance(module, nn.AdaptiveAvgPool2d):
        return module.output_size in (1, (1, 1))
    # timm's SelectAdaptivePool2d(pool_type="avg"); the probe check confirms it
    return type(module).__name__ == "SelectAdaptivePool2d" and getattr(module, "pool_type", "") == "avg"


def _per_channel(module: nn.Module) -> bool:
    """Eval-mode BatchNorm (with per-channel children, as timm's BatchNormAct2d) or an elementwise module."""
    if isinstance(module, nn.modules.batchnorm._BatchNorm):
        return not module.training and all(_per_channel(c) for c in module.children())
    return isinstance(module, _ELEMENTWISE)


def closed_head(modules: Sequence[nn.Module]) -> tuple[list[nn.Module], nn.Linear | None] | None:
    """(the steps to the pooled features, the head) when ``modules`` are per-channel steps, then global
    average pooling / class-token / pass-through steps, then one Linear; ([], None) for no modules
    (the target is the logits); None otherwise."""
    if not modules:
        return [], None
    *between, head = modules
    per_channel = list(takewhile(lambda m: _per_channel(m) and not isinstance(m, _PASS_THROUGH), between))
    pooling = between[len(per_channel) :]
    pools = all(isinstance(m, (*_PASS_THROUGH, ClassToken)) or _is_global_average(m) for m in pooling)
    return (between, head) if pools and isinstance(head, nn.Linear) else None


class ClosedPath:
    name = "closed"

    def __init__(self, model: nn.Module, target: str, steps: Sequence[nn.Module], head: nn.Linear | None):
        self.model, self.target, self.to_pooled, self.head = model, target, Chain(steps), head

    def _pooled(self, out: torch.Tensor) -> torch.Tensor:
        return torch.flatten(self.to_pooled(out), 1)

    def prepare(self, x: torch.Tensor) -> State:
        logits, out, _ = _capture(self.model, self.target, x, MEMORY_BUDGET)
        # what a zeroed channel becomes after the per-channel and pooling steps (0 without per-channel steps)
        constant = self._pooled(torch.zeros_like(out[:1]))
        return State(x, logits, self._pooled(out) - constant)

    def ablated_logits(self, state: State, masks: torch.Tensor) -> torch.Tensor:
        logits, change = state.logits, state.cached
        if self.head is None:  # the target is the logits themselves
            return zero_units(logits.unsqueeze(0).expand(masks.shape[0], -1, -1), masks)
        if bool((masks.sum(dim=1) == 1).all()):
            unit = masks.to(torch.int8).argmax(dim=1)
            delta = change[:, unit].T.unsqueeze(2) * self.head.weight[:, unit].T.unsqueeze(1)
        else:
            delta = torch.einsum("bc,gc,kc->gbk", change, masks.to(change.dtype), self.head.weight)
        return logits.unsqueeze(0) - delta


def ablation_flops(path, probe: torch.Tensor, n_units: int) -> tuple[int, int]:
    """(flops of ``path.prepare`` on ``probe``, flops of one single-unit ablation on it): the
    convolution and matrix-product operations counted by ``FlopCounterMode`` (elementwise ones are
    not counted).  The ablation is a whole forward on the hook path, the layers after the target on
    the suffix path, nothing on the closed path."""
    from torch.utils.flop_counter import FlopCounterMode

    mask = units_mask([0], n_units, probe.device)[None]
    with torch.no_grad():
        with FlopCounterMode(display=False) as forward:
            state = path.prepare(probe)
        with FlopCounterMode(display=False) as ablation:
            path.ablated_logits(state, mask)
    return forward.get_total_flops(), ablation.get_total_flops()


def forwards_per_ablation(path, probe: torch.Tensor, n_units: int) -> float:
    """The work of one single-unit ablation on ``path`` in forwards of the whole network (``ablation_flops``)."""
    forward, ablation = ablation_flops(path, probe, n_units)
    return ablation / max(1, forward)


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
    closed = closed_head(modules)
    if closed is None:
        return f"{target} is not followed by per-channel modules, global average pooling and a linear head only"
    return ClosedPath(model, target, *closed)


def choose_path(
    model: nn.Module,
    info: LayerInfo,
    mode: AblationMode,
    fast: FastPath,
    probe: torch.Tensor | None = None,
    fast_target: str | None = None,
):
    """The requested path (``auto``: the fastest valid one), checked against the hook path on ``probe``.

    The path's ``target`` is the module it starts from (``equivalent_target`` of the ablated
    module, found on the probe).  Without a probe only the structure is checked, from
    ``fast_target`` when given: for re-creating a path that a plan already checked (on a worker,
    maybe on another device).
    """
    if fast == "naive":
        return NaivePath(model, info, mode)
    target = target_module(model, info, mode)
    if probe is None:
        start = fast_target or target
    else:
        reference = HookPath(model, target)
        n = info.units
        masks = torch.stack([units_mask(u, n, probe.device) for u in ([0], [n // 2], [0, n // 2, n - 1])])
        with torch.no_grad():
            start = equivalent_target(model, target, probe)
            reference_state = reference.prepare(probe)
            expected = reference.ablated_logits(reference_state, masks)
    reasons = []
    for kind in PATH_ORDER if fast == "auto" else (fast,):
        path = _candidate(kind, model, start if kind != "hook" else target)
        if isinstance(path, str):
            reasons.append(path)
            continue
        if probe is None or kind == "hook":
            return path
        try:
            with torch.no_grad():
                state = path.prepare(probe)
                if _agree(state.logits, reference_state.logits) and _agree(path.ablated_logits(state, masks), expected):
                    return path
            why = "its logits differ from the full network's on a probe batch"
        except (RuntimeError, ValueError, TypeError, AssertionError, IndexError) as exc:  # a wrong chain: shapes
            why = f"{type(exc).__name__}: {exc}"
        reasons.append(f"the {kind} path for {start} failed its check ({why})")
    raise NeuroscribeError(f"--fast {fast} does not apply to layer {info.name}: {'; '.join(reasons)}; use --fast auto")
