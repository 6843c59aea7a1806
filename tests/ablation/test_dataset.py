"""Labelled datasets for ablation: labels onto model classes, clear errors for unusable labels, skipped images."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from neuroscribe.ablation.dataset import image_batches, labelled_index, model_label_map
from neuroscribe.config import DatasetSpec
from neuroscribe.errors import NeuroscribeError
from neuroscribe.testing.planted import (
    CLASSES,
    TINY_PREPROCESSING,
    write_planted_folder,
)


def test_folder_names_map_to_model_classes_by_name(tmp_path):
    root = write_planted_folder(tmp_path / "planted", 2)
    frame, counts = labelled_index(DatasetSpec(uri=str(root)), ["gray", "blue", "green", "red"])  # another order
    names = {Path(p).parent.name for p in frame.path}
    assert names == set(CLASSES) and counts == {"images": 8, "unlabelled": 0}
    for path, label in zip(frame.path, frame.label):
        assert ["gray", "blue", "green", "red"][label] == Path(path).parent.name


def test_wnid_and_numeric_folder_names():
    names = [f"class {i}" for i in range(1000)]
    assert model_label_map(["n01443537", "n01440764"], names, "d").tolist() == [1, 0]  # goldfish, tench
    assert model_label_map(["12", "3"], ["x"] * 20, "d").tolist() == [12, 3]
    assert model_label_map(["a", "b"], ["cat", "dog"], "d").tolist() == [0, 1]  # same count, no names: by position
    assert model_label_map([], names, "d") is None
    with pytest.raises(NeuroscribeError, match=r"\['zebra'\].*match no class"):
        model_label_map(["cat", "zebra"], ["cat", "dog", "eel"], "d")


def test_dataset_without_labels_is_a_clear_error(tmp_path):
    root = write_planted_folder(tmp_path / "planted", 1)
    flat = tmp_path / "flat"
    flat.mkdir()
    for png in root.rglob("*.png"):
        (flat / png.name).write_bytes(png.read_bytes())
    listing = tmp_path / "list.txt"
    listing.write_text("\n".join(str(p) for p in flat.iterdir()))
    for uri in (flat, listing):
        with pytest.raises(NeuroscribeError, match=f"dataset {uri} has no labels.*label column"):
            labelled_index(DatasetSpec(uri=str(uri)), list(CLASSES))


def test_labels_outside_the_model_are_named(tmp_path):
    root = write_planted_folder(tmp_path / "planted", 1)
    pngs = sorted(root.rglob("*.png"))
    listing = tmp_path / "list.txt"
    listing.write_text(f"{pngs[0]} 1\n{pngs[1]} 7\n{pngs[2]}\n")
    with pytest.raises(NeuroscribeError, match=r"labels \[7\].*0\.\.3"):
        labelled_index(DatasetSpec(uri=str(listing)), list(CLASSES))
    listing.write_text(f"{pngs[0]} 1\n{pngs[1]} 3\n{pngs[2]}\n")
    frame, counts = labelled_index(DatasetSpec(uri=str(listing)), list(CLASSES))
    assert frame.label.tolist() == [1, 3] and counts["unlabelled"] == 1


def test_batches_skip_undecodable_images_with_a_reason(tmp_path):
    root = write_planted_folder(tmp_path / "planted", 3)
    (root / "red" / "broken.png").write_bytes(b"not a png")
    frame, _ = labelled_index(DatasetSpec(uri=str(root)), list(CLASSES))
    skipped = []
    batches = list(image_batches(frame, TINY_PREPROCESSING.transform(), batch_size=5, skipped=skipped))
    assert sum(len(y) for _, y in batches) == 12
    assert [s["path"].endswith("broken.png") for s in skipped] == [True] and "not an image" in skipped[0]["reason"]
    x, y = batches[0]
    assert x.shape == (5, 3, 32, 32) and x.dtype == torch.float32 and y.dtype == torch.long
