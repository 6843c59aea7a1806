"""One tiny extraction per session; each test works on its own copy."""

from __future__ import annotations

import pytest

from .helpers import build_tiny_run, copy_run


@pytest.fixture(scope="session")
def tiny_run_base(tmp_path_factory) -> str:
    return build_tiny_run(tmp_path_factory.mktemp("tiny-run"))


@pytest.fixture
def tiny_run(tiny_run_base, tmp_path) -> str:
    return copy_run(tiny_run_base, tmp_path)
