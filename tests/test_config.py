"""Frozen configs: layer parsing, secrets masked in JSON dumps, YAML plus overrides merged deeply."""

from __future__ import annotations

import json

import pytest
import yaml
from pydantic import ValidationError

from neuroscribe.config import (
    DatasetSpec,
    ExtractConfig,
    LayersConfig,
    RunnerSpec,
    load_config,
    mask_secrets,
    parse_layers,
)
from neuroscribe.errors import NeuroscribeError

SECRETS = {"key": "AKIA-secret-1", "secret": "s3cr3t-2", "token": "tok-3", "client_kwargs": {"endpoint_url": "http://minio:9000", "aws_session_token": "tok-4"}}


def make_extract(**extra) -> ExtractConfig:
    return ExtractConfig(layers="layer3,layer4", dataset=DatasetSpec(uri="s3://data/val", storage_options=SECRETS), store="s3://runs/r50", store_options=SECRETS, **extra)


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("layer4", ("layer4",)),
        (" layer3 , layer4,,", ("layer3", "layer4")),
        (["layer3", " layer4 ", ""], ("layer3", "layer4")),
        (("a.b.c",), ("a.b.c",)),
        ("layer4,layer3, layer4", ("layer4", "layer3")),  # a layer named twice is extracted once, first order kept
    ],
)
def test_layers_are_split_stripped_deduplicated_and_stored_as_a_tuple(given, expected):
    assert parse_layers(given) == expected
    assert LayersConfig(layers=given).layers == expected


@pytest.mark.parametrize("given", ["", " , ", [], [" "]])
def test_no_layers_is_one_clear_error(given):
    with pytest.raises(NeuroscribeError, match="no layers given; pass --layers"):
        parse_layers(given)


def test_mask_secrets_masks_secret_looking_names_at_any_depth_and_keeps_the_rest():
    options = {**SECRETS, "anon": False, "API_KEY": "k", "Password": "p", "credentials_file": "/x", "region_name": "eu"}
    masked = mask_secrets(options)
    assert masked == {
        "key": "***", "secret": "***", "token": "***", "API_KEY": "***", "Password": "***", "credentials_file": "***",
        "client_kwargs": {"endpoint_url": "http://minio:9000", "aws_session_token": "***"},
        "anon": False, "region_name": "eu",
    }
    assert options["key"] == "AKIA-secret-1"  # the input is left as it was


def test_json_dumps_mask_every_options_field_even_nested_while_python_dumps_keep_them():
    cfg = make_extract()
    for text in (cfg.model_dump_json(), json.dumps(cfg.model_dump(mode="json"))):
        for secret in ("AKIA-secret-1", "s3cr3t-2", "tok-3", "tok-4"):
            assert secret not in text
        dumped = json.loads(text)
        assert dumped["store_options"]["client_kwargs"]["endpoint_url"] == "http://minio:9000"
        assert dumped["dataset"]["storage_options"]["secret"] == "***"
    # in-process dumps hand the credentials on to workers
    assert cfg.model_dump()["dataset"]["storage_options"] == SECRETS


def test_configs_are_frozen_and_refuse_unknown_fields():
    cfg = make_extract()
    with pytest.raises(ValidationError, match="frozen"):
        cfg.k = 10
    with pytest.raises(ValidationError, match="frozen"):
        cfg.runner.n_workers = 3
    with pytest.raises(ValidationError, match="extra"):
        RunnerSpec(n_worker=3)
    assert hash(cfg.dataset) == hash(DatasetSpec(uri="s3://data/val", storage_options={}))  # hashable despite a dict


def test_yaml_and_overrides_merge_deeply_overrides_win_and_none_means_not_given(tmp_path):
    path = tmp_path / "extract.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "layers": "layer3",
                "store": "runs/from-yaml",
                "k": 20,
                "dataset": {"uri": "/data/val", "shard_size": 64, "storage_options": {"anon": True}},
                "runner": {"n_workers": 4, "batch_size": 8},
            }
        )
    )
    overrides = {
        "store": "s3://bucket/r50",
        "k": None,  # not given: the YAML's 20 stays
        "dataset": {"limit": 100, "shard_size": None, "storage_options": {"key": "x"}},
        "runner": {"batch_size": 16, "dask_address": None},
        "model": {},
    }
    cfg = load_config(ExtractConfig, path, overrides)
    assert (cfg.store, cfg.k, cfg.layers) == ("s3://bucket/r50", 20, ("layer3",))
    assert (cfg.dataset.uri, cfg.dataset.shard_size, cfg.dataset.limit) == ("/data/val", 64, 100)
    assert cfg.dataset.storage_options == {"anon": True, "key": "x"}
    assert (cfg.runner.n_workers, cfg.runner.batch_size, cfg.runner.dask_address) == (4, 16, None)
    assert cfg.model == ExtractConfig.model_fields["model"].default
    assert load_config(ExtractConfig, None, {"layers": "a", "store": "s", "dataset": {"uri": "d"}}).layers == ("a",)


def test_load_config_errors_name_the_file_and_the_fix(tmp_path):
    with pytest.raises(NeuroscribeError, match=r"config file .*missing.yaml does not exist"):
        load_config(ExtractConfig, tmp_path / "missing.yaml")
    scalar = tmp_path / "scalar.yaml"
    scalar.write_text("just a string\n")
    with pytest.raises(NeuroscribeError, match=r"scalar.yaml must hold a YAML mapping of ExtractConfig fields"):
        load_config(ExtractConfig, scalar)
    bad = tmp_path / "bad.yaml"
    bad.write_text("layers: layer4\nstore: s\ndataset: {uri: d}\nk: 0\n")
    with pytest.raises(NeuroscribeError, match=r"invalid ExtractConfig in .*bad.yaml.*\n.*k"):
        load_config(ExtractConfig, bad)


# --- composition: ExplainConfig contains an ExtractConfig; the backend is a union chosen by kind --------------


def _explain_fields() -> dict:
    return {"layers": "conv2,fc", "store": "runs/x", "k": 7, "dataset": {"uri": "/data/val", "limit": 9},
            "runner": {"device": "cpu"}, "store_options": {"anon": True}}


def test_explain_config_flat_and_nested_forms_are_equal():
    from neuroscribe.explanation import ExplainConfig

    flat = ExplainConfig(**_explain_fields(), rule={"name": "seed"})
    nested = ExplainConfig(extract=ExtractConfig(**_explain_fields()), rule={"name": "seed"})
    assert flat == nested and ExplainConfig.model_validate({"extract": _explain_fields(), "rule": {"name": "seed"}}) == flat
    assert flat.extract == ExtractConfig(**_explain_fields())
    assert (flat.extract.layers, flat.extract.k, flat.extract.dataset.limit, flat.extract.runner.device) == (("conv2", "fc"), 7, 9, "cpu")
    assert "store" not in ExplainConfig.model_fields and "extract_config" not in dir(ExplainConfig)  # one definition


def test_flat_fields_override_the_nested_ones_and_nested_dicts_merge(tmp_path):
    from neuroscribe.explanation import ExplainConfig

    path = tmp_path / "explain.yaml"
    path.write_text(yaml.safe_dump({"extract": _explain_fields(), "backend": {"kind": "conse"}}))
    # what the CLI does: a nested YAML file plus flat flags
    cfg = load_config(ExplainConfig, path, {"store": "runs/flag", "dataset": {"shard_size": 3}, "k": None})
    assert (cfg.extract.store, cfg.extract.k) == ("runs/flag", 7)
    assert (cfg.extract.dataset.uri, cfg.extract.dataset.limit, cfg.extract.dataset.shard_size) == ("/data/val", 9, 3)
    # a copy with one extraction field changed, its in-memory model object carried along
    spec = cfg.extract.model.model_copy()
    spec._object = marker = object()
    moved = ExplainConfig(**dict(ExplainConfig(**dict(cfg), model=spec)), store="runs/other")
    assert moved.extract.store == "runs/other" and moved.extract.model._object is marker
    assert moved.extract.dataset == cfg.extract.dataset and moved.backend == cfg.backend


def test_backend_union_picks_the_class_by_kind_and_defaults_to_open_clip():
    from pydantic import TypeAdapter

    from neuroscribe.explanation import ExplainConfig
    from neuroscribe.scoring.backend import BackendSpec, ConseSpec, OpenClipSpec

    spec = TypeAdapter(BackendSpec)
    assert spec.validate_python({"kind": "conse", "top_t": 3}) == ConseSpec(top_t=3)
    assert spec.validate_python({"arch": "ViT-B-16"}) == OpenClipSpec(arch="ViT-B-16")  # no kind: open_clip
    assert spec.validate_python(ConseSpec()) == ConseSpec()
    assert ConseSpec(classifier="efficientnet_lite0").classifier.name == "efficientnet_lite0"
    assert (ConseSpec().resolved_templates, OpenClipSpec().resolved_templates) == (("{}",), ("a photo of {}.",))
    cfg = ExplainConfig(**_explain_fields(), backend={"kind": "conse", "sentence_model": "/m"})
    assert isinstance(cfg.backend, ConseSpec) and cfg.backend.sentence_model == "/m"
    assert isinstance(ExplainConfig(**_explain_fields()).backend, OpenClipSpec)
    assert ExplainConfig.model_validate_json(cfg.model_dump_json()).backend == cfg.backend


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ({"kind": "conse", "arch": "ViT-B-16"}, "backend field 'arch' applies only to kind 'open_clip', not 'conse'"),
        ({"top_t": 5}, "backend field 'top_t' applies only to kind 'conse', not 'open_clip'; remove it or set kind: conse"),
        ({"kind": "open_clip", "checkpoint": "w.pt", "class_scores": False}, "'class_scores' applies only to kind 'conse'"),
        ({"kind": "clip"}, "does not match any of the expected tags: 'open_clip', 'conse'"),
        ({"kind": "conse", "colour": True}, "colour\n.*Extra inputs are not permitted"),
    ],
)
def test_a_field_of_the_other_backend_kind_is_refused_naming_it(given, message):
    from neuroscribe.explanation import ExplainConfig

    with pytest.raises(NeuroscribeError, match=message):
        load_config(ExplainConfig, None, _explain_fields() | {"backend": given})


def test_explain_config_round_trips_through_the_stores_explain_config_json(tmp_path):
    from neuroscribe.evaluation.config import EvaluateConfig, resolve_explain_config
    from neuroscribe.explanation import ExplainConfig, save_config
    from neuroscribe.store import RunStore

    store = str(tmp_path / "run")
    cfg = ExplainConfig(**_explain_fields() | {"store": store, "store_options": {}}, backend={"kind": "conse", "top_t": 4})
    assert ExplainConfig.model_validate_json(cfg.model_dump_json()) == cfg
    save_config(cfg)
    assert json.loads((tmp_path / "run" / "explain_config.json").read_text())["extract"]["store"] == store
    assert ExplainConfig.model_validate_json(RunStore(store).explain_config().read_bytes()) == cfg
    # evaluate reads it back, pointed at its own store and options
    assert resolve_explain_config(EvaluateConfig(store=store)) == cfg
    moved = resolve_explain_config(EvaluateConfig(store=store, store_options={"anon": False}, device="cpu"))
    assert (moved.extract.store_options, moved.extract.dataset.storage_options, moved.backend.device) == ({"anon": False},) * 2 + ("cpu",)
    assert moved.extract.layers == cfg.extract.layers and moved.backend.top_t == 4


def test_the_vocabulary_part_is_the_vocabulary_configs_own_and_the_earlier_flat_names_still_read():
    from neuroscribe.explanation import ExplainConfig
    from neuroscribe.vocabulary.config import VocabularyConfig, VocabularySpec

    spec = VocabularySpec(classes="places365", places365_file="p.txt", sources="llm,builtin:colors", llm={"seed": 3}, cache_dir="/c")
    cfg = ExplainConfig(**_explain_fields(), vocabulary=spec)
    vocabulary = cfg.vocabulary_config()
    assert vocabulary == VocabularyConfig(**dict(spec), store="runs/x", store_options={"anon": True}, runner={"device": "cpu"})
    # an explain config written before `vocabulary` existed (explain_config.json of an earlier run, a YAML file)
    earlier = {"vocabulary_classes": "places365", "vocabulary_sources": ["llm", "builtin:colors"], "places365_file": "p.txt", "llm": {"seed": 3}}
    assert ExplainConfig(**_explain_fields(), **earlier, vocabulary={"cache_dir": "/c"}) == cfg
    with pytest.raises(NeuroscribeError, match="source 'wiki' is not understood"):
        load_config(ExplainConfig, None, _explain_fields() | {"vocabulary": {"sources": ["wiki"]}})
    with pytest.raises(ValidationError, match="out\n.*Extra inputs are not permitted"):
        VocabularyConfig(out="runs/x")
