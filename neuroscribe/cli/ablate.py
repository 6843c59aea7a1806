"""``neuroscribe ablate``: per-class accuracy drop when units of a layer are silenced."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from neuroscribe.cli.app import (
    BatchSizeOption,
    CheckpointOption,
    DaskAddressOption,
    DeviceOption,
    MaxImagePixelsOption,
    ModelOption,
    StorageOption,
    WaitOption,
    WeightsOption,
    WorkersOption,
    app,
    parse_storage_options,
    runner_overrides,
)
from neuroscribe.config import load_config

console = Console()


def _print_summary(summary: dict, store: str) -> None:
    import pandas as pd

    from neuroscribe.store import read_parquet

    units = read_parquet(store, summary["units_table"])
    top = units.sort_values("max_drop", ascending=False).head(10)
    table = Table(title=f"units of {summary['layer']} with the largest class drops ({summary['path']} path)")
    for column in ("unit", "explanation", "most affected classes (accuracy drop)"):
        table.add_column(column)
    for row in top.itertuples():
        drops = ", ".join(f"{c} {d * 100:+.0f}" for c, d in zip(row.top_classes, row.top_drops))
        explanation = getattr(row, "explanation", None)
        table.add_row(row.units, "" if explanation is None or pd.isna(explanation) else str(explanation), drops)
    console.print(table)
    console.print(
        f"{summary['images']} images ({summary['skipped']} skipped, {summary['unlabelled']} unlabelled), "
        f"baseline top-1 {summary['baseline_accuracy']:.1%}, {summary['classes_present']} classes present"
    )
    if summary["classes_absent"]:
        console.print(
            f"{summary['classes_absent']} of the model's classes have no image in the dataset (e.g. "
            f"{', '.join(summary['absent_examples'][:5])}): their accuracy is undefined, not 0%, and they are left out"
        )
    for key in ("table", "units_table", "chart", "report"):
        console.print(f"{key}: {store.rstrip('/')}/{summary[key]}")


@app.command()
def ablate(
    layer: str | None = typer.Option(None, "--layer", "-l", help="layer whose units are ablated (see `neuroscribe layers`)"),
    units: str | None = typer.Option(None, "--units", "-u", help="comma-separated unit indices, e.g. 12,559"),
    all_units: bool = typer.Option(False, "--all", help="ablate every unit of the layer, one at a time"),
    dataset: str | None = typer.Option(None, "--dataset", "-d", help="labelled images: folder of class subfolders or a file list with labels"),
    store: str | None = typer.Option(None, "--store", "-s", help="run store: local path or s3://bucket/prefix"),
    model: ModelOption = None,
    weights: WeightsOption = None,
    checkpoint: CheckpointOption = None,
    class_names: str | None = typer.Option(None, help="file with the model's class names, one per line"),
    class_list: str | None = typer.Option(None, help="dataset class-folder order, one name per line"),
    limit: int | None = typer.Option(None, help="use only the first N images"),
    mode: str | None = typer.Option(None, help="activation (default: force the unit's output to 0) or weights (zero its weights and bias)"),
    together: bool = typer.Option(False, help="ablate the --units as one set instead of one at a time"),
    fast: str | None = typer.Option(None, help="evaluation path: auto (default), closed, suffix, hook or naive"),
    units_per_pass: int | None = typer.Option(None, help="ablations stacked along the batch axis per pass (default 32)"),
    units_per_task: int | None = typer.Option(None, help="ablations per task, the unit of resume (default 256)"),
    top: int | None = typer.Option(None, help="most affected classes listed per unit (default 5)"),
    chart_units: str | None = typer.Option(None, help="units to chart, e.g. 12,559 (default: the 6 largest drops)"),
    batch_size: BatchSizeOption = None,
    device: DeviceOption = None,
    dask_address: DaskAddressOption = None,
    workers: WorkersOption = None,
    local: bool = typer.Option(False, help="run in this process with a progress bar instead of the Prefect flow on Dask"),
    storage_option: StorageOption = None,
    max_image_pixels: MaxImagePixelsOption = None,
    wait: WaitOption = None,
    config: Path | None = typer.Option(None, "--config", "-c", help="YAML file of AblateConfig fields; flags override it"),
) -> None:
    """Ablate units of a layer and measure each class's top-1 accuracy drop; writes ablation/<layer>.parquet and a chart."""
    from neuroscribe.ablation.sweep import AblateConfig
    from neuroscribe.errors import NeuroscribeError

    if units and all_units:
        raise NeuroscribeError("pass either --units 12,559 or --all, not both")
    options = parse_storage_options(storage_option)
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
        "store_options": options or None,
        "model": {"name": model, "weights": weights, "checkpoint": checkpoint, "class_names_file": class_names},
        "dataset": {"uri": dataset, "class_list": class_list, "limit": limit, "storage_options": options or None, "max_image_pixels": max_image_pixels},
        "runner": runner_overrides(batch_size, device, dask_address, workers, wait),
    }
    cfg = load_config(AblateConfig, config, overrides)
    if cfg.units is None and not (all_units or config):
        raise NeuroscribeError("say which units to ablate: --units 12,559, or --all for every unit of the layer")
    if local:
        from tqdm.auto import tqdm

        from neuroscribe.ablation.sweep import run_sweep

        with tqdm(unit="img", desc=f"ablate {cfg.layer}") as bar:
            def advance(n: int) -> None:
                bar.update(n - bar.n)

            def start(total: int) -> None:
                bar.total = total
                bar.refresh()

            from neuroscribe.lease import store_lease

            with store_lease(cfg.store, cfg.store_options, wait_s=cfg.runner.wait_for_store_s, ttl_s=cfg.runner.store_lease_ttl_s):
                summary = run_sweep(cfg, on_progress=advance, on_start=start)
    else:
        from flows._run import run_flow
        from flows.ablate import ablate_flow

        summary = run_flow(ablate_flow, cfg)
    _print_summary(summary, cfg.store)
