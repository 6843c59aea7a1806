"""Prefect tasks of the vocabulary flow: thin wrappers over ``neuroscribe.vocabulary``.

    check_llm_task(config, classes)                         # fail fast: key, endpoint
    generate_batch_task.map(unmapped(config), batches)      # LLM answers per batch of classes
    assemble_task.submit(config, classes, generation, t0)   # filter and write the artifact

``generate_batch_task`` is cached by content: its key is the hash of every answer key of the
batch (model, prompts, class names, temperature, seed) plus the code version, so a rerun
skips it and a changed template reruns every batch, whose durable JSON cache then serves the
unchanged answers.  A batch with failures is kept out of the task cache so a rerun asks again.
"""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.transactions import get_transaction

from neuroscribe.fingerprint import code_version, content_key
from neuroscribe.vocabulary.build import VocabularySummary, assemble_vocabulary
from neuroscribe.vocabulary.cache import AnswerCache
from neuroscribe.vocabulary.config import VocabularyConfig
from neuroscribe.vocabulary.llm import (
    GenerationResult,
    answer_keys,
    check_endpoint,
    generate_answers,
    make_client,
    missing_answers,
)


def batch_cache_key(context, parameters: dict) -> str:
    config: VocabularyConfig = parameters["config"]
    keys = answer_keys(list(parameters["classes"]), config.llm)
    return "vocabulary-llm-" + content_key({"answers": keys, "code": code_version("neuroscribe.vocabulary.llm")}, length=32)


@task(name="vocabulary-check-llm", cache_policy=NO_CACHE)
def check_llm_task(config: VocabularyConfig, classes: list[str]) -> int:
    """Answers not in the durable cache; when there are any, a missing key or dead endpoint raises here."""
    missing = missing_answers(classes, config.llm, AnswerCache(config.cache_uri, config.store_options))
    if missing:
        make_client(config.llm)
        check_endpoint(config.llm)
    return missing


@task(name="vocabulary-generate", cache_key_fn=batch_cache_key, persist_result=True)
def generate_batch_task(config: VocabularyConfig, classes: list[str]) -> GenerationResult:
    cache = AnswerCache(config.cache_uri, config.store_options)
    result = generate_answers(list(classes), config.llm, cache, check=False)
    transaction = get_transaction()
    if result.failures and transaction is not None:
        # the task's cache record is written when its transaction commits; skipping it keeps the
        # failed answers askable on the next run while the good ones stay in the JSON cache
        transaction.write_on_commit = False
    return result


@task(name="vocabulary-assemble", cache_policy=NO_CACHE)
def assemble_task(
    config: VocabularyConfig, classes: list[str], generation: GenerationResult | None, started: float
) -> VocabularySummary:
    return assemble_vocabulary(config, classes, generation, started)
