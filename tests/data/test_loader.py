"""The input pipeline yields what decode_image + the model transform give, in order, with the same skips."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from neuroscribe.data import ImageSkipped, load_image
from neuroscribe.data.loader import _gpu_decodable, image_batches
from neuroscribe.models import Preprocessing

PREP = Preprocessing(input_size=32, resize_size=36)


def _jpeg(arr: np.ndarray, **kw) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="JPEG", quality=90, **kw)
    return buf.getvalue()


@pytest.fixture
def mixed_folder(tmp_path) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    paths = []
    for i in range(7):
        arr = rng.integers(0, 256, size=(40 + i, 50, 3), dtype=np.uint8)
        path = tmp_path / f"{i}.{'png' if i % 3 == 0 else 'jpg'}"
        if i % 3 == 0:
            Image.fromarray(arr).save(path)
        else:
            path.write_bytes(_jpeg(arr))
        paths.append(str(path))
    (tmp_path / "empty.jpg").write_bytes(b"")
    (tmp_path / "cut.jpg").write_bytes(_jpeg(rng.integers(0, 256, size=(40, 40, 3), dtype=np.uint8))[:300])
    (tmp_path / "text.jpg").write_text("not an image")
    extra = [str(tmp_path / n) for n in ("empty.jpg", "cut.jpg", "text.jpg", "missing.jpg")]
    order = paths[:2] + extra[:2] + paths[2:5] + extra[2:] + paths[5:]
    return pd.DataFrame({"path": order})


def _expected(index: pd.DataFrame):
    transform = PREP.transform()
    ok, skipped = {}, {}
    for pos, path in enumerate(index["path"]):
        try:
            ok[pos] = transform(load_image(path))
        except ImageSkipped as skip:
            skipped[pos] = skip.reason
    return ok, skipped


@pytest.mark.parametrize(("workers", "processes"), [(0, False), (2, False), (2, True)])
def test_batches_equal_decode_image_and_transform_with_the_same_skips(mixed_folder, workers, processes):
    ok, skipped = _expected(mixed_folder)
    assert len(skipped) == 4  # empty, truncated, not an image, missing
    seen_ok, seen_skipped, order = {}, {}, []
    for batch in image_batches(mixed_folder, PREP.transform(), batch_size=3, device=torch.device("cpu"), workers=workers, processes=processes):
        order.extend(batch.positions.tolist())
        seen_skipped.update(dict(batch.skipped))
        if batch.pixels is not None:
            assert batch.pixels.is_contiguous(memory_format=torch.channels_last)
            seen_ok.update(zip(batch.positions.tolist(), batch.pixels))
    assert order == sorted(ok)  # in index order, every usable row once
    assert seen_skipped == skipped
    for pos, tensor in ok.items():
        torch.testing.assert_close(seen_ok[pos], tensor, rtol=0, atol=0)


def test_only_plain_jpegs_go_to_the_gpu_decoder():
    rgb = np.random.default_rng(1).integers(0, 256, size=(30, 40, 3), dtype=np.uint8)
    assert _gpu_decodable(_jpeg(rgb))
    assert _gpu_decodable(_jpeg(rgb[..., 0]))  # greyscale
    cmyk = io.BytesIO()
    Image.fromarray(rgb).convert("CMYK").save(cmyk, format="JPEG")
    assert not _gpu_decodable(cmyk.getvalue())
    exif = Image.Exif()
    exif[0x0112] = 6  # rotated: decode_image turns it upright, nvjpeg would not
    assert not _gpu_decodable(_jpeg(rgb, exif=exif.tobytes()))
    png = io.BytesIO()
    Image.fromarray(rgb).save(png, format="PNG")
    assert not _gpu_decodable(png.getvalue())
    assert not _gpu_decodable(b"")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA (nvjpeg decode and pinned copies)")
def test_cuda_batches_match_the_cpu_path(mixed_folder):
    cpu = {}
    for batch in image_batches(mixed_folder, PREP.transform(), 4, torch.device("cpu"), workers=0):
        if batch.pixels is not None:
            cpu.update(zip(batch.positions.tolist(), batch.pixels))
    gpu, skipped = {}, {}
    for batch in image_batches(mixed_folder, PREP.transform(), 4, torch.device("cuda"), workers=2):
        skipped.update(dict(batch.skipped))
        if batch.pixels is not None:
            assert batch.pixels.device.type == "cuda"
            gpu.update(zip(batch.positions.tolist(), batch.pixels.cpu()))
    assert sorted(gpu) == sorted(cpu) and len(skipped) == 4
    for pos, expected in cpu.items():  # nvjpeg's IDCT differs from libjpeg's by a grey level here and there
        torch.testing.assert_close(gpu[pos], expected, rtol=0, atol=0.1)
