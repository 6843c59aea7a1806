"""Ground truth: ImageNet synonyms from timm, labels files, which classes the probe set shows."""

from __future__ import annotations

import numpy as np
import pytest

from neuroscribe import store as st
from neuroscribe.errors import NeuroscribeError
from neuroscribe.evaluation.truth import class_variants, layer_truth, read_labels_file
from neuroscribe.models.loading import imagenet_class_names

from .conftest import COLOURS


def test_imagenet_classes_get_their_wordnet_lemmas_from_timm():
    from timm.data import ImageNetInfo

    names = imagenet_class_names()
    variants, source = class_variants(names)
    assert "timm" in source
    info = ImageNetInfo()
    for unit in (0, 134, 517, 639):
        lemmas = [s.strip() for s in info.index_to_description(unit).split(",")]
        assert variants[unit][0] == names[unit]
        assert set(lemmas) <= set(variants[unit])
    assert "Tinca tinca" in variants[0]


def test_other_class_names_split_on_commas():
    variants, source = class_variants(["tabby, tabby cat", "car"])
    assert variants == [["tabby, tabby cat", "tabby", "tabby cat"], ["car", "car"]]
    assert "comma" in source


def test_labels_files_csv_tsv_and_txt(tmp_path):
    csv = tmp_path / "units.csv"
    csv.write_text("unit,label,variants\n2,\"stripes, striped\",zebra-like;banded\n0,sky,\n")
    names, variants = read_labels_file(str(csv), 4)
    assert names == ["sky", None, "stripes", None]
    assert set(variants[2]) == {"stripes, striped", "stripes", "striped", "zebra-like", "banded"}
    assert variants[0] == ["sky", "sky"]
    tsv = tmp_path / "units.tsv"
    tsv.write_text("unit\tlabel\n1\twater\n")
    assert read_labels_file(str(tsv), 2)[0] == [None, "water"]
    txt = tmp_path / "units.txt"
    txt.write_text("red\n\ngrass, lawn\n")
    names, variants = read_labels_file(str(txt), 3)
    assert names == ["red", None, "grass"] and "lawn" in variants[2]


def test_labels_file_errors_name_the_fix(tmp_path):
    with pytest.raises(NeuroscribeError, match="does not exist"):
        read_labels_file(str(tmp_path / "missing.csv"), 3)
    bad = tmp_path / "bad.csv"
    bad.write_text("neuron,name\n0,sky\n")
    with pytest.raises(NeuroscribeError, match="columns unit and label"):
        read_labels_file(str(bad), 3)
    out_of_range = tmp_path / "range.csv"
    out_of_range.write_text("unit,label\n7,sky\n")
    with pytest.raises(NeuroscribeError, match="units 0..2"):
        read_labels_file(str(out_of_range), 3)


def test_classifier_output_truth_and_present_classes(tiny_run):
    truth = layer_truth(tiny_run.extract.store, "fc")
    assert truth.names == list(COLOURS) and truth.source == "model classes"
    assert truth.present.all()  # every class folder has images
    # classes whose images all failed to decode are absent from the probe set
    index = st.StoreFile(tiny_run.extract.store, "index.parquet").read_parquet()
    index.loc[index["label"] == 2, "status"] = "skipped"
    st.StoreFile(tiny_run.extract.store, "index.parquet").write_parquet(index)
    assert layer_truth(tiny_run.extract.store, "fc").present.tolist() == [True, True, False, True]


def test_hidden_layers_have_truth_only_from_a_labels_file(tiny_run, tmp_path):
    assert layer_truth(tiny_run.extract.store, "conv2") is None
    labels = tmp_path / "conv2.txt"
    labels.write_text("\n".join(f"concept {i}" for i in range(16)))
    truth = layer_truth(tiny_run.extract.store, "conv2", str(labels))
    assert truth.names[5] == "concept 5" and truth.present.all() and np.all(truth.labelled)
    with pytest.raises(NeuroscribeError, match="not in run"):
        layer_truth(tiny_run.extract.store, "conv9")
