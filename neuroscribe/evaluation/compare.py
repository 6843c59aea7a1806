"""Compare scoring rules, vocabularies and the number of top images k on one extraction, as a table.

    rows, labels = compare_layer(ctx, ("rules", "k", "vocab"))   # one row per variant; labels per unit
    rows[["axis", "variant", "exact_match_present", "auc_mean"]]
    labels["rules:softwpmi"]                                      # every unit's label under SoftWPMI

Every variant rescores the stored evidence (``neuroscribe.evaluation.evidence``); nothing is extracted again:
- ``rules``: percentile and seed (patches) and SoftWPMI (whole top images), with the run's k and
  vocabulary; evidence the run did not use is embedded once (cached by content);
- ``k``: the run's rule on each unit's first k' ranks, for every k' of ``compare_k`` up to the run's k;
- ``vocab``: the run's rule on its vocabulary and on each of ``compare_vocabularies``, built into
  ``<store>/evaluation/vocabulary/`` (LLM answers come from the run's own cache).
A row has the label metrics when the layer has ground truth (exact match over present and all labelled
units, with chance; cosine over present units per text space), the AUC, and ``same_as_run``: the
share of units labelled as in the run's table.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from neuroscribe.evaluation.consistency import distribution, unit_aucs
from neuroscribe.evaluation.context import LayerContext
from neuroscribe.evaluation.evidence import Evidence, evidence_for, rescore
from neuroscribe.evaluation.metrics import label_metrics
from neuroscribe.explanation import embeds_whole_images
from neuroscribe.fingerprint import content_key
from neuroscribe.scoring.rules import RuleSpec
from neuroscribe.vocabulary import VocabularyConfig, build_vocabulary, load_vocabulary

RULE_NAMES = ("percentile", "seed", "softwpmi")


@dataclass(frozen=True)
class Variant:
    axis: str
    name: str
    rule: RuleSpec
    max_rank: int | None = None  # None: all the run's top-k
    sources: tuple[str, ...] | None = None  # None: the run's vocabulary


def plan_variants(ctx: LayerContext, axes: tuple[str, ...]) -> list[Variant]:
    rule, k = ctx.explain.rule, ctx.k
    out: list[Variant] = []
    if "rules" in axes:
        out += [Variant("rules", name, rule.model_copy(update={"name": name})) for name in RULE_NAMES]
    if "k" in axes:
        out += [Variant("k", f"k={kk}", rule, max_rank=kk) for kk in sorted({*(x for x in ctx.cfg.compare_k if x < k), k})]
    if "vocab" in axes:
        out.append(Variant("vocab", "run: " + "+".join(ctx.explain.vocabulary.sources), rule))
        for item in ctx.cfg.compare_vocabularies:
            sources = tuple(s.strip() for s in item.split(",") if s.strip())
            out.append(Variant("vocab", "+".join(sources), rule, sources=sources))
    return out


def compare_vocabulary(ctx: LayerContext, sources: tuple[str, ...]):
    """Build (or reuse, the build caches by content) the vocabulary of ``sources`` beside the evaluation."""
    base = ctx.explain.vocabulary_config()
    update = {"sources": sources, "store": ctx.cfg.run_store.evaluation_vocabulary().uri,
              "name": f"compare-{content_key(list(sources), 10)}", "cache_dir": base.run_store.llm_cache().uri}
    cfg = VocabularyConfig.model_validate(base.model_dump() | update)
    return load_vocabulary(build_vocabulary(cfg).uri, ctx.cfg.store_options)


def variant_row(ctx: LayerContext, variant: Variant, explanations: list[str], vocabulary, vectors: np.ndarray) -> dict:
    row = {
        "axis": variant.axis,
        "variant": variant.name,
        "rule": variant.rule.name,
        "k": variant.max_rank or ctx.k,
        "vocabulary": "+".join(variant.sources) if variant.sources else "run",
        "concepts": len(vocabulary.concepts),
        "same_as_run": round(float(np.mean([a == b for a, b in zip(explanations, ctx.explanations)])), 4),
    }
    if ctx.truth is not None:
        summary, _ = label_metrics(explanations, ctx.truth, ctx.spaces, ctx.cfg.permutations, ctx.cfg.seed, ctx.cfg.truth_text)
        row["exact_match_present"] = summary["present"]["exact_match"]["value"]
        row["exact_match_present_chance"] = summary["present"]["exact_match"]["chance"]
        row["exact_match_all"] = summary["all"]["exact_match"]["value"]
        row |= {f"cosine_present {space}": r["value"] for space, r in summary["present"]["cosine"].items()}
    aucs = unit_aucs(ctx.probe, ctx.fired_ids, ctx.text_vectors(explanations, vocabulary, vectors), ctx.topk_ids)
    spread = distribution(aucs)
    row["auc_mean"], row["auc_median"] = spread.get("mean"), spread.get("median")
    return row


def compare_layer(ctx: LayerContext, axes: tuple[str, ...]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(one row per variant of ``axes``, each unit's label under each variant: columns ``axis:variant``)."""
    evidence: dict[bool, Evidence] = {}
    rows, labels = [], {"unit": np.arange(len(ctx.table))}
    for variant in plan_variants(ctx, axes):
        vocabulary, vectors = ctx.vocabulary, ctx.concept_vectors
        if variant.sources is not None:
            vocabulary = compare_vocabulary(ctx, variant.sources)
            vectors = ctx.vectors_for(vocabulary)
        kind = embeds_whole_images(variant.rule)
        if kind not in evidence:
            evidence[kind] = evidence_for(ctx.explain, ctx.layer, variant.rule, ctx.probe)
        scores = rescore(evidence[kind], evidence[kind].repeats(variant.max_rank), variant.rule, vectors, vocabulary.concepts)
        labels[f"{variant.axis}:{variant.name}"] = [s.best for s in scores]
        rows.append(variant_row(ctx, variant, labels[f"{variant.axis}:{variant.name}"], vocabulary, vectors))
    return pd.DataFrame(rows), pd.DataFrame(labels)
