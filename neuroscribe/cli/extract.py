"""``neuroscribe layers`` and ``neuroscribe extract``."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from neuroscribe.cli.app import (
    MODEL_HELP,
    ExtractOptions,
    WeightsOption,
    app,
    with_options,
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
    table = Table("layer", "kind", "units", "map", "module", title=f"addressable layers of {model}")
    for info in list_layers(loaded):
        if (kind and info.kind != kind) or (contains and contains not in info.name):
            continue
        shape = "x".join(map(str, info.map_shape)) if info.map_shape else "-"
        table.add_row(info.name, info.kind, str(info.units), shape, info.module_type)
    console.print(table)


@app.command()
@with_options
def extract(
    extraction: ExtractOptions,
    config: Path | None = typer.Option(None, "--config", "-c", help="YAML file of ExtractConfig fields; flags override it"),
) -> None:
    """Stream a dataset through a model and store per-unit statistics and top-k examples (Prefect + Dask)."""
    from neuroscribe.extraction import validate_extraction
    from neuroscribe.flows._run import run_flow
    from neuroscribe.flows.extract import extract_flow
    from neuroscribe.lease import ensure_free

    cfg = load_config(ExtractConfig, config, extraction.overrides())
    validate_extraction(cfg)  # bad input fails here, in one line, before any server or cluster starts
    ensure_free(cfg.store, cfg.store_options, cfg.runner.wait_for_store_s)
    summary = run_flow(extract_flow, cfg)
    table = Table("field", "value", title="extraction summary")
    for key, value in summary.items():
        table.add_row(key, str(value))
    console.print(table)
