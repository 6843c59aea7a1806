"""Batches of model inputs from a dataset index, decoded ahead of the model so the device stays busy.

    transform = loaded.preprocessing.transform()
    for batch in image_batches(index, transform, batch_size=64, device=torch.device("cuda"), workers=8):
        model(batch.pixels)           # on the device, channels_last
        batch.positions               # row positions in ``index`` of the batch's images
        batch.skipped                 # [(position, reason)] of the rows that could not be used

Every image is decoded by ``neuroscribe.data.images.decode_image``, so a bad file is skipped with exactly
the reason it gets everywhere else.  ``workers`` decode ahead of the model: threads, or processes (a torch
DataLoader keeping two batches per worker ready) outside a daemonic Dask worker.  On CUDA batches are pinned
and copied without blocking, and the JPEGs nvjpeg reproduces exactly (baseline RGB or greyscale, no EXIF
rotation, too small for draft decoding) are decoded on the GPU; any other file, or one it refuses, uses PIL.
"""

from __future__ import annotations

import io
import itertools
import multiprocessing
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from PIL import Image

from neuroscribe.data.images import (
    LARGE_IMAGE_PIXELS,
    ImageSkipped,
    decode_image,
    read_bytes,
)

Transform = Callable[[torch.Tensor], torch.Tensor]


@dataclass
class Batch:
    positions: np.ndarray  # row positions in the index, in order
    pixels: torch.Tensor | None  # [n, 3, H, W] float on the device, channels_last; None when all were skipped
    skipped: list[tuple[int, str]]


def _gpu_decodable(data: bytes, max_image_pixels: int | None = None) -> bool:
    """A JPEG whose nvjpeg decode equals what ``decode_image`` returns (header read only, no decode)."""
    limit = min(LARGE_IMAGE_PIXELS, max_image_pixels or LARGE_IMAGE_PIXELS)  # larger ones are drafted or skipped by PIL
    if data[:2] != b"\xff\xd8":
        return False
    try:
        img = Image.open(io.BytesIO(data))
        orientation = img.getexif().get(0x0112, 1)
        return img.format == "JPEG" and img.mode in ("RGB", "L") and orientation == 1 and img.width * img.height <= limit
    except Exception:  # noqa: BLE001 - anything PIL dislikes is decode_image's to judge and report
        return False


class _Decoded(torch.utils.data.Dataset):
    """Item ``i``: (i, CHW tensor | raw JPEG bytes as a uint8 tensor | skip reason)."""

    def __init__(
        self, paths: list[str], transform: Transform, storage_options: dict | None, jpeg_bytes: bool, max_image_pixels: int | None
    ):
        self.paths, self.transform, self.storage_options, self.jpeg_bytes = paths, transform, storage_options, jpeg_bytes
        self.max_image_pixels = max_image_pixels

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int):
        try:
            data = read_bytes(self.paths[i], self.storage_options)
        except ImageSkipped as skip:
            return i, skip.reason
        if self.jpeg_bytes and _gpu_decodable(data, self.max_image_pixels):
            return i, torch.frombuffer(bytearray(data), dtype=torch.uint8)
        return i, self.decode(i, data)

    def decode(self, i: int, data: bytes) -> torch.Tensor | str:
        """Item ``i``'s model input decoded by PIL, or the reason it was skipped."""
        try:
            return self.transform(decode_image(data, self.paths[i], max_image_pixels=self.max_image_pixels))
        except ImageSkipped as skip:
            return skip.reason


def _iterate_items(dataset: _Decoded, batch_size: int, workers: int, processes: bool) -> Iterator[list]:
    if processes and workers > 0 and not multiprocessing.current_process().daemon:
        # not pinned here (DataLoader's default): pinned below, after the skipped items are dropped
        yield from torch.utils.data.DataLoader(dataset, batch_size=batch_size, num_workers=workers, collate_fn=list)
        return
    # daemonic processes cannot fork: decode in threads (PIL releases the GIL), still ahead of the model
    with ThreadPoolExecutor(max(workers, 1)) as pool:
        items = pool.map(dataset.__getitem__, range(len(dataset)))
        while batch := list(itertools.islice(items, batch_size)):
            yield batch


def _decode_on_gpu(raw: list[torch.Tensor], device: torch.device) -> list[torch.Tensor | None]:
    """nvjpeg decodes of a batch; None where nvjpeg refused a file (it then goes through PIL)."""
    from torchvision.io import ImageReadMode, decode_jpeg

    try:
        return list(decode_jpeg(raw, mode=ImageReadMode.RGB, device=device))
    except RuntimeError:  # one file nvjpeg refuses fails the batch: decode one at a time, None where refused
        return [None] if len(raw) == 1 else [_decode_on_gpu([data], device)[0] for data in raw]


def image_batches(
    index: pd.DataFrame, transform: Transform, batch_size: int, device: torch.device, workers: int = 2,
    storage_options: dict | None = None, processes: bool | None = None, max_image_pixels: int | None = None,
) -> Iterator[Batch]:
    """Batches of ``index``'s images (column ``path``) in order, ready on ``device``.  ``transform`` is the
    model's ``Preprocessing.transform()``: its torchvision v2 steps take a PIL image (in the workers) or a
    uint8 CHW tensor (on the device, for GPU-decoded JPEGs) alike.  ``processes`` (default: on CUDA only)
    decodes in worker processes; on CPU the model already uses every core, and per-shard worker start-up
    measured slower than threads on 2 cores.  ``max_image_pixels``: ``decode_image``'s limit (None: PIL's)."""
    cuda = device.type == "cuda"
    dataset = _Decoded(index["path"].tolist(), transform, storage_options, jpeg_bytes=cuda, max_image_pixels=max_image_pixels)
    for items in _iterate_items(dataset, batch_size, workers, cuda if processes is None else processes):
        kept, skipped = [], []
        raw = [(pos, item) for pos, item in items if isinstance(item, torch.Tensor) and item.dtype == torch.uint8 and item.dim() == 1]
        decoded = dict(zip([p for p, _ in raw], _decode_on_gpu([r for _, r in raw], device))) if raw else {}
        for pos, item in items:
            if pos in decoded:  # nvjpeg's image, or PIL's (the usual skip reasons) where nvjpeg refused it
                image = decoded[pos]
                item = transform(image) if image is not None else dataset.decode(pos, item.numpy().tobytes())
            (skipped if isinstance(item, str) else kept).append((pos, item))
        pixels = None
        if kept:
            tensors = [t for _, t in kept]
            # by device type: nvjpeg's tensors are on "cuda:0" while ``device`` may be plain "cuda"
            host = [t for t in tensors if t.device.type != device.type]
            if host:  # the tensors not on ``device`` yet: one copy, pinned and non-blocking on CUDA
                stacked = torch.stack(host)
                rows = iter(stacked.pin_memory().to(device, non_blocking=True) if cuda else stacked)
                tensors = [t if t.device.type == device.type else next(rows) for t in tensors]
            pixels = torch.stack(tensors).contiguous(memory_format=torch.channels_last)
        yield Batch(np.asarray([pos for pos, _ in kept], dtype=np.int64), pixels, skipped)
