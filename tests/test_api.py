"""The Python API (``import neuroscribe as ns``): model objects, in-memory images, results, errors, API = CLI."""

from __future__ import annotations

import hashlib
import pickle
import subprocess
import sys
import threading
import traceback
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

import neuroscribe as ns
from neuroscribe import store as st
from neuroscribe.config import ModelSpec
from neuroscribe.models import load_model
from neuroscribe.models.loading import model_object_spec, resolve_preprocessing
from neuroscribe.models.preprocessing import Preprocessing
from neuroscribe.testing.tiny_models import TINY_PREPROCESSING, tiny_cnn

TINY = "neuroscribe.testing.tiny_models:tiny_cnn"
CONCEPTS = ["red", "green", "blue", "stripes", "dots", "grass", "sky", "metal"]


@pytest.fixture(scope="module")
def backend():
    from neuroscribe.testing.tiny_clip import register_tiny_clip

    return register_tiny_clip(device="cpu")


@pytest.fixture(scope="module")
def vocabulary(tmp_path_factory) -> list[str]:
    path = tmp_path_factory.mktemp("vocabulary") / "concepts.txt"
    path.write_text("\n".join(CONCEPTS) + "\n")
    return [f"file:{path}"]


@pytest.fixture(scope="module")
def named_run(tmp_path_factory, backend, vocabulary):
    """The tiny model by import path on 12 labelled in-memory images (labels are its class indices)."""
    store = tmp_path_factory.mktemp("named") / "store"
    return _explain(TINY, _pil_images(), store, backend, vocabulary, labels=[i % 4 for i in range(12)])


def _explain(model, images, store, backend, vocabulary, **kw):
    return ns.explain(model, layers=["relu2", "fc"], images=images, store=str(store), k=3, backend=backend,
                      vocabulary=vocabulary, device="cpu", units_per_task=8, **kw)


def _pil_images(n: int = 12, seed: int = 0) -> list[Image.Image]:
    rng = np.random.default_rng(seed)
    images = []
    for i in range(n):
        pixels = rng.integers(0, 256, size=(40, 48, 3), dtype=np.uint8)
        pixels[..., i % 3] = 250  # a colour per image so units differ
        images.append(Image.fromarray(pixels))
    return images


def test_import_is_light_and_explain_is_the_api_function():
    code = "import sys, neuroscribe as ns; print(sorted(m for m in ('torch', 'pandas', 'prefect', 'zarr') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[]"
    import neuroscribe.explanation as stage
    from neuroscribe.api import explain

    assert ns.explain is explain and callable(ns.explain)
    import cloudpickle

    # Dask ships the tasks' globals: the module still travels by name
    assert pickle.loads(cloudpickle.dumps(stage)) is stage
    assert pickle.loads(cloudpickle.dumps(stage.EMBEDDINGS.run)) is stage.EMBEDDINGS.run  # by name, not by value
    assert {"explain", "ablate", "evaluate", "open_run", "Run"} <= set(dir(ns))


def test_fingerprint_is_a_content_key_and_the_callers_module_is_left_alone():
    first, second = tiny_cnn(), tiny_cnn()  # same seed: same weights, different objects
    spec = model_object_spec(first)
    assert spec.fingerprint == model_object_spec(second).fingerprint and spec.name == "TinyCNN"
    assert spec.model_dump(mode="json")["fingerprint"] == spec.fingerprint  # what run and cache keys hash
    assert "fingerprint" not in ModelSpec(name=TINY).model_dump(mode="json")  # named models keep their keys
    with torch.no_grad():
        second.conv1.bias[0] += 1e-3
    assert model_object_spec(second).fingerprint != spec.fingerprint
    assert model_object_spec(first, preprocessing={"input_size": 32, "resize_size": 40}).fingerprint != spec.fingerprint
    assert model_object_spec(first, class_names=["a", "b", "c", "d"]).fingerprint != spec.fingerprint

    first.train()
    loaded = load_model(spec)
    assert loaded.model is not first and not loaded.model.training and first.training  # a copy runs, in eval mode
    assert loaded.preprocessing == TINY_PREPROCESSING and loaded.class_names == [f"class {i}" for i in range(4)]
    with torch.no_grad():
        first.fc.weight.mul_(2)
    with pytest.raises(ns.NeuroscribeError, match="changed after it was handed over"):
        load_model(spec)
    with pytest.raises(ns.NeuroscribeError, match="does not hold"):
        load_model(ModelSpec.model_validate_json(spec.model_dump_json()))  # from JSON: the object is gone


def test_preprocessing_from_transforms_weights_and_timm():
    from torchvision import transforms as T
    from torchvision.models import ResNet18_Weights, resnet18

    compose = T.Compose([T.Resize(36, interpolation=T.InterpolationMode.BICUBIC), T.CenterCrop(32), T.ToTensor(),
                         T.Normalize([0.1, 0.2, 0.3], [0.4, 0.5, 0.6])])
    assert resolve_preprocessing(compose, tiny_cnn()) == Preprocessing(
        input_size=32, resize_size=36, interpolation="bicubic", mean=(0.1, 0.2, 0.3), std=(0.4, 0.5, 0.6))
    weights = ResNet18_Weights.IMAGENET1K_V1
    spec = model_object_spec(resnet18(), preprocessing=weights)
    loaded = load_model(spec)
    assert loaded.class_names == list(weights.meta["categories"])
    assert (loaded.preprocessing.input_size, loaded.preprocessing.resize_size) == (224, 256)
    import timm

    vit = timm.create_model("vit_tiny_patch16_224", pretrained=False, num_classes=3)
    assert load_model(model_object_spec(vit)).num_prefix_tokens == 1
    assert load_model(model_object_spec(vit)).preprocessing.input_size == 224
    with pytest.raises(ns.NeuroscribeError, match="RandomResizedCrop"):
        resolve_preprocessing(T.Compose([T.RandomResizedCrop(32), T.ToTensor()]), tiny_cnn())
    with pytest.raises(ns.NeuroscribeError, match="does not say how its inputs are preprocessed"):
        model_object_spec(torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3)))


def test_model_object_gives_the_same_tables_as_its_name(image_folder, tmp_path, backend, vocabulary):
    by_object = _explain(tiny_cnn(), str(image_folder), tmp_path / "object", backend, vocabulary)
    by_name = _explain(TINY, str(image_folder), tmp_path / "name", backend, vocabulary)
    assert by_object.layers == by_name.layers == ["relu2", "fc"]
    for layer in ("relu2", "fc"):
        pd.testing.assert_frame_equal(by_object.table(layer), by_name.table(layer))
    assert by_object.attrs["model"]["fingerprint"] == model_object_spec(tiny_cnn()).fingerprint
    # the run key is a content key: a new but identical object resumes the store, another one is refused
    key = by_object.attrs["run_key"]
    rerun = _explain(tiny_cnn(), str(image_folder), tmp_path / "object", backend, vocabulary)
    assert ns.open_run(rerun.store).attrs["run_key"] == key
    changed = tiny_cnn()
    with torch.no_grad():
        changed.conv2.weight.mul_(-1)
    with pytest.raises(ns.NeuroscribeError, match="holds a different extraction"):
        _explain(changed, str(image_folder), tmp_path / "object", backend, vocabulary)


def test_in_memory_images_are_written_once_by_content(tmp_path, backend, vocabulary):
    images, labels = _pil_images(), [i % 4 for i in range(12)]
    run = _explain(tiny_cnn(), images, tmp_path / "store", backend, vocabulary, labels=labels)
    files = st.list_files(run.store, "inputs/images")
    assert len(files) == 12 and all(  # each file is named by its own content
        name == hashlib.blake2b(st.read_bytes(run.store, f"inputs/images/{name}"), digest_size=16).hexdigest() + ".png" for name in files
    )
    index = run.images
    assert index["label"].tolist() == labels and index["path"].str.contains("/inputs/images/").all()
    for path, image in zip(index["path"], images):  # the stored file decodes to the very pixels given
        assert np.array_equal(np.asarray(Image.open(path).convert("RGB")), np.asarray(image))

    class Pairs(torch.utils.data.Dataset):
        def __len__(self):
            return len(images)

        def __getitem__(self, i):
            return images[i], torch.tensor(labels[i])

    again = _explain(tiny_cnn(), Pairs(), tmp_path / "store", backend, vocabulary)  # same content: same listing, resumed
    assert again.attrs["dataset"]["uri"] == run.attrs["dataset"]["uri"] and again.attrs["run_key"] == run.attrs["run_key"]
    paths = _explain(tiny_cnn(), list(index["path"]), tmp_path / "paths", backend, vocabulary)
    assert paths.images["path"].tolist() == index["path"].tolist()
    pd.testing.assert_frame_equal(paths.table("relu2"), run.table("relu2"))


def test_overwrite_keeps_the_inputs_it_just_wrote(tmp_path, backend, vocabulary):
    store = tmp_path / "store"
    first = _explain(tiny_cnn(), _pil_images(6, seed=2), store, backend, vocabulary)
    key = first.attrs["run_key"]
    with pytest.raises(ns.NeuroscribeError, match="holds a different extraction"):
        _explain(tiny_cnn(), _pil_images(6, seed=3), store, backend, vocabulary)
    second = _explain(tiny_cnn(), _pil_images(6, seed=3), store, backend, vocabulary, overwrite=True)
    assert ns.open_run(second.store).attrs["run_key"] != key
    assert second.images["status"].eq("ok").all() and len(second.table("relu2")) == 16


def test_ablate_a_model_object_checked_by_hand(tmp_path):
    images, labels = _pil_images(16, seed=1), [i % 4 for i in range(16)]
    model = tiny_cnn()
    drops = ns.ablate(model, layer="relu2", units=[3], images=images, labels=labels, store=str(tmp_path / "store"), device="cpu")
    x = torch.stack([TINY_PREPROCESSING.transform()(i) for i in images])
    y = torch.tensor(labels)

    def silence(module, inputs, output):
        output = output.clone()
        output[:, 3] = 0
        return output

    with torch.no_grad():
        right = (model(x).argmax(1) == y).numpy()
        baseline = right.mean().item()
        handle = model.relu2.register_forward_hook(silence)
        try:
            ablated = (model(x).argmax(1) == y).numpy()
        finally:
            handle.remove()
    assert drops.summary["baseline_accuracy"] == pytest.approx(baseline)
    table = drops.table
    correct = (table["ablated_acc"] * table["support"]).sum()
    assert correct == pytest.approx(ablated.sum()) and table["support"].sum() == 16
    assert drops.baseline["support"].sum() == 16
    # a chart is drawn only when some class really dropped (counted here from the hand-run forwards)
    dropped = any(ablated[y.numpy() == c].sum() < right[y.numpy() == c].sum() for c in range(4))
    assert (drops.chart[:4] == b"\x89PNG") if dropped else drops.chart is None
    assert "Ablation of relu2" in drops._repr_html_()
    reopened = ns.open_run(drops.store).ablation("relu2")
    pd.testing.assert_frame_equal(reopened.units, drops.units)


def test_results_read_the_store(named_run):
    run = named_run
    table = st.read_parquet(run.store, "explanations/relu2.parquet")
    pd.testing.assert_frame_equal(ns.open_run(run.store).table("relu2"), table)
    active = table[table["top_image_ids"].map(len) > 0]

    gallery = run.gallery("relu2", per_page=5, sort="score")
    assert gallery.pages == 4 and list(gallery.units["unit"]) == list(table.sort_values(["score", "unit"], ascending=[False, True]).unit[:5])
    html = gallery._repr_html_()
    shown = set(gallery.units["unit"]) & set(active["unit"])
    assert html.count('<img src="data:image/jpeg;base64,') == len(shown) and "page 1 of 4" in html
    assert gallery.next().number == 1 and gallery.page(3).units["unit"].size == 1

    unit = int(active["unit"].iloc[0])
    view = run.unit("relu2", unit)
    row = table.set_index("unit").loc[unit]
    assert view.label == row["explanation"] and view.confidence == pytest.approx(row["confidence"])
    assert view.alternatives["concept"].tolist() == [a["concept"] for a in row["alternatives"]]
    assert view.image_ids == list(row["top_image_ids"]) and view.image.size[1] == 112
    assert f"relu2 unit {unit}: {view.label}" in view._repr_html_()
    assert "TinyCNN" not in run._repr_html_() and TINY in run._repr_html_()
    assert run.summary()["units"].tolist() == [16, 4]


def test_evaluate_returns_the_report(named_run):
    run = named_run
    report = ns.evaluate(run, sentence_models=["minilm"], permutations=5, bootstrap=0)
    stored = st.read_json(run.store, "evaluation/evaluation.json")
    assert report.layers == ["relu2", "fc"] and report.report == stored
    assert report.headline["layer"].tolist() == ["relu2", "fc"]
    assert report.units("fc")["explanation"].tolist() == run.table("fc")["explanation"].tolist()
    assert report.chart[:4] == b"\x89PNG" and "data:image/png;base64," in report._repr_html_()
    assert ns.open_run(run.store).evaluation().report == stored


def _frames_inside(exc: BaseException) -> list[str]:
    return [Path(frame.filename).name for frame in traceback.extract_tb(exc.__traceback__)]


def test_errors_are_one_neuroscribe_error_with_the_fix(tmp_path, image_folder):
    with pytest.raises(ns.NeuroscribeError, match="not a torch.nn.Module|is not understood") as info:
        ns.explain(object(), layers=["fc"], images=str(image_folder), store=str(tmp_path / "s"))
    assert info.value.__cause__ is None and set(_frames_inside(info.value)) <= {"test_api.py", "__init__.py", "results.py"}
    with pytest.raises(ns.NeuroscribeError, match="relu9") as info:
        ns.explain(tiny_cnn(), layers=["relu9"], images=str(image_folder), store=str(tmp_path / "s"))
    assert set(_frames_inside(info.value)) <= {"test_api.py", "__init__.py", "results.py"}
    with pytest.raises(ns.NeuroscribeError, match="normalised tensors"):
        ns.explain(tiny_cnn(), layers=["fc"], images=[(torch.randn(3, 8, 8), 0)], store=str(tmp_path / "s"))
    with pytest.raises(ns.NeuroscribeError, match="runner="):
        ns.explain(tiny_cnn(), layers=["fc"], images=str(image_folder), store=str(tmp_path / "s"), runner=3)
    with pytest.raises(ns.NeuroscribeError, match="say which units"):
        ns.ablate(tiny_cnn(), layer="fc", units=[], images=str(image_folder), store=str(tmp_path / "s"))
    with pytest.raises(ns.NeuroscribeError, match="holds no neuroscribe run"):
        ns.open_run(tmp_path / "nothing")


def test_an_unpicklable_model_fails_clearly_on_dask_and_works_in_process(image_folder, tmp_path, backend, vocabulary, monkeypatch):
    from neuroscribe.flows import _run as flow_run

    model = tiny_cnn()
    model.lock = threading.Lock()  # cannot be pickled (nor deep-copied: it is used in place)
    monkeypatch.setattr(flow_run, "run_flow", lambda *a: pytest.fail("no flow may start for a model that cannot travel"))
    with pytest.raises(ns.NeuroscribeError, match=r"cannot be pickled .*runner=None") as info:
        _explain(model, str(image_folder), tmp_path / "dask", backend, vocabulary, runner="dask")
    assert "_thread.lock" in str(info.value)
    run = _explain(model, str(image_folder), tmp_path / "local", backend, vocabulary)
    assert len(run.table("relu2")) == 16 and len(run.table("fc")) == 4


@pytest.mark.slow  # a temporary Prefect server, a Dask LocalCluster, EfficientNet-Lite0 and the ConSE backend
@pytest.mark.samples
def test_api_on_a_model_object_over_dask_matches_the_cli_by_name(samples_dir, tmp_path):
    from torchvision import transforms as T
    from typer.testing import CliRunner

    from neuroscribe.flows._run import prefect_api
    from neuroscribe.cli import app
    from neuroscribe.models.efficientnet_lite import build_efficientnet_lite

    rows = pd.read_csv(samples_dir / "labels.tsv", sep="\t").head(40)
    listing = tmp_path / "images.tsv"
    rows.assign(file=[str(samples_dir / f) for f in rows["file"]]).to_csv(listing, sep="\t", index=False)
    model, _ = build_efficientnet_lite("efficientnet_lite0")  # an nn.Module object, preprocessing given as a transform
    preprocessing = T.Compose([T.Resize(256, interpolation=T.InterpolationMode.BICUBIC), T.CenterCrop(224), T.ToTensor(),
                               T.Normalize([0.5] * 3, [0.5] * 3)])
    vocabulary = "builtin:colors+textures+materials"
    with prefect_api():  # one temporary server for both runs
        run = ns.explain(model, layers=["blocks.1"], images=str(listing), store=str(tmp_path / "api"), preprocessing=preprocessing,
                         k=5, backend="conse", vocabulary=[vocabulary], device="cpu", runner={"n_workers": 1})
        result = CliRunner().invoke(app, [
            "explain", "--model", "efficientnet_lite0", "--layers", "blocks.1", "--dataset", str(listing),
            "--store", str(tmp_path / "cli"), "--k", "5", "--backend", "conse", "--vocabulary", vocabulary,
            "--device", "cpu", "--workers", "1",
        ])
    assert result.exit_code == 0, result.output
    ours, theirs = run.table("blocks.1"), ns.open_run(str(tmp_path / "cli")).table("blocks.1")
    assert len(ours) == 24 and ours["explanation"].tolist() == theirs["explanation"].tolist()
    assert ours["top_image_ids"].map(list).tolist() == theirs["top_image_ids"].map(list).tolist()
    np.testing.assert_allclose(ours[["score", "margin", "agreement"]], theirs[["score", "margin", "agreement"]], atol=1e-5)
