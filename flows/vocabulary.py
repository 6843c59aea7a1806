"""The ``vocabulary`` flow: ask the LLM per batch of classes, then reduce, filter and write.

    from neuroscribe.flows._dask import with_dask_runner
    summary = with_dask_runner(vocabulary_flow, cfg.runner)(cfg)   # VocabularySummary

Without an ``llm`` source it only assembles the offline sets.  Progress (a Prefect progress
artifact and a bar) advances as batches finish.
"""

from __future__ import annotations

import time

from prefect import flow, unmapped
from prefect.futures import as_completed

from neuroscribe.flows._progress import FlowProgress
from neuroscribe.flows._run import flow_lease
from neuroscribe.vocabulary.build import VocabularySummary, prepare_llm_run
from neuroscribe.vocabulary.config import VocabularyConfig
from neuroscribe.vocabulary.llm import GenerationResult
from neuroscribe.tasks.vocabulary import assemble_task, check_llm_task, generate_batch_task


@flow(name="vocabulary", log_prints=True)
def vocabulary_flow(config: VocabularyConfig) -> VocabularySummary:
    with flow_lease(config):
        return vocabulary_stage(config)


def vocabulary_stage(config: VocabularyConfig) -> VocabularySummary:
    """Vocabulary tasks inside the calling flow (``vocabulary`` or ``explain``)."""
    started = time.time()
    config, classes = prepare_llm_run(config)
    generation = None
    if config.uses_llm:
        check_llm_task(config, classes)
        size = config.llm.classes_per_task
        batches = [classes[i : i + size] for i in range(0, len(classes), size)]
        futures = generate_batch_task.map(unmapped(config), batches)
        position = {future.task_run_id: i for i, future in enumerate(futures)}
        progress = FlowProgress("vocabulary-llm", total=len(batches), unit="batch", description=f"LLM answers for {len(classes)} classes")
        results: list[GenerationResult | None] = [None] * len(batches)
        for future in as_completed(futures):
            results[position[future.task_run_id]] = future.result()
            progress.advance(1)
        progress.close()
        generation = sum(results, GenerationResult())
    summary = assemble_task.submit(config, classes, generation, started).result()
    print(
        f"vocabulary of {summary.n_concepts} concepts ({summary.content_hash}) at {summary.uri}: "
        f"{summary.requests} LLM requests, {summary.cached_hits} cached answers, {len(summary.failures)} failures"
    )
    return summary
