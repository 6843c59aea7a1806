"""The HTML gallery: every unit present, offline, searchable, paged, and strips that show the masks."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from neuroscribe import store as st
from neuroscribe.errors import NeuroscribeError
from neuroscribe.gallery import (
    DIM,
    GAP,
    OUTLINE_RGB,
    outlined,
    page_html,
    render_gallery,
)
from neuroscribe.patches import load_unit_patches

CHROMIUM = next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome") if shutil.which(n)), None)


def page_data(page: str) -> dict:
    blob = re.search(r'<script type="application/json" id="gallery-data">(.*?)</script>', page, re.DOTALL).group(1)
    return json.loads(blob)


def explanations_for(units: list[int]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "layer": "relu2",
            "unit": units,
            "explanation": ["red blobs" if u % 2 else "striped </script><b>texture</b>" for u in units],
            "score": [0.1 * u for u in units],
            "margin": 0.05,
            "agreement": 0.8,
            "alternatives": [["orange", "fire"] for _ in units],
            "top_image_ids": [[] for _ in units],
        }
    )


def test_gallery_lists_every_unit_and_works_offline(gallery_run):
    frame = explanations_for([0, 1, 2, 5, 6])
    uri = render_gallery(gallery_run, "relu2", frame, patches_shown=4)
    assert uri == st.full_uri(gallery_run, "gallery/relu2.html")
    page = Path(uri).read_text()
    data = page_data(page)
    assert [u["u"] for u in data["units"]] == list(range(16))
    by_unit = {u["u"]: u for u in data["units"]}
    assert by_unit[1]["x"] == "red blobs" and by_unit[1]["s"] == pytest.approx(0.1) and by_unit[1]["alt"] == ["orange", "fire"]
    assert "x" not in by_unit[4]  # unexplained
    assert data["concepts"] == [["striped </script><b>texture</b>", 3], ["red blobs", 2]]  # most frequent first
    # explanation text cannot break out of the data block
    assert "</script><b>" not in page and by_unit[0]["x"] == "striped </script><b>texture</b>"
    # offline: no network references of any kind
    assert not re.search(r"https?://|//cdn|<link\b|@import|src=\"//", page, re.IGNORECASE)
    for element in ('id="search"', 'id="concept"', 'id="sort"', 'class="pager"', 'id="page-size"', '"loading", "lazy"'):
        assert element in page
    # every active unit's strip exists beside the page and shows min(4, its patches) thumbnails
    for u in data["units"]:
        patches = load_unit_patches(gallery_run, "relu2", u["u"])
        assert u["n"] == len(patches)
        if not patches:
            assert "img" not in u
            continue
        with Image.open(Path(uri).parent / u["img"]) as strip:
            assert strip.size == (u["k"] * 88 + (u["k"] - 1) * GAP, 88)
        assert u["k"] == min(4, len(patches)) and u["ids"] == [p.image_id for p in patches][:4]


def test_inactive_and_unexplained_units_render(gallery_run):
    page = Path(render_gallery(gallery_run, "relu2")).read_text()
    units = page_data(page)["units"]
    assert units[3]["n"] == 0 and "img" not in units[3]
    assert not any("x" in u for u in units) and page_data(page)["concepts"] == []
    assert "(inactive)" in page and "unexplained" in page


def test_outline_follows_the_mask():
    crop = np.full((40, 40, 3), 100, dtype=np.uint8)
    mask = np.zeros((40, 40), dtype=bool)
    mask[10:30, 10:30] = True
    out = np.asarray(outlined(crop, mask, 40))
    assert (out[10, 20] == OUTLINE_RGB).all() and (out[9, 20] == OUTLINE_RGB).all()  # both sides of the edge
    assert (out[20, 20] == 100).all()  # inside untouched
    assert (out[2, 2] == int(100 * DIM)).all()  # outside dimmed
    assert (np.asarray(outlined(crop, np.ones((40, 40), bool), 40)) == 100).all()  # whole-image mask: no outline


def test_explanations_choose_which_images_come_first(gallery_run):
    patches = load_unit_patches(gallery_run, "relu2", 0)
    wanted = [patches[-1].image_id, patches[1].image_id]
    frame = explanations_for([0]).assign(top_image_ids=[wanted + [9999]])
    data = page_data(Path(render_gallery(gallery_run, "relu2", frame, patches_shown=3)).read_text())
    assert data["units"][0]["ids"] == wanted + [patches[0].image_id]


def test_rerender_rewrites_only_changed_strips(gallery_run):
    uri = render_gallery(gallery_run, "relu2", patches_shown=4)
    folder = Path(uri).parent / "relu2"
    first = {p.name: p.stat().st_mtime_ns for p in folder.iterdir()}
    render_gallery(gallery_run, "relu2", explanations_for([1]), patches_shown=4)
    assert {p.name: p.stat().st_mtime_ns for p in folder.iterdir()} == first  # labels changed, strips not
    render_gallery(gallery_run, "relu2", patches_shown=2)
    names = {p.name for p in folder.iterdir()}
    shown = page_data(Path(uri).read_text())["units"]
    assert {u["img"].split("/")[-1] for u in shown if "img" in u} == names  # stale strips removed
    changed = {u["img"].split("/")[-1] for u in shown if u["n"] > 2}
    assert changed and not changed & set(first)  # strips now showing fewer patches are new


def test_linear_layer_strips_have_no_outline(gallery_run):
    uri = render_gallery(gallery_run, "fc", patches_shown=4)
    unit = page_data(Path(uri).read_text())["units"][0]
    strip = np.asarray(Image.open(Path(uri).parent / unit["img"]).convert("RGB")).astype(int)
    near_outline = (np.abs(strip - OUTLINE_RGB.astype(int)).sum(axis=2) < 40).mean()
    assert near_outline < 0.01


def test_bad_inputs(gallery_run):
    with pytest.raises(NeuroscribeError, match="no patches"):
        render_gallery(gallery_run, "conv2")
    with pytest.raises(NeuroscribeError, match="'unit' column"):
        render_gallery(gallery_run, "relu2", pd.DataFrame({"explanation": ["x"]}))


def _dump_dom(url: str) -> str:
    out = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=3000", "--dump-dom", url],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return out.stdout


@pytest.mark.skipif(CHROMIUM is None, reason="headless check needs chromium installed (optional)")
def test_browser_pages_search_and_filter(gallery_run):
    frame = explanations_for(list(range(16)))
    uri = render_gallery(gallery_run, "relu2", frame, page_size=5)
    url = Path(uri).resolve().as_uri()
    assert _dump_dom(url).count('<article class="unit') == 5
    assert _dump_dom(url + "#page=4&size=5").count('<article class="unit') == 1
    found = _dump_dom(url + "#q=unit%2012")
    assert found.count('<article class="unit') == 1 and 'id="unit-12"' in found
    assert _dump_dom(url + "#concept=red%20blobs&size=48").count('<article class="unit') == 8


def test_a_2048_unit_page_stays_small_and_renders_one_page(tmp_path):
    vocab = ["dog faces", "stripes", "text", "water", "grass"]
    units = [
        {"u": u, "n": 10, "x": vocab[u % 5], "s": round(u / 2048, 4), "alt": ["sky"], "img": f"layer/{u:05d}.jpg", "k": 6, "ids": list(range(6)), "w": 0}
        for u in range(2048)
    ]
    page = page_html("model · layer", "2048 units", units, [[c, 2048 // 5] for c in vocab], 48, 88)
    assert len(page) < 800_000 and [u["u"] for u in page_data(page)["units"]] == list(range(2048))
    if CHROMIUM is None:
        pytest.skip("rendering check needs chromium installed (optional)")
    path = tmp_path / "layer.html"
    path.write_text(page)
    url = path.resolve().as_uri()
    assert _dump_dom(url).count('<article class="unit') == 48  # one page in the DOM, not 2,048 cards
    assert _dump_dom(url + "#page=43").count('<article class="unit') == 2048 - 42 * 48
    assert _dump_dom(url + "#q=unit%202047").count('<article class="unit') == 1
    assert _dump_dom(url + "#concept=text&sort=score-desc&size=192").count('<article class="unit') == 192


def test_low_confidence_labels_are_marked_uncertain(gallery_run):
    frame = explanations_for([0, 1, 2, 3]).assign(confidence=[0.9, 0.2, 0.5, 0.49])
    page = Path(render_gallery(gallery_run, "relu2", frame, patches_shown=2)).read_text()
    by_unit = {u["u"]: u for u in page_data(page)["units"]}
    # the documented threshold: confidence below 0.5 (UNCERTAIN_BELOW) is uncertain
    assert [by_unit[u]["unc"] for u in range(4)] == [False, True, False, True]
    assert by_unit[1]["c"] == pytest.approx(0.2)
    # the table's own flag wins over the threshold
    flagged = frame.assign(uncertain=[True, False, False, False])
    page = Path(render_gallery(gallery_run, "relu2", flagged, patches_shown=2)).read_text()
    assert [u["unc"] for u in page_data(page)["units"][:4]] == [True, False, False, False]
    assert 'value="__uncertain__"' in page and 'value="confidence-asc"' in page
