"""The shipped ImageNet superclasses: non-empty, disjoint, consistent with independent wnid ranges and timm's lemmas."""

from __future__ import annotations

from pathlib import Path

import pytest

from neuroscribe.models.loading import imagenet_class_names
from neuroscribe.vocabulary import VocabularyConfig, build_vocabulary, load_vocabulary
from neuroscribe.vocabulary.sources import builtin_concepts, parse_source
from neuroscribe.vocabulary.superclasses import (
    imagenet_superclasses,
    superclass_provenance,
)

# well-known contiguous blocks of the ImageNet-1k class index (torchvision order), checked by name below
DOG_RANGE = range(151, 269)  # Chihuahua .. Mexican hairless: the 118 dog breeds
SNAKE_RANGE = range(52, 69)  # thunder snake .. sidewinder
SPIDER_RANGE = range(72, 78)  # black and gold garden spider .. wolf spider


def _by_name():
    return {g.name: g for g in imagenet_superclasses()}


def test_at_least_twelve_nonempty_disjoint_superclasses():
    groups = imagenet_superclasses()
    assert len(groups) >= 12
    assert all(g.classes and len(g.classes) == len(g.wnids) for g in groups)
    seen = [c for g in groups for c in g.classes]
    assert len(seen) == len(set(seen)), "a class is in two superclasses"
    assert all(0 <= c < 1000 for c in seen)
    for wanted in ("dog", "bird", "fish", "snake", "spider", "butterfly", "monkey", "fruit", "vegetable", "mushroom"):
        assert wanted in _by_name()


def test_superclasses_match_independent_index_ranges():
    groups = _by_name()
    assert groups["dog"].classes == tuple(DOG_RANGE)
    assert set(SNAKE_RANGE) <= set(groups["snake"].classes)
    assert set(SPIDER_RANGE) <= set(groups["spider"].classes)
    names = imagenet_class_names()
    assert names[DOG_RANGE[0]] == "Chihuahua" and names[DOG_RANGE[-1]] == "Mexican hairless"


def test_wnids_are_the_class_indices_wnids():
    from timm.data import ImageNetInfo

    info = ImageNetInfo()
    for group in imagenet_superclasses():
        assert group.wnids == tuple(info.index_to_label_name(c) for c in group.classes)


def test_members_read_as_their_superclass():
    names = imagenet_class_names()
    groups = _by_name()
    assert {"goldfish", "tench"} <= {names[c] for c in groups["fish"].classes}
    assert {"Granny Smith", "banana"} <= {names[c] for c in groups["fruit"].classes}
    assert "mushroom" in {names[c] for c in groups["mushroom"].classes}
    assert "mushroom" not in {names[c] for c in groups["vegetable"].classes}
    assert "canoe" in {names[c] for c in groups["boat"].classes}
    assert "grand piano" in {names[c] for c in groups["musical instrument"].classes}
    assert "timber wolf" not in {names[c] for c in groups["dog"].classes}  # a canine, not a dog
    assert "domestic dog" in groups["dog"].synonyms and "feline" in groups["cat"].synonyms


def test_provenance_names_wordnet_and_the_generating_command():
    provenance = superclass_provenance()
    assert "WordNet 3.0" in provenance["source"]
    script = Path(__file__).resolve().parents[2] / provenance["generator"]
    assert script.is_file() and provenance["generator"] in provenance["command"]


@pytest.mark.skipif(not Path("/usr/share/wordnet/data.noun").is_file(), reason="needs WordNet 3.0 (apt-get install wordnet-base)")
def test_data_file_is_what_the_generator_makes():
    import importlib.util

    script = Path(__file__).resolve().parents[2] / "benchmarks" / "wordnet_superclasses.py"
    spec = importlib.util.spec_from_file_location("wordnet_superclasses", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    rows = module.build(Path("/usr/share/wordnet"))["superclasses"]
    assert [(r["name"], tuple(r["classes"])) for r in rows] == [(g.name, g.classes) for g in imagenet_superclasses()]


def test_builtin_source_and_vocabulary(tmp_path):
    assert parse_source("builtin:imagenet+superclasses").names == ("imagenet", "superclasses")
    assert builtin_concepts("superclasses") == [g.name for g in imagenet_superclasses()]
    summary = build_vocabulary(VocabularyConfig(store=str(tmp_path), sources=("builtin:superclasses+colors",)))
    concepts = load_vocabulary(summary.uri).concepts
    assert {"dog", "musical instrument", "red"} <= set(concepts)
