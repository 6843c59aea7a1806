"""Concept vocabularies: the visual concepts a neuron's explanation is chosen from.

    cfg = VocabularyConfig(store="runs/r50", classes="imagenet", sources=("llm", "builtin:colors+textures"))
    summary = build_vocabulary(cfg)                 # writes <store>/vocabulary/vocabulary.parquet
    vocab = load_vocabulary("runs/r50")             # .concepts, .content_hash, .frame
    builtin_concepts("materials")                   # offline sets shipped with the package

Candidates come from an LLM (``llm``, answers cached by ``cache``), built-in sets and user files
(``sources``), and are filtered and deduplicated (``filtering``, ``embedder``).  The names load on
first use (a module ``__getattr__``), so that ``neuroscribe.vocabulary.config`` imports without the
LLM client and pandas: the CLI reads its defaults for ``--help`` (0.5 s instead of 2.9 s).
"""

import importlib

_LAZY = {
    name: module
    for module, names in {
        "artifact": ("Vocabulary", "load_vocabulary"),
        "build": ("VocabularySummary", "assemble_vocabulary", "build_vocabulary"),
        "config": ("DEFAULT_SOURCES", "FilterSpec", "LLMSpec", "PromptTemplate", "VocabularyConfig"),
        "embedder": ("embed_sentences", "sentence_embedder"),
        "sources": ("builtin_concepts", "parse_source", "resolve_classes"),
    }.items()
    for name in names
}

__all__ = list(_LAZY)


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(f"neuroscribe.vocabulary.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'neuroscribe.vocabulary' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(__all__) | {name for name in globals() if name.startswith("__")})
