"""``neuroscribe vocabulary``: build the concept vocabulary of a run and print what it cost.

    neuroscribe vocabulary --store runs/r50                                   # offline built-in sets
    neuroscribe vocabulary --classes imagenet --source llm --source builtin:colors --store runs/r50
    neuroscribe vocabulary --classes categories_places365.txt --source llm \\
        --base-url http://127.0.0.1:8000/v1 --model Qwen/Qwen2.5-7B-Instruct --store s3://bucket/run

Runs the ``vocabulary`` flow on Dask by default; ``--in-process`` runs it here without Prefect.
"""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from neuroscribe.cli.app import WaitOption, app, parse_storage_options
from neuroscribe.config import load_config
from neuroscribe.errors import NeuroscribeError
from neuroscribe.vocabulary.config import DEFAULT_SOURCES, VocabularyConfig

SOURCE_HELP = f"llm | builtin:NAME[+NAME...] | file:PATH; repeat for a union \\[default: {' '.join(DEFAULT_SOURCES)}]"


@app.command()
def vocabulary(
    store: str = typer.Option(None, "--store", "-s", help="run store (local path or s3://...) that receives vocabulary/<name>.parquet"),
    classes: str = typer.Option(None, "--classes", help="imagenet | places365 | FILE with one class name per line \\[default: imagenet]"),
    source: list[str] = typer.Option(None, "--source", help=SOURCE_HELP),
    places365_file: str = typer.Option(None, "--places365-file", help="Places365 class list (categories_places365.txt)"),
    model: str = typer.Option(None, "--model", help="LLM model id \\[default: $OPENAI_MODEL, else gpt-4o-mini]"),
    base_url: str = typer.Option(None, "--base-url", help="OpenAI-compatible endpoint \\[default: $OPENAI_BASE_URL, else OpenAI]"),
    api_key: str = typer.Option(None, "--api-key", help="prefer $OPENAI_API_KEY; any non-empty value for local servers"),
    concurrency: int = typer.Option(None, "--concurrency", min=1, help="LLM requests in flight per task \\[default: 8]"),
    classes_per_task: int = typer.Option(None, "--classes-per-task", min=1, help="classes per flow task \\[default: 50]"),
    max_words: int = typer.Option(None, "--max-words", min=1, help="drop longer LLM concepts \\[default: 4]"),
    dedup_threshold: float = typer.Option(None, "--dedup-threshold", help="cosine similarity that merges near-synonyms \\[default: 0.88]"),
    no_dedup: bool = typer.Option(False, "--no-dedup", help="keep near-synonyms apart"),
    cache_dir: str = typer.Option(None, "--cache-dir", help="shared LLM answer cache, read and written besides the run's own <store>/vocabulary/llm_cache"),
    name: str = typer.Option(None, "--name", help="artifact stem under <store>/vocabulary/ \\[default: vocabulary]"),
    config: Path = typer.Option(None, "--config", help="YAML file of VocabularyConfig fields; options override it"),
    storage_option: list[str] = typer.Option(None, "--storage-option", help="fsspec key=value for the store, repeatable"),
    dask_address: str = typer.Option(None, "--dask-address", help="existing Dask scheduler \\[default: a local cluster]"),
    workers: int = typer.Option(None, "--workers", min=1, help="local cluster worker processes \\[default: 1]"),
    local: bool = typer.Option(False, "--local", "--in-process", help="run here with a progress bar, without Prefect and Dask"),
    wait: WaitOption = None,
    out: str = typer.Option(None, "--out", hidden=True),  # the old name of --store: refused, naming the new one
) -> None:
    """Build the concept vocabulary explanations are chosen from: LLM-generated per class (cached), built-in or from files."""
    if out is not None:
        raise NeuroscribeError(f"--out is now --store, as on every other command: pass --store {out}")
    overrides = {
        "store": store,
        "classes": classes,
        "sources": tuple(source) if source else None,
        "places365_file": places365_file,
        "cache_dir": cache_dir,
        "name": name,
        "store_options": parse_storage_options(storage_option) or None,
        "llm": {"model": model, "base_url": base_url, "api_key": api_key, "concurrency": concurrency, "classes_per_task": classes_per_task},
        "filter": {"max_words": max_words, "dedup_threshold": dedup_threshold},
        "runner": {"dask_address": dask_address, "n_workers": workers, "wait_for_store_s": wait},
    }
    cfg = load_config(VocabularyConfig, config, overrides)
    if no_dedup:
        cfg = cfg.model_copy(update={"filter": cfg.filter.model_copy(update={"dedup_threshold": None})})
    if local:
        from neuroscribe.lease import config_lease
        from neuroscribe.vocabulary import build_vocabulary

        with config_lease(cfg):
            summary = build_vocabulary(cfg)  # a progress bar per batch of classes
    else:
        from neuroscribe.flows._dask import with_dask_runner
        from neuroscribe.flows.vocabulary import vocabulary_flow

        summary = with_dask_runner(vocabulary_flow, cfg.runner)(cfg)
    print_summary(summary, Console())


def print_summary(summary, console: Console) -> None:
    stats = summary.filter
    table = Table(title="vocabulary", show_header=False, title_justify="left")
    rows = [
        ("classes asked", f"{summary.classes_asked} of {summary.classes}"),
        ("answers", f"{summary.answers} ({summary.cached_hits} cached hits)"),
        ("LLM requests", str(summary.requests)),
        ("tokens", f"{summary.prompt_tokens} prompt + {summary.completion_tokens} completion"),
        ("failures", str(len(summary.failures))),
        ("candidates", ", ".join(f"{k} {v}" for k, v in summary.candidates_by_source.items()) or "0"),
        ("concepts before filtering", str(stats.concepts_before)),
        ("removed", (f"{stats.dropped_too_long} too long, {stats.dropped_class_name} restating the class, "
                     f"{stats.merged_synonyms} merged synonyms, {stats.dropped_rare} rare")),
        ("concepts after filtering", str(stats.concepts_after)),
        ("artifact", summary.uri),
        ("content hash", summary.content_hash),
        ("seconds", f"{summary.seconds:.1f}"),
    ]
    for key, value in rows:
        table.add_row(key, value)
    console.print(table)
    for failure in summary.failures[:20]:
        console.print(f"[yellow]failed[/] {failure.class_name} / {failure.template}: {failure.error}", highlight=False)
    if len(summary.failures) > 20:
        console.print(f"[yellow]... and {len(summary.failures) - 20} more failures[/]")
