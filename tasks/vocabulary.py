"""Prefect tasks of the vocabulary flow: thin wrappers over ``neuroscribe.vocabulary``.

    check_llm_task(config, classes)                         # fail fast: key, endpoint
    generate_batch_task.map(unmapped(config), batches)      # LLM answers per batch of classes
    assemble_task.submit(config, classes, generation, t0)   # filter and write the artifact

No task is cached by Prefect: the run's content-keyed answer cache (``<store>/vocabulary/llm_cache``,
backed by a shared ``cache_dir``) already makes a rerun ask nothing, and keeps every answer in the
run; a Prefect result cache would serve a new store from another run's results instead.
"""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NO_CACHE

from neuroscribe.vocabulary.build import VocabularySummary, assemble_vocabulary
from neuroscribe.vocabulary.cache import run_answer_cache
from neuroscribe.vocabulary.config import VocabularyConfig
from neuroscribe.vocabulary.llm import (
    GenerationResult,
    check_endpoint,
    generate_answers,
    missing_answers,
)


@task(name="vocabulary-check-llm", cache_policy=NO_CACHE)
def check_llm_task(config: VocabularyConfig, classes: list[str]) -> int:
    """Answers not in the durable cache; when there are any, a missing key or dead endpoint raises here."""
    missing = missing_answers(classes, config.llm, run_answer_cache(config))
    if missing:
        check_endpoint(config.llm)
    return missing


@task(name="vocabulary-generate", cache_policy=NO_CACHE)
def generate_batch_task(config: VocabularyConfig, classes: list[str]) -> GenerationResult:
    return generate_answers(list(classes), config.llm, run_answer_cache(config), check=False)


@task(name="vocabulary-assemble", cache_policy=NO_CACHE)
def assemble_task(
    config: VocabularyConfig, classes: list[str], generation: GenerationResult | None, started: float
) -> VocabularySummary:
    return assemble_vocabulary(config, classes, generation, started)
