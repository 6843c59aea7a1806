"""Forward hooks as context managers that always remove what they registered.

    with capture_outputs(model, ["layer3", "layer4"]) as outputs:
        model(x)
    outputs["layer4"]            # the layer's output from the last forward

    with edit_outputs(model, {"layer4": lambda out: out * mask}):
        logits = model(x)        # layer4's output replaced for this forward only
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import ExitStack, contextmanager

import torch
from torch import nn

from neuroscribe.errors import NeuroscribeError


@contextmanager
def _forward_hooks(model: nn.Module, names: Iterable[str], make_hook: Callable[[str], Callable]) -> Iterator[None]:
    """Register ``make_hook(name)`` on each named module; remove them all on exit, error or not."""
    names, modules = list(names), dict(model.named_modules())
    missing = [n for n in names if n not in modules]
    if missing:
        raise NeuroscribeError(f"no module named {missing} in the model; see `neuroscribe layers`")
    with ExitStack() as stack:  # a handle removes its hook on exit
        for name in names:
            stack.enter_context(modules[name].register_forward_hook(make_hook(name)))
        yield


@contextmanager
def capture_outputs(model: nn.Module, names: Iterable[str]) -> Iterator[dict[str, torch.Tensor]]:
    outputs: dict[str, torch.Tensor] = {}
    with _forward_hooks(model, names, lambda name: lambda _m, _i, out: outputs.__setitem__(name, out)):
        yield outputs


@contextmanager
def count_calls(model: nn.Module, names: Iterable[str]) -> Iterator[dict[str, int]]:
    calls: dict[str, int] = {}
    with _forward_hooks(model, names, lambda name: lambda _m, _i, _o: calls.__setitem__(name, calls.get(name, 0) + 1)):
        yield calls


@contextmanager
def edit_outputs(model: nn.Module, edits: dict[str, Callable[[torch.Tensor], torch.Tensor]]) -> Iterator[None]:
    # a forward hook that returns a value replaces the module's output
    with _forward_hooks(model, edits, lambda name: lambda _m, _i, out: edits[name](out)):
        yield


def hook_count(model: nn.Module) -> int:
    """How many forward (pre-)hooks are registered anywhere in the model (tests use it)."""
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())
