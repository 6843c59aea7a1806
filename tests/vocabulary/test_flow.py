"""The vocabulary flow end to end through the CLI: Prefect (ephemeral server), Dask, the fake LLM over HTTP."""

from __future__ import annotations

import shutil

import pytest
from typer.testing import CliRunner

from neuroscribe.vocabulary import load_vocabulary

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def prefect_server(tmp_path_factory):
    from prefect.settings import (
        PREFECT_LOCAL_STORAGE_PATH,
        PREFECT_SERVER_ANALYTICS_ENABLED,
        temporary_settings,
    )
    from prefect.testing.utilities import prefect_test_harness

    # task results (the task cache) live here, not in the developer's ~/.prefect
    storage = tmp_path_factory.mktemp("prefect-results")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PREFECT_LOCAL_STORAGE_PATH", str(storage))  # Dask worker processes read it too
        settings = {PREFECT_LOCAL_STORAGE_PATH: storage, PREFECT_SERVER_ANALYTICS_ENABLED: False}
        with temporary_settings(settings), prefect_test_harness():
            yield storage


@pytest.fixture(scope="module")
def dask_scheduler(prefect_server):
    """One local cluster for both runs (its workers inherit the results path set above)."""
    from distributed import LocalCluster

    with LocalCluster(n_workers=1, threads_per_worker=2, processes=True, dashboard_address=None) as cluster:
        yield cluster.scheduler_address


def test_flow_maps_batches_caches_by_task_and_reruns_only_failed_batches(tmp_path, fake_llm, dask_scheduler, monkeypatch):
    from neuroscribe.cli.app import app

    monkeypatch.setenv("OPENAI_API_KEY", fake_llm.api_key)
    fake_llm.always["zebra"] = "malformed"
    classes = tmp_path / "classes.txt"
    classes.write_text("goldfish\ntabby cat\nfire truck\nzebra\n")
    out = tmp_path / "run"
    args = [
        "vocabulary", "--classes", str(classes), "--source", "llm", "--source", "builtin:colors", "--out", str(out),
        "--base-url", fake_llm.base_url, "--model", fake_llm.model, "--batch-size", "2", "--no-dedup",
        "--config", str(tmp_path / "cfg.yaml"), "--dask-address", dask_scheduler,
    ]
    (tmp_path / "cfg.yaml").write_text("llm:\n  answer_retries: 0\n  backoff_s: 0.001\n")
    runner = CliRunner()

    first = runner.invoke(app, args)
    assert first.exit_code == 0, first.output
    # 4 classes x 4 templates, zebra's answers all malformed and recorded, not retried (answer_retries 0)
    assert len(fake_llm.chat_requests()) == 16
    assert "classes asked" in first.output and "4 of 4" in first.output
    assert "failures" in first.output and "failed zebra / features" in first.output
    vocab = load_vocabulary(str(out))
    llm_classes = {c for classes in vocab.frame["classes"] for c in classes}
    assert llm_classes == {"goldfish", "tabby cat", "fire truck"}
    assert "red" in vocab.concepts  # builtin:colors joined the union

    # without the durable JSON cache, only the Prefect task cache remembers batch 1; batch 2 had a
    # failure, so it was kept out of the task cache and is asked again
    shutil.rmtree(out / "vocabulary" / "llm_cache")
    del fake_llm.always["zebra"]
    fake_llm.reset()
    second = runner.invoke(app, args)
    assert second.exit_code == 0, second.output
    assert sorted({fake_llm.class_of(r) for r in fake_llm.chat_requests()}) == ["fire truck", "zebra"]
    assert len(fake_llm.chat_requests()) == 8
    assert "8 cached hits" in second.output
    rebuilt = load_vocabulary(str(out))
    assert {c for classes in rebuilt.frame["classes"] for c in classes} == {"goldfish", "tabby cat", "fire truck", "zebra"}
    assert rebuilt.manifest["summary"]["requests"] == 8 and rebuilt.manifest["summary"]["failures"] == []
