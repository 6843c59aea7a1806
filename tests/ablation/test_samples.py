"""Real images: ablating EfficientNet-Lite0's logit unit of a class removes that class's correct prediction."""

from __future__ import annotations

import pandas as pd
import pytest
import torch

from neuroscribe.ablation.pipeline import AblateConfig, run_sweep
from neuroscribe.config import DatasetSpec, ModelSpec, RunnerSpec
from neuroscribe.data import load_image
from neuroscribe.models import load_model

pytestmark = pytest.mark.samples
N_IMAGES = 8


def test_logit_unit_ablation_removes_the_class(samples_dir, tmp_path):
    labels = pd.read_csv(samples_dir / "labels.tsv", sep="\t").head(N_IMAGES)
    classes = labels["index"].tolist()
    loaded = load_model(ModelSpec(name="efficientnet_lite0"))
    transform = loaded.preprocessing.transform()
    with torch.no_grad():
        x = torch.stack([transform(load_image(str(samples_dir / f))) for f in labels["file"]])
        predicted = loaded.model(x).argmax(1).tolist()
    correct = [c for c, p in zip(classes, predicted) if c == p]
    assert len(correct) >= N_IMAGES - 2  # the model is 88% accurate on these samples

    tables = {}
    for mode, fast in (("activation", "auto"), ("activation", "naive"), ("weights", "auto")):
        cfg = AblateConfig(
            model=ModelSpec(name="efficientnet_lite0"), layer="classifier", units=tuple(classes), mode=mode, fast=fast,
            dataset=DatasetSpec(uri=str(samples_dir / "labels.tsv"), limit=N_IMAGES),
            store=str(tmp_path / f"{mode}-{fast}"), runner=RunnerSpec(device="cpu", batch_size=N_IMAGES),
        )
        summary = run_sweep(cfg)
        assert summary["path"] == ("naive" if fast == "naive" else "closed")
        assert summary["classes_present"] == N_IMAGES and summary["classes_absent"] == 1000 - N_IMAGES
        tables[(mode, fast)] = pd.read_parquet(tmp_path / f"{mode}-{fast}" / "ablation" / "classifier.parquet")

    table = tables[("activation", "auto")]
    for c in classes:
        rows = table[table.unit == c].set_index("class")
        assert rows.loc[c, "baseline_acc"] == float(c in correct)
        assert rows.loc[c, "ablated_acc"] == 0.0
        others = rows.drop(index=c)
        assert (others["ablated_acc"] == others["baseline_acc"]).all()
    assert set(table.loc[table["rank"] == 1].query("drop > 0")["class"]) == set(correct)
    for other in (("activation", "naive"), ("weights", "auto")):
        pd.testing.assert_frame_equal(tables[other], table)
