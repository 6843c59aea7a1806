"""``neuroscribe explain`` (the whole method, from flags or a YAML config) and ``neuroscribe demo``."""

from __future__ import annotations

import time
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from neuroscribe.cli.app import (
    ExtractOptions,
    LimitOption,
    MaxImagePixelsOption,
    WaitOption,
    app,
    with_options,
)
from neuroscribe.config import load_config
from neuroscribe.errors import NeuroscribeError
from neuroscribe.vocabulary.config import DEFAULT_SOURCES

console = Console()
VOCABULARY_HELP = f"vocabulary source (repeat): llm, builtin:NAME[+NAME], file:PATH \\[default: {' '.join(DEFAULT_SOURCES)}]"


def _run_explain_flow(cfg) -> None:
    """Validate ``cfg`` (bad input fails here, before the flows load prefect and open_clip), run the
    explain flow on Dask and print where the results are."""
    from neuroscribe.explanation import validate_explain

    validate_explain(cfg)

    from neuroscribe.flows._run import run_flow
    from neuroscribe.flows.explain import explain_flow
    from neuroscribe.lease import ensure_free

    ensure_free(cfg.extract.store, cfg.extract.store_options, cfg.extract.runner.wait_for_store_s)
    began = time.perf_counter()
    result = run_flow(explain_flow, cfg)
    title = f"explanations in {result['store']}"
    table = Table("layer", "units", "explained", "most frequent concepts", "mean score", title=title)
    for s in result["layers"]:
        table.add_row(s["layer"], str(s["units"]), str(s["explained"]), s["most_frequent"], str(s["mean_score"]))
    console.print(table)
    for s in result["layers"]:
        console.print(f"table   [bold]{s['table']}[/] (and .csv)")
        console.print(f"gallery [bold]{result['galleries'][s['layer']]}[/]")
    console.print(f"done in {time.perf_counter() - began:.0f} s")


@app.command()
@with_options
def explain(
    extraction: ExtractOptions,
    vocabulary: list[str] | None = typer.Option(None, help=VOCABULARY_HELP),
    vocabulary_uri: str | None = typer.Option(None, help="use a prebuilt vocabulary artifact"),
    classes: str | None = typer.Option(None, help="classes the LLM is asked about: imagenet, places365 or FILE"),
    backend: str | None = typer.Option(None, help="open_clip (default, ViT-B-32/openai) or conse (offline)"),
    clip_arch: str | None = typer.Option(None, help="open_clip architecture"),
    clip_pretrained: str | None = typer.Option(None, help="open_clip pretrained tag"),
    clip_checkpoint: str | None = typer.Option(None, help="open_clip local weights file"),
    rule: str | None = typer.Option(None, help="scoring rule: seed (default) or softwpmi"),
    quantile: float | None = typer.Option(None, help="patch threshold quantile (default 0.995)"),
    config: Path | None = typer.Option(None, "--config", "-c", help="YAML file of ExplainConfig fields; flags override it"),
) -> None:
    """Explain every unit of the given layers: extract, vocabulary, patches, scoring, tables, galleries."""
    from neuroscribe.explanation import ExplainConfig

    overrides = extraction.overrides() | {  # ExtractConfig's flat field names, lifted into ExplainConfig.extract
        "vocabulary": {"sources": tuple(vocabulary) if vocabulary else None, "classes": classes}, "vocabulary_uri": vocabulary_uri,
        "backend": {"kind": backend, "device": extraction.runner.device},
        "rule": {"name": rule},
        "patches": {"quantile": quantile},
    }
    clip = {"arch": clip_arch, "pretrained": clip_pretrained, "checkpoint": clip_checkpoint}
    cfg = load_config(ExplainConfig, config, overrides)
    if given := [f"--clip-{name}" for name, value in clip.items() if value is not None]:
        if cfg.backend.kind != "open_clip":  # named here: the spec's own error would name `arch`, not the flag
            raise NeuroscribeError(f"{', '.join(given)}: open_clip flags, but this run's backend is {cfg.backend.kind}; drop them or pass --backend open_clip")
        cfg = load_config(ExplainConfig, config, overrides | {"backend": overrides["backend"] | clip})
    _run_explain_flow(cfg)


@app.command()
def demo(
    images: str | None = typer.Option(None, help="probe images: folder or file list (default: scikit-image's bundled photos)"),
    out: str = typer.Option("runs/demo", help="output folder"),
    limit: LimitOption = None,
    k: int = typer.Option(5, help="top-activating images per unit"),
    overwrite: bool = typer.Option(False, help="replace an earlier demo store that differs"),
    max_image_pixels: MaxImagePixelsOption = None,
    wait: WaitOption = None,
) -> None:
    """The whole method offline on EfficientNet-Lite0 (ConSE backend, built-in vocabulary); prints where results are."""
    from neuroscribe.demo import demo_config

    cfg = demo_config(images=images, out=out, k=k, limit=limit, overwrite=overwrite, max_image_pixels=max_image_pixels,
                      wait=wait or 0.0)
    _run_explain_flow(cfg)
