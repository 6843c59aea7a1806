"""A whole ablation sweep over a layer's units: plan, resumable parts, and the assembled outputs.

    cfg = AblateConfig(model=ModelSpec(name="resnet50"), layer="layer4", units=None,   # None: every unit
                       dataset=DatasetSpec(uri="/data/imagenet/val"), store="runs/r50")
    summary = run_sweep(cfg)                       # in-process; flows/ablate.py maps the parts on Dask

    result = run_ablation(cfg)                     # the same, and the frames: result.table, .units, .classes

    plan = plan_sweep(cfg)                         # units, path, run key, parts (small, picklable)
    run_part(cfg, plan, i)                         # one batch of units over the whole dataset
    result = assemble_result(cfg, plan)            # tables, chart, HTML, summary; the frames

Store layout (under ``<store>/ablation/``; the columns are documented where each table is built):
    parts/<layer>/<run_key>/<part_key>.parquet|json   one part's counts (``counts_frame``); images, skipped
    <layer>.parquet|csv                               ``accuracy.drop_table`` [+ explanation, score]
    <layer>.units|.classes.parquet|csv                ``report.unit_summary``, ``report.class_summary``
    <layer>.baseline.parquet|csv                      ``accuracy.class_accuracy`` of every model class
    <layer>.png, <layer>.html                         the chart and its report page
    <store>/summary/ablate-<layer>.json               images, skipped, path used, absent classes, seconds
A joint ablation (``together=True``) writes ``<layer>.set-<key>.*`` instead of ``<layer>.*``.

``run_key`` hashes the model spec, layer, mode, the dataset listing (paths and labels) and the
code of this package; ``part_key`` hashes the part's units.  A rerun with the same inputs skips
every part already written; any change of inputs writes new parts.  The evaluation path is not
in the key: every path computes the same numbers (see ``neuroscribe.ablation.fast``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Annotated, Any

import pandas as pd
import torch
from tqdm.auto import tqdm
from pydantic import BeforeValidator, Field

from neuroscribe.ablation.dataset import image_batches, labelled_index
from neuroscribe.ablation.accuracy import class_accuracy, count_correct, counts_frame, drop_table, units_label
from neuroscribe.ablation.fast import FastPath, choose_path, forwards_per_ablation
from neuroscribe.ablation.modes import AblationMode, target_module, validate_units
from neuroscribe.ablation.report import (
    CHART_UNITS, class_summary, default_chart_units, drop_chart, join_explanations, report_page, unit_summary,
)
from neuroscribe.ablation.stats import CONFIDENCE, min_support_to_tell
from neuroscribe.config import DatasetSpec, FrozenModel, ModelSpec, StoreConfig
from neuroscribe.data import listing_key
from neuroscribe.errors import NeuroscribeError
from neuroscribe.extraction import cached_model
from neuroscribe.fingerprint import code_version, content_key
from neuroscribe.models import resolve_device, resolve_layers
from neuroscribe.stages import Executor, InProcess, Plan, Stage
from neuroscribe.store import StoreFile

CODE_MODULES = tuple(f"neuroscribe.ablation.{name}" for name in ("modes", "fast", "accuracy", "dataset"))
PROBE_SEED = 0
# Default size of a part in work: a part evaluates its ablations over the whole dataset, after one
# forward per image that every part repeats.  256 forwards' work per image is 256 ablations on the hook
# path, and more on the suffix path, whose ablations cost a fraction of a forward (blocks.6 of
# EfficientNet-Lite0: 1/300), so that the repeated forward stays a small share of each part.
FORWARDS_PER_PART = 256


def parse_units(value: Any) -> tuple[int, ...] | None:
    """``"12,559"`` / ``[12, 559]`` -> (12, 559); None or ``"all"`` -> None (every unit)."""
    if value is None or (isinstance(value, str) and value.strip().lower() in ("", "all")):
        return None
    items = value.split(",") if isinstance(value, str) else list(value)
    try:
        return tuple(int(str(v).strip()) for v in items if str(v).strip())
    except ValueError:
        raise NeuroscribeError(f"--units {value!r} is not a comma-separated list of unit indices, e.g. 12,559") from None


Units = Annotated[tuple[int, ...] | None, BeforeValidator(parse_units)]


class AblateConfig(StoreConfig):
    """Parameters of one ablation sweep (the ``ablate`` flow)."""

    model: ModelSpec = ModelSpec()
    layer: str = Field(description="the layer whose units are ablated, e.g. layer4")
    dataset: DatasetSpec = Field(description="labelled images: a folder of class subfolders or a labelled file list")
    units: Units = Field(default=None, description="units to ablate; None: every unit of the layer")
    together: bool = Field(default=False, description="ablate `units` as one set instead of one at a time")
    mode: AblationMode = "activation"
    fast: FastPath = Field(default="auto", description="evaluation path; auto picks the fastest exact one")
    units_per_pass: int = Field(default=32, ge=1, description="ablations stacked along the batch axis per pass")
    units_per_task: int | None = Field(
        default=None, ge=1,
        description=f"ablations per part (the unit of work and resume); None: about {FORWARDS_PER_PART} forwards' work "
                    "per image (256 ablations on the hook path, more on the suffix path); the closed path uses one part")
    top: int = Field(default=5, ge=1, description="most affected classes kept per unit in summaries and the chart")
    chart_units: Units = Field(
        default=None, description=f"units charted; None: the {CHART_UNITS} with the largest drops")


class SweepPlan(FrozenModel):
    """What every part needs to know, computed once."""

    run_key: str
    layer: str
    target: str
    start: str  # the module the fast path starts from (``fast.equivalent_target`` of ``target``)
    path: str
    n_units: int
    ablations: tuple[tuple[int, ...], ...]
    parts: tuple[tuple[int, int], ...]
    part_keys: tuple[str, ...]
    class_names: tuple[str, ...]
    images: int
    unlabelled: int


def _table(cfg: AblateConfig, plan: SweepPlan, table: str = "") -> StoreFile:
    return cfg.run_store.ablation(plan.layer, content_key(plan.ablations, 8) if cfg.together else "", table)


def part_file(cfg: AblateConfig, plan: SweepPlan, i: int) -> StoreFile:
    return cfg.run_store.ablation_part(plan.layer, plan.run_key, plan.part_keys[i])


def _model_on(cfg: AblateConfig, device: torch.device):
    # one model per process, shared by the task threads of a worker: hooks and zeroed weights are
    # only ever in place while its lock is held (see count_correct's ``lock``)
    loaded = cached_model(cfg.model, str(device))
    [info] = resolve_layers(loaded, [cfg.layer])
    return loaded, info


def plan_sweep(cfg: AblateConfig) -> SweepPlan:
    """Resolve the layer, units, dataset and evaluation path; fail here, before any long work."""
    loaded, info = _model_on(cfg, torch.device("cpu"))
    units = validate_units(info, cfg.units if cfg.units is not None else range(info.units))
    ablations = (units,) if cfg.together else tuple((u,) for u in units)
    frame, counts = labelled_index(cfg.dataset, loaded.class_names)
    size = loaded.preprocessing.input_size
    probe = torch.randn(1, 3, size, size, generator=torch.Generator().manual_seed(PROBE_SEED))
    with loaded.lock:
        path = choose_path(loaded.model, info, cfg.mode, cfg.fast, probe)
        # a part passes over the whole dataset once; on the closed path that pass is all the work, so one part
        per_task = len(ablations) if path.name == "closed" else cfg.units_per_task
        if per_task is None:
            cost = forwards_per_ablation(path, probe, info.units)
            per_task = max(1, min(len(ablations), int(FORWARDS_PER_PART / max(cost, 1e-9))))
    run_key = content_key({"model": cfg.model, "layer": info.name, "mode": cfg.mode,
                           "listing": listing_key(frame), "code": code_version(*CODE_MODULES)})
    parts = tuple((s, min(s + per_task, len(ablations))) for s in range(0, len(ablations), per_task))
    return SweepPlan(
        run_key=run_key,
        layer=info.name,
        target=target_module(loaded.model, info, cfg.mode),
        start=path.target,
        path=path.name,
        n_units=info.units,
        ablations=ablations,
        parts=parts,
        part_keys=tuple(content_key([ablations[s:e], run_key]) for s, e in parts),
        class_names=tuple(loaded.class_names),
        images=len(frame),
        unlabelled=counts["unlabelled"],
    )


def run_part(cfg: AblateConfig, plan: SweepPlan, i: int) -> dict[str, Any]:
    """Evaluate part ``i``'s ablations over the whole dataset and write its counts; skipped when done.

    A part is one pass over the dataset, so it shows a bar of images on a terminal (not in worker logs)."""
    if part_file(cfg, plan, i).exists():
        return {"part": i, "cached": True}
    started = time.perf_counter()
    device = resolve_device(cfg.runner.device)
    loaded, info = _model_on(cfg, device)
    path = choose_path(loaded.model, info, cfg.mode, plan.path, fast_target=plan.start)  # type: ignore[arg-type]  # checked by the plan
    frame, _ = labelled_index(cfg.dataset, loaded.class_names)
    skipped: list[dict] = []
    batches = image_batches(
        frame, loaded.preprocessing.transform(), cfg.runner.batch_size, cfg.runner.decode_threads,
        cfg.dataset.storage_options, skipped, cfg.dataset.max_image_pixels,
    )
    start, end = plan.parts[i]
    try:
        with tqdm(total=plan.images, desc=f"ablation part {i}", unit="img", leave=False, disable=None) as bar:
            counts = count_correct(path, batches, plan.ablations[start:end], info.units, cfg.units_per_pass,
                                   lambda n: bar.update(n - bar.n), lock=loaded.lock)
    except ValueError:
        raise NeuroscribeError(f"no image of dataset {cfg.dataset.uri} could be decoded; see the skipped reasons") from None
    seconds = time.perf_counter() - started
    meta = {"part": i, "images": counts.images, "skipped": skipped, "seconds": seconds, "path": path.name,
            "device": str(device), "ablations": end - start}
    # the json first: the parquet is what marks the part done
    part_file(cfg, plan, i).with_suffix(".json").write_json(meta)
    part_file(cfg, plan, i).write_parquet(counts_frame(counts))
    return {"part": i, "cached": False, "images": counts.images, "seconds": seconds}


@dataclass
class AblationResult:
    """The assembled outputs of a sweep, as frames (what the store holds, see the module docstring)."""

    table: pd.DataFrame     # one row per ablation and class present
    units: pd.DataFrame     # per ablation: the classes it hurts, ranked
    classes: pd.DataFrame   # per class: the units it depends on, ranked
    baseline: pd.DataFrame  # every model class: support and baseline accuracy
    summary: dict[str, Any]


def _support_notes(baseline: pd.DataFrame, table: pd.DataFrame) -> tuple[dict[str, Any], list[str]]:
    """How many images the classes have, what that can tell, in numbers and in words for the report."""
    present = baseline[baseline["present"]]
    need = min_support_to_tell()
    hurt = table[table["drop"] > 0]
    small = int((present["support"] < need).sum())
    stats = {
        "confidence": CONFIDENCE,
        "support_min": int(present["support"].min()) if len(present) else 0,
        "support_median": float(present["support"].median()) if len(present) else 0.0,
        "min_support_to_tell": need,
        "classes_too_small_to_tell": small,
        "drops": len(hurt),
        "drops_resolved": int((hurt["drop_low"] > 0).sum()),
    }
    notes = []
    if small:
        notes.append(
            f"{small} of {len(present)} classes have fewer than {need} images: for them even a drop from 100% to 0% "
            f"is within chance at {CONFIDENCE:.0%} confidence, so their drops are too small a sample to tell. "
            f"Use a dataset with more images per class (ImageNet's validation set has 50)."
        )
    notes.append(f"{stats['drops_resolved']} of {stats['drops']} class drops have a {CONFIDENCE:.0%} interval above 0.")
    return stats, notes


def assemble_result(cfg: AblateConfig, plan: SweepPlan) -> AblationResult:
    """Concatenate the parts into the ablation table, unit and class views, baseline, chart and report, and write them."""
    frames, metas = [], []
    for i in range(len(plan.parts)):
        if not part_file(cfg, plan, i).exists():
            raise NeuroscribeError(f"part {i} of the {plan.layer} sweep is missing from {cfg.store}; rerun `neuroscribe ablate`")
        frames.append(part_file(cfg, plan, i).read_parquet())
        metas.append(part_file(cfg, plan, i).with_suffix(".json").read_json())
    counts = pd.concat(frames, ignore_index=True)
    names = list(plan.class_names)
    table, joined = join_explanations(drop_table(counts, names), cfg.store, plan.layer, cfg.store_options)
    summary_units, summary_classes = unit_summary(table, cfg.top), class_summary(table, cfg.top)
    first = frames[0].drop_duplicates("class").set_index("class")[["support", "baseline_correct"]]
    support, correct = first.reindex(range(len(names)), fill_value=0).to_numpy().T
    baseline = class_accuracy(support, correct, names)
    files = {name: _table(cfg, plan, name) for name in ("", "units", "classes", "baseline")}
    for name, frame in zip(files, (table, summary_units, summary_classes, baseline)):
        files[name].write_table(frame)

    charted = [units_label((u,)) for u in cfg.chart_units] if cfg.chart_units else default_chart_units(summary_units)
    missing = [u for u in charted if u not in set(table["units"])]
    if missing:
        raise NeuroscribeError(f"--chart-units {missing} were not ablated in this sweep; chart units from --units")
    statistics, notes = _support_notes(baseline, table)
    png = drop_chart(table, charted, cfg.top) if charted else None
    if png is not None:
        files[""].with_suffix(".png").write_bytes(png)
    page = report_page(plan.layer, table, summary_units, summary_classes, charted, cfg.top, png, notes)
    files[""].with_suffix(".html").write_bytes(page.encode())

    absent = baseline.loc[~baseline["present"], "class_name"].tolist()
    skipped = metas[0]["skipped"]
    summary = {
        "layer": plan.layer,
        "mode": cfg.mode,
        "target_module": plan.target,
        "path": plan.path,
        "path_start": plan.start,
        "ablations": len(plan.ablations),
        "images": int(metas[0]["images"]),
        "unlabelled": plan.unlabelled,
        "skipped": len(skipped),
        "skipped_reasons": skipped[:20],
        "classes_present": int(baseline["present"].sum()),
        "classes_absent": len(absent),
        "absent_examples": absent[:10],
        "baseline_accuracy": float(correct.sum() / max(support.sum(), 1)),
        "explanations_joined": joined,
        "charted": charted,
        "statistics": statistics,
        "notes": notes,
        "seconds": float(sum(m.get("seconds", 0.0) for m in metas)),
        "table": files[""].relpath,
        "units_table": files["units"].relpath,
        "classes_table": files["classes"].relpath,
        "chart": files[""].with_suffix(".png").relpath if png is not None else None,
        "report": files[""].with_suffix(".html").relpath,
        "run_key": plan.run_key,
    }
    cfg.run_store.summary(f"ablate-{plan.layer}").write_json(summary)
    return AblationResult(table, summary_units, summary_classes, baseline, summary)


def _pending_parts(cfg: AblateConfig, plan: SweepPlan) -> Plan:
    pending = [i for i in range(len(plan.parts)) if not part_file(cfg, plan, i).exists()]
    return Plan([(i, plan) for i in pending], done=len(plan.parts) - len(pending))


def run_planned_part(cfg: AblateConfig, item: tuple[int, SweepPlan]) -> dict[str, Any]:
    i, plan = item
    return run_part(cfg, plan, i)


PARTS = Stage("ablate-units", run_planned_part, plan=_pending_parts, unit="part", gpu=True, retries=2)


def run_ablation(cfg: AblateConfig, execute: Executor = InProcess()) -> AblationResult:
    """The ablation pipeline: plan, every part not yet in the store (a rerun resumes), assemble; the frames."""
    plan = plan_sweep(cfg)
    execute(PARTS, cfg, plan)
    return assemble_result(cfg, plan)


def run_sweep(cfg: AblateConfig, execute: Executor = InProcess()) -> dict[str, Any]:
    """``run_ablation``'s summary."""
    return run_ablation(cfg, execute).summary
