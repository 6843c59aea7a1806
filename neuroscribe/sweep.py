"""A sweep: one run per combination of models x datasets x layer groups x vocabulary sources.

    cfg = SweepConfig(root="s3://bucket/sweeps/v1", flow="explain",
                      models=[ModelSpec(name="resnet50"), ModelSpec(name="efficientnet_lite0")],
                      datasets=[DatasetSpec(uri="s3://bucket/imagenet/val")],
                      layers=["layer4", "layer3,layer4"], vocabularies=["builtin:imagenet+colors"],
                      settings={"k": 50})
    for combo in plan_sweep(cfg):                                 # validated run configs
        if not combination_done(combo):
            summary = run(combo.config)                           # flows/sweep.py: a subflow each
            mark_done(combo, summary)

Each combination gets its own store ``<root>/<model>/<dataset>/<layers>[/<vocabulary>]`` (slugs,
made unique within the grid) and a content key over its config (less ``runner`` and ``overwrite``,
which do not change results) and its stage's code.  It is done when ``<store>/summary/sweep.json``
carries that key: a rerun skips it, while a changed setting, model or code version runs it again.
"""

from __future__ import annotations

import datetime
import itertools
import posixpath
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, Field, ValidationError, field_validator

from neuroscribe import store as st
from neuroscribe.config import (
    DatasetSpec,
    ExtractConfig,
    FrozenModel,
    ModelSpec,
    RunnerSpec,
    deep_merge,
    parse_layers,
)
from neuroscribe.errors import NeuroscribeError
from neuroscribe.fingerprint import code_version, content_key

NOT_IN_KEY = {"runner", "overwrite"}  # fields that say how or where a run executes, not what it computes


class SweepConfig(FrozenModel):
    """Parameters of a sweep (the ``sweep`` flow): a grid of runs of one stage."""

    flow: Literal["explain", "extract"] = Field(default="explain", description="the stage each combination runs")
    root: str = Field(description="stores go under it: local path or s3://bucket/prefix")
    models: tuple[ModelSpec, ...] = Field(min_length=1)
    datasets: tuple[DatasetSpec, ...] = Field(min_length=1)
    layers: tuple[tuple[str, ...], ...] = Field(
        min_length=1, description='layer groups, one run each: ["layer4", "layer3,layer4"]'
    )
    vocabularies: tuple[str, ...] = Field(
        default=(),
        description="explain only: vocabulary sources, one run each; an entry may be a comma-separated union "
        "(e.g. [\"builtin:imagenet+colors\", \"llm,builtin:colors\"]); empty: the explain default",
    )
    settings: dict[str, Any] = Field(
        default_factory=dict, description="other fields of every run's config, e.g. {\"k\": 50}"
    )
    runner: RunnerSpec = RunnerSpec()
    store_options: dict[str, Any] = Field(default_factory=dict, description="fsspec options for the stores (not logged)")
    continue_on_error: bool = Field(default=True, description="run the other combinations when one fails")

    @field_validator("layers", mode="before")
    @classmethod
    def _layer_groups(cls, v: Any) -> tuple[tuple[str, ...], ...]:
        return tuple(parse_layers(group) for group in ([v] if isinstance(v, str) else v))

    @field_validator("vocabularies", mode="before")
    @classmethod
    def _vocabularies(cls, v: Any) -> tuple[str, ...]:
        items = [v] if isinstance(v, str) else list(v or ())
        return tuple(s.strip() for s in items if s and s.strip())


@dataclass(frozen=True)
class Combination:
    """One run of the grid: its name (also its path under the root), store, key and config."""

    name: str
    store: str
    key: str
    config: Any  # the stage's validated config (ExtractConfig, ExplainConfig)
    model: ModelSpec
    dataset: DatasetSpec
    layers: tuple[str, ...]


def slugify(text: str) -> str:
    """A path segment that is safe on local disks and S3 and still readable."""
    return re.sub(r"[^A-Za-z0-9._+=-]+", "-", text).strip("-.") or "x"


def model_slug(spec: ModelSpec) -> str:
    base = re.split(r"[:/]", spec.name)[-1]
    extra = [spec.weights or "", posixpath.basename(spec.checkpoint or "").rsplit(".", 1)[0]]
    return slugify("-".join([base, *[e for e in extra if e]]))


def dataset_slug(spec: DatasetSpec) -> str:
    path = spec.uri.split("://", 1)[-1].rstrip("/")
    parts = [p for p in path.split("/") if p][-2:]
    return slugify("-".join(parts) + (f"-first{spec.limit}" if spec.limit else ""))


def _unique_slugs(items: Sequence[Any], slug: Callable[[Any], str]) -> list[str]:
    """Slug per item; items whose slugs collide but differ get a short content key appended."""
    slugs, keys = [slug(item) for item in items], [content_key(item, 8) for item in items]
    keys_per_slug = {s: {k for other, k in zip(slugs, keys) if other == s} for s in slugs}
    return [s + (f"-{k}" if len(keys_per_slug[s]) > 1 else "") for s, k in zip(slugs, keys)]


def combination_key(stage: str, config: BaseModel, code_modules: Sequence[str]) -> str:
    view = config.model_dump(mode="json")
    view = {k: v for k, v in (view.pop("extract", {}) | view).items() if k not in NOT_IN_KEY | {"store_options"}}  # ExplainConfig: flat
    view["dataset"].pop("storage_options")  # both stages' configs hold a DatasetSpec
    return content_key({"stage": stage, "config": view, "code": code_version(*code_modules)})


def _stage(flow: Literal["explain", "extract"]) -> tuple[type[BaseModel], tuple[str, ...]]:
    """The config class and code modules of the ``flow`` stage (imported lazily: stages load torch)."""
    from neuroscribe.extraction import CODE_MODULES as EXTRACTION_CODE

    if flow == "extract":
        return ExtractConfig, EXTRACTION_CODE
    from neuroscribe.explanation import CODE_MODULES, ExplainConfig
    from neuroscribe.patches.cut import CODE_MODULES as PATCHES_CODE

    return ExplainConfig, (*EXTRACTION_CODE, *PATCHES_CODE, *CODE_MODULES)


def plan_sweep(cfg: SweepConfig) -> list[Combination]:
    """Every combination as a validated config of its stage, in grid order (models, datasets, layers, ...)."""
    config_cls, code_modules = _stage(cfg.flow)
    if cfg.vocabularies and cfg.flow != "explain":
        raise NeuroscribeError(f"the {cfg.flow} stage takes no vocabularies; remove `vocabularies` from the sweep config")
    if len(set(cfg.layers)) != len(cfg.layers):
        raise NeuroscribeError(f"sweep layers {list(cfg.layers)} repeat a group; list each layer group once")
    model_slugs = _unique_slugs(cfg.models, model_slug)
    # storage options are how to reach the data, not which data
    dataset_views = [d.model_dump(mode="json", exclude={"storage_options"}) for d in cfg.datasets]
    dataset_slugs = _unique_slugs(dataset_views, lambda d: dataset_slug(DatasetSpec(**d)))
    vocabularies = list(cfg.vocabularies) or [None]
    grid = itertools.product(enumerate(cfg.models), enumerate(cfg.datasets), cfg.layers, vocabularies)
    combos = []
    for (m, model), (d, dataset), layers, vocabulary in grid:
        parts = [model_slugs[m], dataset_slugs[d], slugify("+".join(layers))]
        if vocabulary is not None:
            parts.append(slugify(vocabulary))
        name = "/".join(parts)
        store = st.full_uri(cfg.root, name)
        fields = dict(cfg.settings) | {
            "model": model,
            "dataset": dataset,
            "layers": layers,
            "store": store,
            "runner": cfg.runner,
            "store_options": cfg.store_options,
        }
        if vocabulary is not None:  # a comma-separated union splits in VocabularySpec; merged into any vocabulary settings
            fields = deep_merge(fields, {"vocabulary": {"sources": vocabulary}})
        try:
            config = config_cls.model_validate(fields)
        except ValidationError as exc:
            problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
            raise NeuroscribeError(
                f"sweep combination {name} is not a valid {config_cls.__name__} ({problems}); "
                f"fix `settings` or the grid lists"
            ) from None
        key = combination_key(cfg.flow, config, code_modules)
        combos.append(Combination(name, store, key, config, model, dataset, layers))
    if len({c.name for c in combos}) != len(combos):
        raise NeuroscribeError("two sweep combinations share a store path; make the grid entries distinct")
    return combos


def combination_done(combo: Combination, storage_options: dict | None = None) -> bool:
    """True when the store's sweep summary carries this combination's key."""
    done = st.RunStore(combo.store, storage_options).summary("sweep")
    return done.exists() and done.read_json().get("key") == combo.key


def mark_done(combo: Combination, summary: Any, storage_options: dict | None = None) -> str:
    """Record that the combination finished with ``summary`` (small and JSON-able)."""
    finished = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    record = {"key": combo.key, "name": combo.name, "finished": finished, "summary": summary}
    return st.RunStore(combo.store, storage_options).summary("sweep").write_json(record)


def sweep_table(rows: Sequence[dict[str, Any]]) -> str:
    """Markdown table of combinations: name, status, store and key."""
    lines = ["| combination | status | store | key |", "|---|---|---|---|"]
    lines += [f"| {r['name']} | {r['status']} | [{r['store']}]({r['store']}) | `{r['key']}` |" for r in rows]
    return "\n".join(lines)
