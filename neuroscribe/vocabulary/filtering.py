"""Clean candidate concepts into a vocabulary: normalise, drop, deduplicate, keep provenance.

    frame, stats = filter_concepts([Candidate("Striped", "llm:appearance", "zebra"), ...], FilterSpec())
    frame.columns  # concept, count, n_classes, sources, classes, aliases

Steps, in order: normalise (lowercase; trim articles, numbering, quotes, punctuation; drop empties);
drop concepts over ``max_words``/``max_chars``; drop LLM proposals that restate their class; merge
near-synonyms (sentence embeddings at least ``dedup_threshold`` similar); drop concepts proposed
fewer than ``min_count`` times.  Curated concepts (built-in sets, user files) are never dropped for
length or rarity (``black and gold garden spider`` is an ImageNet class).

Near-synonyms merge greedily into a representative, visited curated first, then by count, then
shorter first; it keeps the union of their classes and sources, and their spellings as ``aliases``.
Curated concepts merge into each other only with ``dedup_curated``: their sets are deliberate
(``snow leopard`` and ``leopard`` are distinct ImageNet classes).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from functools import partial

import numpy as np
import pandas as pd
from pydantic import BaseModel

from neuroscribe.vocabulary.config import FilterSpec

COLUMNS = ["concept", "count", "n_classes", "sources", "classes", "aliases"]
_LEADING = re.compile(r"^(?:\d+[.)]\s+|[a-z]\)\s+|[-*\u2022]\s*)")
_ARTICLE = re.compile(r"^(?:a|an|the)\s+")
_EDGE = " \t\n.,;:!?\"'`()[]{}*\u2022"


@dataclass(frozen=True)
class Candidate:
    """One proposal of a concept: its text, where it came from, and the class it was asked for."""

    text: str
    source: str
    class_name: str | None = None
    curated: bool = False


class FilterStats(BaseModel):
    """Counts through the filter; concepts_before - dropped_* - merged_synonyms = concepts_after."""

    candidates: int = 0
    dropped_empty: int = 0
    concepts_before: int = 0
    dropped_too_long: int = 0
    dropped_class_name: int = 0
    merged_synonyms: int = 0
    dropped_rare: int = 0
    concepts_after: int = 0


def normalise_concept(text: str) -> str:
    """Lowercase, NFKC, single spaces; strip list markers, edge punctuation and leading articles."""
    t = unicodedata.normalize("NFKC", text).lower().replace("_", " ")
    t = re.sub(r"\s+", " ", t).strip(_EDGE)
    t = _LEADING.sub("", t).strip(_EDGE)
    while _ARTICLE.match(t):
        t = _ARTICLE.sub("", t, count=1).strip(_EDGE)
    return "" if t in ("a", "an", "the") else t


def restates_class(concept: str, class_name: str, mode: str) -> bool:
    """Whether ``concept`` only repeats ``class_name`` (any of its comma-separated aliases)."""
    if mode == "off":
        return False
    aliases = [a for a in map(normalise_concept, class_name.split(",")) if a]
    if mode == "exact":
        return any(concept in (a, a + "s", a + "es") for a in aliases)
    return any(re.search(rf"\b{re.escape(a)}(?:e?s)?\b", concept) for a in aliases)


@dataclass
class _Entry:
    concept: str
    curated: bool = False
    count: int = 0
    sources: set[str] = field(default_factory=set)
    classes: set[str] = field(default_factory=set)
    aliases: set[str] = field(default_factory=set)

    def absorb(self, other: _Entry) -> None:
        self.curated |= other.curated
        self.count += other.count
        self.sources |= other.sources
        self.classes |= other.classes
        self.aliases |= other.aliases | {other.concept}


def filter_concepts(
    candidates: list[Candidate], spec: FilterSpec, embed=None
) -> tuple[pd.DataFrame, FilterStats]:
    """The vocabulary frame (sorted by concept) and the counts of what each step removed; ``embed(texts)``
    (unit-norm rows; default ``embed_sentences`` with ``spec.embedding_model``) is only called to dedup."""
    stats = FilterStats(candidates=len(candidates))
    entries: dict[str, _Entry] = {}
    for cand in candidates:
        concept = normalise_concept(cand.text)
        if not concept:
            stats.dropped_empty += 1
            continue
        entry = entries.setdefault(concept, _Entry(concept))
        if cand.class_name is not None and restates_class(concept, cand.class_name, spec.class_names):
            continue
        entry.curated |= cand.curated
        entry.count += 1
        entry.sources.add(cand.source)
        entry.classes.update({cand.class_name} - {None})
    stats.concepts_before = len(entries)

    short = {c for c, e in entries.items() if e.curated or (len(c.split()) <= spec.max_words and len(c) <= spec.max_chars)}
    stats.dropped_too_long = len(entries) - len(short)
    survivors = [e for c, e in entries.items() if c in short and e.count]  # count 0: only restated its class
    stats.dropped_class_name = len(short) - len(survivors)

    if spec.dedup_threshold is not None and (spec.dedup_curated or not all(e.curated for e in survivors)):
        if embed is None:
            from neuroscribe.vocabulary.embedder import embed_sentences

            embed = partial(embed_sentences, model=spec.embedding_model)
        merged = dedup_entries(survivors, embed, spec.dedup_threshold, spec.dedup_curated)
        stats.merged_synonyms = len(survivors) - len(merged)
        survivors = merged

    final = sorted((e for e in survivors if e.curated or e.count >= spec.min_count), key=lambda e: e.concept)
    stats.dropped_rare = len(survivors) - len(final)
    stats.concepts_after = len(final)
    rows = [[e.concept, e.count, len(e.classes), *map(sorted, (e.sources, e.classes, e.aliases))] for e in final]
    return pd.DataFrame(rows, columns=COLUMNS), stats


def dedup_entries(entries: list[_Entry], embed, threshold: float, dedup_curated: bool, block: int = 512) -> list[_Entry]:
    """Greedy merge of near-synonyms into representatives (in the module docstring's order); similarities
    are computed ``block`` rows at a time against the rows before them: ``block x n`` memory at most."""
    ordered = sorted(entries, key=lambda e: (not e.curated, -e.count, len(e.concept), e.concept))
    vectors = np.asarray(embed([e.concept for e in ordered]), dtype=np.float32)
    rep = np.arange(len(ordered))
    is_rep = np.zeros(len(ordered), dtype=bool)
    for start in range(0, len(ordered), block):
        stop = min(start + block, len(ordered))
        sims = vectors[start:stop] @ vectors[:stop].T
        for i in range(start, stop):
            row = np.where(is_rep[:i], sims[i - start, :i], -np.inf)
            mergeable = i > 0 and (dedup_curated or not ordered[i].curated)
            if mergeable and row.max() >= threshold:
                rep[i] = int(np.argmax(row))
            else:
                is_rep[i] = True
    for i in np.flatnonzero(~is_rep):
        ordered[rep[i]].absorb(ordered[i])
    return [ordered[i] for i in np.flatnonzero(is_rep)]
