"""Hooks are context managers: gone after normal exit and after an exception mid-forward."""

from __future__ import annotations

import pytest
import torch

from neuroscribe.hooks import capture_outputs, edit_outputs, hook_count
from neuroscribe.testing.tiny_models import tiny_cnn


def test_capture_returns_the_layer_output_and_removes_hooks():
    model = tiny_cnn().eval()
    x = torch.randn(2, 3, 32, 32)
    with capture_outputs(model, ["conv2"]) as outs:
        model(x)
    expected = model.conv2(model.relu1(model.conv1(x)))
    torch.testing.assert_close(outs["conv2"], expected)
    assert hook_count(model) == 0


def test_hooks_are_gone_after_an_exception_mid_forward():
    model = tiny_cnn().eval()

    def explode(out):
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        with capture_outputs(model, ["conv1", "fc"]), edit_outputs(model, {"conv2": explode}):
            model(torch.randn(1, 3, 32, 32))
    assert hook_count(model) == 0


def test_edit_outputs_replaces_the_output_for_that_forward_only():
    model = tiny_cnn().eval()
    x = torch.randn(1, 3, 32, 32)
    with edit_outputs(model, {"conv2": torch.zeros_like}):
        edited = model(x)
    torch.testing.assert_close(edited, model.fc(torch.zeros(1, 16)).detach() + 0 * edited)
    assert not torch.allclose(model(x), edited)
