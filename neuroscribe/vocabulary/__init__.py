"""Concept vocabularies: the visual concepts a neuron's explanation is chosen from.

    cfg = VocabularyConfig(out="runs/r50", classes="imagenet", sources=("llm", "builtin:colors+textures"))
    summary = build_vocabulary(cfg)                 # writes <out>/vocabulary/vocabulary.parquet
    vocab = load_vocabulary("runs/r50")             # .concepts, .content_hash, .frame
    builtin_concepts("materials")                   # offline sets shipped with the package

``llm`` asks an OpenAI-compatible endpoint once per class and prompt template, caching every
answer by content (``neuroscribe.vocabulary.cache``); built-in sets and user files need no
network.  Candidates are normalised, filtered and deduplicated by sentence-embedding
similarity (``neuroscribe.vocabulary.filtering``, ``neuroscribe.vocabulary.embedder``).
"""

from neuroscribe.vocabulary.artifact import Vocabulary, load_vocabulary
from neuroscribe.vocabulary.build import (
    VocabularySummary,
    assemble_vocabulary,
    build_vocabulary,
)
from neuroscribe.vocabulary.config import (
    FilterSpec,
    LLMSpec,
    PromptTemplate,
    VocabularyConfig,
)
from neuroscribe.vocabulary.embedder import embed_sentences, sentence_embedder
from neuroscribe.vocabulary.sources import (
    builtin_concepts,
    parse_source,
    resolve_classes,
)

__all__ = [
    "FilterSpec",
    "LLMSpec",
    "PromptTemplate",
    "Vocabulary",
    "VocabularyConfig",
    "VocabularySummary",
    "assemble_vocabulary",
    "build_vocabulary",
    "builtin_concepts",
    "embed_sentences",
    "load_vocabulary",
    "parse_source",
    "resolve_classes",
    "sentence_embedder",
]
