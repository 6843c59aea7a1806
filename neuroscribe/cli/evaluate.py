"""``neuroscribe evaluate``: how good are a run's explanations? Ground truth, label-free checks, comparisons."""

from __future__ import annotations

import time
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from neuroscribe.cli.app import (
    DaskAddressOption,
    LocalOption,
    WorkersOption,
    app,
    parse_storage_options,
)
from neuroscribe.config import load_config
from neuroscribe.errors import NeuroscribeError

console = Console()


def _print_result(result: dict, seconds: float) -> None:
    rows = result["headline"]
    columns = list(dict.fromkeys(c for row in rows for c in row))
    table = Table(*columns, title="evaluation")
    for row in rows:
        table.add_row(*[f"{v:.3f}" if isinstance(v, float) else ("–" if v is None else str(v)) for v in (row.get(c) for c in columns)])
    console.print(table)
    for key in ("markdown", "json", "chart"):
        console.print(f"{key:8} [bold]{result[key]}[/]")
    console.print(f"done in {seconds:.0f} s")


def _split(value: str | None, sep: str = ",") -> tuple[str, ...] | None:
    return tuple(v.strip() for v in value.split(sep) if v.strip()) if value else None


def _clip_spec(item: str, device: str | None) -> dict:
    arch, _, tag = item.partition(":")
    spec = {"kind": "open_clip", "arch": arch, "device": device or "auto"}
    return spec | ({"checkpoint": tag} if Path(tag).is_file() else {"pretrained": tag or "openai"})


@app.command()
def evaluate(
    store: str | None = typer.Option(None, "--store", "-s", help="run store with explanations: local path or s3://bucket/prefix"),
    layers: str | None = typer.Option(None, "--layers", "-l", help="comma-separated layers to evaluate (default: every explained layer)"),
    labels: str | None = typer.Option(
        None, help="known unit labels of the one layer in --layers: .csv/.tsv with columns unit,label[,variants] or .txt with one label per line"
    ),
    compare: str | None = typer.Option(None, help="comma-separated comparisons on the same extraction: rules, k, vocab"),
    compare_k: str | None = typer.Option(None, help="k values compared, e.g. 1,3,10 (default 1,2,3,5,10,20,50 up to the run's k)"),
    vocabularies: str | None = typer.Option(
        None, help="vocabularies compared, separated by ';', each a comma-separated union of sources, e.g. 'builtin:imagenet;llm,builtin:colors'"
    ),
    sentence_models: str | None = typer.Option(
        None, help="sentence spaces for cosine similarity (default minilm,all-mpnet-base-v2; mpnet only if available offline)"
    ),
    clip_text: str | None = typer.Option(
        None, help="extra CLIP text spaces for cosine similarity, comma-separated ARCH:TAG or ARCH:WEIGHTS_FILE (e.g. ViT-B-16:openai, the papers' space)"
    ),
    truth_text: str | None = typer.Option(None, help="ground-truth text embedded: name (default) or synonyms"),
    permutations: int | None = typer.Option(None, help="permutations for the chance baseline (default 100)"),
    random_images: int | None = typer.Option(None, help="random probe images for the AUC check (default 1000)"),
    bootstrap: int | None = typer.Option(None, help="bootstrap resamples for stability (default 10; 0 skips)"),
    seed: int | None = typer.Option(None, help="random seed of permutations, samples and resamples"),
    device: str | None = typer.Option(None, help="override the backend's device: auto, cpu or cuda"),
    explain_config: Path | None = typer.Option(None, help="the run's ExplainConfig (YAML/JSON) for a store without explain_config.json"),
    local: LocalOption = False,
    dask_address: DaskAddressOption = None,
    workers: WorkersOption = None,
    storage_option: list[str] | None = typer.Option(None, help="fsspec option key=value for the store and the images"),
    config: Path | None = typer.Option(None, "--config", "-c", help="YAML file of EvaluateConfig fields; flags override it"),
) -> None:
    """Evaluate a run's explanations: exact match and cosine similarity against known unit names (with chance
    baselines), activation-grounded AUC, bootstrap stability, and comparisons of rules, k and vocabularies.
    Writes <store>/evaluation/evaluation.json, evaluation.md and evaluation.png."""
    from neuroscribe.evaluation import EvaluateConfig
    from neuroscribe.explanation import ExplainConfig

    layers = _split(layers)
    if labels and (not layers or len(layers) != 1):
        raise NeuroscribeError("--labels gives the labels of one layer: pass exactly one layer in --layers with it")
    options = parse_storage_options(storage_option)
    overrides = {
        "store": store,
        "layers": layers,
        "labels": {layers[0]: labels} if labels else None,
        "compare": _split(compare),
        "compare_k": tuple(int(k) for k in _split(compare_k)) if compare_k else None,
        "compare_vocabularies": _split(vocabularies, ";"),
        "sentence_models": _split(sentence_models),
        "text_backends": tuple(_clip_spec(item, device) for item in _split(clip_text)) if clip_text else None,
        "truth_text": truth_text,
        "permutations": permutations,
        "random_images": random_images,
        "bootstrap": bootstrap,
        "seed": seed,
        "device": device,
        "explain": load_config(ExplainConfig, explain_config).model_dump() if explain_config else None,
        "store_options": options or None,
        "runner": {"dask_address": dask_address, "n_workers": workers},
    }
    cfg = load_config(EvaluateConfig, config, overrides)
    began = time.perf_counter()
    if local:
        from neuroscribe.evaluation.evaluate import run_evaluation

        result = run_evaluation(cfg)  # a progress bar per stage
    else:
        from neuroscribe.flows._run import run_flow
        from neuroscribe.flows.evaluate import evaluate_flow

        result = run_flow(evaluate_flow, cfg)
    _print_result(result, time.perf_counter() - began)
