"""What ablation results look like to people: explanations joined in, per-unit and per-class views, chart, HTML.

    table, joined = join_explanations(table, store, "layer4")   # adds explanation, score if they exist
    units = unit_summary(table, top=5)        # per ablation: the classes it hurts (drop > 0 only), ranked
    classes = class_summary(table, top=5)     # per class: the units it depends on (drop > 0 only), ranked
    class_units(table, "guacamole")           # one class's units, ranked by drop, with explanations
    unit_classes(table, "559")                # one unit's classes, ranked by drop
    png = drop_chart(table, ["559", "12"], top=5)   # PNG bytes, the seed paper's Figure 3 style
    page = report_page("layer4", table, units, classes, ["559", "12"], top=5, png=png, notes=[...])

Only real drops are listed: a class an ablation does not hurt (drop <= 0) is never among its
"most affected" classes, and a unit that hurts no class lists none.  Drops are ranked by size,
ties by the lower end of their interval (more images, more certain), then by class or unit.

The chart has one panel per chosen unit, titled with its explanation: the classes it hurts most
as bars of their drop with 95% error bars, baseline -> ablated accuracy at the bar's end.  The
HTML page is rendered with jinja2 from ``templates/report.html``.
"""

from __future__ import annotations

import base64
import difflib
import io
import textwrap
from collections.abc import Sequence
from importlib.resources import files
from itertools import zip_longest

import numpy as np
import pandas as pd

from neuroscribe.ablation.dataset import normalized_name
from neuroscribe.errors import NeuroscribeError
from neuroscribe.store import RunStore

EXPLANATION_COLUMNS = ("explanation", "score")
CHART_UNITS = 6
CLASS_COLUMNS = ("class", "class_name", "support", "baseline_acc", "baseline_acc_low", "baseline_acc_high",
                 "units_hurting", "units_resolved", "top_units", "top_drops", "top_drops_low", "max_drop")


def join_explanations(
    table: pd.DataFrame, store: str, layer: str, storage_options: dict | None = None
) -> tuple[pd.DataFrame, bool]:
    """``table`` with the layer's explanation (and score) per unit when the explanations stage has run."""
    file = RunStore(store, storage_options).table(layer)
    if not file.exists():
        return table, False
    explained = file.read_parquet()
    if "unit" not in explained.columns or "explanation" not in explained.columns:
        return table, False
    keep = ["unit", *[c for c in EXPLANATION_COLUMNS if c in explained.columns]]
    explained = explained[keep].drop_duplicates("unit").astype({"unit": "int64"})
    table = table.drop(columns=list(EXPLANATION_COLUMNS), errors="ignore")
    return table.merge(explained, on="unit", how="left"), True


def _hurt(table: pd.DataFrame) -> pd.DataFrame:
    """The rows where the ablation lowered the class's accuracy, largest drop first."""
    hurt = table[table["drop"] > 0]
    return hurt.sort_values(["drop", "drop_low", "units", "class"], ascending=[False, False, True, True], kind="stable")


def _ranked_lists(
    hurt: pd.DataFrame, key: str, top: int, columns: dict[str, str], index: pd.Index
) -> pd.DataFrame:
    """Per ``key`` value in ``index``, the first ``top`` rows of ``hurt`` (already ranked) as lists,
    empty for a value with no real drop: {new name: column}."""
    grouped = hurt.groupby(key, sort=False).head(top).groupby(key, sort=False)
    lists = pd.DataFrame({name: grouped[column].agg(list) for name, column in columns.items()}, index=index)
    return lists.map(lambda v: v if isinstance(v, list) else [])


def unit_summary(table: pd.DataFrame, top: int = 5) -> pd.DataFrame:
    """One row per ablation: the ``top`` classes it hurts (drop > 0), how many it hurts, its largest drop."""
    grouped = table.groupby("units", sort=False)
    explained = [c for c in EXPLANATION_COLUMNS if c in table.columns]
    out = pd.DataFrame({
        "unit": grouped["unit"].first().astype(int),
        "classes_hurt": grouped["drop"].agg(lambda d: int((d > 0).sum())),
        "classes_resolved": grouped["drop_low"].agg(lambda d: int((d > 0).sum())),
        "max_drop": grouped["drop"].max().astype(float),
        "max_drop_low": grouped["drop_low"].max().astype(float),
        "total_drop": grouped["drop"].agg(lambda d: float(d.clip(lower=0).sum())),
        "mean_drop": grouped["drop"].mean().astype(float),
        **{column: grouped[column].first() for column in explained},
    })
    lists = {"top_classes": "class_name", "top_class_ids": "class", "top_drops": "drop", "top_drops_low": "drop_low"}
    out = out.join(_ranked_lists(_hurt(table), "units", top, lists, out.index))
    order = ["unit", "units", *lists, "classes_hurt", "classes_resolved", "max_drop", "max_drop_low", "total_drop",
             "mean_drop", *explained]
    return out.reset_index()[order]


def class_summary(table: pd.DataFrame, top: int = 5) -> pd.DataFrame:
    """One row per class present: its baseline and the ``top`` single units whose ablation hurts it most."""
    single = table[table["unit"] >= 0]
    columns = list(CLASS_COLUMNS) + (["top_explanations"] if "explanation" in table else [])
    if single.empty:
        return pd.DataFrame(columns=columns)
    grouped = single.groupby("class", sort=True)
    out = grouped[["class_name", "support", "baseline_acc", "baseline_acc_low", "baseline_acc_high"]].first()
    out["units_hurting"] = grouped["drop"].agg(lambda d: int((d > 0).sum()))
    out["units_resolved"] = grouped["drop_low"].agg(lambda d: int((d > 0).sum()))
    out["max_drop"] = grouped["drop"].max().astype(float)
    lists = {"top_units": "unit", "top_drops": "drop", "top_drops_low": "drop_low"}
    if "explanation" in single.columns:
        lists["top_explanations"] = "explanation"
    out = out.join(_ranked_lists(_hurt(single), "class", top, lists, out.index))
    if "top_explanations" in out.columns:
        out["top_explanations"] = [[None if pd.isna(e) else str(e) for e in v] for v in out["top_explanations"]]
    return out.reset_index()[columns]


def resolve_class(table: pd.DataFrame, query: str | int) -> int:
    """The class index of ``query`` (a name, any case and _/space, or an index) among the table's classes."""
    names = table.drop_duplicates("class").set_index("class")["class_name"]
    if isinstance(query, int) or str(query).strip().isdigit():
        if int(query) in names.index:
            return int(query)
        raise NeuroscribeError(f"class {query} has no image in this ablation; pick a class the dataset has")
    wanted = normalized_name(query)
    for cls, name in names.items():
        if any(normalized_name(part) == wanted for part in [name, *str(name).split(",")]):
            return int(cls)
    close = difflib.get_close_matches(wanted, [normalized_name(n) for n in names], n=5, cutoff=0.5)
    hint = f"; did you mean {', '.join(close)}?" if close else "; see the class_name column of the ablation table"
    raise NeuroscribeError(f"class {query!r} is not among the {len(names)} classes with images in this ablation{hint}")


def class_units(table: pd.DataFrame, query: str | int, top: int | None = None) -> pd.DataFrame:
    """The single units whose ablation lowers class ``query``'s accuracy, largest drop first, with explanations."""
    cls = resolve_class(table, query)
    rows = _hurt(table[(table["class"] == cls) & (table["unit"] >= 0)])
    columns = ["unit", "class", "class_name", "support", "baseline_acc", "ablated_acc", "drop", "drop_low",
               "drop_high", "resolved", *[c for c in EXPLANATION_COLUMNS if c in rows.columns]]
    return rows[columns].reset_index(drop=True).iloc[:top]


def default_chart_units(summary: pd.DataFrame, n: int = CHART_UNITS) -> list[str]:
    """The ablations with the largest single-class drop (ties: the more certain, then the larger total drop)."""
    hurting = summary[summary["max_drop"] > 0]
    order = hurting.sort_values(["max_drop", "max_drop_low", "total_drop", "unit"], ascending=[False, False, False, True])
    return order["units"].head(n).tolist()


def unit_classes(table: pd.DataFrame, label: str | int, top: int | None = None) -> pd.DataFrame:
    """The classes that ablation ``label`` (``"559"``, ``"12+559"``) hurts, largest drop first (drop > 0 only);
    also the bars of its chart panel."""
    return _hurt(table[table["units"] == str(label)]).iloc[:top]


def unit_title(units: str, group: pd.DataFrame) -> str:
    """``unit 559: “<explanation>”`` from the ablation's rows ``group``; just the label without one."""
    label = f"unit {units}" if "+" not in units else f"units {units}"
    text = group["explanation"].iloc[0] if "explanation" in group.columns and len(group) else None
    return f"{label}: “{text}”" if pd.notna(text) and str(text) else label


def drop_figure(table: pd.DataFrame, units: Sequence[str | int], top: int = 5):
    """A matplotlib figure: per ablation, the ``top`` classes it hurts, drops with 95% error bars."""
    from matplotlib.figure import Figure

    chosen = [str(u) for u in units]
    columns = min(3, max(1, len(chosen)))
    rows = max(1, -(-len(chosen) // columns))
    fig = Figure(figsize=(4.6 * columns, 0.45 * top * rows + 1.3 * rows))  # not pyplot: no process-global backend or registry
    axes = fig.subplots(rows, columns, squeeze=False)
    for ax in axes.flat[len(chosen):]:
        ax.axis("off")
    for ax, label in zip(axes.flat, chosen):
        ablated = table[table["units"] == label]
        group = unit_classes(table, label, top)
        title = "\n".join(textwrap.wrap(unit_title(label, ablated), 44))
        if group.empty:
            ax.set_title(title + ("\nnot ablated" if ablated.empty else "\nno class drops"), fontsize=9)
            ax.axis("off")
            continue
        drops = group["drop"].to_numpy() * 100
        errors = np.stack([drops - group["drop_low"].to_numpy() * 100, group["drop_high"].to_numpy() * 100 - drops])
        colors = ["#c0392b" if r else "#e6a09a" for r in group["resolved"]]
        names = [f"{textwrap.shorten(str(n), 24)} (n={s})" for n, s in zip(group["class_name"], group["support"])]
        bars = ax.barh(range(len(group)), drops, xerr=np.maximum(errors, 0), color=colors,
                       error_kw={"elinewidth": 0.8, "capsize": 2, "ecolor": "#333333"})
        ax.set_yticks(range(len(group)), names, fontsize=8)
        ax.invert_yaxis()
        ax.set_xlabel("accuracy drop (points, 95% interval)", fontsize=8)
        ax.set_xlim(min(0.0, float((group["drop_low"] * 100).min())) - 5, 145)  # room for the labels
        for bar, high, r in zip(bars, group["drop_high"], group.itertuples()):
            ax.text(max(bar.get_width(), high * 100) + 2, bar.get_y() + bar.get_height() / 2,
                    f"{r.baseline_acc:.0%}→{r.ablated_acc:.0%}", va="center", fontsize=7)
        ax.set_title(title, fontsize=9)
        ax.tick_params(axis="x", labelsize=7)
    fig.tight_layout()
    return fig


def drop_chart(table: pd.DataFrame, units: Sequence[str | int], top: int = 5) -> bytes:
    """PNG bytes of ``drop_figure``."""
    buffer = io.BytesIO()
    drop_figure(table, units, top).savefig(buffer, format="png", dpi=110)
    return buffer.getvalue()


def _template():
    from jinja2 import Environment, select_autoescape

    text = files("neuroscribe.ablation").joinpath("templates", "report.html").read_text(encoding="utf-8")
    env = Environment(autoescape=select_autoescape(default=True, default_for_string=True))
    env.filters["pct"] = lambda v, digits=0: "–" if v is None or pd.isna(v) else f"{v * 100:.{digits}f}"
    return env.from_string(text)


def report_page(
    layer: str,
    table: pd.DataFrame,
    units: pd.DataFrame,
    classes: pd.DataFrame,
    charted: Sequence[str],
    top: int,
    png: bytes | None = None,
    notes: Sequence[str] = (),
) -> str:
    """The HTML report: notes on the statistics, the chart, the charted units' classes, every class's units."""
    panels = [{"title": unit_title(label, table[table["units"] == label]),
               "rows": unit_classes(table, label, top).to_dict("records")} for label in map(str, charted)]
    depends = []
    for row in classes[classes["units_hurting"] > 0].sort_values(["max_drop", "class"], ascending=[False, True]).itertuples():
        explanations = getattr(row, "top_explanations", ())  # none when the run has no explanations
        ranked = zip_longest(row.top_units, row.top_drops, row.top_drops_low, explanations)
        units_of_class = [{"unit": u, "drop": d, "low": lo, "explanation": e} for u, d, lo, e in ranked]
        depends.append({"row": row._asdict(), "units": units_of_class})
    return _template().render(
        layer=layer,
        notes=list(notes),
        png=base64.b64encode(png).decode() if png is not None else None,
        panels=panels,
        classes=depends,
        classes_without=int((classes["units_hurting"] == 0).sum()) if len(classes) else 0,
        units_without=int((units["classes_hurt"] == 0).sum()) if len(units) else 0,
        top=top,
    )
