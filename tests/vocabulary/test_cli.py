"""``neuroscribe vocabulary --local`` (or its old name ``--in-process``): the printed summary and one-line errors."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from neuroscribe.cli.app import app
from neuroscribe.errors import NeuroscribeError


def test_local_run_prints_the_summary(tmp_path, fake_llm, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", fake_llm.api_key)
    fake_llm.answers["goldfish"] = ["Orange scales", "fins", "the Goldfish"]
    classes = tmp_path / "classes.txt"
    classes.write_text("goldfish\n")
    args = ["vocabulary", "--local", "--classes", str(classes), "--source", "llm", "--store", str(tmp_path / "run"),
            "--base-url", fake_llm.base_url, "--model", fake_llm.model, "--no-dedup"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    for line in ("classes asked", "1 of 1", "4 (0 cached hits)", "LLM requests", "concepts before filtering", "concepts after filtering"):
        assert line in result.output
    # 'goldfish' restates the class: 3 distinct concepts before, 2 after
    assert "1 restating the class" in result.output
    rerun = CliRunner().invoke(app, args)
    assert "0 of 1" in rerun.output and "4 (4 cached hits)" in rerun.output


def test_bad_input_raises_one_neuroscribe_error(tmp_path):
    result = CliRunner().invoke(app, ["vocabulary", "--in-process", "--classes", "places365", "--source", "llm", "--store", str(tmp_path)])
    assert isinstance(result.exception, NeuroscribeError) and "--places365-file" in str(result.exception)
    result = CliRunner().invoke(app, ["vocabulary", "--in-process", "--source", "wiki", "--store", str(tmp_path)])
    assert isinstance(result.exception, NeuroscribeError) and "file:PATH" in str(result.exception)
    # the run store is --store on every command; the old name fails naming the new one, before any work
    result = CliRunner().invoke(app, ["vocabulary", "--in-process", "--out", str(tmp_path / "old")])
    assert isinstance(result.exception, NeuroscribeError) and f"pass --store {tmp_path / 'old'}" in str(result.exception)
    assert not (tmp_path / "old").exists()


@pytest.mark.parametrize("flag", ["--help"])
def test_help_lists_the_sources(flag):
    result = CliRunner().invoke(app, ["vocabulary", flag])
    assert result.exit_code == 0 and "builtin:NAME" in result.output and "--classes" in result.output
