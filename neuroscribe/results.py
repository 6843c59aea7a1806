"""What the Python API hands back: a run store read as DataFrames and notebook displays.

    run = Run("runs/r50")                    # or ns.open_run("s3://bucket/r50", storage_options=...)
    run.layers                               # explained layers
    run.table("layer4")                      # DataFrame, one row per unit (explanations/<layer>.parquet)
    run.gallery("layer4", sort="score")      # a page of units; renders inline in Jupyter (_repr_html_)
    run.unit("layer4", 559)                  # label, confidence, alternatives, patches as an image grid
    run.ablation("layer4")                   # Ablation: drop table, per-unit summary, baseline, chart
    run.evaluation()                         # Evaluation: headline DataFrame, per-unit metrics, chart
    run.arrays["topk/layer4/value"][:]       # the raw Zarr arrays, read-only (<store>/arrays)

Every object reads only the store (layout in ``neuroscribe.store``), so a store made by the CLI,
a flow or the API gives the same objects.  Patch images are embedded in the HTML as data URIs:
a notebook shows them with no file server, and a page holds ``per_page`` units, never a layer.
"""

from __future__ import annotations

import base64
import functools
import io
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

import numpy as np
import pandas as pd
from jinja2 import Environment, PackageLoader
from markupsafe import Markup
from PIL import Image

from neuroscribe import store as st
from neuroscribe.errors import NeuroscribeError

F = TypeVar("F", bound=Callable[..., Any])
THUMB = 88
PATCHES_SHOWN = 6
UNIT_THUMB = 112  # Unit.image: every patch, larger than in a gallery, in rows of UNIT_COLUMNS
UNIT_COLUMNS = 5


def user_facing(fn: F) -> F:
    """Re-raise a NeuroscribeError from the call itself: a notebook shows the message and the fix,
    not a traceback through the pipeline's internals (``__tracebackhide__`` hides this frame too)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        __tracebackhide__ = True
        try:
            return fn(*args, **kwargs)
        except NeuroscribeError as exc:
            raise NeuroscribeError(str(exc)) from None

    return wrapper  # type: ignore[return-value]


@functools.lru_cache(maxsize=1)
def _templates():
    return Environment(loader=PackageLoader("neuroscribe", "templates"), autoescape=True).get_template("notebook.html").module


def data_uri(image: Image.Image | bytes, kind: str = "jpeg") -> str:
    """An image as a ``data:`` URI (JPEG for patches, the PNG bytes of charts as they are)."""
    if isinstance(image, Image.Image):
        buf = io.BytesIO()
        image.save(buf, format="JPEG", quality=85)
        image = buf.getvalue()
    return f"data:image/{kind};base64,{base64.b64encode(image).decode()}"


def frame_html(frame: pd.DataFrame, max_rows: int = 20) -> Markup:
    return Markup(frame.head(max_rows).to_html(index=False, border=0, classes="ns-table", escape=True))


def _number(value: Any) -> float | None:
    number = pd.to_numeric(value, errors="coerce")  # None, text and NaN are no number
    return None if pd.isna(number) else float(number)


@dataclass(frozen=True)
class Unit:
    """One explained unit: its label, how sure the scorer is, the runners-up, and its patches."""

    layer: str
    unit: int
    label: str
    confidence: float | None  # the table's ``confidence`` column when it has one, else its ``score``
    score: float | None
    margin: float | None
    agreement: float | None
    alternatives: pd.DataFrame  # concept, score
    patches: list = field(repr=False)  # neuroscribe.patches.load.Patch, in rank order
    outline: bool = True

    @property
    def image(self) -> Image.Image:
        """The unit's patches as one image grid, each outlined as in the gallery (no patches: a blank square)."""
        from neuroscribe.gallery import BACKGROUND, grid, outlined

        if not self.patches:
            return Image.new("RGB", (UNIT_THUMB, UNIT_THUMB), BACKGROUND)
        thumbnails = [outlined(np.asarray(p.crop), p.mask, UNIT_THUMB, self.outline) for p in self.patches]
        return grid(thumbnails, UNIT_THUMB, min(UNIT_COLUMNS, len(thumbnails)))

    @property
    def image_ids(self) -> list[int]:
        return [p.image_id for p in self.patches]

    def _repr_html_(self) -> str:
        return _templates().unit(self, frame_html(self.alternatives, 10), data_uri(self.image) if self.patches else None)


@dataclass(frozen=True)
class Gallery:
    """One page of a layer's units; ``.page(n)`` or ``.next()`` for others."""

    run: Run
    layer: str
    number: int = 0
    per_page: int = 24
    sort: Literal["unit", "score"] = "unit"

    @functools.cached_property
    def order(self) -> pd.DataFrame:
        table = self.run.table(self.layer)
        if self.sort == "score":
            return table.sort_values(["score", "unit"], ascending=[False, True], na_position="last")
        return table.sort_values("unit")

    @property
    def pages(self) -> int:
        return max(1, math.ceil(len(self.order) / self.per_page))

    @property
    def units(self) -> pd.DataFrame:
        """The rows of this page, in display order."""
        return self.order.iloc[self.number * self.per_page : (self.number + 1) * self.per_page]

    @user_facing
    def page(self, number: int) -> Gallery:
        if not 0 <= number < self.pages:
            raise NeuroscribeError(f"page {number} does not exist; the gallery of {self.layer} has pages 0..{self.pages - 1}")
        return Gallery(self.run, self.layer, number, self.per_page, self.sort)

    def next(self) -> Gallery:
        return self.page(min(self.number + 1, self.pages - 1))

    def strips(self) -> dict[int, Image.Image]:
        """Each unit of the page as a strip of its first patches (inactive units have none)."""
        from neuroscribe.gallery import grid, outlined
        from neuroscribe.patches.load import load_layer_patches

        wanted = sorted(int(u) for u in self.units["unit"])
        outline = self.run.layer_kind(self.layer) != "linear"
        out = {}
        for block in load_layer_patches(self.run.store, self.layer, self.run.storage_options, block_units=max(len(wanted), 1), units=wanted):
            for i, unit in enumerate(block.units):
                slots = np.flatnonzero(block.image_id[i] >= 0)[:PATCHES_SHOWN]
                if slots.size:
                    thumbnails = [outlined(block.crops[i, j], block.masks[i, j], THUMB, outline) for j in slots]
                    out[int(unit)] = grid(thumbnails, THUMB)
        return out

    def _repr_html_(self) -> str:
        images = {unit: data_uri(image) for unit, image in self.strips().items()}
        rows = zip(self.units["unit"].astype(int), self.units["explanation"], self.units["score"])
        cards = [{"unit": u, "label": x, "score": _number(s), "image": images.get(u)} for u, x, s in rows]
        return _templates().gallery(self, cards)


class _InStore:
    """``run_store`` of a view with ``store`` and ``storage_options`` fields."""

    @property
    def run_store(self) -> st.RunStore:
        return st.RunStore(self.store, self.storage_options)  # type: ignore[attr-defined]


@dataclass(frozen=True)
class Ablation(_InStore):
    """An ablation sweep's results (``<store>/ablation/``), as written by ``neuroscribe ablate``."""

    store: str
    layer: str
    summary: dict
    storage_options: dict = field(default_factory=dict, repr=False)

    def _read(self, relpath: str) -> pd.DataFrame:
        return self.run_store.recorded(relpath).read_parquet()

    @property
    def table(self) -> pd.DataFrame:
        """Per ablated unit and class: support, baseline and ablated accuracy, drop, rank."""
        return self._read(self.summary["table"])

    @property
    def units(self) -> pd.DataFrame:
        """Per ablated unit: its most affected classes and drops, largest and mean drop."""
        return self._read(self.summary["units_table"])

    @property
    def baseline(self) -> pd.DataFrame:
        """Every model class: support and accuracy without ablation."""
        return self._read(self.summary["units_table"].replace(".units.parquet", ".baseline.parquet"))

    @property
    def classes(self) -> pd.DataFrame:
        """Per class: the units it depends on, ranked by drop (explanations joined when the run has them)."""
        return self._read(self.summary["classes_table"])

    @property
    def chart(self) -> bytes | None:
        """The PNG chart of the charted units' real drops (None: no unit hurt any class)."""
        return self.run_store.recorded(self.summary["chart"]).read_bytes() if self.summary.get("chart") else None

    def _repr_html_(self) -> str:
        # the ablation's own HTML report (neuroscribe.ablation.report.report_page), as written by the run
        section = self.run_store.recorded(self.summary["report"]).read_bytes().decode()
        return _templates().ablation(self, Markup(section))


@dataclass(frozen=True)
class Evaluation(_InStore):
    """The evaluation report (``<store>/evaluation/``): headline numbers, per-unit metrics, the chart."""

    store: str
    report: dict  # evaluation.json
    storage_options: dict = field(default_factory=dict, repr=False)

    @property
    def layers(self) -> list[str]:
        return list(self.report["layers"])

    @property
    def headline(self) -> pd.DataFrame:
        """One row per layer: the numbers the CLI prints."""
        from neuroscribe.evaluation.report import headline

        return pd.DataFrame([headline(s) for s in self.report["layers"].values()])

    @user_facing
    def units(self, layer: str) -> pd.DataFrame:
        """Per unit of ``layer``: explanation, truth, match, cosines, AUC, stability."""
        self._require(layer)
        return self.run_store.evaluation_layer(layer, "units.parquet").read_parquet()

    @user_facing
    def compare(self, layer: str) -> pd.DataFrame | None:
        """The comparison table of ``layer`` (rules, k, vocabularies), if comparisons were asked for."""
        self._require(layer)
        file = self.run_store.evaluation_layer(layer, "compare.parquet")
        return file.read_parquet() if file.exists() else None

    @property
    def chart(self) -> bytes:
        return self.run_store.evaluation(".png").read_bytes()

    @property
    def markdown(self) -> str:
        return self.run_store.evaluation(".md").read_bytes().decode()

    def _require(self, layer: str) -> None:
        if layer not in self.report["layers"]:
            raise NeuroscribeError(f"layer {layer!r} was not evaluated in {self.store} (evaluated: {', '.join(self.layers)}); pass layers=[...] to evaluate")

    def _repr_html_(self) -> str:
        return _templates().evaluation(self, frame_html(self.headline), data_uri(self.chart, "png"))


@dataclass(frozen=True)
class Run(_InStore):
    """A run store (local path or ``s3://``), however it was made."""

    store: str
    storage_options: dict = field(default_factory=dict, repr=False)

    @functools.cached_property
    def attrs(self) -> dict:
        """The run's attributes: model, layers {name: kind, units, map_shape}, dataset, class names;
        empty for a store that holds only an ablation (``neuroscribe ablate`` extracts nothing)."""
        return self.run_store.attrs() if self.run_store.has_run() else {}

    @property
    def arrays(self):
        """The run's Zarr arrays, read-only (``<store>/arrays``): ``run.arrays["topk/layer4/value"][:]``."""
        return self.run_store.arrays()

    @property
    def layers(self) -> list[str]:
        """Layers with an explanations table, in extraction order."""
        return [layer for layer in self.attrs.get("layers", {}) if self.run_store.table(layer).exists()]

    def layer_kind(self, layer: str) -> str | None:
        return self.attrs.get("layers", {}).get(layer, {}).get("kind")

    @property
    def images(self) -> pd.DataFrame:
        """The run's image index: id, path, label, status (ok|skipped), reason."""
        return self.run_store.index().read_parquet()

    def _require_layer(self, layer: str) -> None:
        if layer not in self.layers:
            extracted = list(self.attrs.get("layers", {}))
            raise NeuroscribeError(
                f"layer {layer!r} has no explanations in {self.store} (explained: {', '.join(self.layers) or 'none'}; "
                f"extracted: {', '.join(extracted) or 'none'}); run ns.explain with layers=[{layer!r}]"
            )

    @user_facing
    def table(self, layer: str) -> pd.DataFrame:
        """One row per unit: explanation, score, margin, agreement, alternatives, top_image_ids."""
        self._require_layer(layer)
        return self.run_store.table(layer).read_parquet()

    @user_facing
    def gallery(self, layer: str, page: int = 0, per_page: int = 24, sort: Literal["unit", "score"] = "unit") -> Gallery:
        """A page of the layer's units with their patches; shown inline in Jupyter."""
        self._require_layer(layer)
        if per_page < 1 or sort not in ("unit", "score"):
            raise NeuroscribeError("gallery needs per_page >= 1 and sort 'unit' or 'score'")
        return Gallery(self, layer, 0, per_page, sort).page(page)

    @user_facing
    def unit(self, layer: str, unit: int) -> Unit:
        """One unit: label, confidence, alternatives and its patches (``.image`` is the grid)."""
        from neuroscribe.patches.load import load_unit_patches

        table = self.table(layer)
        rows = table[table["unit"] == unit]
        if rows.empty:
            raise NeuroscribeError(f"unit {unit} is not in layer {layer!r}; pass 0..{len(table) - 1}")
        row = rows.iloc[0]
        return Unit(
            layer=layer,
            unit=int(unit),
            label=str(row["explanation"]),
            confidence=_number(row["confidence"] if "confidence" in row else row["score"]),
            **{name: _number(row.get(name)) for name in ("score", "margin", "agreement")},
            alternatives=pd.DataFrame(list(row["alternatives"]), columns=["concept", "score"]),
            patches=load_unit_patches(self.store, layer, int(unit), self.storage_options),
            outline=self.layer_kind(layer) != "linear",
        )

    @user_facing
    def ablation(self, layer: str) -> Ablation:
        """The latest ablation sweep of ``layer`` in this store."""
        file = self.run_store.summary(f"ablate-{layer}")
        if not file.exists():
            raise NeuroscribeError(f"layer {layer!r} was not ablated in {self.store}; run ns.ablate(model, layer={layer!r}, units=[...]) first")
        return Ablation(self.store, layer, file.read_json(), self.storage_options)

    @user_facing
    def evaluation(self) -> Evaluation:
        """The stored evaluation report (``ns.evaluate`` computes it)."""
        file = self.run_store.evaluation()
        if not file.exists():
            raise NeuroscribeError(f"store {self.store} has no evaluation yet; run ns.evaluate({self.store!r}) first")
        return Evaluation(self.store, file.read_json(), self.storage_options)

    def summary(self) -> pd.DataFrame:
        """One row per explained layer: units, explained, inactive, most frequent concepts, mean score."""
        from neuroscribe.explanation import layer_summary

        return pd.DataFrame([layer_summary(self.table(layer)) for layer in self.layers])

    def _repr_html_(self) -> str:
        return _templates().run(self, frame_html(self.summary()))
