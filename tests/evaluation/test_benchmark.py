"""The quality benchmark's metric plumbing on hand-made tables, checked against independent computations."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from neuroscribe.evaluation.benchmark import (
    KNOWN_VOCABULARY,
    TARGETS,
    _target_rows,
    benchmark_markdown,
    confidence_column,
    group_metrics,
    top_label_share,
)
from neuroscribe.scoring.rules import INACTIVE
from neuroscribe.vocabulary.sources import parse_source


def _table(explanations, scores, confidence=None):
    frame = pd.DataFrame({"unit": np.arange(len(explanations))[::-1], "explanation": explanations[::-1], "score": scores[::-1]})
    if confidence is not None:
        frame["confidence"] = confidence[::-1]
    return frame  # rows in reverse unit order: the metrics must sort by unit


VARIANTS = [["dog", "domestic dog"], ["bird"], ["fish"], ["red"], ["blue", "navy blue"], ["snake"]]
LABELS = ["Domestic_Dog", "bird", "tench", "red", INACTIVE, "navy blue"]
SCORES = [0.9, 0.7, 0.8, 0.4, 0.0, 0.3]


def test_top1_counts_synonyms_and_inactive_as_wrong():
    result = group_metrics(_table(LABELS, SCORES), VARIANTS, np.ones(6, dtype=bool))
    right = np.array([True, True, False, True, False, False])
    assert result["units"] == 6 and result["top1"] == pytest.approx(right.mean(), abs=1e-4)
    assert result["inactive"] == 1
    active = np.array(LABELS) != INACTIVE
    assert result["mean_confidence"] == pytest.approx(np.mean(np.array(SCORES)[active]), abs=1e-4)
    expected_auc = roc_auc_score(right[active], np.array(SCORES)[active])
    assert result["confidence_auroc"] == pytest.approx(expected_auc, abs=1e-4)
    assert result["confidence_column"] == "score"


def test_confidence_column_wins_over_score_and_excluded_units_do_not_count():
    confidence = np.array([0.2, 0.9, 0.1, 0.8, 0.0, 0.5])
    frame = _table(LABELS, SCORES, confidence)
    assert confidence_column(frame) == "confidence"
    included = np.array([True, True, True, True, True, False])
    result = group_metrics(frame, VARIANTS, included)
    right = np.array([True, True, False, True])
    assert result["units"] == 5 and result["top1"] == pytest.approx(3 / 5, abs=1e-4)
    assert result["confidence_auroc"] == pytest.approx(roc_auc_score(right, confidence[:4]), abs=1e-4)
    assert result["confidence_column"] == "confidence"


def test_auroc_is_undefined_when_every_label_is_right():
    result = group_metrics(_table(["bird"], [0.5]), [["bird"]], np.ones(1, dtype=bool))
    assert result["top1"] == 1.0 and result["confidence_auroc"] is None


def test_top_label_share():
    frame = pd.DataFrame({"explanation": ["screen", "screen", "dog", INACTIVE, "screen", "fox squirrel"]})
    assert top_label_share(frame) == pytest.approx(3 / 5, abs=1e-4)
    assert top_label_share(pd.DataFrame({"explanation": [INACTIVE]})) is None


def test_targets_and_markdown():
    group = {"units": 2, "top1": 0.8, "mean_confidence": 0.3, "confidence_auroc": None, "confidence_column": "score", "most_frequent": "x (2)"}
    groups = {"logits": group | {"top1": 0.96}, "superclasses": group, "colours": group | {"top1": 0.5},
              "demo_blocks5": {"units": 3, "median_auc": 0.9, "top_label_share": 0.5, "most_frequent": "y (1)"}}
    rows = {r["target"]: r["met"] for r in _target_rows(groups)}
    assert rows == {"logits": True, "superclasses": True, "colours": False, "demo_auc": True, "demo_top_label": False}
    assert set(rows) == set(TARGETS)
    text = benchmark_markdown({"groups": groups, "targets": _target_rows(groups)})
    assert "| superclasses | 2 | 0.800 |" in text and "demo blocks.5" in text


def test_known_vocabulary_is_imagenet_plus_superclasses_plus_colours():
    [spec] = [parse_source(s) for s in KNOWN_VOCABULARY]
    assert set(spec.names) == {"imagenet", "superclasses", "colors"}


def test_pooled_units_give_one_auroc_over_groups():
    from neuroscribe.evaluation.benchmark import judged_metrics, judged_units

    first = judged_units(_table(LABELS, SCORES), VARIANTS, np.ones(6, dtype=bool))
    second = judged_units(_table(["dog", "cat"], [0.95, 0.05]), [["dog"], ["bird"]], np.ones(2, dtype=bool))
    pooled = judged_metrics(pd.concat([first, second], ignore_index=True))
    right = np.array([True, True, False, True, False, True, False])  # active units only (the inactive one is left out)
    conf = np.array([0.9, 0.7, 0.8, 0.4, 0.3, 0.95, 0.05])
    assert pooled["units"] == 8 and pooled["top1"] == pytest.approx(4 / 8, abs=1e-4)
    assert pooled["confidence_auroc"] == pytest.approx(roc_auc_score(right, conf), abs=1e-4)


def test_a_run_of_one_group_reports_only_its_targets():
    demo = {"units": 3, "k": 20, "median_auc": 0.9, "top_label_share": 0.02, "tie_share": 0.0, "most_frequent": "y (1)"}
    rows = _target_rows({"demo_blocks5": demo})
    assert [r["target"] for r in rows] == ["demo_auc", "demo_top_label"] and all(r["met"] for r in rows)
    text = benchmark_markdown({"groups": {"demo_blocks5": demo}, "targets": rows})
    assert "| demo blocks.5 | 3 | 20 | 0.900 |" in text and "logits" not in text


def test_unknown_group_is_one_clear_error(tmp_path):
    from neuroscribe.errors import NeuroscribeError
    from neuroscribe.evaluation.benchmark import BenchmarkConfig, run_benchmark

    with pytest.raises(NeuroscribeError, match="unknown benchmark groups.*known, demo"):
        run_benchmark(BenchmarkConfig(images=str(tmp_path), out=str(tmp_path / "out")), ("demos",))
