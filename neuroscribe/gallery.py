"""An offline HTML gallery per layer: each unit's top patches with the activated region outlined,
its explanation and score (the layout of dissection papers' figures: a label above a row of patches).

    uri = render_gallery("runs/r50", "layer4", explanations=frame)   # -> <store>/gallery/layer4.html
    uri = render_gallery("runs/r50", "layer4")                       # no explanations: "unexplained"

It writes (through ``neuroscribe.store``, so ``s3://`` works) ``gallery/<layer>.html``, one
self-contained page (inline CSS, JS and unit data), and ``gallery/<layer>/<unit>-<key>.jpg``, one strip
of outlined patches per active unit.  The page needs no network: the unit data is inline JSON rendered
page by page in vanilla JS (search, concept filter, sort) and strips load lazily, so 2,048 units stay
fast.  A strip's name hashes what it shows: a rerun rewrites only changed strips, removes unused ones.
``explanations`` (one row per unit) has ``unit`` and optionally the other columns of
``explanation.score_layer``'s table (lists may be JSON text, as in its CSV); the images of
``top_image_ids`` are shown first.  A label with confidence below ``UNCERTAIN_BELOW`` (0.5) is greyed
as "uncertain"; the page filters to them or sorts by confidence.
"""

from __future__ import annotations

import html
import io
import json
import math
import posixpath
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from importlib.resources import files
from typing import Any
from urllib.parse import quote

import numpy as np
import pandas as pd
from PIL import Image
from scipy import ndimage

from neuroscribe import store as st
from neuroscribe.errors import NeuroscribeError
from neuroscribe.fingerprint import code_version, content_key
from neuroscribe.patches.cut import unit_blocks
from neuroscribe.patches.load import NOT_COMPUTED, ByteLRU, patches_group, read_crops
from neuroscribe.scoring.rules import INACTIVE, UNCERTAIN_BELOW

OUTLINE_RGB = np.array([255, 214, 0], dtype=np.float32)
# Outside the region the patch is dimmed a little, so the outline reads at a glance.
DIM = 0.6
GAP = 4
BACKGROUND = (255, 255, 255)
CONCEPTS_LISTED = 100
NUMBER_KEYS = {"s": "score", "m": "margin", "a": "agreement", "c": "confidence"}  # short keys: small page JSON
THUMBNAILS_KEPT = 4096  # a linear layer's per-image thumbnails kept while its strips are drawn (~95 MB at 88 px)


def _template(name: str) -> str:
    return files("neuroscribe").joinpath("templates", name).read_text(encoding="utf-8")


def outlined(crop: np.ndarray, mask: np.ndarray, size: int, outline: bool = True) -> Image.Image:
    """A thumbnail of ``crop`` with the ``mask`` region outlined and the rest slightly dimmed."""
    image = Image.fromarray(crop).resize((size, size), Image.Resampling.BICUBIC)  # a copy when already that size
    if not outline or not mask.any() or mask.all():
        return image
    small = np.asarray(Image.fromarray(mask.astype(np.uint8) * 255).resize((size, size), Image.Resampling.NEAREST)) > 127
    # a two-pixel line straddling the region's edge; none along the crop's own border
    edge = ndimage.binary_dilation(small) & ~ndimage.binary_erosion(small, border_value=1)
    pixels = np.asarray(image, dtype=np.float32).copy()
    pixels[~small] *= DIM
    pixels[edge] = OUTLINE_RGB
    return Image.fromarray(pixels.astype(np.uint8))


def grid(thumbnails: list[Image.Image], size: int, columns: int | None = None) -> Image.Image:
    """Square thumbnails in rows of ``columns`` (default: one row: a unit's strip, so that one image
    per unit keeps the page's requests few), ``GAP`` pixels apart."""
    columns = columns or len(thumbnails)
    rows = math.ceil(len(thumbnails) / columns)
    canvas = Image.new("RGB", (columns * (size + GAP) - GAP, rows * (size + GAP) - GAP), BACKGROUND)
    for i, thumbnail in enumerate(thumbnails):
        canvas.paste(thumbnail, ((i % columns) * (size + GAP), (i // columns) * (size + GAP)))
    return canvas


def _as_list(value: Any) -> list:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return []
    if isinstance(value, str):
        try:
            parsed = json.loads(value)
        except ValueError:
            return [value] if value else []
        return parsed if isinstance(parsed, list) else [parsed]
    return list(value) if hasattr(value, "__iter__") else [value]


def _number(value: Any) -> float | None:
    number = pd.to_numeric(value, errors="coerce")  # None, text and NaN are no number
    return None if pd.isna(number) else round(float(number), 4)


def _alternative(value: Any) -> tuple[Any, str]:
    """(concept, ``concept (score)``) of the table's {concept, score} records or (concept, score) pairs."""
    concept, score = value, None
    if isinstance(value, dict):
        concept, score = value.get("concept"), value.get("score")
    elif isinstance(value, (list, tuple)) and value:
        concept, score = value[0], value[1] if len(value) > 1 else None
    number = _number(score)
    return concept, f"{concept} ({number:.3f})" if number is not None else str(concept)


def _uncertain(record: dict) -> bool:
    """The table's ``uncertain`` flag, else confidence < ``UNCERTAIN_BELOW`` (no confidence: no mark)."""
    if not pd.isna(flag := record.get("uncertain")):
        return bool(flag)
    confidence = _number(record.get("confidence"))
    return confidence is not None and confidence < UNCERTAIN_BELOW and record.get("explanation") != INACTIVE


def _explanation_rows(explanations: pd.DataFrame | None, layer: str) -> dict[int, dict[str, Any]]:
    if explanations is None or explanations.empty:
        return {}
    if "unit" not in explanations.columns:
        raise NeuroscribeError("explanations need a 'unit' column (one row per unit); pass the explanations table")
    frame = explanations[explanations["layer"].astype(str) == layer] if "layer" in explanations else explanations
    rows = {}
    for record in frame.to_dict("records"):
        text, alternatives = record.get("explanation"), _as_list(record.get("alternatives"))
        rows[int(record["unit"])] = {
            "x": None if pd.isna(text) else str(text),
            **{key: _number(record.get(column)) for key, column in NUMBER_KEYS.items()},
            "unc": _uncertain(record),
            "alt": [shown for concept, shown in map(_alternative, alternatives) if concept != text],
            "top": [int(v) for v in _as_list(record.get("top_image_ids"))],
        }
    return rows


def _entry(unit: int, i: int, small: dict, row: dict, *, shown: int, layer: str, drawn_with: dict) -> tuple[dict, str | None, list]:
    """The unit's record for the page, its strip's file name (None: inactive) and the slots it shows;
    the name hashes what the strip shows (``drawn_with``, its images): reruns redraw only changed strips."""
    ids = small["image_id"][i]
    if (ids == NOT_COMPUTED).any():
        raise NeuroscribeError(f"patches of layer {layer!r} are not computed yet for unit {unit}; rerun extract_patches to finish them")
    slots = [int(j) for j in np.flatnonzero(ids >= 0)]
    by_image = {int(ids[j]): j for j in slots}
    first = [by_image[image] for image in dict.fromkeys(row.get("top", [])) if image in by_image]
    # images named by the explanation first (in its order), then the rest by rank
    slots = (first + [j for j in slots if j not in first])[:shown]
    entry = {"u": unit, "n": len(by_image)} | {k: v for k, v in row.items() if k != "top"}
    entry["w"] = int(small["fallback"][i, slots].sum()) if slots else 0
    if not slots:
        return entry, None, []
    pairs = [(int(ids[j]), int(small["rank"][i, j])) for j in slots]
    name = f"{unit:05d}-{content_key(drawn_with | {'unit': unit, 'shown': pairs}, 10)}.jpg"
    return entry | {"img": f"{quote(layer)}/{name}", "k": len(slots), "ids": [image for image, _ in pairs]}, name, slots


def page_html(title: str, subtitle: str, units: list[dict], concepts: list[list], page_size: int, thumb: int) -> str:
    data = json.dumps({"units": units, "concepts": concepts, "pageSize": page_size, "thumb": thumb}, separators=(",", ":"))
    page = _template("gallery.html")
    for token, value in (
        ("/*STYLE*/", _template("gallery.css")),
        ("/*SCRIPT*/", _template("gallery.js")),
        # "<" escaped so no string inside the data can close the script element
        ("/*DATA*/", data.replace("<", "\\u003c")),
        ("<!--TITLE-->", html.escape(title)),
        ("<!--SUBTITLE-->", html.escape(subtitle)),
    ):
        page = page.replace(token, value)
    return page


def render_gallery(
    store: str, layer: str, explanations: pd.DataFrame | None = None, storage_options: dict | None = None,
    patches_shown: int = 6, *, thumb_size: int = 88, page_size: int = 48,
) -> str:
    """Write ``gallery/<layer>.html`` (and its strips) for the layer's stored patches; returns its URI."""
    if patches_shown < 1 or thumb_size < 16:
        raise NeuroscribeError("patches_shown must be >= 1 and thumb_size >= 16 pixels")
    sub = patches_group(store, layer, storage_options)
    run = st.RunStore(store, storage_options)
    attrs = run.attrs()
    linear = attrs.get("layers", {}).get(layer, {}).get("kind") == "linear"
    rows = _explanation_rows(explanations, layer)
    folder = run.gallery_strips(layer)
    existing = set(folder.list())
    version = code_version("neuroscribe.gallery")
    drawn_with = {"patches": sub.attrs.get("patches_key"), "thumb": thumb_size, "code": version}
    entry_of = partial(_entry, shown=patches_shown, layer=layer, drawn_with=drawn_with)
    units: list[dict] = []
    shards = ByteLRU(256 << 20)  # crop shards kept across blocks: a linear layer's few serve them all
    by_image: dict[int, Image.Image] = {}  # a linear layer's thumbnails: one per image, not per (unit, slot)
    with ThreadPoolExecutor(4) as pool:
        for block in unit_blocks(sub["image_id"].shape[0]):
            small = {name: sub[name][block.start : block.stop] for name in ("image_id", "rank", "fallback")}
            entries = [entry_of(unit, i, small, rows.get(unit, {})) for i, unit in enumerate(block)]
            units += [entry for entry, _, _ in entries]
            pending = [(i, name, slots) for i, (_, name, slots) in enumerate(entries) if name and name not in existing]
            if pending and linear:
                ids = small["image_id"]
                if len(by_image) > THUMBNAILS_KEPT:
                    by_image.clear()  # bounded memory; images shown again are redrawn
                new = np.unique(np.array([ids[i, j] for i, _, slots in pending for j in slots if ids[i, j] not in by_image], np.int64))
                crops, masks = read_crops(sub, np.arange(block.start, block.stop), new[None, :], shards)
                by_image.update(zip(new.tolist(), pool.map(lambda cm: outlined(*cm, thumb_size, outline=False), zip(crops[0], masks[0]))))
                thumbnail = partial(lambda ids, i, j: by_image[int(ids[i, j])], ids)
            elif pending:
                # crops are the bulk of the data: read them only for strips not drawn yet (only the shown slots)
                shown_ids = np.full_like(small["image_id"], -1)
                for i, _, slots in pending:
                    shown_ids[i, slots] = small["image_id"][i, slots]
                crops, masks = read_crops(sub, np.arange(block.start, block.stop), shown_ids, shards)
                thumbnail = partial(lambda crops, masks, i, j: outlined(crops[i, j], masks[i, j], thumb_size), crops, masks)
            if pending:
                list(pool.map(partial(_draw_strip, folder, thumbnail, thumb_size), pending))
    used = {posixpath.basename(u["img"]) for u in units if "img" in u}
    for stale in existing - used:
        folder.folder(stale).remove()
    counts = Counter(u["x"] for u in units if u.get("x"))
    concepts = [[c, n] for c, n in sorted(counts.items(), key=lambda cn: (-cn[1], cn[0]))[:CONCEPTS_LISTED]]
    model = attrs.get("model", {}).get("name", "model")
    inactive = sum(1 for u in units if not u["n"])
    subtitle = f"{len(units)} units · {counts.total()} explained · {inactive} inactive"
    page = page_html(f"{model} · {layer}", subtitle, units, concepts, page_size, thumb_size)
    run.gallery(layer).write_bytes(page.encode("utf-8"))
    return run.gallery(layer).uri


def _draw_strip(folder: st.StoreFile, thumbnail: Callable[[int, int], Image.Image], size, item: tuple[int, str, list[int]]) -> None:
    i, name, slots = item
    buf = io.BytesIO()
    grid([thumbnail(i, j) for j in slots], size).save(buf, format="JPEG", quality=85)
    folder.folder(name).write_bytes(buf.getvalue())
