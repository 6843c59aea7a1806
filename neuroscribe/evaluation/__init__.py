"""Evaluation of explanations: against ground-truth unit names, by label-free consistency checks, and across methods.

    from neuroscribe.evaluation import EvaluateConfig, run_evaluation
    result = run_evaluation(EvaluateConfig(store="runs/r50", layers=("fc",), compare=("rules", "k")))
    result["markdown"]      # <store>/evaluation/evaluation.md (also .json and .png)

Modules, one family each: ``truth`` (unit names and synonyms), ``metrics`` (exact match, cosine
similarity, chance baselines), ``consistency`` (activation-grounded AUC, bootstrap stability),
``evidence`` (stored embeddings for rescoring), ``compare`` (rules, k, vocabularies), ``report``
(JSON, Markdown, chart); ``context`` and ``evaluate`` tie them to a run store.
"""

from neuroscribe.evaluation.config import EvaluateConfig
from neuroscribe.evaluation.evaluate import run_evaluation

__all__ = ["EvaluateConfig", "run_evaluation"]
