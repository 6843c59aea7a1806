"""Built-in and file sources, their union, and the artifact on disk and on S3 (moto on 127.0.0.1)."""

from __future__ import annotations

import socket

import pandas as pd
import pytest
from pydantic import ValidationError

from neuroscribe.errors import NeuroscribeError
from neuroscribe.vocabulary import (
    LLMSpec,
    VocabularyConfig,
    build_vocabulary,
    builtin_concepts,
    load_vocabulary,
    parse_source,
)
from neuroscribe.vocabulary.filtering import normalise_concept
from neuroscribe.vocabulary.sources import resolve_classes


def test_builtin_imagenet_is_torchvisions_class_list():
    from torchvision.models import ResNet50_Weights

    assert builtin_concepts("imagenet") == list(ResNet50_Weights.IMAGENET1K_V1.meta["categories"])
    assert resolve_classes("imagenet")[:2] == ["tench", "goldfish"] and len(resolve_classes("imagenet")) == 1000


@pytest.mark.parametrize("name", ["colors", "textures", "materials"])
def test_project_sets_are_clean_lists(name):
    concepts = builtin_concepts(name)
    assert len(concepts) >= 40
    assert len(set(concepts)) == len(concepts)
    assert all(c == normalise_concept(c) and not c.startswith("#") for c in concepts)


def test_places365_needs_its_class_list_file(tmp_path):
    with pytest.raises(NeuroscribeError, match="--places365-file"):
        builtin_concepts("places365")
    listing = tmp_path / "categories_places365.txt"
    listing.write_text("/a/abbey 0\n/a/airport_terminal 1\n/b/bus_interior 2\n")
    assert builtin_concepts("places365", str(listing)) == ["abbey", "airport terminal", "bus interior"]
    assert resolve_classes("places365", str(listing)) == ["abbey", "airport terminal", "bus interior"]


def test_source_specs_parse_or_name_the_valid_forms():
    assert parse_source("builtin:colors+textures").names == ("colors", "textures")
    assert parse_source("file:/tmp/x.txt").path == "/tmp/x.txt"
    assert parse_source("llm").kind == "llm"
    for bad in ("builtin:nope", "builtin:", "wiki", "file:"):
        with pytest.raises(NeuroscribeError, match="builtin:NAME"):
            parse_source(bad)
    with pytest.raises(ValidationError, match="no known built-in set"):
        VocabularyConfig(store="x", sources="builtin:colors,builtin:nope")


def test_union_of_builtin_and_file_sources_keeps_provenance(tmp_path):
    mine = tmp_path / "mine.txt"
    mine.write_text("# my concepts\nRed\n\nGlitter\n  the Sequins \n")
    cfg = VocabularyConfig(store=str(tmp_path / "run"), sources=("builtin:colors", f"file:{mine}"), filter={"dedup_threshold": None})
    summary = build_vocabulary(cfg)
    vocab = load_vocabulary(str(tmp_path / "run"))
    expected = sorted(set(builtin_concepts("colors")) | {"glitter", "sequins"})
    assert vocab.concepts == expected
    assert summary.candidates_by_source == {"builtin:colors": len(builtin_concepts("colors")), f"file:{mine}": 3}
    red = vocab.frame.set_index("concept").loc["red"]
    assert red["sources"] == ["builtin:colors", f"file:{mine}"] and red["count"] == 2


def test_offline_default_needs_no_network(tmp_path, monkeypatch):
    def refuse(self, address):
        raise OSError(f"network disabled in this test (connect to {address})")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    summary = build_vocabulary(VocabularyConfig(store=str(tmp_path / "run")))
    names = {concept for name in ("imagenet", "superclasses", "colors", "textures", "materials") for concept in builtin_concepts(name)}
    assert summary.n_concepts == len({normalise_concept(n) for n in names})
    assert summary.requests == 0


def test_artifact_round_trip_hash_and_errors(tmp_path):
    cfg = VocabularyConfig(store=str(tmp_path / "run"), sources="builtin:textures", name="tex", filter={"dedup_threshold": None})
    summary = build_vocabulary(cfg)
    by_file = load_vocabulary(summary.uri)
    assert summary.uri.endswith("vocabulary/tex.parquet")
    assert by_file.content_hash == summary.content_hash and by_file.concepts == sorted(builtin_concepts("textures"))
    assert by_file.manifest["config"]["sources"] == ["builtin:textures"] and by_file.manifest["content_hash"] == summary.content_hash

    # a different vocabulary has a different hash; the same one rebuilt has the same
    assert build_vocabulary(cfg).content_hash == summary.content_hash
    other = build_vocabulary(cfg.model_copy(update={"sources": ("builtin:colors",)}))
    assert other.content_hash != summary.content_hash

    with pytest.raises(NeuroscribeError, match="neuroscribe vocabulary"):
        load_vocabulary(str(tmp_path / "elsewhere"))
    # an edited table no longer matches the hash it was written with
    frame = pd.read_parquet(summary.uri)
    frame.loc[0, "concept"] = "edited"
    frame.to_parquet(summary.uri, index=False)
    with pytest.raises(NeuroscribeError, match="hash mismatch"):
        load_vocabulary(summary.uri)


def test_artifact_and_answer_cache_on_s3(tmp_path, s3_options, fake_llm):
    classes = tmp_path / "classes.txt"
    classes.write_text("goldfish\n")
    cfg = VocabularyConfig(
        store="s3://test/run",
        classes=str(classes),
        sources=("llm", "builtin:colors"),
        llm=LLMSpec(base_url=fake_llm.base_url, api_key=fake_llm.api_key, model=fake_llm.model),
        filter={"dedup_threshold": None},
        store_options=s3_options,
    )
    first = build_vocabulary(cfg)
    assert first.uri == "s3://test/run/vocabulary/vocabulary.parquet" and first.requests == 4
    vocab = load_vocabulary(first.uri, storage_options=s3_options)
    assert vocab.content_hash == first.content_hash and "red" in vocab.concepts
    manifest = str(vocab.manifest)  # no credentials in the manifest
    assert s3_options["secret"] not in manifest and fake_llm.api_key not in manifest
    second = build_vocabulary(cfg)
    assert (second.requests, second.cached_hits) == (0, 4) and len(fake_llm.chat_requests()) == 4


def test_one_default_vocabulary_holds_the_imagenet_superclasses():
    from neuroscribe.explanation import ExplainConfig
    from neuroscribe.vocabulary import DEFAULT_SOURCES, parse_source

    assert VocabularyConfig(store="x").sources == DEFAULT_SOURCES
    assert ExplainConfig(dataset={"uri": "x"}, store="x", layers="a").vocabulary.sources == DEFAULT_SOURCES
    (spec,) = (parse_source(source) for source in DEFAULT_SOURCES)
    assert spec.names == ("imagenet", "superclasses", "colors", "textures", "materials")


def test_the_vocabulary_config_imports_without_the_llm_client():
    # the CLI reads DEFAULT_SOURCES for its --help; the package's other names load on first use
    import subprocess
    import sys

    code = "import sys, neuroscribe.vocabulary.config; print(sorted(m for m in ('openai', 'pandas') if m in sys.modules))"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split() == ["[]"]
