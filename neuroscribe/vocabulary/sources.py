"""Where candidate concepts and class names come from: source specs, built-in sets, user files.

    parse_source("builtin:colors+textures")      # SourceSpec(kind="builtin", names=("colors", "textures"))
    builtin_concepts("materials")                # list[str], shipped in neuroscribe/vocabulary/data/
    builtin_concepts("places365", path="categories_places365.txt")
    resolve_classes("imagenet")                  # the 1000 ImageNet-1k class names

A config's ``sources`` is a union of ``llm`` (ask an LLM once per class), ``builtin:NAME[+NAME...]``
and ``file:PATH`` (one concept per line, ``#`` starts a comment).  The built-in sets' provenance:

- ``imagenet``: the ImageNet-1k class names torchvision ships offline
  (``ResNet50_Weights.IMAGENET1K_V1.meta["categories"]``, BSD-3-Clause).
- ``places365``: read from the user's ``categories_places365.txt`` (CSAIL; not redistributed here).
- ``colors``, ``textures``, ``materials``: short lists written for this project (Apache-2.0) in
  ``data/*.txt``: basic colour terms, surface-pattern words, common materials; no dataset's labels.
- ``superclasses``: groups of ImageNet classes (dog, bird, musical instrument, ...) from WordNet 3.0
  hypernyms (WordNet 3.0 licence); see ``neuroscribe.vocabulary.superclasses``.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from typing import Literal

import fsspec

from neuroscribe.errors import NeuroscribeError

BUILTIN_NAMES = ("imagenet", "places365", "colors", "textures", "materials", "superclasses")
_PACKAGE_DATA = ("colors", "textures", "materials")


@dataclass(frozen=True)
class SourceSpec:
    kind: Literal["llm", "builtin", "file"]
    names: tuple[str, ...] = ()
    path: str | None = None


def parse_source(spec: str) -> SourceSpec:
    """One source spec string into a ``SourceSpec``; bad specs name the valid forms."""
    text = spec.strip()
    if text == "llm":
        return SourceSpec("llm")
    kind, sep, rest = text.partition(":")
    if sep and kind == "builtin":
        names = tuple(n.strip().lower() for n in rest.split("+") if n.strip())
        unknown = [n for n in names if n not in BUILTIN_NAMES]
        if not names or unknown:
            raise NeuroscribeError(
                f"source {spec!r} names no known built-in set{f' ({unknown})' if unknown else ''}; "
                f"use builtin:NAME[+NAME...] with NAME in {', '.join(BUILTIN_NAMES)}"
            )
        return SourceSpec("builtin", names=names)
    if sep and kind == "file" and rest.strip():
        return SourceSpec("file", path=rest.strip())
    raise NeuroscribeError(f"source {spec!r} is not understood; use llm, builtin:NAME[+NAME...] or file:PATH")


def read_concept_file(path: str, storage_options: dict | None = None) -> list[str]:
    """Concepts of a text file (local or fsspec URL): one a line, blank lines and ``#`` comments skipped."""
    try:
        with fsspec.open(path, "rt", encoding="utf-8", **(storage_options or {})) as f:
            lines = f.read().splitlines()
    except FileNotFoundError:
        raise NeuroscribeError(f"concept file {path} does not exist; pass file:PATH to a file with one concept per line") from None
    return [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]


def builtin_concepts(name: str, path: str | None = None) -> list[str]:
    """A built-in concept set by name; ``places365`` needs ``path`` to its class-list file."""
    from neuroscribe.models.loading import imagenet_class_names, read_class_names

    key = name.strip().lower()
    if key == "imagenet":
        return list(imagenet_class_names())
    if key == "places365":
        if not path:
            raise NeuroscribeError(
                "built-in set places365 needs its class list, which is not shipped offline; "
                "pass --places365-file categories_places365.txt (from the CSAIL Places365 repository)"
            )
        return read_class_names(path)
    if key == "superclasses":
        from neuroscribe.vocabulary.superclasses import imagenet_superclasses

        return [group.name for group in imagenet_superclasses()]
    if key in _PACKAGE_DATA:
        return read_concept_file(str(resources.files("neuroscribe.vocabulary") / "data" / f"{key}.txt"))
    raise NeuroscribeError(f"no built-in concept set {name!r}; choose one of {', '.join(BUILTIN_NAMES)}")


def resolve_classes(classes: str, places365_file: str | None = None) -> list[str]:
    """Class names for ``imagenet``, ``places365`` or a class-list FILE, duplicates dropped in order."""
    from neuroscribe.models.loading import read_class_names

    key = classes.strip()
    builtin = key.lower() in ("imagenet", "places365")
    names = builtin_concepts(key, places365_file) if builtin else read_class_names(key)
    names = list(dict.fromkeys(n.strip() for n in names if n.strip()))
    if not names:
        raise NeuroscribeError(f"class list {classes} is empty; pass a file with one class name per line")
    return names
