"""Model loading: real offline weights, local checkpoints, timm, import paths, and clear errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from neuroscribe.config import DatasetSpec, ModelSpec
from neuroscribe.data import build_index, load_image
from neuroscribe.errors import NeuroscribeError
from neuroscribe.models import load_model
from neuroscribe.models.loading import imagenet_class_names


def test_efficientnet_lite0_top1_on_real_imagenet_samples(samples_dir):
    loaded = load_model(ModelSpec(name="efficientnet_lite0"))
    prep = loaded.preprocessing
    assert (prep.input_size, prep.resize_size, prep.interpolation, prep.mean) == (224, 256, "bicubic", (0.5, 0.5, 0.5))
    index = build_index(DatasetSpec(uri=str(samples_dir / "labels.tsv")))
    transform = prep.transform()
    correct = 0
    with torch.inference_mode():
        for start in range(0, len(index), 50):
            rows = index.iloc[start : start + 50]
            x = torch.stack([transform(load_image(p)) for p in rows.path])
            correct += int((loaded.model(x).argmax(1).numpy() == rows.label.to_numpy()).sum())
    accuracy = correct / len(index)
    assert accuracy > 0.80, f"top-1 {accuracy:.3f}"
    assert loaded.class_names[0] == "tench" and len(loaded.class_names) == 1000


@pytest.mark.parametrize("name, size", [("efficientnet_lite1", 240), ("efficientnet_lite2", 260)])
def test_other_lite_variants_carry_their_geometry(name, size):
    loaded = load_model(ModelSpec(name=name))
    assert loaded.preprocessing.input_size == size and loaded.preprocessing.interpolation == "bicubic"


def test_places365_style_checkpoint_with_module_prefix(tmp_path):
    import torchvision

    torch.manual_seed(1)
    source = torchvision.models.resnet18(num_classes=365)
    state = {"module." + k: v for k, v in source.state_dict().items()}
    torch.save({"epoch": 90, "state_dict": state}, tmp_path / "resnet18_places365.pth.tar")
    names = tmp_path / "categories_places365.txt"
    names.write_text("".join(f"/{chr(97 + i % 26)}/place_{i} {i}\n" for i in range(365)))
    loaded = load_model(ModelSpec(name="resnet18", checkpoint=str(tmp_path / "resnet18_places365.pth.tar"), class_names_file=str(names)))
    assert loaded.model.fc.out_features == 365 and loaded.class_names[3] == "place 3"
    x = torch.randn(2, 3, 224, 224)
    torch.testing.assert_close(loaded.model(x), source.eval()(x))


def test_torchvision_weights_enum_without_network_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))  # empty cache: the enum must download
    with pytest.raises(NeuroscribeError, match="could not fetch torchvision weights resnet18/IMAGENET1K_V1.*--checkpoint"):
        load_model(ModelSpec(name="resnet18", weights="IMAGENET1K_V1"))
    with pytest.raises(NeuroscribeError, match="not a weight of resnet18; valid: IMAGENET1K_V1"):
        load_model(ModelSpec(name="resnet18", weights="NOPE"))


def test_untrained_torchvision_model_keeps_imagenet_metadata():
    loaded = load_model(ModelSpec(name="vit_b_32"))
    assert loaded.class_names == imagenet_class_names() and loaded.num_prefix_tokens == 1
    assert loaded.preprocessing.input_size == 224


def test_timm_model_by_name_from_local_checkpoint(tmp_path):
    import timm

    torch.manual_seed(0)
    source = timm.create_model("resnet10t", pretrained=False, num_classes=7)
    torch.save(source.state_dict(), tmp_path / "r10.pth")
    loaded = load_model(ModelSpec(name="timm:resnet10t", checkpoint=str(tmp_path / "r10.pth")))
    x = torch.randn(1, 3, 64, 64)
    torch.testing.assert_close(loaded.model(x), source.eval()(x))
    assert loaded.class_names == [f"class {i}" for i in range(7)]


def test_import_path_and_unknown_names():
    loaded = load_model(ModelSpec(name="neuroscribe.testing.tiny_models:tiny_cnn"))
    assert loaded.preprocessing.input_size == 32 and len(loaded.class_names) == 4
    with pytest.raises(NeuroscribeError, match="unknown model 'resnet5000'"):
        load_model(ModelSpec(name="resnet5000"))
    with pytest.raises(NeuroscribeError, match="cannot import nothing"):
        load_model(ModelSpec(name="neuroscribe.testing.tiny_models:nothing"))


def test_lite_checkpoint_renaming_is_checked_by_shape():
    from neuroscribe.models.efficientnet_lite import rename_to_timm

    src = {"_a.weight": torch.zeros(3, 2), "_b.bias": torch.zeros(3)}
    with pytest.raises(NeuroscribeError, match="does not match timm"):
        rename_to_timm(src, {"a.weight": torch.zeros(3, 2), "b.bias": torch.zeros(4)})
    out = rename_to_timm(src, {"a.weight": torch.zeros(3, 2), "b.bias": torch.zeros(3)})
    assert list(out) == ["a.weight", "b.bias"] and np.all(out["a.weight"].numpy() == 0)
