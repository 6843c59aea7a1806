"""The installed package layout: every package folder is listed, flows/ and tasks/ live under neuroscribe."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def test_every_package_folder_is_installed_under_the_neuroscribe_namespace():
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    setuptools = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    mapping = {name: REPO / folder for name, folder in setuptools["package-dir"].items()}
    on_disk = {".".join(p.parent.relative_to(REPO).parts) for p in (REPO / "neuroscribe").rglob("__init__.py")}
    on_disk |= {name for name, folder in mapping.items() if (folder / "__init__.py").is_file()}
    assert sorted(setuptools["packages"]) == sorted(on_disk)
    assert set(mapping) == {"neuroscribe.flows", "neuroscribe.tasks"}


def test_the_prefect_wrappers_import_under_the_namespace_only(tmp_path):
    # from a folder outside the checkout, as an installed user or a Dask worker imports them
    code = (
        "import importlib.util, neuroscribe.flows.explain as f, neuroscribe.tasks.stage as t;"
        "print(f.__file__, t.__file__, importlib.util.find_spec('flows'), importlib.util.find_spec('tasks'))"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True, check=True).stdout.split()
    assert out == [str(REPO / "flows" / "explain.py"), str(REPO / "tasks" / "stage.py"), "None", "None"]
