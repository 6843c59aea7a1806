"""Dataset listings are deterministic and shard cleanly; layouts and bad inputs are handled."""

from __future__ import annotations

import pytest

from neuroscribe.config import DatasetSpec
from neuroscribe.data import build_index, listing_key, shard_ranges
from neuroscribe.errors import NeuroscribeError


def test_image_folder_labels_from_sorted_folders_or_a_class_list(image_folder, tmp_path):
    index = build_index(DatasetSpec(uri=str(image_folder)))
    assert list(index.id) == list(range(12))
    assert index.attrs["classes"] == ["class0", "class1", "class2"]
    assert list(index.label) == [0] * 4 + [1] * 4 + [2] * 4
    class_list = tmp_path / "classes.txt"
    class_list.write_text("class2\nclass0\nclass1\nclass9\n")
    relabelled = build_index(DatasetSpec(uri=str(image_folder), class_list=str(class_list)))
    assert list(relabelled.label) == [1] * 4 + [2] * 4 + [0] * 4
    assert listing_key(index) != listing_key(relabelled)
    assert listing_key(index) == listing_key(build_index(DatasetSpec(uri=str(image_folder))))


def test_file_lists_txt_and_tsv_with_names_or_indices(image_folder, tmp_path):
    paths = sorted(str(p.relative_to(image_folder)) for p in image_folder.rglob("*.png"))
    (image_folder / "list.txt").write_text("\n".join(f"{p} {i % 2}" for i, p in enumerate(paths)))
    index = build_index(DatasetSpec(uri=str(image_folder / "list.txt")))
    assert index.path.iloc[0] == str(image_folder / paths[0]) and list(index.label[:4]) == [0, 1, 0, 1]
    (image_folder / "list.tsv").write_text("file\tname\n" + "\n".join(f"{p}\t{p.split('/')[0]}" for p in paths))
    tsv = build_index(DatasetSpec(uri=str(image_folder / "list.tsv")))
    assert list(tsv.label) == [-1] * 12  # no label column: unlabelled
    (image_folder / "named.csv").write_text("path,class\n" + "\n".join(f"{p},{p.split('/')[0]}" for p in paths))
    named = build_index(DatasetSpec(uri=str(image_folder / "named.csv")))
    assert named.attrs["classes"] == ["class0", "class1", "class2"] and list(named.label[-4:]) == [2] * 4


def test_limit_and_shards():
    assert shard_ranges(10, 4) == [(0, 4), (4, 8), (8, 10)]
    assert shard_ranges(0, 4) == []


def test_missing_dataset_and_unlisted_folder_are_clear_errors(image_folder, tmp_path):
    with pytest.raises(NeuroscribeError, match="does not exist"):
        build_index(DatasetSpec(uri=str(tmp_path / "missing")))
    (tmp_path / "classes.txt").write_text("class0\n")
    with pytest.raises(NeuroscribeError, match=r"\['class1', 'class2'\].*not in class list"):
        build_index(DatasetSpec(uri=str(image_folder), class_list=str(tmp_path / "classes.txt")))
