"""Floor on real images: final-layer units are named by their own class with the default rule and backend.

The issue-10 benchmark (``benchmarks/quality.py``) measures the full pipeline; this keeps a cheap
floor on the pieces that decide the label: ConSE's three-block space and the percentile rule, at the
default k, on whole sample images (what a linear unit's patches are).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from neuroscribe.data import load_image
from neuroscribe.models.loading import imagenet_class_names
from neuroscribe.scoring import ConseSpec, RuleSpec, explain_units, make_backend

pytestmark = pytest.mark.samples
IMAGES = 150


def test_logit_units_get_their_class_name_at_default_settings(samples_dir):
    labels = pd.read_csv(samples_dir / "labels.tsv", sep="\t").iloc[:IMAGES]
    # lite0 instead of the default lite2: same family, a third of the CPU time
    backend = make_backend(ConseSpec(classifier="efficientnet_lite0", device="cpu"))
    images = [load_image(str(samples_dir / f)) for f in labels["file"]]
    embedded = backend.embed_images(images)
    # the units: the classifier's log-probabilities per class; each unit's top-k images by activation
    activations = np.log(backend.label_probabilities(images).numpy() + 1e-12)
    k = min(50, IMAGES)  # ExplainConfig's default k
    top = np.argsort(-activations, axis=0, kind="stable")[:k].T  # [classes, k]
    names = list(imagenet_class_names())
    units = [embedded[row] for row in top]
    spec = RuleSpec()
    results = explain_units(spec.name, units, backend.embed_texts(names), names, **spec.kwargs())
    present = labels["index"].to_numpy()
    right = np.array([results[u].best == names[u] for u in present])
    confidence = np.array([results[u].confidence for u in present])
    print(f"top-1 {right.mean():.3f} over {len(present)} present classes; mean confidence right {confidence[right].mean():.2f}")
    assert right.mean() >= 0.85, right.mean()
    if (~right).any():  # confidence ranks right labels above wrong ones
        assert confidence[right].mean() > confidence[~right].mean()
    assert np.mean([abs(results[u].margin) < 1e-6 for u in present]) <= 0.01
