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
    ],
)
def test_layers_are_split_stripped_and_stored_as_a_tuple(given, expected):
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
