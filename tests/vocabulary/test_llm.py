"""LLM generation against a real HTTP server on 127.0.0.1: counts, caching, retries, fail-fast errors."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest
from pydantic import SecretStr

from neuroscribe.errors import NeuroscribeError
from neuroscribe.vocabulary import (
    LLMSpec,
    PromptTemplate,
    VocabularyConfig,
    build_vocabulary,
)
from neuroscribe.vocabulary.config import DEFAULT_TEMPLATES
from neuroscribe.vocabulary.llm import parse_concepts

CLASSES = ["goldfish", "tabby cat", "fire truck"]


def make_config(tmp_path: Path, server, classes=CLASSES, **llm) -> VocabularyConfig:
    class_file = tmp_path / "classes.txt"
    class_file.write_text("\n".join(classes) + "\n")
    spec = {"base_url": server.base_url, "api_key": server.api_key, "model": server.model, **llm}
    return VocabularyConfig(
        store=str(tmp_path / "run"),
        classes=str(class_file),
        sources=("llm",),
        llm=LLMSpec(**spec),
        filter={"dedup_threshold": None},
    )


def user_prompts(requests: list[dict]) -> list[str]:
    return [r["messages"][1]["content"] for r in requests]


def test_first_run_asks_each_class_and_template_once_and_rerun_asks_nothing(tmp_path, fake_llm):
    cfg = make_config(tmp_path, fake_llm)
    first = build_vocabulary(cfg)

    expected = sorted(t.render(c) for c in CLASSES for t in DEFAULT_TEMPLATES)
    assert sorted(user_prompts(fake_llm.chat_requests())) == expected
    assert first.requests == len(fake_llm.chat_requests()) == len(CLASSES) * len(DEFAULT_TEMPLATES)
    assert (first.classes_asked, first.cached_hits, first.answers, first.failures) == (3, 0, 12, ())
    assert (first.prompt_tokens, first.completion_tokens) == (fake_llm.prompt_tokens, fake_llm.completion_tokens)
    assert len(list((tmp_path / "run" / "vocabulary" / "llm_cache").glob("*.json"))) == 12
    # every request asked for structured output with the configured sampling
    assert all(r["response_format"] == {"type": "json_object"} and r["temperature"] == 0.0 and r["seed"] == 0 for r in fake_llm.chat_requests())

    fake_llm.reset()
    second = build_vocabulary(cfg)
    assert fake_llm.chat_requests() == [] and fake_llm.model_listings == 0
    assert (second.requests, second.classes_asked, second.cached_hits, second.answers) == (0, 0, 12, 12)
    assert second.content_hash == first.content_hash


def test_changed_template_reasks_only_that_template(tmp_path, fake_llm):
    cfg = make_config(tmp_path, fake_llm)
    build_vocabulary(cfg)
    fake_llm.reset()

    new_context = PromptTemplate(name="context", text='What surrounds a "{class_name}" in a typical photo?')
    templates = tuple(new_context if t.name == "context" else t for t in DEFAULT_TEMPLATES)
    changed = cfg.model_copy(update={"llm": cfg.llm.model_copy(update={"templates": templates})})
    summary = build_vocabulary(changed)
    assert sorted(user_prompts(fake_llm.chat_requests())) == sorted(new_context.render(c) for c in CLASSES)
    assert (summary.requests, summary.cached_hits, summary.classes_asked) == (3, 9, 3)

    fake_llm.reset()
    reseeded = changed.model_copy(update={"llm": changed.llm.model_copy(update={"seed": 7})})
    assert build_vocabulary(reseeded).requests == 12  # the seed is part of every answer's key


def test_malformed_answers_are_retried_then_recorded_and_the_run_goes_on(tmp_path, fake_llm):
    fake_llm.always["tabby cat"] = "malformed"
    cfg = make_config(tmp_path, fake_llm, answer_retries=2)
    summary = build_vocabulary(cfg)

    cat_requests = fake_llm.chat_requests("tabby cat")
    assert len(cat_requests) == len(DEFAULT_TEMPLATES) * 3
    assert {(f.class_name, f.template) for f in summary.failures} == {("tabby cat", t.name) for t in DEFAULT_TEMPLATES}
    assert all("malformed answer 3 times" in f.error and "not valid JSON" in f.error for f in summary.failures)
    # a retry shows the model its bad answer and says what was wrong
    retries = [r for r in cat_requests if len(r["messages"]) == 4]
    assert len(retries) == len(DEFAULT_TEMPLATES) * 2
    assert all(r["messages"][2]["role"] == "assistant" and "not valid JSON" in r["messages"][3]["content"] for r in retries)
    assert summary.answers == 8 and summary.n_concepts > 0

    # failures are not cached: once the server behaves, a rerun asks only for them
    del fake_llm.always["tabby cat"]
    fake_llm.reset()
    rerun = build_vocabulary(cfg)
    assert {fake_llm.class_of(r) for r in fake_llm.chat_requests()} == {"tabby cat"}
    assert (rerun.requests, rerun.cached_hits, rerun.failures) == (4, 8, ())


def test_429_500_timeouts_and_one_malformed_answer_are_retried(tmp_path, fake_llm):
    fake_llm.script["goldfish"] = ["429", "500", "slow", "malformed"]
    fake_llm.slow_s = 1.5
    cfg = make_config(tmp_path, fake_llm, classes=["goldfish"], concurrency=1, timeout_s=0.5)
    summary = build_vocabulary(cfg)
    assert summary.failures == ()
    assert summary.answers == 4
    assert summary.requests == len(fake_llm.chat_requests()) == 4 + 4


def test_persistent_server_errors_are_recorded_after_bounded_retries(tmp_path, fake_llm):
    fake_llm.always["fire truck"] = "500"
    summary = build_vocabulary(make_config(tmp_path, fake_llm, max_retries=2))
    assert len(fake_llm.chat_requests("fire truck")) == len(DEFAULT_TEMPLATES) * 3
    assert {f.class_name for f in summary.failures} == {"fire truck"}
    assert all("gave up after 3 requests (HTTP 500" in f.error for f in summary.failures)


def test_concurrency_is_bounded(tmp_path, fake_llm):
    fake_llm.delay_s = 0.05
    classes = [f"class {i}" for i in range(6)]
    summary = build_vocabulary(make_config(tmp_path, fake_llm, classes=classes, concurrency=3))
    assert summary.requests == 24
    assert 2 <= fake_llm.max_in_flight <= 3


def test_missing_key_fails_fast_with_one_message(tmp_path, fake_llm):
    cfg = make_config(tmp_path, fake_llm)
    no_key = cfg.model_copy(update={"llm": cfg.llm.model_copy(update={"api_key": None})})
    with pytest.raises(NeuroscribeError, match=r"no API key .* set OPENAI_API_KEY"):
        build_vocabulary(no_key)
    assert fake_llm.chat_requests() == [] and fake_llm.model_listings == 0


def test_key_endpoint_and_model_come_from_the_environment(tmp_path, fake_llm, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", fake_llm.api_key)
    monkeypatch.setenv("OPENAI_BASE_URL", fake_llm.base_url)
    monkeypatch.setenv("OPENAI_MODEL", fake_llm.model)
    class_file = tmp_path / "classes.txt"
    class_file.write_text("goldfish\n")
    cfg = VocabularyConfig(store=str(tmp_path / "run"), classes=str(class_file), sources="llm", filter={"dedup_threshold": None})
    assert build_vocabulary(cfg).requests == 4
    assert {r["model"] for r in fake_llm.chat_requests()} == {fake_llm.model}


def test_unreachable_endpoint_fails_fast(tmp_path, fake_llm):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cfg = make_config(tmp_path, fake_llm)
    gone = cfg.model_copy(update={"llm": cfg.llm.model_copy(update={"base_url": f"http://127.0.0.1:{port}/v1"})})
    started = time.perf_counter()
    with pytest.raises(NeuroscribeError, match=rf"cannot reach the LLM endpoint http://127.0.0.1:{port}/v1"):
        build_vocabulary(gone)
    assert time.perf_counter() - started < 3.0  # no retry loop (the client backs off 0.5, 1, 2, 4, 8 s)


def test_rejected_key_and_unknown_model_fail_fast(tmp_path, fake_llm):
    cfg = make_config(tmp_path, fake_llm)
    wrong_key = cfg.model_copy(update={"llm": cfg.llm.model_copy(update={"api_key": SecretStr("sk-wrong")})})
    with pytest.raises(NeuroscribeError, match="rejected the API key"):
        build_vocabulary(wrong_key)
    unknown = cfg.model_copy(update={"llm": cfg.llm.model_copy(update={"model": "no-such-model"})})
    with pytest.raises(NeuroscribeError, match="does not serve model 'no-such-model'"):
        build_vocabulary(unknown)
    assert len(fake_llm.chat_requests()) <= unknown.llm.concurrency  # stopped at the first answers


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"concepts": ["Stripes", " fur "]}', ["Stripes", "fur"]),
        ('```json\n{"concepts": ["mane"]}\n```', ["mane"]),
        ('["wheels", "ladder"]', ["wheels", "ladder"]),
    ],
)
def test_parse_concepts_accepts_json_answers(text, expected):
    assert parse_concepts(text) == expected


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("stripes, fur", "not valid JSON"),
        ('{"features": ["fur"]}', 'no "concepts" key'),
        ('{"concepts": ["fur", 3]}', "list of strings"),
        ('{"concepts": "fur"}', "list of strings"),
        ('{"concepts": [" "]}', "empty"),
    ],
)
def test_parse_concepts_rejects_malformed_answers(text, problem):
    with pytest.raises(ValueError, match=problem):
        parse_concepts(text)


def test_a_shared_cache_serves_a_new_run_and_its_answers_are_copied_into_the_run(tmp_path, fake_llm):
    first = make_config(tmp_path, fake_llm)
    build_vocabulary(first)
    shared = tmp_path / "run" / "vocabulary" / "llm_cache"
    fake_llm.reset()

    second = first.model_copy(update={"store": str(tmp_path / "second"), "cache_dir": str(shared)})
    summary = build_vocabulary(second)
    assert fake_llm.chat_requests() == [] and (summary.requests, summary.cached_hits) == (0, 12)
    own = tmp_path / "second" / "vocabulary" / "llm_cache"
    assert sorted(p.name for p in own.glob("*.json")) == sorted(p.name for p in shared.glob("*.json"))

    # a new answer goes to the run's cache and to the shared one
    reseeded = second.model_copy(update={"llm": second.llm.model_copy(update={"seed": 7})})
    assert build_vocabulary(reseeded).requests == 12
    assert len(list(own.glob("*.json"))) == len(list(shared.glob("*.json"))) == 24
