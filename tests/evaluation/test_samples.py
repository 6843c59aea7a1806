"""EfficientNet-Lite0's logit layer on real ImageNet samples (ConSE backend): explanations name the class far above chance."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from neuroscribe import store as st
from neuroscribe.evaluation import EvaluateConfig, run_evaluation
from neuroscribe.evaluation.truth import normalise

from .conftest import SAMPLE_IMAGES, SAMPLE_K

pytestmark = [pytest.mark.samples, pytest.mark.slow]
MINILM = "MiniLM (all-MiniLM-L6-v2)"


def test_final_layer_explanations_match_class_names_far_above_chance(samples_run, samples_dir):
    cfg = EvaluateConfig(
        store=samples_run.extract.store, compare=("rules", "k"), compare_k=(1,), bootstrap=3, permutations=50,
        sentence_models=("minilm",), device="cpu",
    )
    run_evaluation(cfg)
    summary = st.StoreFile(cfg.store, "evaluation/evaluation.json").read_json()["layers"]["classifier"]
    labels = summary["labels"]
    present, everything = labels["present"], labels["all"]

    # the probe set holds one image of each of the first SAMPLE_IMAGES listed classes
    listed = pd.read_csv(samples_dir / "labels.tsv", sep="\t").head(SAMPLE_IMAGES)
    units = st.StoreFile(cfg.store, "evaluation/classifier/units.parquet").read_parquet()
    assert sorted(units.loc[units["present"], "unit"]) == sorted(listed["index"])
    assert present["units"] == SAMPLE_IMAGES and everything["units"] == 1000

    exact = present["exact_match"]
    print(f"\nexact match over {SAMPLE_IMAGES} present classes, k={SAMPLE_K}: {exact}; all units: {everything['exact_match']}")
    print(f"cosine (MiniLM) present: {present['cosine'][MINILM]}; AUC: {summary['auc']['mean']}; stability: {summary['stability']}")
    print(pd.DataFrame(summary["compare"]).to_string())
    assert exact["value"] >= 0.3
    assert exact["value"] > 10 * exact["chance"] and exact["chance"] < 0.05
    assert exact["value"] > exact["chance"] + 10 * exact["chance_std"]
    cosine = present["cosine"][MINILM]
    assert cosine["value"] > cosine["chance"] + 0.2

    # the reported rate is the plain class-name match plus synonyms: never below the plain one
    table = st.StoreFile(cfg.store, "explanations/classifier.parquet").read_parquet().set_index("unit")
    plain = np.mean([normalise(table.loc[u, "explanation"]) == normalise(n) for u, n in zip(listed["index"], listed["name"])])
    assert exact["value"] >= plain - 1e-4 and plain > 10 * exact["chance"]

    assert summary["stability"]["reproduces_table"] == 1.0
    assert summary["auc"]["mean"] > 0.55
    rows = {r["variant"]: r for r in summary["compare"]}
    # rescoring the stored embeddings with the run's own rule (the default) reproduces its labels
    assert rows[samples_run.rule.name]["same_as_run"] == 1.0 and rows[f"k={SAMPLE_K}"]["exact_match_present"] == exact["value"]
    assert rows["softwpmi"]["exact_match_present"] > 10 * exact["chance"]
