"""``neuroscribe layers`` and ``neuroscribe extract``."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from neuroscribe.cli.app import (
    MODEL_HELP,
    BatchSizeOption,
    CheckpointOption,
    DaskAddressOption,
    DeviceOption,
    MaxImagePixelsOption,
    ModelOption,
    OverwriteOption,
    StorageOption,
    WaitOption,
    WeightsOption,
    WorkersOption,
    app,
    parse_storage_options,
    runner_overrides,
)
from neuroscribe.config import ExtractConfig, ModelSpec, load_config

console = Console()


@app.command()
def layers(
    model: str = typer.Option("efficientnet_lite0", "--model", "-m", help=MODEL_HELP),
    weights: WeightsOption = None,
    checkpoint: Path | None = typer.Option(None, help="local state-dict file"),
    kind: str | None = typer.Option(None, help="only layers of this kind: conv, token or linear"),
    contains: str | None = typer.Option(None, help="only layer names containing this text"),
) -> None:
    """List the addressable layers of a model with their kind and unit count."""
    from neuroscribe.models import list_layers, load_model

    loaded = load_model(ModelSpec(name=model, weights=weights, checkpoint=str(checkpoint) if checkpoint else None, pretrained=False))
    table = Table(title=f"addressable layers of {model}")
    for col in ("layer", "kind", "units", "map", "module"):
        table.add_column(col)
    for info in list_layers(loaded):
        if (kind and info.kind != kind) or (contains and contains not in info.name):
            continue
        shape = "x".join(map(str, info.map_shape)) if info.map_shape else "-"
        table.add_row(info.name, info.kind, str(info.units), shape, info.module_type)
    console.print(table)


@app.command()
def extract(
    layers: str | None = typer.Option(None, "--layers", "-l", help="comma-separated layer names (see `neuroscribe layers`)"),
    dataset: str | None = typer.Option(None, "--dataset", "-d", help="image folder or file list; local, s3:// or any fsspec URL"),
    store: str | None = typer.Option(None, "--store", "-s", help="run store: local path or s3://bucket/prefix"),
    model: ModelOption = None,
    weights: WeightsOption = None,
    checkpoint: CheckpointOption = None,
    class_names: str | None = typer.Option(None, help="file with the model's class names, one per line"),
    class_list: str | None = typer.Option(None, help="dataset class-folder order, one name per line"),
    limit: int | None = typer.Option(None, help="use only the first N images"),
    shard_size: int | None = typer.Option(None, help="images per shard (default 256)"),
    k: int | None = typer.Option(None, help="top-activating images kept per unit (default 50)"),
    batch_size: BatchSizeOption = None,
    device: DeviceOption = None,
    dask_address: DaskAddressOption = None,
    workers: WorkersOption = None,
    overwrite: OverwriteOption = False,
    storage_option: StorageOption = None,
    max_image_pixels: MaxImagePixelsOption = None,
    wait: WaitOption = None,
    config: Path | None = typer.Option(None, "--config", "-c", help="YAML file of ExtractConfig fields; flags override it"),
) -> None:
    """Stream a dataset through a model and store per-unit statistics and top-k examples (Prefect + Dask)."""
    from neuroscribe.extraction import validate_extraction
    from neuroscribe.flows._run import run_flow
    from neuroscribe.flows.extract import extract_flow
    from neuroscribe.lease import ensure_free

    options = parse_storage_options(storage_option)
    overrides = {
        "layers": layers,
        "store": store,
        "k": k,
        "overwrite": overwrite or None,
        "store_options": options or None,
        "model": {"name": model, "weights": weights, "checkpoint": checkpoint, "class_names_file": class_names},
        "dataset": {"uri": dataset, "class_list": class_list, "limit": limit, "shard_size": shard_size, "storage_options": options or None, "max_image_pixels": max_image_pixels},
        "runner": runner_overrides(batch_size, device, dask_address, workers, wait),
    }
    cfg = load_config(ExtractConfig, config, overrides)
    validate_extraction(cfg)  # bad input fails here, in one line, before any server or cluster starts
    ensure_free(cfg.store, cfg.store_options, cfg.runner.wait_for_store_s)
    summary = run_flow(extract_flow, cfg)
    table = Table(title="extraction summary")
    table.add_column("field")
    table.add_column("value")
    for key, value in summary.items():
        table.add_row(key, str(value))
    console.print(table)
