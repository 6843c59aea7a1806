"""Demo ``blocks.5`` labels: which scoring variant and k give labels that hold on images they were not chosen on?

    python benchmarks/demo_labels.py                          # the shared samples; runs the demo at k=50 once
    python benchmarks/demo_labels.py --out /tmp/c10/demo50 --ks 5,10,20 --splits 5

The demo's label-free AUC (``neuroscribe.evaluation.consistency.unit_aucs``, what
``benchmarks/quality.py --only demo`` reports) is measured on the same top images the label was
chosen from: with k=5 positives and ~1200 concepts it rewards whichever concept happens to rank
those five images high.  This script runs the demo's config once at the largest k (later ks are
its first slots: patches do not depend on k), then per variant and k reports
- ``in-sample``: the median AUC as the benchmark measures it (labels and AUC on the same images);
- ``held-out``: labels chosen on a random half of the probe images (each unit's top-k within that
  half), AUC on the other half's top-k against its other images; mean over ``--splits`` seeds and
  both directions, with its standard error;
- ``oracle``: the in-sample median of each unit's best AUC over the whole vocabulary (an upper
  bound no label can pass at that k), and the top-label share and the share of margins < 1e-6.
Variants: the percentile rule (``neuroscribe.scoring.percentile``) over the patch crops (the
default), over the top images whole, and over both (each slot's crop and whole-image percentile
averaged); decay 0.5.  Cost: the k=50 run (~20 min on 2 busy cores, once), then ~1 min per k.
"""

from __future__ import annotations

import argparse
from collections import Counter

import numpy as np
from scipy.stats import rankdata

from neuroscribe.demo import demo_config
from neuroscribe.evaluation.consistency import unit_aucs
from neuroscribe.evaluation.evidence import (
    ProbeImages,
    patch_evidence,
    probe_images,
)
from neuroscribe.explanation import cached_backend, run_explain
from neuroscribe.scoring.concepts import concept_embeddings
from neuroscribe.scoring.percentile import concept_percentiles, weighted_percentiles
from neuroscribe.vocabulary import load_vocabulary

LAYER = "blocks.5"
SOURCES = ("crops", "whole", "both")


def load_run(images: str, out: str, k: int) -> dict:
    """The demo's blocks.5 at ``k``: patch embeddings, ids, probe-image embeddings and concept vectors."""
    cfg = demo_config(images=images, out=out, layers=(LAYER,), k=k)
    run_explain(cfg)
    evidence = patch_evidence(cfg, LAYER)
    vocabulary = load_vocabulary(cfg.run_store.table(LAYER).with_suffix(".json").read_json()["vocabulary"])
    backend = cached_backend(cfg.backend)
    return {
        "crops": evidence.vectors, "fired": evidence.image_id, "rank": evidence.rank,
        "topk": cfg.run_store.topk(LAYER)["image_id"][:].astype(np.int64), "probe": probe_images(cfg, [LAYER]),
        "concepts": list(vocabulary.concepts),
        "vectors": concept_embeddings(backend, vocabulary.concepts, cfg.backend.resolved_templates, cfg.extract.store, vocabulary.content_hash),
    }


def select(run: dict, k: int, among: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(bool [units, slots] the patch slots of each unit's first k top images within ``among``,
    int [units, k] those top images' ids, -1 padded)."""
    inside = np.isin(run["topk"], among)
    chosen = inside & (np.cumsum(inside, axis=1) <= k)
    slots = (run["fired"] >= 0) & np.take_along_axis(chosen, np.maximum(run["rank"], 0), axis=1)
    topk = np.full((len(chosen), k), -1, dtype=np.int64)
    for u, row in enumerate(chosen):
        topk[u, : row.sum()] = run["topk"][u, row]
    return slots, topk


def labels(run: dict, slots: np.ndarray, source: str, decay: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """(concept index per unit, -1 when inactive; the label's margin) under the percentile rule on ``source``."""
    crops = [run["crops"][u][slots[u]] @ run["vectors"].T for u in range(len(slots))]
    whole = [run["probe"].lookup(run["fired"][u][slots[u]]) @ run["vectors"].T for u in range(len(slots))]
    q_crop, q_whole = concept_percentiles(crops), concept_percentiles(whole)
    q = {"crops": q_crop, "whole": q_whole, "both": [(a + b) / 2 for a, b in zip(q_crop, q_whole)]}[source]
    scores = weighted_percentiles(q, decay)
    best = np.full(len(scores), -1)
    margin = np.full(len(scores), np.nan)
    for u, row in enumerate(scores):
        if len(crops[u]):
            # the rule's tie-break: rounded score, then the top patch's similarity
            order = np.lexsort((-crops[u][0], -np.round(row, 6)))
            best[u], margin[u] = order[0], row[order[0]] - row[order[1]]
    return best, margin


def median_auc(run: dict, best: np.ndarray, k: int, among: np.ndarray) -> float:
    slots, topk = select(run, k, among)
    text = np.full((len(best), run["vectors"].shape[1]), np.nan, dtype=np.float32)
    text[best >= 0] = run["vectors"][best[best >= 0]]
    probe = ProbeImages(run["probe"].ids, run["probe"].vectors, among)
    return float(np.nanmedian(unit_aucs(probe, np.where(slots, run["fired"], -1), text, topk)))


def oracle_auc(run: dict, k: int) -> float:
    """Median over units of the best in-sample AUC any concept of the vocabulary reaches."""
    probe = run["probe"]
    sims = probe.vectors @ run["vectors"].T
    row = {int(i): j for j, i in enumerate(probe.ids)}
    slots, topk = select(run, k, probe.ids)
    best = []
    for u in range(len(slots)):
        pos = [row[int(i)] for i in run["fired"][u][slots[u]]]
        neg = [row[int(i)] for i in probe.random if i not in topk[u]]
        if pos:
            ranks = rankdata(np.concatenate([sims[pos], sims[neg]]), axis=0)[: len(pos)].sum(axis=0)
            best.append(((ranks - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg))).max())
    return float(np.median(best))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", default="../shared/data/imagenet-samples/labels.tsv")
    parser.add_argument("--out", default="runs/demo_labels", help="the demo run at the largest k")
    parser.add_argument("--ks", default="5,10,20", help="k values compared (comma-separated)")
    parser.add_argument("--splits", type=int, default=5, help="random halvings of the probe images for held-out AUC")
    args = parser.parse_args()
    ks = sorted(int(k) for k in args.ks.split(","))
    run = load_run(args.images, args.out, max(ks))
    ids = run["probe"].ids
    print("| k | labels from | in-sample AUC | held-out AUC | oracle | top-label share | margin < 1e-6 |\n|---|---|---|---|---|---|---|")
    for k in ks:
        oracle = oracle_auc(run, k)
        for source in SOURCES:
            best, margin = labels(run, select(run, k, ids)[0], source)
            held = []
            for seed in range(args.splits):
                halves = [np.sort(h) for h in np.array_split(np.random.default_rng(seed).permutation(ids), 2)]
                for chosen_on, judged_on in (halves, halves[::-1]):
                    held.append(median_auc(run, labels(run, select(run, k, chosen_on)[0], source)[0], k, judged_on))
            counts = Counter(best[best >= 0].tolist())
            share = counts.most_common(1)[0][1] / sum(counts.values())
            print(
                f"| {k} | {source} | {median_auc(run, best, k, ids):.3f} | {np.mean(held):.3f} ± {np.std(held) / np.sqrt(len(held)):.3f} "
                f"| {oracle:.3f} | {share:.1%} | {np.mean(margin[best >= 0] < 1e-6):.1%} |", flush=True,
            )


if __name__ == "__main__":
    main()
