"""The console entry point: help on every command, layer listing, and one-line errors."""

from __future__ import annotations

import subprocess
import sys

from typer.testing import CliRunner

from neuroscribe.cli import app

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
    assert not (tmp_path / "s" / "zarr.json").exists()
