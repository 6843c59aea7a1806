"""Fixtures of the vocabulary tests: a fake OpenAI-compatible server and a clean OpenAI environment."""

from __future__ import annotations

import pytest

from .fake_llm import FakeLLM


@pytest.fixture(autouse=True)
def _no_openai_env(monkeypatch):
    """Tests set endpoint, key and model explicitly; the developer's own settings must not leak in."""
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "OPENAI_MODEL"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def fake_llm():
    with FakeLLM() as server:
        yield server
