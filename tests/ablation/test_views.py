"""The answers a user asks for: class -> units and unit -> classes list real drops only, checked by brute force;
the chart draws no zero-drop class and picks the largest drops; the CLI asks a stored run."""

from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import pytest
import torch
from typer.testing import CliRunner

from neuroscribe.ablation.accuracy import count_correct, counts_frame, drop_table
from neuroscribe.ablation.fast import choose_path
from neuroscribe.ablation.report import (
    class_summary,
    class_units,
    default_chart_units,
    drop_figure,
    unit_summary,
)
from neuroscribe.config import ModelSpec
from neuroscribe.errors import NeuroscribeError
from neuroscribe.models import load_model, resolve_layers
from neuroscribe.testing.planted import CLASSES, planted_images

PLANTED = "neuroscribe.testing.planted:planted_cnn"


@pytest.fixture(scope="module")
def mixed():
    """The planted CNN with a seeded perturbation of its head, so that units hurt classes partly and unevenly."""
    loaded = load_model(ModelSpec(name=PLANTED))
    with torch.no_grad():
        loaded.model.fc.weight += 0.35 * torch.randn(loaded.model.fc.weight.shape, generator=torch.Generator().manual_seed(4))
    x, y = planted_images(n_per_class=10, seed=6)
    [info] = resolve_layers(loaded, ["conv"])
    path = choose_path(loaded.model, info, "activation", "auto", x[:2])
    counts = count_correct(path, [(x[i : i + 8], y[i : i + 8]) for i in range(0, len(x), 8)],
                           [(u,) for u in range(info.units)], info.units, units_per_pass=4)
    table = drop_table(counts_frame(counts), CLASSES)
    table["explanation"] = table["unit"].map(lambda u: f"concept {u}")
    return loaded, x, y, table


def _brute_force_drops(model, x, y) -> dict[tuple[str, int], float]:
    """(class, unit) -> accuracy drop, counted image by image with the unit's conv removed from a copy."""
    def correct(m):
        with torch.no_grad():
            predicted = m(x).argmax(1).numpy()
        return {c: int((predicted[y.numpy() == i] == i).sum()) for i, c in enumerate(CLASSES)}

    base = correct(model)
    support = {c: int((y == i).sum()) for i, c in enumerate(CLASSES)}
    drops = {}
    for unit in range(6):
        ablated = copy.deepcopy(model)
        with torch.no_grad():
            ablated.conv.weight[unit] = 0
            ablated.conv.bias[unit] = 0
        hits = correct(ablated)
        for c in CLASSES:
            drops[c, unit] = (base[c] - hits[c]) / support[c]
    return drops


def test_class_to_units_matches_a_brute_force_count(mixed):
    loaded, x, y, table = mixed
    drops = _brute_force_drops(loaded.model, x, y)
    assert len({round(d, 6) for d in drops.values() if d > 0}) >= 2, "the perturbation must give partial drops"
    assert sum(d <= 0 for d in drops.values()) > 12  # most (class, unit) pairs do not drop: they must not be listed
    for cls in CLASSES:
        view = class_units(table, cls)
        expected = {u: d for (c, u), d in drops.items() if c == cls and d > 0}
        assert dict(zip(view["unit"], view["drop"].round(9))) == {u: round(d, 9) for u, d in expected.items()}
        assert (np.diff(view["drop"].to_numpy()) <= 0).all()  # ranked by drop
        assert view["explanation"].tolist() == [f"concept {u}" for u in view["unit"]]
    summary = class_summary(table, top=3).set_index("class_name")
    for cls in CLASSES:
        hurting = sorted((d for (c, _), d in drops.items() if c == cls and d > 0), reverse=True)
        assert summary.loc[cls, "units_hurting"] == len(hurting)
        assert summary.loc[cls, "top_drops"] == pytest.approx(hurting[:3])
        assert summary.loc[cls, "top_explanations"] == [f"concept {u}" for u in summary.loc[cls, "top_units"]]


def test_unit_summary_lists_only_real_drops(mixed):
    loaded, x, y, table = mixed
    drops = _brute_force_drops(loaded.model, x, y)
    units = unit_summary(table, top=5).set_index("unit")
    for unit in range(6):
        hurt = {c for (c, u), d in drops.items() if u == unit and d > 0}
        assert set(units.loc[unit, "top_classes"]) == hurt and units.loc[unit, "classes_hurt"] == len(hurt)
        assert all(d > 0 for d in units.loc[unit, "top_drops"])


def test_class_names_are_matched_loosely_and_unknown_ones_are_named(mixed):
    *_, table = mixed
    assert class_units(table, "RED")["class"].eq(0).all()
    with pytest.raises(NeuroscribeError, match="class 'gren' .*did you mean green"):
        class_units(table, "gren")


def _table(rows):
    frame = pd.DataFrame(rows, columns=["units", "class", "support", "baseline_correct", "ablated_correct", "lost"])
    return drop_table(frame, [f"class{i}" for i in range(10)])


def test_chart_draws_no_zero_drop_class_and_picks_the_largest_drops():
    rows = []
    for unit in range(8):  # unit u hurts class u by (u + 1) of 10 images; unit 3 hurts nothing; others unchanged
        for cls in range(10):
            lost = unit + 1 if cls == unit and unit != 3 else 0
            rows.append((str(unit), cls, 10, 10, 10 - lost, lost))
    table = _table(rows)
    summary = unit_summary(table, top=5)
    assert default_chart_units(summary, n=3) == ["7", "6", "5"]  # not the first units by index
    assert "3" not in default_chart_units(summary, n=8)
    fig = drop_figure(table, ["7", "0", "3"], top=5)
    axes = fig.axes
    drawn = [[t.get_text() for t in ax.get_yticklabels()] for ax in axes[:3]]
    assert drawn[0] == ["class7 (n=10)"] and drawn[1] == ["class0 (n=10)"]
    assert not axes[2].patches and not axes[2].axison and "no class drops" in axes[2].get_title()
    for ax in axes[:2]:  # one bar per drawn class, each with an error bar
        assert len(ax.patches) == 1 and ax.patches[0].get_width() > 0
        assert any(len(c.get_segments()) == 1 for c in ax.collections)


def test_chart_panel_titles_are_explanations():
    table = _table([("0", 0, 4, 4, 0, 4), ("0", 1, 4, 4, 4, 0)])
    table["explanation"] = "a dip made from mashed avocado"
    fig = drop_figure(table, ["0"], top=5)
    assert "“a dip made from mashed avocado”" in fig.axes[0].get_title()
    assert [t.get_text() for t in fig.axes[0].get_yticklabels()] == ["class0 (n=4)"]


def test_ablation_report_cli_asks_a_stored_run(tmp_path):
    from neuroscribe.cli.ablate import app
    from neuroscribe.testing.planted import write_planted_folder

    data = write_planted_folder(tmp_path / "data", 3, seed=5)
    store = tmp_path / "store"
    result = CliRunner().invoke(app, ["ablate", "--model", PLANTED, "--layer", "conv", "--dataset", str(data),
                                      "--store", str(store), "--device", "cpu", "--local", "--all", "--class", "red"])
    assert result.exit_code == 0, result.output
    flat = "".join(result.output.split())
    assert "thatclass'red'dependson" in flat and "│0│+100[+21,+100]│100%->0%│3│" in flat
    assert "3of4classeshavefewerthan2images" not in flat  # 3 images each: enough to tell a full drop
    result = CliRunner().invoke(app, ["ablation-report", "--store", str(store), "--layer", "conv", "--unit", "1"])
    assert result.exit_code == 0, result.output
    assert "green" in result.output and "red" not in result.output
    result = CliRunner().invoke(app, ["ablation-report", "--store", str(store), "--layer", "conv", "--class", "purple"])
    assert isinstance(result.exception, NeuroscribeError) and "'purple'" in str(result.exception)
    page = (store / "ablation" / "conv.html").read_text()
    assert "Classes and the units they depend on" in page and "unit 0 +100" in page
