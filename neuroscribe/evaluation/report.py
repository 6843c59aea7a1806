"""The evaluation's outputs for people: ``evaluation.json``, ``evaluation.md`` and a PNG chart.

    result = write_report(cfg, ["classifier"])     # reads evaluation/<layer>/{summary.json,compare.parquet}
    result["json"], result["markdown"], result["chart"], result["headline"]

The chart has one panel of label metrics against their chance level (layers with ground truth),
one of the AUC distributions, and one per comparison axis.  The Markdown is rendered with jinja2
from ``templates/evaluation.md.jinja``.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from importlib.resources import files

import pandas as pd
from jinja2 import Environment

from neuroscribe.evaluation.config import EvaluateConfig, resolve_explain_config

# ResNet-50's final layer in the literature (ImageNet val probe set): the yardstick the same measurement
# with CLIP ViT-B/16 and all-mpnet-base-v2 is read against.  Approximate, as the papers report them.
LITERATURE = [
    {"source": "MILAN (as reported by CLIP-Dissect / Describe-and-Dissect)", "CLIP ViT-B/16 cosine": "~0.71", "all-mpnet-base-v2 cosine": "~0.28"},
    {"source": "Describe-and-Dissect (its paper)", "CLIP ViT-B/16 cosine": "~0.76", "all-mpnet-base-v2 cosine": "~0.46"},
    {"source": "CLIP-Dissect release, soft-WPMI, 20k words (experiments/table3)", "CLIP ViT-B/16 cosine": "0.790", "all-mpnet-base-v2 cosine": "0.526"},
]
REPRODUCE = (
    "The same measurement in the papers' spaces: `neuroscribe evaluate --store RUN --clip-text ViT-B-16:openai "
    "--sentence-models minilm,all-mpnet-base-v2` (mpnet from the Hugging Face cache or a local folder)."
)
CHOICES = [
    (
        "Ground truth of the classifier output: unit u is the model's class u; synonyms are the class's WordNet lemmas "
        "(timm's ImageNet info) for ImageNet-1k models, otherwise the comma-separated items of the class name."
    ),
    "Exact match compares case-, hyphen- and punctuation-folded text; an inactive unit counts as a miss.",
    "'present' units are those whose class has at least one decoded probe image; 'all' counts every labelled unit.",
    (
        "Cosine similarity embeds explanation and truth text as they are (no prompt template, as CLIP-Dissect's "
        "get_cos_similarity) and leaves inactive units out."
    ),
    "Chance: the same metric with the ground truth of a random permutation of the units, mean over permutations.",
    (
        "AUC: the backend's image-text similarity to the explanation, the unit's top images where it fired against random "
        "probe images outside its top-k."
    ),
    (
        "Stability: bootstrap resamples of the probe set; each unit's top-k is recomputed from activations and the unit "
        "rescored on the part of it that has stored embeddings (coverage says how much of the resampled top-k that is; "
        "a resample that draws none of a unit's stored images is left out for that unit)."
    ),
]


def _fmt(value) -> str:
    if isinstance(value, float):
        return "–" if math.isnan(value) else f"{value:.3f}"
    return "–" if value is None else str(value)


def markdown_table(rows: Sequence[dict]) -> str:
    """A Markdown table with the first row's keys as columns."""
    if not rows:
        return "_(none)_"
    columns = list(rows[0])
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(_fmt(r.get(c)) for c in columns) + " |" for r in rows]
    return "\n".join(lines)


def label_rows(labels: dict) -> list[dict]:
    rows = []
    for subset in ("present", "all"):
        entry = labels[subset]
        row = {"units": f"{subset} ({entry['units']})", "exact match": entry["exact_match"]["value"], "chance": entry["exact_match"]["chance"]}
        for space, result in entry["cosine"].items():
            row[f"cosine {space}"] = result["value"]
            row[f"chance {space}"] = result["chance"]
        rows.append(row)
    return rows


def headline(summary: dict) -> dict:
    """The few numbers a person reads first, for the CLI and the flow's artifact."""
    out = {"layer": summary["layer"], "explained": f"{summary['explained']}/{summary['units']}"}
    if summary.get("labels"):
        present = summary["labels"]["present"]
        out["exact match (present)"] = present["exact_match"]["value"]
        out["chance"] = present["exact_match"]["chance"]
        out |= {f"cosine {space}": result["value"] for space, result in present["cosine"].items()}
    return out | {"AUC mean": summary["auc"].get("mean"), "stability": summary["stability"].get("unchanged")}


def _template():
    text = files("neuroscribe.evaluation").joinpath("templates", "evaluation.md.jinja").read_text(encoding="utf-8")
    # Markdown, not HTML: HTML escaping would turn the text's quotes and ampersands into entities
    env = Environment(autoescape=False, trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True)
    env.filters["fmt"] = _fmt
    env.globals |= {"markdown_table": markdown_table, "label_rows": label_rows}
    return env.from_string(text)


def chart(summaries: list[dict], compares: dict[str, pd.DataFrame]) -> bytes:
    """PNG bytes of the chart (see the module docstring)."""
    import numpy as np
    from matplotlib.figure import Figure

    labelled = [s for s in summaries if s.get("labels")]
    axes_names = sorted({a for frame in compares.values() for a in frame.get("axis", pd.Series(dtype=str)).unique()})
    panels = (1 if labelled else 0) + 1 + len(axes_names)
    columns = min(3, panels)
    rows = -(-panels // columns)
    fig = Figure(figsize=(5.2 * columns, 4.2 * rows))  # not pyplot: no process-global backend or registry
    axes = list(fig.subplots(rows, columns, squeeze=False).flat)
    for ax in axes[panels:]:
        ax.axis("off")
    if labelled:
        ax = axes.pop(0)
        bars = []
        for s in labelled:
            present = s["labels"]["present"]
            bars.append((f"{s['layer']}\nexact", present["exact_match"]["value"], present["exact_match"]["chance"]))
            for space, r in present["cosine"].items():
                bars.append((f"{s['layer']}\ncos {space.split(' ')[0]}", r["value"], r["chance"]))
        x = np.arange(len(bars))
        ax.bar(x - 0.2, [b[1] for b in bars], 0.4, label="explanations", color="#2e86c1")
        ax.bar(x + 0.2, [b[2] for b in bars], 0.4, label="chance (permuted truth)", color="#aab7b8")
        ax.set_xticks(x, [b[0] for b in bars], fontsize=7)
        ax.set_ylim(0, 1)
        ax.set_title("label metrics, present units", fontsize=9)
        ax.legend(fontsize=7)
    ax = axes.pop(0)
    for s in summaries:
        if hist := s["auc"].get("histogram"):
            ax.stairs(hist["counts"], hist["edges"], label=s["layer"])
    ax.axvline(0.5, color="grey", linestyle="--", linewidth=1)
    ax.set_xlabel("AUC (top images vs random images)", fontsize=8)
    ax.set_ylabel("units", fontsize=8)
    ax.set_title("activation-grounded check", fontsize=9)
    ax.legend(fontsize=7)
    for axis_name, ax in zip(axes_names, axes):
        for i, (layer, frame) in enumerate(compares.items()):
            part = frame[frame["axis"] == axis_name]
            metric = "exact_match_present" if "exact_match_present" in part else "auc_mean"
            x = np.arange(len(part))
            ax.bar(x + i * 0.8 / max(len(compares), 1), part[metric].astype(float), 0.8 / max(len(compares), 1), label=f"{layer}: {metric}")
            ax.set_xticks(x, part["variant"], fontsize=7, rotation=20)
        ax.set_ylim(0, 1)
        ax.set_title(f"compare {axis_name}", fontsize=9)
        ax.legend(fontsize=7)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    return buffer.getvalue()


def write_report(cfg: EvaluateConfig, layers: list[str]) -> dict:
    """Assemble the per-layer results into ``evaluation/evaluation.{json,md,png}``."""
    explain_cfg = resolve_explain_config(cfg)
    summaries, compares = [], {}
    for layer in layers:
        summary = cfg.run_store.evaluation_layer(layer, "summary.json").read_json()
        compare = cfg.run_store.evaluation_layer(layer, "compare.parquet")
        if cfg.compare and compare.exists():
            compares[layer] = compare.read_parquet()
            summary["compare"] = compares[layer].to_dict("records")
        summaries.append(summary)
    document = {
        "store": cfg.store,
        "model": explain_cfg.extract.model.model_dump(mode="json"),
        "dataset": explain_cfg.extract.dataset.uri,
        "backend": explain_cfg.backend.model_dump(mode="json"),
        "rule": explain_cfg.rule.model_dump(mode="json"),
        "vocabulary_sources": list(explain_cfg.vocabulary.sources),
        "evaluation": cfg.model_dump(mode="json", exclude={"explain", "runner", "store_options"}),
        "layers": {s["layer"]: s for s in summaries},
        "literature_resnet50_final_layer": LITERATURE,
        "choices": CHOICES,
    }
    text = _template().render(
        store=cfg.store, explain=explain_cfg, summaries=summaries, literature=LITERATURE, reproduce=REPRODUCE, choices=CHOICES,
        comparisons={layer: frame.to_dict("records") for layer, frame in compares.items() if len(frame)},
    )
    files = {"json": cfg.run_store.evaluation(".json"), "markdown": cfg.run_store.evaluation(".md"), "chart": cfg.run_store.evaluation(".png")}
    files["json"].write_json(document)
    files["markdown"].write_bytes(text.encode())
    files["chart"].write_bytes(chart(summaries, compares))
    paths = {name: file.uri for name, file in files.items()}
    return paths | {"headline": [headline(s) for s in summaries], "markdown_text": text}
