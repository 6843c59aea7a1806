"""The vocabulary flow end to end through the CLI: Prefect (ephemeral server), Dask, the fake LLM over HTTP."""

from __future__ import annotations

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

    # task results live here, not in the developer's ~/.prefect
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


def test_flow_maps_batches_and_a_rerun_asks_only_for_failed_answers(tmp_path, fake_llm, dask_scheduler, monkeypatch):
    from neuroscribe.cli.app import app

    monkeypatch.setenv("OPENAI_API_KEY", fake_llm.api_key)
    fake_llm.always["zebra"] = "malformed"
    classes = tmp_path / "classes.txt"
    classes.write_text("goldfish\ntabby cat\nfire truck\nzebra\n")
    out = tmp_path / "run"
    args = [
        "vocabulary", "--classes", str(classes), "--source", "llm", "--source", "builtin:colors", "--store", str(out),
        "--base-url", fake_llm.base_url, "--model", fake_llm.model, "--classes-per-task", "2", "--no-dedup",
        "--config", str(tmp_path / "cfg.yaml"), "--dask-address", dask_scheduler,
    ]
    (tmp_path / "cfg.yaml").write_text("llm:\n  answer_retries: 0\n")
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

    # the run's answer cache kept the 12 valid answers; the failed ones were not cached and are asked again
    del fake_llm.always["zebra"]
    fake_llm.reset()
    second = runner.invoke(app, args)
    assert second.exit_code == 0, second.output
    assert sorted({fake_llm.class_of(r) for r in fake_llm.chat_requests()}) == ["zebra"]
    assert len(fake_llm.chat_requests()) == 4
    assert "12 cached hits" in second.output
    rebuilt = load_vocabulary(str(out))
    assert {c for classes in rebuilt.frame["classes"] for c in classes} == {"goldfish", "tabby cat", "fire truck", "zebra"}
    assert rebuilt.manifest["summary"]["requests"] == 4 and rebuilt.manifest["summary"]["failures"] == []


def test_a_run_with_a_new_out_asks_and_keeps_every_answer_in_its_own_cache(tmp_path, fake_llm, dask_scheduler, monkeypatch):
    """The run's answers are in the run: a new ``--store`` is not served from another run's results."""
    from neuroscribe.cli.app import app

    monkeypatch.setenv("OPENAI_API_KEY", fake_llm.api_key)
    classes = tmp_path / "classes.txt"
    classes.write_text("lighthouse\nred fox\n")  # classes no other test of this module asks about
    n_answers = 2 * 4  # classes x default templates
    runner = CliRunner()

    def run(out, *extra):
        fake_llm.reset()
        args = [
            "vocabulary", "--classes", str(classes), "--source", "llm", "--store", str(tmp_path / out),
            "--base-url", fake_llm.base_url, "--model", fake_llm.model, "--no-dedup", "--dask-address", dask_scheduler, *extra,
        ]
        result = runner.invoke(app, args)
        assert result.exit_code == 0, result.output
        cached = sorted(p.name for p in (tmp_path / out / "vocabulary" / "llm_cache").glob("*.json"))
        return len(fake_llm.chat_requests()), cached

    first_requests, first_cache = run("first")
    assert (first_requests, len(first_cache)) == (n_answers, n_answers)
    # same question, new store, no shared cache: it asks, and keeps every answer in its own cache
    assert run("second") == (n_answers, first_cache)
    assert run("second") == (0, first_cache)  # a rerun on the same store asks nothing
    # with a shared cache it asks nothing and copies the answers into its own cache
    shared = str(tmp_path / "first" / "vocabulary" / "llm_cache")
    assert run("third", "--cache-dir", shared) == (0, first_cache)
    assert load_vocabulary(str(tmp_path / "third")).concepts == load_vocabulary(str(tmp_path / "first")).concepts
