"""Ask an OpenAI-compatible LLM, once per class and prompt template, for visual concepts.

    spec = resolve_llm(LLMSpec(base_url="http://127.0.0.1:8000/v1"))   # env fills the rest
    check_endpoint(spec)                                               # fail fast, before any class
    cache = run_answer_cache(cfg)                                      # <store>/vocabulary/llm_cache
    result = generate_answers(["goldfish", "tabby cat"], spec, cache)  # GenerationResult
    result.failures, result.requests, result.cached_hits

Every answer must be JSON ``{"concepts": [...]}``; a malformed one is asked again with the parse
error (``answer_retries`` times), then recorded as a failure while the run goes on.  The openai
client retries a request (``max_retries``) after 429, 5xx and timeouts with its own jittered
backoff, honouring ``Retry-After``; an httpx event hook counts every attempt.  A missing or rejected
key, an unknown model or an unreachable endpoint raise ``NeuroscribeError`` at once.  Valid answers
go to the ``AnswerCache`` as they arrive: an interrupted run loses nothing, a rerun asks nothing.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import threading
from concurrent.futures import ThreadPoolExecutor, as_completed
from datetime import datetime, timezone

import httpx
import openai
from pydantic import BaseModel, SecretStr, TypeAdapter, ValidationError

from neuroscribe.config import FrozenModel
from neuroscribe.errors import NeuroscribeError
from neuroscribe.vocabulary.cache import AnswerCache, answer_key
from neuroscribe.vocabulary.config import LLMSpec, PromptTemplate

DEFAULT_MODEL = "gpt-4o-mini"
_CONCEPTS_SCHEMA = {
    "type": "object",
    "properties": {"concepts": {"type": "array", "items": {"type": "string"}}},
    "required": ["concepts"],
    "additionalProperties": False,
}
_RESPONSE_FORMATS = {  # LLMSpec.response_format -> the request's (none for "off")
    "json_object": {"type": "json_object"},
    "json_schema": {
        "type": "json_schema",
        "json_schema": {"name": "concepts", "strict": True, "schema": _CONCEPTS_SCHEMA},
    },
}


class _Asked(FrozenModel):
    class_name: str
    template: str


class Answer(_Asked):
    concepts: tuple[str, ...]
    cached: bool


class Failure(_Asked):
    error: str


class GenerationResult(BaseModel):
    """Answers and failures of some classes, with what it cost; results of batches merge by ``+``."""

    answers: list[Answer] = []
    failures: list[Failure] = []
    requests: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0

    @property
    def cached_hits(self) -> int:
        return sum(a.cached for a in self.answers)

    @property
    def classes_asked(self) -> int:
        """Classes that needed at least one request in this run."""
        return len({a.class_name for a in self.answers if not a.cached} | {f.class_name for f in self.failures})

    def __add__(self, other: GenerationResult) -> GenerationResult:
        return GenerationResult(**{f: getattr(self, f) + getattr(other, f) for f in type(self).model_fields})


def resolve_llm(spec: LLMSpec) -> LLMSpec:
    """Fill unset model, endpoint and key from ``OPENAI_MODEL``/``OPENAI_BASE_URL``/``OPENAI_API_KEY``."""
    return spec.model_copy(
        update={
            "model": spec.model or os.environ.get("OPENAI_MODEL") or DEFAULT_MODEL,
            "base_url": spec.base_url or os.environ.get("OPENAI_BASE_URL") or None,
            "api_key": spec.api_key or (SecretStr(key) if (key := os.environ.get("OPENAI_API_KEY")) else None),
        }
    )


def _endpoint(spec: LLMSpec) -> str:
    return spec.base_url or "https://api.openai.com/v1"


def make_client(spec: LLMSpec, counter: RequestCounter | None = None) -> openai.OpenAI:
    """An ``openai.OpenAI`` client for a resolved ``spec``; it retries ``max_retries`` times with its own backoff."""
    if spec.api_key is None or not spec.api_key.get_secret_value().strip():
        raise NeuroscribeError(
            f"no API key for the LLM endpoint {_endpoint(spec)}; set OPENAI_API_KEY (any non-empty value "
            "for a local vLLM, Ollama or llama.cpp server) or pass --api-key"
        )
    return openai.OpenAI(
        api_key=spec.api_key.get_secret_value(),
        base_url=spec.base_url,
        timeout=spec.timeout_s,
        max_retries=spec.max_retries,
        http_client=counter.http_client() if counter is not None else None,
    )


def _raise_if_fatal(exc: openai.APIError, spec: LLMSpec) -> None:
    """The errors that would repeat for every class stop the run with one message."""
    url = _endpoint(spec)
    if isinstance(exc, openai.APIConnectionError) and not isinstance(exc, openai.APITimeoutError):
        raise NeuroscribeError(
            f"cannot reach the LLM endpoint {url} ({exc.__class__.__name__}: {exc}); start the server "
            "or fix --base-url / OPENAI_BASE_URL"
        ) from None
    if isinstance(exc, (openai.AuthenticationError, openai.PermissionDeniedError)):
        raise NeuroscribeError(
            f"the LLM endpoint {url} rejected the API key (HTTP {exc.status_code}); set a valid OPENAI_API_KEY"
        ) from None
    if isinstance(exc, openai.NotFoundError):
        raise NeuroscribeError(
            f"the LLM endpoint {url} does not serve model {spec.model!r} (HTTP 404); pass --model with a model it serves"
        ) from None


def check_endpoint(spec: LLMSpec) -> None:
    """Fail fast on a missing or rejected key or an unreachable endpoint: one ``GET /models``, no retries;
    ``spec`` is resolved (``resolve_llm``), as for ``make_client``."""
    with make_client(spec) as client:
        try:
            client.with_options(timeout=min(spec.timeout_s, 10.0), max_retries=0).models.list()
        except openai.APITimeoutError:
            raise NeuroscribeError(
                f"the LLM endpoint {_endpoint(spec)} did not answer within 10 s; start the server or fix --base-url"
            ) from None
        except openai.APIError as exc:
            if not isinstance(exc, openai.NotFoundError):  # 404: reachable, only without a /models route
                _raise_if_fatal(exc, spec)


class _Unanswered(Exception):
    """A request that failed for this class only, after all retries."""


class RequestCounter(threading.local):
    """Counts every HTTP attempt, the client's retries included, into the asking thread's ``tally`` (set by
    ``ask_class``): the sync client retries in the calling thread, and the threads share one pool."""

    tally: GenerationResult | None = None

    def http_client(self) -> httpx.Client:
        return openai.DefaultHttpxClient(event_hooks={"request": [self._count]})

    def _count(self, request: httpx.Request) -> None:
        if self.tally is not None:
            self.tally.requests += 1


def chat(client: openai.OpenAI, spec: LLMSpec, messages: list[dict], tally: GenerationResult) -> str:
    """One completion (the client retries transport errors); returns the message text."""
    kwargs = spec.model_dump(include={"model", "temperature", "seed", "max_tokens"}, exclude_none=True)
    if spec.response_format != "off":
        kwargs["response_format"] = _RESPONSE_FORMATS[spec.response_format]
    try:
        response = client.chat.completions.create(messages=messages, **kwargs)
    except (openai.APIStatusError, openai.APIConnectionError) as exc:
        _raise_if_fatal(exc, spec)  # e.g. still unreachable after the retries: every class would fail
        reason = f"HTTP {exc.status_code}: {exc.message}" if isinstance(exc, openai.APIStatusError) else exc.__class__.__name__
        raise _Unanswered(f"gave up after {tally.requests} requests ({reason})") from None
    if response.usage is not None:
        tally.prompt_tokens += response.usage.prompt_tokens or 0
        tally.completion_tokens += response.usage.completion_tokens or 0
    if not response.choices:
        raise _Unanswered("the answer held no choices")
    return response.choices[0].message.content or ""


_FENCE = re.compile(r"^\s*```(?:json)?\s*(.*?)\s*```\s*$", re.DOTALL)
_CONCEPT_LIST = TypeAdapter(list[str])


def parse_concepts(text: str) -> list[str]:
    """The concept strings of a JSON answer ``{"concepts": [...]}``; ``ValueError`` says what is wrong."""
    body = match.group(1) if (match := _FENCE.match(text)) else text
    try:
        data = json.loads(body)
    except json.JSONDecodeError as exc:
        raise ValueError(f"not valid JSON ({exc.msg} at character {exc.pos})") from None
    if isinstance(data, dict):
        if "concepts" not in data:
            raise ValueError(f'the JSON object has no "concepts" key (keys: {sorted(data)[:5]})')
        data = data["concepts"]
    try:
        items = _CONCEPT_LIST.validate_python(data, strict=True)
    except ValidationError:
        raise ValueError('"concepts" must be a list of strings') from None
    concepts = [c.strip() for c in items if c.strip()]
    if not concepts:
        raise ValueError('"concepts" is empty')
    return concepts


def ask_class(
    client: openai.OpenAI, counter: RequestCounter, spec: LLMSpec, class_name: str, template: PromptTemplate
) -> tuple[Answer | Failure, str, GenerationResult]:
    """One class and template, re-asked after malformed answers: (answer or failure, raw text, cost)."""
    counter.tally = tally = GenerationResult()
    messages = [
        {"role": "system", "content": spec.system_prompt},
        {"role": "user", "content": template.render(class_name)},
    ]
    asked = {"class_name": class_name, "template": template.name}
    try:
        for _ in range(spec.answer_retries + 1):
            text = chat(client, spec, messages, tally)
            try:
                return Answer(**asked, concepts=parse_concepts(text), cached=False), text, tally
            except ValueError as exc:
                problem = exc
                messages = messages[:2] + [
                    {"role": "assistant", "content": text},
                    {"role": "user", "content": f'That answer is {exc}. Reply with only the JSON object {{"concepts": [...]}}.'},
                ]
        error = f"malformed answer {spec.answer_retries + 1} times (last: {problem})"
    except _Unanswered as exc:
        error = str(exc)
    return Failure(**asked, error=error), "", tally


def generate_answers(classes: list[str], spec: LLMSpec, cache: AnswerCache) -> GenerationResult:
    """Answers for every class and template, from the cache where possible, else from the LLM."""
    spec = resolve_llm(spec)
    asks = [(c, t, answer_key(spec, t, c)) for c, t in itertools.product(classes, spec.templates)]
    # one outcome per ask, in the order of the result; None until asked
    outcomes: list[Answer | Failure | None] = [
        Answer(class_name=c, template=t.name, concepts=record["concepts"], cached=True)
        if (record := cache.get(key)) is not None
        else None
        for c, t, key in asks
    ]
    todo = [i for i, outcome in enumerate(outcomes) if outcome is None]
    tallies: list[GenerationResult] = []
    if todo:
        counter = RequestCounter()

        def settle(i: int, asked: tuple[Answer | Failure, str, GenerationResult]) -> None:
            outcomes[i], raw, tally = asked
            tallies.append(tally)
            if isinstance(outcomes[i], Answer):
                cache.put(asks[i][2], _record(spec, asks[i][1], outcomes[i], raw, tally))

        with make_client(spec, counter) as client, ThreadPoolExecutor(max_workers=spec.concurrency) as pool:
            # the first ask runs alone: openai builds its response models on first use (pydantic's defer_build),
            # and threads that build one at once can fail with "BaseModel cannot be instantiated directly"
            settle(todo[0], ask_class(client, counter, spec, *asks[todo[0]][:2]))
            futures = {pool.submit(ask_class, client, counter, spec, *asks[i][:2]): i for i in todo[1:]}
            try:
                for future in as_completed(futures):
                    settle(futures[future], future.result())
            except BaseException:
                pool.shutdown(wait=False, cancel_futures=True)
                raise
    result = sum(tallies, GenerationResult())
    result.answers = [o for o in outcomes if isinstance(o, Answer)]
    result.failures = [o for o in outcomes if isinstance(o, Failure)]
    return result


def _record(spec: LLMSpec, template: PromptTemplate, answer: Answer, raw: str, tally: GenerationResult) -> dict:
    return {
        "model": spec.model,
        "system": spec.system_prompt,
        "template_name": template.name,
        "template": template.text,
        "class_name": answer.class_name,
        "temperature": spec.temperature,
        "seed": spec.seed,
        "concepts": list(answer.concepts),
        "raw": raw,
        "requests": tally.requests,
        "usage": {"prompt_tokens": tally.prompt_tokens, "completion_tokens": tally.completion_tokens},
        "created": datetime.now(timezone.utc).isoformat(),
    }
