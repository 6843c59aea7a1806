"""The example notebook, executed by a real Jupyter kernel (nbclient + ipykernel), its outputs checked.

It is ``examples/explain_a_model_object.ipynb`` itself, with its parameters cell overridden (as
papermill does) to 40 images and the 24-unit layer ``blocks.1``: it explains a layer of an
EfficientNet-Lite0 object, reads the table, renders the gallery and a unit, ablates the unit and
reopens the store.
"""

from __future__ import annotations

import base64
import io
import re
from pathlib import Path

import pytest
from markupsafe import escape
from PIL import Image

from neuroscribe import store as st

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

NOTEBOOK = Path(__file__).resolve().parents[1] / "examples" / "explain_a_model_object.ipynb"
LAYER = "blocks.1"
pytestmark = [pytest.mark.samples, pytest.mark.slow]  # EfficientNet-Lite0 and the ConSE backend in a kernel


def _outputs(notebook, tag: str) -> list[dict]:
    [cell] = [c for c in notebook.cells if tag in c.metadata.get("tags", [])]
    return cell.outputs


def _html(notebook, tag: str) -> str:
    return "".join(o["data"]["text/html"] for o in _outputs(notebook, tag) if "text/html" in o.get("data", {}))


def _images(html: str, kind: str) -> list[Image.Image]:
    return [Image.open(io.BytesIO(base64.b64decode(data))) for data in re.findall(rf'src="data:image/{kind};base64,([^"]+)"', html)]


def test_example_notebook_runs_in_a_jupyter_kernel(samples_dir, tmp_path):
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    [position] = [i for i, c in enumerate(notebook.cells) if "parameters" in c.metadata.get("tags", [])]
    store = tmp_path / "store"
    notebook.cells.insert(position + 1, nbformat.v4.new_code_cell(
        f"SAMPLES = {str(samples_dir)!r}\nN_IMAGES = 40\nLAYER = {LAYER!r}\nSTORE = {str(store)!r}"
    ))
    nbclient.NotebookClient(notebook, kernel_name="python3", timeout=1200, resources={"metadata": {"path": str(NOTEBOOK.parent)}}).execute()
    assert not [o for c in notebook.cells if c.cell_type == "code" for o in c.outputs if o["output_type"] == "error"]

    table = st.StoreFile(str(store), f"explanations/{LAYER}.parquet").read_parquet()
    assert len(table) == 24 and st.StoreFile(str(store), "index.parquet").read_parquet()["status"].eq("ok").sum() == 40
    assert f"neuroscribe run <code>{store}</code>" in _html(notebook, "explain")
    shown = _html(notebook, "table")  # the DataFrame as the kernel displayed it: every unit and its label
    cells = [label.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;") for label in table["explanation"]]
    assert shown.count("<tr") == 1 + 24 and all(f"<td>{label}</td>" in shown for label in cells)

    gallery = _html(notebook, "gallery")
    active = table[table["top_image_ids"].map(len) > 0]
    strips = _images(gallery, "jpeg")
    assert "page 1 of 2" in gallery and len(strips) == min(12, len(active))
    assert all(s.height == 88 and (s.width + 4) % (88 + 4) == 0 and s.width <= 5 * 92 for s in strips)  # up to k = 5 patches

    best = table.sort_values("score", ascending=False).iloc[0]
    unit = _html(notebook, "unit")
    assert f"{LAYER} unit {best['unit']}: {escape(best['explanation'])}" in unit and len(_images(unit, "jpeg")) == 1

    ablation = _html(notebook, "ablate")
    summary = st.StoreFile(str(store), f"summary/ablate-{LAYER}.json").read_json()
    assert f"Ablation of {LAYER}" in ablation and summary["images"] == 40 and summary["ablations"] == 1
    assert [image.format for image in _images(ablation, "png")] == ["PNG"]
    drops = st.StoreFile(str(store), f"ablation/{LAYER}.parquet").read_parquet()
    assert set(drops["unit"]) == {int(best["unit"])} and _html(notebook, "drops").count("<tr") == 1 + 5

    [reopened] = [o for o in _outputs(notebook, "reopen") if o["output_type"] == "execute_result"]
    assert reopened["data"]["text/plain"] == f"(['{LAYER}'], True, True)"
