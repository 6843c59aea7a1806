"""What ablation results look like to people: explanations joined in, per-unit summaries, a chart, HTML.

    table, joined = join_explanations(table, store, "layer4")   # adds explanation, score if they exist
    units = unit_summary(table, top=5)                          # one row per ablation: its top classes
    png = drop_chart(table, units=[559, 12], top=5)             # PNG bytes, the seed paper's Figure 3 style
    html = report_section(table, [559, 12], top=5, png=png)     # a fragment for the HTML report
    page = report_page("layer4", html)

The chart has one panel per chosen unit: its most affected classes as horizontal bars of their
accuracy drop (baseline -> ablated, in accuracy points), titled with the unit's explanation.
"""

from __future__ import annotations

import base64
import html
import io
import textwrap
from collections.abc import Sequence

import pandas as pd

from neuroscribe.store import exists, read_parquet

EXPLANATION_COLUMNS = ("explanation", "score")


def explanations_path(layer: str) -> str:
    return f"explanations/{layer}.parquet"


def join_explanations(
    table: pd.DataFrame, store: str, layer: str, storage_options: dict | None = None
) -> tuple[pd.DataFrame, bool]:
    """``table`` with the layer's explanation (and score) per unit when the explanations stage has run."""
    relpath = explanations_path(layer)
    if not exists(store, relpath, storage_options):
        return table, False
    explained = read_parquet(store, relpath, storage_options)
    if "unit" not in explained.columns or "explanation" not in explained.columns:
        return table, False
    keep = ["unit", *[c for c in EXPLANATION_COLUMNS if c in explained.columns]]
    explained = explained[keep].drop_duplicates("unit").astype({"unit": "int64"})
    table = table.drop(columns=[c for c in EXPLANATION_COLUMNS if c in table.columns])
    return table.merge(explained, on="unit", how="left"), True


def unit_summary(table: pd.DataFrame, top: int = 5) -> pd.DataFrame:
    """One row per ablation: its ``top`` most affected classes and drops, its largest and mean drop."""
    rows = []
    for units, group in table.groupby("units", sort=False):
        best = group.nsmallest(top, "rank")
        row = {
            "unit": int(group["unit"].iloc[0]),
            "units": units,
            "top_classes": best["class_name"].tolist(),
            "top_class_ids": best["class"].astype(int).tolist(),
            "top_drops": best["drop"].astype(float).tolist(),
            "max_drop": float(group["drop"].max()),
            "mean_drop": float(group["drop"].mean()),
        }
        for column in EXPLANATION_COLUMNS:
            if column in group.columns:
                row[column] = group[column].iloc[0]
        rows.append(row)
    return pd.DataFrame(rows)


def default_chart_units(summary: pd.DataFrame, n: int = 6) -> list[str]:
    """The ablations with the largest single-class drop, largest first."""
    return summary.sort_values(["max_drop", "unit"], ascending=[False, True])["units"].head(n).tolist()


def _explanation(group: pd.DataFrame) -> str | None:
    if "explanation" not in group.columns:
        return None
    value = group["explanation"].iloc[0]
    return None if pd.isna(value) else str(value)


def _title(units: str, group: pd.DataFrame) -> str:
    label = f"unit {units}" if "+" not in units else f"units {units}"
    text = _explanation(group)
    return f"{label}: “{text}”" if text else label


def drop_chart(table: pd.DataFrame, units: Sequence[str | int], top: int = 5) -> bytes:
    """PNG bytes: per ablation, its ``top`` most affected classes with their accuracy drops."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    chosen = [str(u) for u in units]
    columns = min(3, max(1, len(chosen)))
    rows = max(1, -(-len(chosen) // columns))
    fig, axes = plt.subplots(rows, columns, figsize=(4.6 * columns, 0.45 * top * rows + 1.3 * rows), squeeze=False)
    for ax in axes.flat[len(chosen):]:
        ax.axis("off")
    for ax, label in zip(axes.flat, chosen):
        group = table[table["units"] == label].nsmallest(top, "rank")
        if group.empty:
            ax.set_title(f"unit {label}: not ablated", fontsize=9)
            ax.axis("off")
            continue
        drops = group["drop"].to_numpy() * 100
        names = [textwrap.shorten(str(n), 28) for n in group["class_name"]]
        bars = ax.barh(range(len(group)), drops, color=["#c0392b" if d > 0 else "#7f8c8d" for d in drops])
        ax.set_yticks(range(len(group)), names, fontsize=8)
        ax.invert_yaxis()
        ax.set_xlabel("accuracy drop (points)", fontsize=8)
        ax.set_xlim(min(0.0, float(drops.min())) - 5, max(100.0, float(drops.max())) * 1.3)  # room for the labels
        for bar, (_, r) in zip(bars, group.iterrows()):
            ax.text(bar.get_width() + 1, bar.get_y() + bar.get_height() / 2,
                    f"{r.baseline_acc:.0%}→{r.ablated_acc:.0%}", va="center", fontsize=7)
        ax.set_title("\n".join(textwrap.wrap(_title(label, group), 44)), fontsize=9)
        ax.tick_params(axis="x", labelsize=7)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    plt.close(fig)
    return buffer.getvalue()


def report_section(table: pd.DataFrame, units: Sequence[str | int], top: int, png: bytes | None = None) -> str:
    """An HTML fragment: the chart (if given) and, per chosen ablation, a table of its top classes."""
    parts = ['<section class="ablation">', "<h2>Unit ablation: classes that depend on each unit</h2>"]
    if png is not None:
        parts.append(f'<img alt="ablation chart" src="data:image/png;base64,{base64.b64encode(png).decode()}">')
    for label in (str(u) for u in units):
        group = table[table["units"] == label].nsmallest(top, "rank")
        if group.empty:
            continue
        parts.append(f"<h3>{html.escape(_title(label, group))}</h3>")
        parts.append("<table><tr><th>class</th><th>images</th><th>baseline</th><th>ablated</th><th>drop</th></tr>")
        for r in group.itertuples():
            parts.append(
                f"<tr><td>{html.escape(str(r.class_name))}</td><td>{r.support}</td><td>{r.baseline_acc:.1%}</td>"
                f"<td>{r.ablated_acc:.1%}</td><td>{r.drop * 100:+.1f}</td></tr>"
            )
        parts.append("</table>")
    parts.append("</section>")
    return "\n".join(parts)


def report_page(layer: str, section: str) -> str:
    title = html.escape(f"neuroscribe: ablation of {layer}")
    style = "body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}td,th{padding:2px 8px;border-bottom:1px solid #ddd}img{max-width:100%}"
    return f"<!doctype html><html><head><meta charset='utf-8'><title>{title}</title><style>{style}</style></head><body><h1>{title}</h1>{section}</body></html>"
