"""The console entry point: help on every command, layer listing, and one-line errors."""

from __future__ import annotations

import subprocess
import sys

from typer.testing import CliRunner

from neuroscribe.cli import app
from neuroscribe.store import RunStore

runner = CliRunner()


def test_every_command_has_help():
    import typer

    assert runner.invoke(app, ["--help"]).exit_code == 0
    commands = sorted(typer.main.get_command(app).commands)
    assert {"extract", "layers"} <= set(commands)
    for command in commands:
        sub = runner.invoke(app, [command, "--help"])
        assert sub.exit_code == 0 and "Usage" in sub.output, command


def test_layers_lists_kinds_and_units():
    result = runner.invoke(app, ["layers", "--model", "neuroscribe.testing.tiny_models:tiny_cnn"], terminal_width=200)
    assert result.exit_code == 0
    rows = {line.split("│")[1].strip(): line for line in result.output.splitlines() if line.count("│") > 3}
    assert "conv" in rows["conv2"] and "16" in rows["conv2"] and "linear" in rows["fc"]


def test_wrong_layer_is_one_clear_line_and_exit_2(image_folder, tmp_path):
    proc = subprocess.run(
        [sys.executable, "-c", "from neuroscribe.cli import main; main()", "extract", "--model",
         "neuroscribe.testing.tiny_models:tiny_cnn", "--layers", "conv9", "--dataset", str(image_folder),
         "--store", str(tmp_path / "s")],
        capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 2
    assert "layer 'conv9' is not an addressable layer" in proc.stderr and "Traceback" not in proc.stderr
    assert not RunStore(str(tmp_path / "s")).has_run()


def _options(command: str) -> dict[str, tuple[str, ...]]:
    import typer

    return {param.name: tuple(param.opts) for param in typer.main.get_command(app).commands[command].params}


def test_every_extract_flag_is_also_on_explain():
    extract, explain = _options("extract"), _options("explain")
    assert {"class_names", "class_list", "limit", "shard_size", "layers", "dataset", "store", "k"} <= set(extract)
    assert {name: extract[name] for name in extract} == {name: explain.get(name) for name in extract}


def test_explain_class_names_limit_and_shard_size_reach_the_explain_config(monkeypatch, tmp_path):
    import neuroscribe.explanation

    class Stop(Exception):
        pass

    seen = []

    def capture(cfg):  # the CLI validates the config it built before anything runs: look at it there and stop
        seen.append(cfg)
        raise Stop

    monkeypatch.setattr(neuroscribe.explanation, "validate_explain", capture)
    names = tmp_path / "categories_places365.txt"
    names.write_text("airfield\nalcove\n")
    result = runner.invoke(app, [
        "explain", "--layers", "conv2", "--dataset", str(tmp_path), "--store", str(tmp_path / "s"),
        "--class-names", str(names), "--class-list", str(names), "--limit", "7", "--shard-size", "3", "--k", "4",
    ])
    assert isinstance(result.exception, Stop), result.output
    (cfg,) = seen
    assert (cfg.extract.model.class_names_file, cfg.extract.dataset.class_list, cfg.extract.dataset.limit, cfg.extract.dataset.shard_size, cfg.extract.k) == (
        str(names), str(names), 7, 3, 4)
    assert (cfg.extract.layers, cfg.extract.dataset.uri, cfg.extract.store) == (("conv2",), str(tmp_path), str(tmp_path / "s"))


def test_an_open_clip_flag_with_the_conse_backend_is_one_error_naming_the_flag(monkeypatch, tmp_path):
    import neuroscribe.explanation
    from neuroscribe.errors import NeuroscribeError

    args = ["explain", "--layers", "conv2", "--dataset", str(tmp_path), "--store", str(tmp_path / "s")]
    result = runner.invoke(app, [*args, "--backend", "conse", "--clip-arch", "ViT-B-16", "--clip-checkpoint", "w.pt"])
    assert isinstance(result.exception, NeuroscribeError), result.output
    assert "--clip-arch, --clip-checkpoint: open_clip flags, but this run's backend is conse" in str(result.exception)
    config = tmp_path / "explain.yaml"  # the kind may come from the YAML file too
    config.write_text("backend: {kind: conse}\n")
    result = runner.invoke(app, [*args, "--config", str(config), "--clip-pretrained", "openai"])
    assert isinstance(result.exception, NeuroscribeError) and "--clip-pretrained: open_clip flags" in str(result.exception)
    assert not (tmp_path / "s").exists()
    seen = []  # with the open_clip backend (the default) the flags reach its spec
    monkeypatch.setattr(neuroscribe.explanation, "validate_explain", lambda cfg: seen.append(cfg) or 1 / 0)
    result = runner.invoke(app, [*args, "--clip-arch", "ViT-B-16", "--device", "cpu"])
    assert isinstance(result.exception, ZeroDivisionError), result.output
    assert (seen[0].backend.kind, seen[0].backend.arch, seen[0].backend.pretrained, seen[0].backend.device) == ("open_clip", "ViT-B-16", "openai", "cpu")
