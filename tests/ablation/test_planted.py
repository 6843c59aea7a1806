"""A planted unit alone carries one class: ablating it drops that class to chance and leaves the others."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from neuroscribe.ablation.accuracy import (
    class_accuracy,
    count_correct,
    counts_frame,
    drop_table,
)
from neuroscribe.ablation.fast import choose_path
from neuroscribe.config import ModelSpec
from neuroscribe.models import load_model, resolve_layers
from neuroscribe.testing.planted import CLASSES

PLANTED = "neuroscribe.testing.planted:planted_cnn"


@pytest.fixture(scope="module")
def planted():
    from neuroscribe.testing.planted import planted_images

    loaded = load_model(ModelSpec(name=PLANTED))
    x, y = planted_images(n_per_class=12, seed=3)
    return loaded, x, y


def _independent_accuracy(model, x, y, unit=None):
    """Per-class accuracy of a copy of the model whose ``conv`` unit is removed by hand, in numpy."""
    model = copy.deepcopy(model)
    if unit is not None:
        with torch.no_grad():
            model.conv.weight[unit] = 0
            model.conv.bias[unit] = 0
    with torch.no_grad():
        predicted = model(x).argmax(1).numpy()
    labels = y.numpy()
    return np.array([(predicted[labels == c] == c).mean() for c in range(len(CLASSES))])


def _batches(x, y, size=10):
    return [(x[i : i + size], y[i : i + size]) for i in range(0, len(x), size)]


@pytest.mark.parametrize("layer", ["conv", "relu"])
def test_planted_unit_alone_carries_its_class(planted, layer):
    loaded, x, y = planted
    [info] = resolve_layers(loaded, [layer])
    probe = x[:2]
    path = choose_path(loaded.model, info, "activation", "auto", probe)
    counts = count_correct(path, _batches(x, y), [(u,) for u in range(info.units)], info.units, units_per_pass=4)
    table = drop_table(counts_frame(counts), CLASSES)

    baseline = _independent_accuracy(loaded.model, x, y)
    assert baseline.tolist() == [1.0, 1.0, 1.0, 1.0]
    red = table[(table.unit == 0) & (table.class_name == "red")].iloc[0]
    assert red.baseline_acc == 1.0
    assert red.ablated_acc <= 1 / len(CLASSES)  # at or below chance
    assert red.ablated_acc == _independent_accuracy(loaded.model, x, y, unit=0)[0]
    assert red["rank"] == 1 and red["drop"] == red.baseline_acc - red.ablated_acc
    others = table[(table.unit == 0) & (table.class_name != "red")]
    assert (others.ablated_acc == others.baseline_acc).all() and (others["drop"] == 0).all()
    # every unit's row agrees with the hand-ablated copy
    for unit in range(info.units):
        expected = _independent_accuracy(loaded.model, x, y, unit=unit)
        got = table[table.unit == unit].sort_values("class").ablated_acc.to_numpy()
        np.testing.assert_array_equal(got, expected)
    # the distractor units (3-5) fire but change no prediction
    assert (table.loc[table.unit >= 3, "drop"] == 0).all()


def test_all_paths_count_the_same(planted):
    loaded, x, y = planted
    [info] = resolve_layers(loaded, ["conv"])
    ablations = [(u,) for u in range(info.units)] + [(0, 1), (0, 1, 2)]
    results = {}
    for kind in ("naive", "hook", "suffix", "closed"):
        path = choose_path(loaded.model, info, "activation", kind, x[:2])
        results[kind] = count_correct(path, _batches(x, y, 7), ablations, info.units, units_per_pass=3)
    for kind in ("hook", "suffix", "closed"):
        np.testing.assert_array_equal(results[kind].ablated_correct, results["naive"].ablated_correct)
        np.testing.assert_array_equal(results[kind].baseline_correct, results["naive"].baseline_correct)
    both = results["naive"].ablated_correct[ablations.index((0, 1, 2))]  # red, green and blue units gone together
    assert both[:3].sum() == 0 and both[3] == 12


def test_absent_class_is_not_zero_accuracy(planted):
    loaded, x, y = planted
    keep = y != 2  # no blue images
    [info] = resolve_layers(loaded, ["relu"])
    path = choose_path(loaded.model, info, "activation", "auto", x[:2])
    counts = count_correct(path, _batches(x[keep], y[keep]), [(2,)], info.units)
    per_class = class_accuracy(counts.support, counts.baseline_correct, CLASSES)
    blue = per_class[per_class.class_name == "blue"].iloc[0]
    assert not blue.present and blue.support == 0 and np.isnan(blue.accuracy)
    assert per_class[per_class.present].accuracy.tolist() == [1.0, 1.0, 1.0]
    table = drop_table(counts_frame(counts), CLASSES)
    assert "blue" not in set(table.class_name)
