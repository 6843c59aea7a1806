"""The sweep end to end on the planted model: outputs, explanations joined, resume by content, CLI."""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from typer.testing import CliRunner

from neuroscribe.ablation import sweep
from neuroscribe.ablation.sweep import AblateConfig, plan_sweep, run_sweep
from neuroscribe.config import DatasetSpec, ModelSpec, RunnerSpec
from neuroscribe.data import load_image
from neuroscribe.errors import NeuroscribeError
from neuroscribe.models import load_model
from neuroscribe.store import write_parquet
from neuroscribe.testing.planted import CLASSES, write_planted_folder

PLANTED = ModelSpec(name="neuroscribe.testing.planted:planted_cnn")


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return write_planted_folder(tmp_path_factory.mktemp("data") / "planted", 3, seed=5)


def _cfg(folder, store, **kw):
    runner = RunnerSpec(device="cpu", batch_size=5)
    fields = {"units_per_task": 4, "units_per_pass": 3} | kw
    return AblateConfig(model=PLANTED, layer="conv", dataset=DatasetSpec(uri=str(folder)), store=str(store),
                        runner=runner, **fields)


def _hand_ablated_accuracy(folder, unit):
    """Independent: decode each file, run a copy of the model with the unit's weights removed."""
    loaded = load_model(PLANTED)
    model = copy.deepcopy(loaded.model)
    with torch.no_grad():
        model.conv.weight[unit] = 0
        model.conv.bias[unit] = 0
    transform = loaded.preprocessing.transform()
    hits = {c: [] for c in CLASSES}
    for png in sorted(Path(folder).rglob("*.png")):
        with torch.no_grad():
            predicted = model(transform(load_image(str(png)))[None]).argmax(1).item()
        hits[png.parent.name].append(CLASSES[predicted] == png.parent.name)
    return {c: float(np.mean(v)) for c, v in hits.items()}


def test_sweep_writes_the_table_summary_chart_and_report(folder, tmp_path):
    store = tmp_path / "store"
    summary = run_sweep(_cfg(folder, store))
    table = pd.read_parquet(store / "ablation" / "conv.parquet")
    assert {"unit", "class", "baseline_acc", "ablated_acc", "drop"} <= set(table.columns)
    assert len(table) == 6 * 4 and sorted(table.unit.unique()) == list(range(6))
    for unit in (0, 1, 4):
        expected = _hand_ablated_accuracy(folder, unit)
        rows = table[table.unit == unit].set_index("class_name")
        assert {c: rows.loc[c, "ablated_acc"] for c in CLASSES} == expected
    red = table[(table.unit == 0) & (table.class_name == "red")].iloc[0]
    assert red.baseline_acc == 1.0 and red.ablated_acc <= 0.25 and red["rank"] == 1

    units = pd.read_parquet(store / "ablation" / "conv.units.parquet")
    assert list(units.loc[units.unit == 0, "top_classes"].iloc[0][:1]) == ["red"]
    assert (store / "ablation" / "conv.png").read_bytes()[:4] == b"\x89PNG"
    page = (store / "ablation" / "conv.html").read_text()
    assert "unit 0" in page and "data:image/png;base64," in page
    assert pd.read_parquet(store / "ablation" / "conv.baseline.parquet").present.all()
    saved = json.loads((store / "summary" / "ablate-conv.json").read_text())
    assert saved == summary
    assert summary["images"] == 12 and summary["path"] == "closed" and not summary["explanations_joined"]
    assert summary["charted"][0] in {"0", "1", "2"} and summary["classes_absent"] == 0


def test_explanations_are_joined_when_present(folder, tmp_path):
    store = tmp_path / "store"
    explained = pd.DataFrame({"layer": "conv", "unit": [0, 1, 2], "explanation": ["red things", "grass", "sky"],
                              "score": [0.9, 0.8, 0.7], "extra": 1})
    write_parquet(str(store), "explanations/conv.parquet", explained)
    summary = run_sweep(_cfg(folder, store, chart_units=(0, 4)))
    table = pd.read_parquet(store / "ablation" / "conv.parquet")
    assert summary["explanations_joined"] and summary["charted"] == ["0", "4"]
    assert set(table.loc[table.unit == 0, "explanation"]) == {"red things"}
    assert table.loc[table.unit == 4, "explanation"].isna().all() and "extra" not in table.columns
    units = pd.read_parquet(store / "ablation" / "conv.units.parquet")
    assert units.loc[units.unit == 0, "score"].iloc[0] == 0.9
    assert "“red things”" in (store / "ablation" / "conv.html").read_text()


def test_rerun_resumes_per_part_and_keys_by_content(folder, tmp_path, monkeypatch):
    store = tmp_path / "store"
    cfg = _cfg(folder, store, fast="suffix")  # the closed path makes one part
    first = run_sweep(cfg)
    plan = plan_sweep(cfg)
    assert len(plan.parts) == 2
    assert len(plan_sweep(_cfg(folder, store)).parts) == 1
    calls = []
    real = sweep.count_correct
    monkeypatch.setattr(sweep, "count_correct", lambda path, batches, ablations, *a, **k: calls.append(ablations) or real(path, batches, ablations, *a, **k))
    assert run_sweep(cfg)["run_key"] == first["run_key"] and calls == []
    (store / sweep.part_path(plan, 1)).with_suffix(".parquet").unlink()
    run_sweep(cfg)
    assert calls == [plan.ablations[4:6]]  # only the missing part ran again
    first_table = pd.read_parquet(store / "ablation" / "conv.parquet")
    assert run_sweep(cfg.model_copy(update={"mode": "weights"}))["run_key"] != first["run_key"]
    assert len(calls) == 3  # a different mode is different content: both parts recomputed
    # the conv layer's output is its weights' output: both modes agree exactly
    pd.testing.assert_frame_equal(pd.read_parquet(store / "ablation" / "conv.parquet"), first_table)
    shutil.copytree(folder, tmp_path / "more")
    write_planted_folder(tmp_path / "more2", 1, seed=9)
    shutil.copy(tmp_path / "more2" / "red" / "0000.png", tmp_path / "more" / "red" / "extra.png")
    assert plan_sweep(_cfg(tmp_path / "more", store, fast="suffix")).run_key != plan.run_key  # the listing is content too


def test_units_ablated_together(folder, tmp_path):
    store = tmp_path / "store"
    summary = run_sweep(_cfg(folder, store, units=(0, 1, 2), together=True))
    assert summary["table"].startswith("ablation/conv.set-")
    table = pd.read_parquet(store / summary["table"])
    assert set(table.units) == {"0+1+2"} and set(table.unit) == {-1}
    assert table.set_index("class_name").loc[["red", "green", "blue"], "ablated_acc"].tolist() == [0.0, 0.0, 0.0]
    assert table.set_index("class_name").loc["gray", "drop"] == 0


def test_cli_local_run_and_bad_input(folder, tmp_path):
    from neuroscribe.cli.ablate import app

    # a dataset without any blue image: blue is reported absent, not as 0%
    data = tmp_path / "data"
    shutil.copytree(folder, data)
    shutil.rmtree(data / "blue")
    store = tmp_path / "store"
    args = ["ablate", "--model", PLANTED.name, "--layer", "relu", "--dataset", str(data), "--store", str(store),
            "--device", "cpu", "--local"]
    result = CliRunner().invoke(app, args + ["--units", "0,2"])
    assert result.exit_code == 0, result.output
    flat = "".join(result.output.split())  # rich wraps lines at the terminal width
    assert "ablation/relu.parquet" in flat and "(closedpath)" in flat
    assert "1ofthemodel'sclasseshavenoimageinthedataset(e.g.blue)" in flat
    baseline = pd.read_parquet(store / "ablation" / "relu.baseline.parquet").set_index("class_name")
    assert not baseline.loc["blue", "present"] and np.isnan(baseline.loc["blue", "accuracy"])

    result = CliRunner().invoke(app, args + ["--units", "2,6,40"])
    assert isinstance(result.exception, NeuroscribeError)
    assert "units [6, 40] are out of range for layer relu" in str(result.exception)
    result = CliRunner().invoke(app, args)
    assert isinstance(result.exception, NeuroscribeError) and "--all" in str(result.exception)


def test_errors_before_any_work(folder, tmp_path):
    with pytest.raises(NeuroscribeError, match="layer 'conv9' is not an addressable layer"):
        plan_sweep(_cfg(folder, tmp_path, units=(0,)).model_copy(update={"layer": "conv9"}))
    tiny = ModelSpec(name="neuroscribe.testing.tiny_models:tiny_cnn")  # conv1 -> relu1 -> conv2: no closed form
    with pytest.raises(NeuroscribeError, match="--fast closed does not apply to layer conv1"):
        plan_sweep(_cfg(folder, tmp_path, fast="closed").model_copy(update={"model": tiny, "layer": "conv1"}))
    with pytest.raises(NeuroscribeError, match="chart-units"):
        run_sweep(_cfg(folder, tmp_path, units=(0, 1), chart_units=(5,)))


def test_parts_running_in_threads_of_one_worker_do_not_mix(folder, tmp_path):
    """Dask runs several tasks per worker process on one cached model: hooks and zeroed weights must not cross."""
    from concurrent.futures import ThreadPoolExecutor

    for mode, fast in (("activation", "suffix"), ("weights", "naive")):
        cfg = _cfg(folder, tmp_path / f"threads-{mode}", mode=mode, fast=fast, units_per_task=1)
        plan = plan_sweep(cfg)
        with ThreadPoolExecutor(4) as pool:
            list(pool.map(sweep.run_part, [cfg] * len(plan.parts), [plan] * len(plan.parts), range(len(plan.parts))))
        threaded = sweep.assemble_result(cfg, plan).summary
        sequential = run_sweep(cfg.model_copy(update={"store": str(tmp_path / f"seq-{mode}")}))
        assert threaded["run_key"] == sequential["run_key"]
        pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / f"threads-{mode}" / "ablation" / "conv.parquet"),
                                      pd.read_parquet(tmp_path / f"seq-{mode}" / "ablation" / "conv.parquet"))


def test_parts_are_sized_by_work(folder, tmp_path, monkeypatch):
    """Without ``units_per_task`` a part holds FORWARDS_PER_PART forwards' work: that many ablations on the
    hook path (each a whole forward), all six units in one part on the suffix path (each only the head)."""
    monkeypatch.setattr(sweep, "FORWARDS_PER_PART", 2)
    hook = plan_sweep(_cfg(folder, tmp_path, units_per_task=None, fast="hook"))
    assert hook.parts == ((0, 2), (2, 4), (4, 6))
    assert plan_sweep(_cfg(folder, tmp_path, units_per_task=None, fast="suffix")).parts == ((0, 6),)
    assert plan_sweep(_cfg(folder, tmp_path, units_per_task=4, fast="hook")).parts == ((0, 4), (4, 6))  # as asked
