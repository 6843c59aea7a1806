"""Images that cost too much: bombs are refused from their header, huge JPEGs decode in draft mode.

No decode may touch PIL's module-global limit, which every thread of the process shares.
"""

from __future__ import annotations

import io
import resource
import threading
import time
import types
import warnings

import numpy as np
import pytest
from PIL import Image

from neuroscribe.config import (
    DatasetSpec,
    ExtractConfig,
    ModelSpec,
    pil_max_image_pixels,
)
from neuroscribe.data.images import ImageSkipped, decode_image
from neuroscribe.extraction import run_extraction
from neuroscribe.testing.bombs import bomb_gif, bomb_png, huge_jpeg

PIL_DEFAULT = 2 * (1024 * 1024 * 1024 // 4 // 3)  # where PIL's documented default check refuses (~179 Mpx)


@pytest.fixture(scope="module")
def png_bomb() -> bytes:
    return bomb_png(30000, 30000)


def _skip_reason(data: bytes, **kw) -> str:
    with pytest.raises(ImageSkipped) as info:
        decode_image(data, "bomb", **kw)
    return info.value.reason


def test_default_limit_is_pils_own():
    assert pil_max_image_pixels() == PIL_DEFAULT == DatasetSpec(uri="x").max_image_pixels


def test_png_bomb_is_skipped_from_its_header_cheaply(png_bomb):
    assert len(png_bomb) < 200_000  # 900 Mpx in ~110 KB
    began, peak_before = time.perf_counter(), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # not even PIL's DecompressionBombWarning is raised
        reason = _skip_reason(png_bomb)
    # generous bounds (decoding it took 78 s and 2.7 GB): benchmarks/image_limits.py measures it
    assert time.perf_counter() - began < 5
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak_before < 100_000  # KiB
    assert reason.startswith("image too large")
    for part in ("30000x30000", "900.0 Mpx", f"{PIL_DEFAULT / 1e6:.1f} Mpx", "--max-image-pixels"):
        assert part in reason


def test_gif_bomb_is_skipped():
    reason = _skip_reason(bomb_gif(30000, 30000))
    assert reason.startswith("image too large") and "30000x30000" in reason and "--max-image-pixels" in reason


def test_huge_jpeg_decodes_through_draft_mode():
    data = huge_jpeg(16384, 16384)  # 268 Mpx, over PIL's limit and ours
    out = decode_image(data, "huge.jpg")
    # libjpeg's 1/8 scale: 2048 per side (>= DRAFT_MIN_SIDE), and the pixels are the encoded grey
    assert out.size == (2048, 2048) and out.mode == "RGB"
    arr = np.asarray(out)
    assert arr.min() == arr.max() == 128


@pytest.mark.parametrize("divisor, side", [(3, 1024), (5, 512), (40, 256)])
def test_jpeg_over_the_limit_is_reduced_just_enough(divisor, side):
    out = decode_image(huge_jpeg(2048, 2048), max_image_pixels=2048 * 2048 // divisor)
    assert out.size == (side, side) and np.asarray(out).max() == 128


def test_jpeg_over_64_times_the_limit_is_skipped_even_in_draft():
    reason = _skip_reason(huge_jpeg(2048, 2048), max_image_pixels=2048 * 2048 // 100)
    assert reason.startswith("image too large") and "256x256 at the smallest JPEG scale" in reason


def test_limit_is_per_call_and_applies_to_every_other_format():
    png = io.BytesIO()
    Image.new("RGB", (100, 50), (1, 2, 3)).save(png, "PNG")
    assert decode_image(png.getvalue(), max_image_pixels=5000).size == (100, 50)
    reason = _skip_reason(png.getvalue(), max_image_pixels=4999)
    assert "100x50" in reason and "0.0 Mpx" in reason and "--max-image-pixels" in reason
    # a limit raised above PIL's: PIL would refuse a 400 Mpx image in Image.open, this decodes its header
    assert "not an image" not in _skip_reason(bomb_gif(20000, 20000), max_image_pixels=300_000_000)


def test_decoding_in_threads_never_writes_pils_global(png_bomb, monkeypatch):
    """PIL's module records every write of MAX_IMAGE_PIXELS while bombs and JPEGs decode in threads."""
    writes = []

    class Recording(types.ModuleType):
        def __setattr__(self, name, value):
            if name == "MAX_IMAGE_PIXELS":
                writes.append(value)
            super().__setattr__(name, value)

    monkeypatch.setattr(Image, "__class__", Recording)
    jobs = [png_bomb, bomb_gif(30000, 30000), huge_jpeg(8192, 8192)] * 2
    results = []
    threads = [threading.Thread(target=lambda d=d: results.append(_outcome(d))) for d in jobs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert writes == [] and Image.MAX_IMAGE_PIXELS == PIL_DEFAULT // 2
    assert sorted(results) == ["decoded"] * 2 + ["skipped"] * 4


def _outcome(data: bytes) -> str:
    try:
        decode_image(data, max_image_pixels=50_000_000)
        return "decoded"
    except ImageSkipped:
        return "skipped"


def test_extraction_summary_counts_bombs_skipped_and_the_huge_jpeg_decoded(image_folder, tmp_path, png_bomb):
    odd = image_folder / "class0"
    (odd / "zz_bomb.png").write_bytes(png_bomb)
    (odd / "zz_bomb.gif").write_bytes(bomb_gif(30000, 30000))
    (odd / "zz_huge.jpg").write_bytes(huge_jpeg(16384, 16384))
    cfg = ExtractConfig(
        model=ModelSpec(name="neuroscribe.testing.tiny_models:tiny_cnn"), layers="conv1",
        dataset=DatasetSpec(uri=str(image_folder), shard_size=8), store=str(tmp_path / "store"), k=2,
    )
    summary = run_extraction(cfg)
    assert (summary.images, summary.ok, summary.skipped) == (15, 13, 2)
    assert summary.skipped_reasons == {"image too large": 2}
    from neuroscribe import store as st

    index = st.StoreFile(cfg.store, "index.parquet").read_parquet().set_index("path")
    status = {p.rsplit("/", 1)[-1]: s for p, s in index["status"].items()}
    assert (status["zz_bomb.png"], status["zz_bomb.gif"], status["zz_huge.jpg"]) == ("skipped", "skipped", "ok")
