"""The quality benchmark: explanations of units whose meaning is known, at ``neuroscribe explain``'s defaults.

    result = run_benchmark(BenchmarkConfig(images="../shared/data/imagenet-samples/labels.tsv", out="runs/quality"))
    result["groups"]["superclasses"]["top1"]      # share of units named by their superclass
    print(benchmark_markdown(result))             # what `python benchmarks/quality.py` prints

Groups (issue 10's targets in ``TARGETS``):
- ``logits``: the classifier's units, ``builtin:imagenet`` vocabulary; right when labelled with the
  class name or a WordNet synonym; units whose class has no probe image are left out;
- ``superclasses`` and ``colours`` (``neuroscribe.evaluation.known_units``), vocabulary ImageNet names
  + superclasses + colours; right when labelled with the superclass (or a synonym) or the colour (or
  a built-in shade of it); superclasses without a probe image are left out;
- ``demo blocks.5``: the demo's config on the same images: median activation-grounded AUC and the
  share of explained units carrying the most frequent label.
Per labelled group and pooled (``all_known``): top-1 match, mean confidence and its AUROC for right
against wrong labels (``confidence_column`` says which column).  Everything but the backend
(``conse``) and the vocabulary is ``ExplainConfig``'s default.  Runs go to ``<out>/known`` and
``<out>/demo``; a rerun reuses every cached stage.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
from pydantic import Field

from neuroscribe.config import DatasetSpec, FrozenModel, ModelSpec
from neuroscribe.demo import demo_config
from neuroscribe.errors import NeuroscribeError
from neuroscribe.evaluation.config import EvaluateConfig
from neuroscribe.evaluation.consistency import auc, rounded, unit_aucs
from neuroscribe.evaluation.context import layer_context
from neuroscribe.evaluation.evidence import probe_images
from neuroscribe.evaluation.known_units import colour_labels, superclass_labels
from neuroscribe.evaluation.metrics import match_vector
from neuroscribe.evaluation.report import markdown_table
from neuroscribe.evaluation.truth import layer_truth
from neuroscribe.explanation import ExplainConfig, run_explain, score_layer
from neuroscribe.gallery import render_gallery
from neuroscribe.scoring.backend import BackendSpec, ConseSpec
from neuroscribe.scoring.rules import INACTIVE
from neuroscribe.vocabulary import build_vocabulary
from neuroscribe.vocabulary.superclasses import imagenet_superclasses

KNOWN_UNITS_MODEL = "neuroscribe.evaluation.known_units:efficientnet_lite0_with_known_units"
LOGIT_VOCABULARY = ("builtin:imagenet",)
KNOWN_VOCABULARY = ("builtin:imagenet+superclasses+colors",)
TARGETS = {  # issue 10: (measure, comparison, target)
    "logits": ("top1", ">=", 0.95),
    "superclasses": ("top1", ">=", 0.75),
    "colours": ("top1", ">=", 0.75),
    "demo_auc": ("median_auc", ">=", 0.85),
    "demo_top_label": ("top_label_share", "<=", 0.05),
}


class BenchmarkConfig(FrozenModel):
    images: str = Field(description="probe images: an image folder with class subfolders, or a .txt/.csv/.tsv list with labels")
    out: str = Field(description="folder for the benchmark's run stores and reports")
    model: str = Field(default=KNOWN_UNITS_MODEL, description="a model with classifier, superclasses and colours layers")
    backend: BackendSpec = ConseSpec()
    limit: int | None = Field(default=None, ge=1, description="use only the first N images (smoke runs)")
    device: Literal["auto", "cpu", "cuda"] = "auto"


def confidence_column(frame: pd.DataFrame) -> str:
    """The table's confidence: ``confidence`` when the rule writes it, else ``score``."""
    return "confidence" if "confidence" in frame.columns else "score"


def judged_units(frame: pd.DataFrame, variants: list[list[str]], included: np.ndarray) -> pd.DataFrame:
    """Per ``included`` unit of one table: its label, whether it is right, and its confidence."""
    frame = frame.sort_values("unit").reset_index(drop=True)
    included = np.asarray(included, dtype=bool)
    labels = frame["explanation"].astype(str).to_numpy()[included]
    return pd.DataFrame({
        "label": labels,
        "right": match_vector(labels, [v for v, keep in zip(variants, included) if keep]),
        "confidence": frame[confidence_column(frame)].to_numpy(dtype=np.float64)[included],
    })


def group_metrics(frame: pd.DataFrame, variants: list[list[str]], included: np.ndarray) -> dict:
    """``judged_metrics`` of the ``included`` units of one table, and its confidence column."""
    return judged_metrics(judged_units(frame, variants, included)) | {"confidence_column": confidence_column(frame)}


def most_frequent(labels) -> str:
    return ", ".join(f"{c} ({n})" for c, n in Counter(labels).most_common(3))


def judged_metrics(judged: pd.DataFrame) -> dict:
    """Top-1 match, mean confidence and the confidence's AUROC (right vs wrong); an inactive unit is wrong."""
    labels, right, confidence = judged["label"].to_numpy(), judged["right"].to_numpy(bool), judged["confidence"].to_numpy()
    active = labels != INACTIVE
    return {
        "units": len(judged),
        "top1": round(float(right.mean()), 4) if len(right) else None,
        "mean_confidence": round(float(np.nanmean(confidence[active])), 4) if active.any() else None,
        "confidence_auroc": rounded(auc(confidence[active & right], confidence[active & ~right])),
        "inactive": int((~active).sum()),
        "most_frequent": most_frequent(labels[active]),
    }


def top_label_share(frame: pd.DataFrame) -> float | None:
    """Share of explained units that carry the single most frequent label."""
    labels = [e for e in frame["explanation"].astype(str) if e != INACTIVE]
    return round(Counter(labels).most_common(1)[0][1] / len(labels), 4) if labels else None


def known_explain_config(cfg: BenchmarkConfig) -> ExplainConfig:
    """``explain``'s defaults on the known-units model, apart from backend and vocabulary."""
    backend = cfg.backend.model_copy(update={"device": cfg.device})
    return ExplainConfig(
        model=ModelSpec(name=cfg.model), layers=("classifier", "superclasses", "colours"),
        dataset=DatasetSpec(uri=cfg.images, limit=cfg.limit), store=str(Path(cfg.out) / "known" / "store"),
        vocabulary={"sources": LOGIT_VOCABULARY}, backend=backend,
    )


def run_known_units(cfg: BenchmarkConfig) -> dict[str, pd.DataFrame]:
    """Explain the logits (LOGIT_VOCABULARY); rescore superclasses and colours with KNOWN_VOCABULARY."""
    explain_cfg = known_explain_config(cfg)
    frames = run_explain(explain_cfg)
    known_cfg = explain_cfg.model_copy(update={"vocabulary": explain_cfg.vocabulary.model_copy(update={"sources": KNOWN_VOCABULARY})})
    vocabulary = build_vocabulary(known_cfg.vocabulary_config().model_copy(update={"name": "known_units_vocabulary"}))
    for layer in ("superclasses", "colours"):
        frames[layer] = score_layer(known_cfg, layer, vocabulary.uri)
        render_gallery(known_cfg.extract.store, layer, frames[layer], known_cfg.extract.store_options, known_cfg.gallery_patches)
    return frames


def layer_aucs(explain_cfg: ExplainConfig, layer: str) -> np.ndarray:
    """Per-unit activation-grounded AUC of the stored explanations, exactly as ``neuroscribe evaluate`` computes it."""
    eval_cfg = EvaluateConfig(store=explain_cfg.extract.store, layers=(layer,), explain=explain_cfg, sentence_models=())
    ctx = layer_context(eval_cfg, explain_cfg, layer, probe_images(explain_cfg, [layer], eval_cfg.random_images, eval_cfg.seed))
    return unit_aucs(ctx.probe, ctx.fired_ids, ctx.text_vectors(ctx.explanations), ctx.topk_ids)


GROUPS = ("known", "demo")  # the known-unit layers (logits, superclasses, colours), and the demo's blocks.5


def known_groups(cfg: BenchmarkConfig) -> dict:
    """The labelled groups (logits, superclasses, colours) and their pooled units (``all_known``)."""
    frames = run_known_units(cfg)
    store = known_explain_config(cfg).extract.store
    truth = layer_truth(store, "classifier")
    # a superclass is present when one of its classes has a probe image
    superclasses_present = np.array([truth.present[list(g.classes)].any() for g in imagenet_superclasses()])
    judged = {
        "logits": (frames["classifier"], truth.variants, truth.present),
        "superclasses": (frames["superclasses"], [v for _, v in superclass_labels()], superclasses_present),
        "colours": (frames["colours"], [v for _, v in colour_labels()], np.ones(len(frames["colours"]), dtype=bool)),
    }
    groups = {name: group_metrics(*args) for name, args in judged.items()}
    # the confidence target is over all benchmark units together
    groups["all_known"] = judged_metrics(pd.concat([judged_units(*args) for args in judged.values()], ignore_index=True))
    groups["all_known"]["confidence_column"] = ", ".join(sorted({g["confidence_column"] for g in groups.values() if "confidence_column" in g}))
    return groups


def demo_group(cfg: BenchmarkConfig) -> dict:
    """``demo_blocks5``: the demo's own config on the benchmark's images, ``blocks.5`` only."""
    demo_cfg = demo_config(images=cfg.images, out=str(Path(cfg.out) / "demo"), layers=("blocks.5",), limit=cfg.limit)
    demo_cfg = demo_cfg.model_copy(update={"backend": demo_cfg.backend.model_copy(update={"device": cfg.device})})
    demo_frame = run_explain(demo_cfg)["blocks.5"]
    aucs = layer_aucs(demo_cfg, "blocks.5")
    explained = demo_frame[demo_frame.explanation != INACTIVE]
    return {"demo_blocks5": {
        "units": len(demo_frame),
        "k": demo_cfg.extract.k,
        "median_auc": rounded(np.nanmedian(aucs)) if np.isfinite(aucs).any() else None,
        "top_label_share": top_label_share(demo_frame),
        "tie_share": round(float((explained.margin < 1e-6).mean()), 4) if len(explained) else None,
        "most_frequent": most_frequent(explained.explanation),
        "confidence_column": confidence_column(demo_frame),
    }}


def run_benchmark(cfg: BenchmarkConfig, groups: tuple[str, ...] = GROUPS) -> dict:
    """Run the chosen ``groups`` (default: all) and return the result (also written to
    ``<out>/quality.json`` and ``.md``; ``--only demo`` writes ``quality-demo.*``)."""
    if (unknown := sorted(set(groups) - set(GROUPS))) or not groups:
        raise NeuroscribeError(f"unknown benchmark groups {unknown or list(groups)}; choose from {', '.join(GROUPS)}")
    timings, measured = {}, {}
    for group, timing, measure in (("known", "known_units_s", known_groups), ("demo", "demo_s", demo_group)):
        if group in groups:
            began = time.perf_counter()
            measured |= measure(cfg)
            timings[timing] = round(time.perf_counter() - began, 1)
    result = {"config": cfg.model_dump(mode="json"), "groups": measured, "targets": _target_rows(measured), "timings": timings}
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    stem = "quality" if set(groups) == set(GROUPS) else f"quality-{'-'.join(groups)}"
    (out / f"{stem}.json").write_text(json.dumps(result, indent=2) + "\n")
    (out / f"{stem}.md").write_text(benchmark_markdown(result) + "\n")
    return result


def _target_rows(groups: dict) -> list[dict]:
    rows = []
    for name, (measure, op, target) in TARGETS.items():
        group = "demo_blocks5" if name.startswith("demo") else name
        if group not in groups:  # a group left out of this run
            continue
        value = groups[group].get(measure)
        met = None if value is None else (value >= target if op == ">=" else value <= target)
        rows.append({"target": name, "measure": measure, "value": value, "goal": f"{op} {target}", "met": met})
    return rows


def benchmark_markdown(result: dict) -> str:
    """The result as Markdown tables: one row per group, then the issue's targets."""
    g = result["groups"]
    columns = {"units": "units", "top-1": "top1", "mean confidence": "mean_confidence",
               "confidence AUROC": "confidence_auroc", "confidence column": "confidence_column",
               "most frequent": "most_frequent"}
    rows = [{"group": name} | {column: g[name][key] for column, key in columns.items()}
            for name in ("logits", "superclasses", "colours", "all_known") if name in g]
    tables = [markdown_table(rows)] if rows else []
    if "demo_blocks5" in g:
        demo = g["demo_blocks5"]
        tables.append(markdown_table([{
            "group": "demo blocks.5", "units": demo["units"], "k": demo.get("k"), "median AUC": demo["median_auc"],
            "top-label share": demo["top_label_share"], "margin < 1e-6": demo.get("tie_share"), "most frequent": demo["most_frequent"],
        }]))
    return "\n\n".join([*tables, markdown_table(result["targets"])])
