"""Images that cost too much, built small on disk without ever holding their pixels.

    png = bomb_png(30000, 30000)      # 900 Mpx, 1-bit, ~110 KB of zlib
    gif = bomb_gif(30000, 30000)      # logical screen of 900 Mpx
    jpg = huge_jpeg(16384, 16384)     # a real 268 Mpx grey JPEG, ~3 MB, every pixel 128
"""

from __future__ import annotations

import io
import struct
import zlib

from PIL import Image


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def bomb_png(width: int, height: int, rows_per_chunk: int = 2000) -> bytes:
    """A valid black 1-bit PNG: every row is a filter byte and width/8 zero bytes, deflated in chunks."""
    row = b"\x00" * (1 + (width + 7) // 8)
    packer = zlib.compressobj(9)
    data = b"".join(packer.compress(row * min(rows_per_chunk, height - y)) for y in range(0, height, rows_per_chunk)) + packer.flush()
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)  # bit depth 1, greyscale
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header) + _png_chunk(b"IDAT", data) + _png_chunk(b"IEND", b"")


def bomb_gif(width: int, height: int) -> bytes:
    """A 1x1 GIF whose logical screen (the image size a decoder allocates) is width x height."""
    buf = io.BytesIO()
    Image.new("P", (1, 1), 0).save(buf, "GIF")
    data = buf.getvalue()
    return data[:6] + struct.pack("<HH", width, height) + data[10:]


# Baseline JPEG entropy data of a uniform 128-grey image with the standard Huffman tables: every 8x8
# block is DC difference 0 (code 00) then end-of-block (code 1010); four blocks fill these 3 bytes.
FOUR_GREY_BLOCKS = bytes.fromhex("28a28a")


def huge_jpeg(width: int, height: int) -> bytes:
    """A real greyscale JPEG of width x height (multiples of 32), every pixel 128, encoded by hand.

    A 64x64 image from PIL gives the headers; its SOF0 size is patched and its scan repeated.
    """
    assert width % 32 == 0 and height % 32 == 0
    buf = io.BytesIO()
    Image.new("L", (64, 64), 128).save(buf, "JPEG", quality=75)
    small = buf.getvalue()
    sos = small.index(b"\xff\xda")
    scan_start = sos + 2 + int.from_bytes(small[sos + 2 : sos + 4], "big")
    assert small[scan_start:-2] == FOUR_GREY_BLOCKS * 16, "PIL's encoder no longer uses the standard tables"
    sof = small.index(b"\xff\xc0")
    head = bytearray(small[:scan_start])
    head[sof + 5 : sof + 9] = struct.pack(">HH", height, width)
    return bytes(head) + FOUR_GREY_BLOCKS * (width * height // 256) + b"\xff\xd9"
