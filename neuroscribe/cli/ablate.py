"""``neuroscribe ablate``: per-class accuracy drop when units of a layer are silenced; ``ablation-report``: ask a stored one.

    neuroscribe ablate -m efficientnet_lite0 -l bn2 --all -d data/val -s runs/lite0 --class guacamole
    neuroscribe ablation-report -s runs/lite0 -l bn2 --class guacamole     # the units guacamole depends on
    neuroscribe ablation-report -s runs/lite0 -l bn2 --unit 559            # the classes unit 559 hurts
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.console import Console
from rich.table import Table

from neuroscribe.cli.app import (
    DataOptions,
    LocalOption,
    ModelOptions,
    RunnerOptions,
    StorageOption,
    app,
    parse_storage_options,
    with_options,
)
from neuroscribe.config import load_config
from neuroscribe.errors import NeuroscribeError

if TYPE_CHECKING:
    from neuroscribe.store import RunStore

console = Console()


def _text(value) -> str:
    import pandas as pd

    return "" if value is None or (not isinstance(value, (list, tuple)) and pd.isna(value)) else str(value)


def _interval(row) -> str:
    return f"+{row.drop * 100:.0f} [{row.drop_low * 100:+.0f}, {row.drop_high * 100:+.0f}]"


def _print_class_units(table, query: str, layer: str, top: int) -> None:
    from neuroscribe.ablation.report import class_units

    rows = class_units(table, query, top)
    name = table.loc[table["class"] == rows["class"].iloc[0], "class_name"].iloc[0] if len(rows) else query
    title = f"units of {layer} that class {name!r} depends on (accuracy drop, points, 95% interval)"
    out = Table("unit", "drop", "baseline -> ablated", "images", "explanation", title=title)
    for row in rows.itertuples():
        out.add_row(str(row.unit), _interval(row), f"{row.baseline_acc:.0%} -> {row.ablated_acc:.0%}", str(row.support),
                    _text(getattr(row, "explanation", None)))
    console.print(out if len(rows) else f"no single unit of {layer} lowers the accuracy of class {query!r}")


def _print_unit_classes(table, unit: str, layer: str, top: int) -> None:
    from neuroscribe.ablation.report import unit_classes, unit_title

    if unit not in set(table["units"]):
        raise NeuroscribeError(f"unit {unit} was not ablated in this run of {layer}; ask for one of its --units")
    rows = unit_classes(table, unit, top)
    title = f"classes that {unit_title(unit, table[table['units'] == unit])} hurts (accuracy drop, 95% interval)"
    out = Table("class", "drop", "baseline -> ablated", "images", title=title)
    for row in rows.itertuples():
        out.add_row(str(row.class_name), _interval(row), f"{row.baseline_acc:.0%} -> {row.ablated_acc:.0%}", str(row.support))
    console.print(out if len(rows) else f"ablating unit {unit} of {layer} lowers no class's accuracy")


def _print_summary(summary: dict, run: RunStore) -> None:
    units = run.recorded(summary["units_table"]).read_parquet()
    top = units[units["max_drop"] > 0].sort_values(["max_drop", "max_drop_low", "total_drop"], ascending=False).head(10)
    title = f"units of {summary['layer']} with the largest class drops ({summary['path']} path)"
    table = Table("unit", "explanation", "classes it hurts (accuracy drop)", "classes hurt", title=title)
    for row in top.itertuples():
        drops = ", ".join(f"{c} +{d * 100:.0f}" for c, d in zip(row.top_classes, row.top_drops))
        table.add_row(row.units, _text(getattr(row, "explanation", None)), drops, str(row.classes_hurt))
    console.print(table)
    for note in summary.get("notes", []):
        console.print(note)
    console.print(
        f"{summary['images']} images ({summary['skipped']} skipped, {summary['unlabelled']} unlabelled), "
        f"baseline top-1 {summary['baseline_accuracy']:.1%}, {summary['classes_present']} classes present"
    )
    if summary["classes_absent"]:
        console.print(
            f"{summary['classes_absent']} of the model's classes have no image in the dataset (e.g. "
            f"{', '.join(summary['absent_examples'][:5])}): their accuracy is undefined, not 0%, and they are left out"
        )
    for key in ("table", "units_table", "classes_table", "chart", "report"):
        if summary.get(key):
            console.print(f"{key}: {run.recorded(summary[key]).uri}")


@app.command()
@with_options
def ablate(
    layer: str | None = typer.Option(None, "--layer", "-l", help="layer whose units are ablated (see `neuroscribe layers`)"),
    units: str | None = typer.Option(None, "--units", "-u", help="comma-separated unit indices, e.g. 12,559"),
    all_units: bool = typer.Option(False, "--all", help="ablate every unit of the layer, one at a time"),
    dataset: str | None = typer.Option(None, "--dataset", "-d", help="labelled images: folder of class subfolders or a file list with labels"),
    store: str | None = typer.Option(None, "--store", "-s", help="run store: local path or s3://bucket/prefix"),
    model: ModelOptions = ModelOptions(),
    data: DataOptions = DataOptions(),
    mode: str | None = typer.Option(None, help="activation (default: force the unit's output to 0) or weights (zero its weights and bias)"),
    together: bool = typer.Option(False, help="ablate the --units as one set instead of one at a time"),
    fast: str | None = typer.Option(None, help="evaluation path: auto (default), closed, suffix, hook or naive"),
    units_per_pass: int | None = typer.Option(None, help="ablations stacked along the batch axis per pass (default 32)"),
    units_per_task: int | None = typer.Option(None, help="ablations per task, the unit of resume (default: about 256 forwards' work per image)"),
    top: int | None = typer.Option(None, help="most affected classes listed per unit (default 5)"),
    chart_units: str | None = typer.Option(None, help="units to chart, e.g. 12,559 (default: the 6 largest drops)"),
    class_name: str | None = typer.Option(None, "--class", help="then list the units this class depends on, e.g. guacamole"),
    runner: RunnerOptions = RunnerOptions(),
    local: LocalOption = False,
    config: Path | None = typer.Option(None, "--config", "-c", help="YAML file of AblateConfig fields; flags override it"),
) -> None:
    """Ablate units of a layer and measure each class's top-1 accuracy drop; writes ablation/<layer>.parquet, views, a chart."""
    from neuroscribe.ablation.pipeline import AblateConfig

    if units and all_units:
        raise NeuroscribeError("pass either --units 12,559 or --all, not both")
    overrides = {
        "layer": layer,
        "store": store,
        "units": "all" if all_units else units,
        "together": together or None,
        "mode": mode,
        "fast": fast,
        "units_per_pass": units_per_pass,
        "units_per_task": units_per_task,
        "top": top,
        "chart_units": chart_units,
        "store_options": data.storage_options,
        "model": model.overrides(),
        "dataset": data.overrides(dataset),
        "runner": asdict(runner),
    }
    cfg = load_config(AblateConfig, config, overrides)
    if cfg.units is None and not (all_units or config):
        raise NeuroscribeError("say which units to ablate: --units 12,559, or --all for every unit of the layer")
    if local:
        from neuroscribe.ablation.pipeline import run_sweep
        from neuroscribe.lease import config_lease

        with config_lease(cfg):
            summary = run_sweep(cfg)
    else:
        from neuroscribe.flows._run import run_flow
        from neuroscribe.flows.ablate import ablate_flow

        summary = run_flow(ablate_flow, cfg)
    _print_summary(summary, cfg.run_store)  # with the store's options: an s3:// store needs its credentials
    if class_name:
        _print_class_units(cfg.run_store.recorded(summary["table"]).read_parquet(), class_name, cfg.layer, cfg.top)


@app.command("ablation-report")
def ablation_report(
    store: str = typer.Option(..., "--store", "-s", help="run store of a finished `neuroscribe ablate`"),
    layer: str = typer.Option(..., "--layer", "-l", help="the ablated layer"),
    class_name: str | None = typer.Option(None, "--class", help="list the units this class depends on, e.g. guacamole"),
    unit: str | None = typer.Option(None, "--unit", "-u", help="list the classes this unit (or set, 12+559) hurts"),
    top: int = typer.Option(10, help="rows listed"),
    storage_option: StorageOption = None,
) -> None:
    """Ask a stored ablation: which units a class depends on (--class), or which classes a unit hurts (--unit)."""
    from neuroscribe.store import RunStore

    file = RunStore(store, parse_storage_options(storage_option)).ablation(layer)
    if not file.exists():
        raise NeuroscribeError(f"no ablation of layer {layer} in {store}; run `neuroscribe ablate --layer {layer}` first")
    if not (class_name or unit):
        raise NeuroscribeError("say what to ask: --class guacamole (its units) or --unit 559 (its classes)")
    table = file.read_parquet()
    if class_name:
        _print_class_units(table, class_name, layer, top)
    if unit:
        _print_unit_classes(table, unit, layer, top)
