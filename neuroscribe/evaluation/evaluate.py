"""Evaluate an explained run: label metrics, activation-grounded AUC, bootstrap stability, comparisons.

    result = run_evaluation(EvaluateConfig(store="runs/r50", compare=("rules", "k")))   # in process
    result["markdown"], result["headline"]       # the report's paths and each layer's headline numbers

Stages (the ``evaluate`` flow runs them as tasks; the files, under ``<store>/evaluation/``, are in
``neuroscribe.store``'s layout): ``embed_job`` (rule embeddings missing, cached by content) ->
``embed_probe`` (whole-image embeddings of the probe images) -> per layer ``evaluate_layer``
(``summary.json``; ``units.parquet``: explanation, truth, match, cosines, AUC, stability) and
``compare_step`` (``compare.parquet``, a row per variant; ``compare_units.parquet``, each unit's
label per variant) -> ``write_report`` (``evaluation.json``, ``.md``, ``.png``).
"""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd

from neuroscribe.evaluation.compare import compare_layer
from neuroscribe.evaluation.config import (
    EvaluateConfig,
    evaluated_layers,
    resolve_explain_config,
)
from neuroscribe.evaluation.consistency import (
    auc,
    bootstrap_stability,
    distribution,
    rounded,
    unit_aucs,
)
from neuroscribe.evaluation.context import LayerContext, layer_context
from neuroscribe.evaluation.evidence import (
    ProbeImages,
    evidence_for,
    probe_images,
    rescore,
    rule_config,
)
from neuroscribe.evaluation.metrics import label_metrics
from neuroscribe.evaluation.report import write_report
from neuroscribe.explanation import (
    ExplainConfig,
    cached_backend,
    embed_unit_block,
    embedding_key,
    embeds_whole_images,
    n_units,
    unit_blocks,
)
from neuroscribe.scoring.rules import INACTIVE, UNCERTAIN_BELOW
from neuroscribe.stages import Executor, InProcess, Stage, one_item


def embedding_jobs(cfg: EvaluateConfig) -> list[tuple[str, list[int], ExplainConfig]]:
    """(layer, units, config) blocks to embed first: the run's rule always (normally cached), and the
    patch embeddings of the seed rule when rules are compared on a softwpmi run."""
    explain_cfg = resolve_explain_config(cfg)
    configs = [explain_cfg]
    if "rules" in cfg.compare and embeds_whole_images(explain_cfg.rule):
        configs.append(rule_config(explain_cfg, "seed"))
    jobs = []
    for layer, c in itertools.product(evaluated_layers(cfg, explain_cfg), configs):
        key = embedding_key(c, layer, cached_backend(c.backend).fingerprint)
        blocks = unit_blocks(n_units(c, layer), c.units_per_task)
        jobs += [(layer, b, c) for b in blocks if not c.run_store.embeddings(layer, key, b).exists()]
    return jobs


def _probe(cfg: EvaluateConfig) -> ProbeImages:
    explain_cfg = resolve_explain_config(cfg)
    return probe_images(explain_cfg, evaluated_layers(cfg, explain_cfg), cfg.random_images, cfg.seed)


def embed_probe(cfg: EvaluateConfig, item: None) -> dict:
    probe = _probe(cfg)
    return {"images": len(probe.ids), "random": len(probe.random)}


def _context(cfg: EvaluateConfig, layer: str) -> LayerContext:
    return layer_context(cfg, resolve_explain_config(cfg), layer, _probe(cfg))


def _stability(ctx: LayerContext, units: pd.DataFrame) -> dict:
    """Bootstrap stability of the run's rule; also checks that rescoring reproduces the run's table."""
    cfg, rule = ctx.cfg, ctx.explain.rule
    evidence = evidence_for(ctx.explain, ctx.layer, rule, ctx.probe)

    def relabel(repeats: np.ndarray) -> list[str]:
        return [s.best for s in rescore(evidence, repeats, rule, ctx.concept_vectors, ctx.vocabulary.concepts)]

    reference = relabel(evidence.repeats())
    values = cfg.run_store.activations(ctx.layer)["max"]
    index = cfg.run_store.index().read_parquet()
    ok_ids = index.loc[index["status"] == "ok", "id"].to_numpy(dtype=np.int64)
    summary, per_unit = bootstrap_stability(
        lambda block: values.oindex[:, np.asarray(block)], evidence.image_id, ok_ids, values.shape[0],
        ctx.k, relabel, reference, cfg.bootstrap, cfg.seed,
    )
    units["stability"] = per_unit
    summary["reproduces_table"] = round(float(np.mean([a == b for a, b in zip(reference, ctx.explanations)])), 4)
    return summary


def evaluate_layer(cfg: EvaluateConfig, layer: str) -> dict:
    """Label metrics (when the layer has ground truth), AUC and stability of one layer; written to the store."""
    ctx = _context(cfg, layer)
    explanations = ctx.explanations
    units = pd.DataFrame({"unit": np.arange(len(explanations)), "explanation": explanations})
    explained = int(sum(e != INACTIVE for e in explanations))
    summary: dict = {"layer": layer, "units": len(explanations), "explained": explained, "inactive": len(explanations) - explained,
                     "notes": list(ctx.notes)}
    if ctx.truth is not None:
        labels, per_unit = label_metrics(explanations, ctx.truth, ctx.spaces, cfg.permutations, cfg.seed, cfg.truth_text)
        summary["labels"] = {"source": ctx.truth.source, "variants": ctx.truth.variant_source, "truth_text": cfg.truth_text, **labels}
        units = units.assign(truth=ctx.truth.names, present=ctx.truth.present, **per_unit)
        summary["labels"]["confidence"] = confidence_summary(ctx.table.sort_values("unit"), units["match"].to_numpy(), units["present"].to_numpy())
    else:
        summary["labels"] = None
        summary["notes"].append(f"{layer} has no ground truth (not the classifier output, no labels file): label metrics are not reported")
    aucs = unit_aucs(ctx.probe, ctx.fired_ids, ctx.text_vectors(explanations), ctx.topk_ids)
    units["auc"] = aucs
    summary["auc"] = distribution(aucs) | {"above_0.5": round(float(np.mean(aucs[np.isfinite(aucs)] > 0.5)), 4) if np.isfinite(aucs).any() else None,
                                           "random_images": len(ctx.probe.random)}
    summary["stability"] = _stability(ctx, units)
    cfg.run_store.evaluation_layer(layer, "units.parquet").write_parquet(units)
    cfg.run_store.evaluation_layer(layer, "summary.json").write_json(summary)
    return summary


def confidence_summary(table: pd.DataFrame, match: np.ndarray, present: np.ndarray) -> dict | None:
    """How well the table's ``confidence`` separates right from wrong labels on units whose truth is present.

    ``auroc``: the chance that a right label has a higher confidence than a wrong one (0.5 = no
    information); ``right_certain``/``wrong_uncertain``: the shares on each side of the gallery's
    "uncertain" threshold.  None for tables written before confidence existed.
    """
    if "confidence" not in table.columns:
        return None
    confidence = table["confidence"].to_numpy(dtype=float)[present]
    right = np.asarray(match, dtype=bool)[present]
    certain = confidence >= UNCERTAIN_BELOW
    return {
        "mean": round(float(confidence.mean()), 4) if len(confidence) else None,
        "auroc": rounded(auc(confidence[right], confidence[~right])),
        "threshold": UNCERTAIN_BELOW,
        "right_certain": round(float(certain[right].mean()), 4) if right.any() else None,
        "wrong_uncertain": round(float((~certain[~right]).mean()), 4) if (~right).any() else None,
    }


def compare_step(cfg: EvaluateConfig, layer: str) -> dict:
    """The comparison table of one layer (``cfg.compare`` axes), written to ``evaluation/<layer>/compare.parquet``."""
    frame, labels = compare_layer(_context(cfg, layer), cfg.compare)
    cfg.run_store.evaluation_layer(layer, "compare.parquet").write_parquet(frame)
    cfg.run_store.evaluation_layer(layer, "compare_units.parquet").write_parquet(labels)
    return {"layer": layer, "variants": len(frame)}


def embed_job(cfg: EvaluateConfig, item: tuple[str, list[int], ExplainConfig]) -> dict:
    layer, units, explain_cfg = item
    return embed_unit_block(explain_cfg, layer, units)


def _layers(cfg: EvaluateConfig) -> list[str]:
    return evaluated_layers(cfg, resolve_explain_config(cfg))


def _compared_layers(cfg: EvaluateConfig) -> list[str]:
    return _layers(cfg) if cfg.compare else []


EMBEDDINGS = Stage("embed-units", embed_job, plan=embedding_jobs, unit="block", gpu=True, retries=2)
PROBE = Stage("embed-probe-images", embed_probe, plan=one_item, gpu=True, retries=2)
LAYERS = Stage("evaluate-layer", evaluate_layer, plan=_layers, retries=1)
COMPARISONS = Stage("compare-layer", compare_step, plan=_compared_layers, retries=1)


def run_evaluation(cfg: EvaluateConfig, execute: Executor = InProcess()) -> dict:
    """The evaluation pipeline: missing embeddings, probe-image embeddings, per layer the metrics and
    the comparison table, then evaluation.json/.md/.png."""
    cfg = cfg.model_copy(update={"explain": resolve_explain_config(cfg)})  # read once: every task gets it
    for stage in (EMBEDDINGS, PROBE, LAYERS, COMPARISONS):
        execute(stage, cfg)
    return write_report(cfg, _layers(cfg))
