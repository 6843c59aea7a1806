"""Odd images decode correctly; bad ones raise ImageSkipped with a reason."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from neuroscribe.config import pil_max_image_pixels
from neuroscribe.data import images as img_mod
from neuroscribe.data.images import ImageSkipped, decode_image, load_image


def _encode(image: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    image.save(buf, fmt, **kw)
    return buf.getvalue()


def _gradient(w=32, h=24) -> np.ndarray:
    x = np.linspace(0, 255, w, dtype=np.uint8)[None, :].repeat(h, 0)
    y = np.linspace(0, 255, h, dtype=np.uint8)[:, None].repeat(w, 1)
    return np.stack([x, y, 255 - x], axis=-1)


def test_grayscale_becomes_three_equal_channels():
    gray = Image.fromarray(_gradient()[..., 0], "L")
    out = decode_image(_encode(gray, "PNG"))
    arr = np.asarray(out)
    assert out.mode == "RGB" and arr.shape == (24, 32, 3)
    np.testing.assert_array_equal(arr[..., 0], np.asarray(gray))
    np.testing.assert_array_equal(arr[..., 0], arr[..., 2])


def test_cmyk_jpeg_becomes_rgb():
    cmyk = Image.new("CMYK", (16, 16), (0, 255, 255, 0))  # pure red in CMYK
    out = np.asarray(decode_image(_encode(cmyk, "JPEG", quality=95)))
    assert out.shape == (16, 16, 3)
    assert out[..., 0].mean() > 200 and out[..., 1].mean() < 60 and out[..., 2].mean() < 60


def test_palette_with_transparency_is_composited_on_white():
    pal = Image.new("P", (8, 8), 0)
    pal.putpalette([255, 0, 0] + [0, 0, 255] * 255)
    pal.putpixel((0, 0), 1)
    pal.info["transparency"] = 0  # red index transparent
    out = np.asarray(decode_image(_encode(pal, "PNG")))
    assert tuple(out[5, 5]) == (255, 255, 255)  # transparent -> white
    assert tuple(out[0, 0]) == (0, 0, 255)


def test_alpha_is_composited_on_white():
    rgba = np.zeros((4, 4, 4), np.uint8)
    rgba[..., 0] = 255
    rgba[..., 3] = 128
    out = np.asarray(decode_image(_encode(Image.fromarray(rgba, "RGBA"), "PNG")))
    # 50% red over white -> (255, ~127, ~127)
    assert tuple(out[0, 0]) == (255, 127, 127) or tuple(out[0, 0]) == (255, 126, 126)


def test_sixteen_bit_is_scaled_not_clipped():
    arr16 = (np.linspace(0, 65535, 64).reshape(8, 8)).astype(np.uint16)
    out = np.asarray(decode_image(_encode(Image.fromarray(arr16), "PNG")))
    np.testing.assert_allclose(out[..., 0].astype(float), arr16 / 257.0, atol=1.0)


def test_exif_rotation_is_applied():
    base = Image.fromarray(_gradient(32, 24))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 CW on display
    out = decode_image(_encode(base, "JPEG", quality=95, exif=exif.tobytes()))
    assert out.size == (24, 32)
    expected = np.asarray(base.transpose(Image.Transpose.ROTATE_270)).astype(int)
    assert np.abs(np.asarray(out).astype(int) - expected).mean() < 4


def test_very_large_jpeg_decodes_at_reduced_scale(monkeypatch):
    monkeypatch.setattr(img_mod, "LARGE_IMAGE_PIXELS", 1000)  # stands for 40 Mpx; same code path
    monkeypatch.setattr(img_mod, "DRAFT_MIN_SIDE", 64)
    big = Image.fromarray(np.full((512, 768, 3), 90, np.uint8))
    out = decode_image(_encode(big, "JPEG"))
    assert min(out.size) >= 64 and out.size[0] < 768 and abs(out.size[0] / out.size[1] - 1.5) < 0.05


def test_pils_global_limit_is_neither_used_per_decode_nor_changed(monkeypatch):
    default = pil_max_image_pixels()  # read once: the default limit
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)  # another library in the process lowers PIL's global
    out = decode_image(_encode(Image.new("RGB", (40, 30)), "PNG"))
    assert out.size == (40, 30) and Image.MAX_IMAGE_PIXELS == 100 and pil_max_image_pixels() == default


@pytest.mark.parametrize(
    "data, reason",
    [
        (b"", "empty file"),
        (b"hello, I am a text file", "not an image"),
        (_encode(Image.new("RGB", (64, 64), (9, 9, 9)), "JPEG")[:200], "truncated"),
        (_encode(Image.new("RGB", (64, 64), (9, 9, 9)), "PNG")[:60], "truncated"),
    ],
)
def test_bad_files_are_skipped_with_a_reason(data, reason):
    with pytest.raises(ImageSkipped) as info:
        decode_image(data, "x.jpg")
    assert info.value.reason.startswith(reason) or reason in info.value.reason


def test_missing_file_is_skipped(tmp_path):
    with pytest.raises(ImageSkipped, match="file not found"):
        load_image(str(tmp_path / "nope.jpg"))
