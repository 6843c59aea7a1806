"""The sweep grid: expansion, per-combination stores, content keys and done-detection (no Prefect here)."""

from __future__ import annotations

import itertools
import json

import pytest

from neuroscribe import sweep
from neuroscribe.config import DatasetSpec, ExtractConfig, ModelSpec, RunnerSpec
from neuroscribe.errors import NeuroscribeError
from neuroscribe.extraction import CODE_MODULES

TINY = ModelSpec(name="neuroscribe.testing.tiny_models:tiny_cnn")
VIT = ModelSpec(name="neuroscribe.testing.tiny_models:tiny_vit")


def grid(tmp_path, **overrides) -> sweep.SweepConfig:
    fields = {
        "flow": "extract",
        "root": str(tmp_path / "sweeps"),
        "models": [TINY, VIT],
        "datasets": [DatasetSpec(uri="/data/imagenet/val"), DatasetSpec(uri="s3://bucket/places365/val", shard_size=64)],
        "layers": ["conv1", "conv1,conv2"],
        "settings": {"k": 7},
    } | overrides
    return sweep.SweepConfig.model_validate(fields)


def test_every_combination_once_in_grid_order_with_its_own_store(tmp_path):
    cfg = grid(tmp_path)
    combos = sweep.plan_sweep(cfg)
    expected = list(itertools.product(cfg.models, cfg.datasets, cfg.layers))
    assert [(c.model, c.dataset, c.layers) for c in combos] == expected
    assert [c.name for c in combos[:4]] == [
        "tiny_cnn/imagenet-val/conv1", "tiny_cnn/imagenet-val/conv1+conv2",
        "tiny_cnn/places365-val/conv1", "tiny_cnn/places365-val/conv1+conv2",
    ]
    for c in combos:
        assert isinstance(c.config, ExtractConfig)
        assert c.store == f"{cfg.root}/{c.name}" == c.config.store
        assert (c.config.model, c.config.dataset, c.config.layers, c.config.k) == (c.model, c.dataset, c.layers, 7)
    assert len({c.store for c in combos}) == len({c.key for c in combos}) == 8


def test_colliding_slugs_of_different_entries_get_a_content_suffix(tmp_path):
    datasets = [DatasetSpec(uri="/a/val"), DatasetSpec(uri="/a/val", class_list="/a/classes.txt"), DatasetSpec(uri="/b/val")]
    names = [c.name for c in sweep.plan_sweep(grid(tmp_path, models=[TINY], layers=["conv1"], datasets=datasets))]
    assert names[2] == "tiny_cnn/b-val/conv1"
    assert names[0].startswith("tiny_cnn/a-val-") and names[1].startswith("tiny_cnn/a-val-") and names[0] != names[1]
    # the same entry twice is one store, which a sweep refuses
    with pytest.raises(NeuroscribeError, match="share a store path"):
        sweep.plan_sweep(grid(tmp_path, models=[TINY, TINY]))


def test_model_slugs_name_weights_and_checkpoints():
    assert sweep.model_slug(ModelSpec(name="resnet50", weights="IMAGENET1K_V2")) == "resnet50-IMAGENET1K_V2"
    assert sweep.model_slug(ModelSpec(name="timm:vit_base_patch16_224")) == "vit_base_patch16_224"
    assert sweep.model_slug(ModelSpec(name="resnet50", checkpoint="/m/resnet50_places365.pth.tar")) == "resnet50-resnet50_places365.pth"
    assert sweep.dataset_slug(DatasetSpec(uri="s3://bucket/imagenet/val/", limit=100)) == "imagenet-val-first100"


def test_key_follows_what_is_computed_not_how_or_with_which_credentials(tmp_path):
    base = sweep.plan_sweep(grid(tmp_path))[0]
    other_runner = sweep.plan_sweep(grid(tmp_path, runner=RunnerSpec(dask_address="tcp://x:8786", batch_size=3)))[0]
    other_secret = sweep.plan_sweep(grid(tmp_path, store_options={"key": "a", "secret": "b"}))[0]
    other_k = sweep.plan_sweep(grid(tmp_path, settings={"k": 8}))[0]
    assert base.key == other_runner.key == other_secret.key != other_k.key
    assert base.key == sweep.combination_key("extract", base.config, CODE_MODULES)
    assert other_runner.config.runner.dask_address == "tcp://x:8786"  # the runner still reaches every run


def test_done_only_with_the_same_key_in_the_store(tmp_path):
    first, second = sweep.plan_sweep(grid(tmp_path))[:2]
    assert not sweep.combination_done(first)
    sweep.mark_done(first, {"ok": 3})
    record = json.loads((tmp_path / "sweeps" / first.name / "summary" / "sweep.json").read_text())
    assert record["key"] == first.key and record["summary"] == {"ok": 3}
    assert sweep.combination_done(first) and not sweep.combination_done(second)
    changed = sweep.plan_sweep(grid(tmp_path, settings={"k": 9}))[0]
    assert changed.store == first.store and not sweep.combination_done(changed)


def test_bad_grids_name_the_fix(tmp_path):
    with pytest.raises(NeuroscribeError, match=r"tiny_cnn/imagenet-val/conv1 is not a valid ExtractConfig.*settings"):
        sweep.plan_sweep(grid(tmp_path, settings={"k": 0}))
    with pytest.raises(NeuroscribeError, match="takes no vocabularies"):
        sweep.plan_sweep(grid(tmp_path, vocabularies=["builtin:colors"]))
    with pytest.raises(NeuroscribeError, match="repeat a group"):
        sweep.plan_sweep(grid(tmp_path, layers=["conv1", "conv1"]))


def test_secrets_are_masked_in_the_config_dump(tmp_path):
    cfg = grid(tmp_path, store_options={"secret": "hunter2", "client_kwargs": {"endpoint_url": "http://s3"}})
    dumped = cfg.model_dump_json()
    assert "hunter2" not in dumped and "http://s3" in dumped


def test_explain_sweeps_one_run_per_vocabulary(tmp_path):
    pytest.importorskip("neuroscribe.explanation")
    cfg = grid(tmp_path, flow="explain", models=[TINY], datasets=[DatasetSpec(uri="/d/val")], layers=["conv1"],
               vocabularies=["builtin:colors", "llm,builtin:textures"], settings={"k": 5})
    combos = sweep.plan_sweep(cfg)
    assert [c.name for c in combos] == ["tiny_cnn/d-val/conv1/builtin-colors", "tiny_cnn/d-val/conv1/llm-builtin-textures"]
    assert [c.config.vocabulary.sources for c in combos] == [("builtin:colors",), ("llm", "builtin:textures")]


def test_explain_keys_ignore_the_runner_and_credentials_inside_the_extraction(tmp_path):
    pytest.importorskip("neuroscribe.explanation")
    explain = {"flow": "explain", "models": [TINY], "datasets": [DatasetSpec(uri="/d/val")], "layers": ["conv1"]}
    base = sweep.plan_sweep(grid(tmp_path, **explain))[0]
    other_runner = sweep.plan_sweep(grid(tmp_path, **explain, runner=RunnerSpec(batch_size=3)))[0]
    other_secret = sweep.plan_sweep(grid(tmp_path, **explain, store_options={"key": "a"}))[0]
    other_k = sweep.plan_sweep(grid(tmp_path, **explain, settings={"k": 8}))[0]
    assert base.key == other_runner.key == other_secret.key != other_k.key
    assert other_runner.config.extract.runner.batch_size == 3 and other_k.config.extract.k == 8
