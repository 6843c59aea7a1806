"""Generate ``neuroscribe/vocabulary/data/imagenet_superclasses.json`` from WordNet 3.0 (run once; not a runtime dependency).

    apt-get install wordnet-base          # Debian/Ubuntu: WordNet 3.0 database under /usr/share/wordnet
    python benchmarks/wordnet_superclasses.py --wordnet /usr/share/wordnet \
        --out neuroscribe/vocabulary/data/imagenet_superclasses.json

Each superclass is one or more WordNet noun synsets chosen by hand (``SUPERCLASSES`` below); an
ImageNet-1k class belongs to it when one of those synsets is the class's own synset or one of its
transitive hypernyms (``@`` and instance ``@i`` pointers of ``data.noun``).  The class order is the
sorted-wnid order of timm's ``imagenet_synsets.txt`` (the same as torchvision's class index).
``EXCLUDED`` removes a synset's hyponyms from one superclass (WordNet files the
mushroom as a vegetable; here it is a mushroom only).  The chosen superclasses are pairwise disjoint, so each class has at most one superclass; the
script refuses an overlap or an empty superclass.
"""

from __future__ import annotations

import argparse
import json
from datetime import date
from pathlib import Path

# name shown as the concept -> WordNet synsets (wnid = "n" + data.noun offset) whose hyponyms it covers
SUPERCLASSES: dict[str, tuple[str, ...]] = {
    "dog": ("n02084071",),  # dog, domestic_dog, Canis_familiaris
    "cat": ("n02120997",),  # feline, felid (domestic and big cats)
    "monkey": ("n02484322",),  # monkey
    "bird": ("n01503061",),  # bird
    "fish": ("n02512053",),  # fish
    "snake": ("n01726692",),  # snake, serpent, ophidian
    "lizard": ("n01674464",),  # lizard
    "turtle": ("n01662784",),  # turtle
    "spider": ("n01772222",),  # spider
    "beetle": ("n02164464",),  # beetle
    "butterfly": ("n02274259",),  # butterfly
    "fruit": ("n07705931",),  # edible_fruit
    "vegetable": ("n07707451",),  # vegetable, veggie, veg
    "mushroom": ("n12992868", "n07734744"),  # fungus; mushroom (the food)
    "car": ("n02958343",),  # car, auto, automobile, machine, motorcar
    "boat": ("n04530566",),  # vessel, watercraft
    "musical instrument": ("n03800933",),  # musical_instrument, instrument
    "furniture": ("n03405725",),  # furniture, piece_of_furniture, article_of_furniture
}
# synsets left out of a superclass although under it: WordNet files the mushroom (food) under vegetable
EXCLUDED: dict[str, tuple[str, ...]] = {"vegetable": ("n07734744",)}


def read_data_noun(path: Path) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    """(wnid -> hypernym wnids, wnid -> lemmas) from WordNet's ``data.noun`` (format: wndb(5WN))."""
    hypernyms: dict[str, list[str]] = {}
    lemmas: dict[str, list[str]] = {}
    for line in path.read_text(encoding="latin-1").splitlines():
        if line.startswith("  "):  # the licence header
            continue
        fields = line.split(" | ")[0].split()
        wnid = "n" + fields[0]
        n_words = int(fields[3], 16)
        lemmas[wnid] = [fields[4 + 2 * i].replace("_", " ") for i in range(n_words)]
        i = 4 + 2 * n_words
        n_pointers = int(fields[i])
        i += 1
        parents = []
        for _ in range(n_pointers):
            symbol, offset, pos, _source_target = fields[i : i + 4]
            i += 4
            if symbol in ("@", "@i") and pos == "n":
                parents.append("n" + offset)
        hypernyms[wnid] = parents
    return hypernyms, lemmas


def ancestors(wnid: str, hypernyms: dict[str, list[str]]) -> set[str]:
    """The synset itself and all its transitive hypernyms."""
    seen, stack = {wnid}, [wnid]
    while stack:
        for parent in hypernyms.get(stack.pop(), []):
            if parent not in seen:
                seen.add(parent)
                stack.append(parent)
    return seen


def imagenet_wnids() -> list[str]:
    import timm.data

    return (Path(timm.data.__file__).parent / "_info" / "imagenet_synsets.txt").read_text().split()


def build(wordnet: Path) -> dict:
    hypernyms, lemmas = read_data_noun(wordnet / "data.noun")
    wnids = imagenet_wnids()
    lineage = [ancestors(w, hypernyms) for w in wnids]
    owner: dict[int, str] = {}
    rows = []
    for name, synsets in SUPERCLASSES.items():
        excluded = set(EXCLUDED.get(name, ()))
        classes = [i for i, up in enumerate(lineage) if up & set(synsets) and not up & excluded]
        if not classes:
            raise SystemExit(f"superclass {name} covers no ImageNet class")
        for c in classes:
            if c in owner:
                raise SystemExit(f"class {c} ({wnids[c]}) is under both {owner[c]} and {name}")
            owner[c] = name
        synonyms = list(dict.fromkeys([name, *(lemma for s in synsets for lemma in lemmas[s])]))
        rows.append({
            "name": name,
            "synonyms": synonyms,
            "synsets": [{"wnid": s, "lemmas": lemmas[s]} for s in synsets],
            "excluded_synsets": [{"wnid": s, "lemmas": lemmas[s]} for s in sorted(excluded)],
            "classes": classes,
            "wnids": [wnids[c] for c in classes],
        })
    return {
        "provenance": {
            "source": "WordNet 3.0 (Princeton University, WordNet 3.0 licence), data.noun of Debian's wordnet-base",
            "classes": "ImageNet-1k wnids in sorted order (timm _info/imagenet_synsets.txt; torchvision's class index)",
            "rule": "class c is under superclass s when a synset of s is c's synset or a transitive hypernym (@, @i) of it, "
                    "and none of s's excluded synsets is",
            "generator": "benchmarks/wordnet_superclasses.py",
            "command": "python benchmarks/wordnet_superclasses.py --wordnet /usr/share/wordnet "
                       "--out neuroscribe/vocabulary/data/imagenet_superclasses.json",
            "generated": date.today().isoformat(),
        },
        "superclasses": rows,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--wordnet", type=Path, default=Path("/usr/share/wordnet"), help="folder holding WordNet 3.0's data.noun")
    parser.add_argument("--out", type=Path, default=Path("neuroscribe/vocabulary/data/imagenet_superclasses.json"))
    args = parser.parse_args()
    result = build(args.wordnet)
    rows = ",\n  ".join(json.dumps(row) for row in result["superclasses"])  # one superclass a line: readable diffs
    provenance = json.dumps(result["provenance"], indent=2).replace("\n", "\n ")
    args.out.write_text(f'{{\n "provenance": {provenance},\n "superclasses": [\n  {rows}\n ]\n}}\n', encoding="utf-8")
    for row in result["superclasses"]:
        print(f"{row['name']:>20}: {len(row['classes']):4d} classes")


if __name__ == "__main__":
    main()
