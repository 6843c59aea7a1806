"""The ``vocabulary`` flow: the vocabulary pipeline (``neuroscribe.vocabulary.build_vocabulary``) as Prefect tasks.

    from neuroscribe.flows._run import run_flow
    summary = run_flow(vocabulary_flow, cfg)   # VocabularySummary

Without an ``llm`` source it only assembles the offline sets.  LLM answers are asked per batch of
classes (a task each); the answer cache ``<store>/vocabulary/llm_cache`` makes a rerun ask nothing.
"""

from __future__ import annotations

from prefect import flow

from neuroscribe.flows._executor import PrefectExecutor
from neuroscribe.flows._run import flow_lease
from neuroscribe.vocabulary.build import VocabularySummary, build_vocabulary
from neuroscribe.vocabulary.config import VocabularyConfig


@flow(name="vocabulary", log_prints=True)
def vocabulary_flow(config: VocabularyConfig) -> VocabularySummary:
    with flow_lease(config):
        summary = build_vocabulary(config, PrefectExecutor())
    print(
        f"vocabulary of {summary.n_concepts} concepts ({summary.content_hash}) at {summary.uri}: "
        f"{summary.requests} LLM requests, {summary.cached_hits} cached answers, {len(summary.failures)} failures"
    )
    return summary
