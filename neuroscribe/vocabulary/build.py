"""Build a vocabulary: the pipeline, run in this process or (``flows/vocabulary.py``) as Prefect tasks.

    summary = build_vocabulary(VocabularyConfig(store="runs/r50", sources=("llm", "builtin:colors")))
    summary.uri, summary.content_hash, summary.requests, summary.failures, summary.filter.concepts_after
"""

from __future__ import annotations

import time
from collections import Counter
from datetime import datetime, timezone

from pydantic import Field

from neuroscribe import __version__
from neuroscribe.config import FrozenModel
from neuroscribe.fingerprint import code_version
from neuroscribe.stages import Executor, InProcess, Stage
from neuroscribe.vocabulary.artifact import frame_hash, write_vocabulary
from neuroscribe.vocabulary.cache import answer_key, run_answer_cache
from neuroscribe.vocabulary.config import VocabularyConfig
from neuroscribe.vocabulary.filtering import Candidate, FilterStats, filter_concepts
from neuroscribe.vocabulary.llm import (
    Failure,
    GenerationResult,
    check_endpoint,
    generate_answers,
    resolve_llm,
)
from neuroscribe.vocabulary.sources import (
    builtin_concepts,
    parse_source,
    read_concept_file,
    resolve_classes,
)


class VocabularySummary(FrozenModel):
    """What a build did: where the artifact is, what the LLM cost, and what filtering removed."""

    uri: str
    content_hash: str
    n_concepts: int
    classes: int = Field(description="classes in the class list")
    classes_asked: int = Field(default=0, description="classes with at least one LLM request in this run")
    answers: int = Field(default=0, description="(class, template) answers used, cached or fresh")
    cached_hits: int = 0
    requests: int = Field(default=0, description="HTTP requests to the LLM, retries included")
    prompt_tokens: int = 0
    completion_tokens: int = 0
    failures: tuple[Failure, ...] = ()
    candidates_by_source: dict[str, int] = Field(default_factory=dict)
    filter: FilterStats = FilterStats()
    seconds: float = 0.0


def collect_candidates(cfg: VocabularyConfig, generation: GenerationResult) -> list[Candidate]:
    """Every proposal of every source in ``cfg.sources``, with its provenance."""
    out: list[Candidate] = []
    for spec in map(parse_source, cfg.sources):
        if spec.kind == "llm":
            out += [Candidate(t, f"llm:{a.template}", a.class_name) for a in generation.answers for t in a.concepts]
            continue
        if spec.kind == "builtin":
            curated = {f"builtin:{name}": builtin_concepts(name, cfg.places365_file) for name in spec.names}
        else:
            curated = {f"file:{spec.path}": read_concept_file(spec.path, cfg.store_options)}
        out += [Candidate(t, source, curated=True) for source, texts in curated.items() for t in texts]
    return out


def assemble_vocabulary(
    cfg: VocabularyConfig, classes: list[str], generation: GenerationResult | None, started: float | None = None
) -> VocabularySummary:
    """Filter every source's candidates and write the artifact; ``started``: the run's ``time.time()``."""
    started = time.time() if started is None else started
    generation = generation or GenerationResult()
    candidates = collect_candidates(cfg, generation)
    frame, stats = filter_concepts(candidates, cfg.filter)
    summary = VocabularySummary(
        uri=cfg.run_store.vocabulary(cfg.name).uri,
        content_hash=frame_hash(frame),
        n_concepts=len(frame),
        classes=len(classes),
        classes_asked=generation.classes_asked,
        answers=len(generation.answers),
        cached_hits=generation.cached_hits,
        **generation.model_dump(include={"requests", "prompt_tokens", "completion_tokens"}),
        failures=tuple(generation.failures),
        candidates_by_source=dict(sorted(Counter(c.source for c in candidates).items())),
        filter=stats,
        seconds=time.time() - started,
    )
    manifest = {
        "name": cfg.name,
        "created": datetime.now(timezone.utc).isoformat(),
        "neuroscribe": __version__,
        "code": code_version("neuroscribe.vocabulary.filtering", "neuroscribe.vocabulary.sources"),
        "config": cfg.model_dump(mode="json", exclude={"store_options"}),
        "summary": summary.model_dump(mode="json"),
    }
    write_vocabulary(cfg.store, cfg.name, frame, manifest, cfg.store_options)
    return summary


def _class_batches(cfg: VocabularyConfig, classes: list[str]) -> list[list[str]]:
    """Batches of ``llm.classes_per_task`` classes, after an endpoint check when an answer is not cached."""
    cache = run_answer_cache(cfg)
    if any(answer_key(cfg.llm, t, c) not in cache for c in classes for t in cfg.llm.templates):
        check_endpoint(cfg.llm)
    size = cfg.llm.classes_per_task
    return [classes[i : i + size] for i in range(0, len(classes), size)]


def answer_batch(cfg: VocabularyConfig, classes: list[str]) -> GenerationResult:
    return generate_answers(list(classes), cfg.llm, run_answer_cache(cfg))


ANSWERS = Stage("vocabulary-llm", answer_batch, plan=_class_batches, unit="batch")


def build_vocabulary(cfg: VocabularyConfig, execute: Executor = InProcess()) -> VocabularySummary:
    """The vocabulary pipeline: LLM answers per batch of classes (cached) when ``llm`` is a source, then
    every source's candidates filtered and written (the class list is only read when there is one)."""
    started = time.time()
    if "llm" not in cfg.sources:
        return assemble_vocabulary(cfg, [], None, started)
    # resolved once, here, so that every worker asks the same model (it is part of the cache key)
    cfg = cfg.model_copy(update={"llm": resolve_llm(cfg.llm)})
    classes = resolve_classes(cfg.classes, cfg.places365_file)
    return assemble_vocabulary(cfg, classes, sum(execute(ANSWERS, cfg, classes), GenerationResult()), started)
