"""Each model's input geometry: resize the shorter side, centre-crop, normalise.

    prep = Preprocessing(input_size=224, resize_size=256)
    tensor = prep.transform()(pil_image)
    box = prep.crop_box(width, height)   # where the model's input sits in the original image

``crop_box`` is what lets patches undo the resize and crop (see ``neuroscribe.patches``).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict


class Preprocessing(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    input_size: int = 224
    resize_size: int = 256
    interpolation: Literal["bilinear", "bicubic", "nearest"] = "bilinear"
    mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    std: tuple[float, float, float] = (0.229, 0.224, 0.225)

    @classmethod
    def from_crop_pct(cls, input_size: int, crop_pct: float, **kw) -> Preprocessing:
        # timm's rule: resize to floor(size / crop_pct), then centre-crop size
        return cls(input_size=input_size, resize_size=int(input_size / crop_pct), **kw)

    def transform(self):
        import torch
        from torchvision.transforms import v2

        return v2.Compose([
            v2.PILToTensor(),
            v2.Resize(self.resize_size, interpolation=v2.InterpolationMode(self.interpolation), antialias=True),
            v2.CenterCrop(self.input_size),
            v2.ToDtype(torch.float32, scale=True),
            v2.Normalize(mean=list(self.mean), std=list(self.std)),
        ])

    def crop_box(self, width: int, height: int) -> tuple[float, float, float, float]:
        """The model input's (left, top, right, bottom) in original-image pixel coordinates."""
        # torchvision's Resize(int): the shorter side becomes resize_size, the longer is scaled and floored
        long = int(self.resize_size * max(width, height) / min(width, height))
        rw, rh = (self.resize_size, long) if width <= height else (long, self.resize_size)
        # torchvision CenterCrop: offsets rounded in resized pixels
        left = round((rw - self.input_size) / 2.0)
        top = round((rh - self.input_size) / 2.0)
        sx, sy = width / rw, height / rh
        return (left * sx, top * sy, (left + self.input_size) * sx, (top + self.input_size) * sy)
