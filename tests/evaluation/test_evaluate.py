"""The whole evaluation on a tiny explained run, checked against independent computations; flow and CLI."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from neuroscribe import store as st
from neuroscribe.data import load_image
from neuroscribe.errors import NeuroscribeError
from neuroscribe.evaluation import EvaluateConfig, run_evaluation
from neuroscribe.evaluation.truth import normalise
from neuroscribe.explanation import ExplainConfig, cached_backend
from neuroscribe.scoring.concepts import concept_embeddings
from neuroscribe.scoring.rules import RuleSpec, explain_units
from neuroscribe.vocabulary import embed_sentences, load_vocabulary

from .conftest import COLOURS, CONCEPTS


def _config(run, tmp_path, **fields) -> EvaluateConfig:
    labels = tmp_path / "relu2.csv"
    labels.write_text("unit,label\n" + "".join(f"{u},{CONCEPTS[u % len(CONCEPTS)]}\n" for u in range(16)))
    base = {
        "store": run.extract.store, "labels": {"relu2": str(labels)}, "compare": ("rules", "k", "vocab"), "compare_k": (1, 2),
        "compare_vocabularies": ("builtin:colors",), "permutations": 20, "bootstrap": 4, "sentence_models": ("minilm",),
    }
    return EvaluateConfig(**(base | fields))


@pytest.fixture(scope="module")
def evaluated(tiny_run_base, tmp_path_factory):
    """One full evaluation (every layer, every comparison) of a private copy of the tiny run, read by several tests."""
    root = tmp_path_factory.mktemp("evaluated")
    shutil.copytree(tiny_run_base.extract.store, root / "run")
    cfg = _config(ExplainConfig(**dict(tiny_run_base), store=str(root / "run")), root)
    return cfg, run_evaluation(cfg)


def test_outputs_are_written_and_consistent(evaluated):
    cfg, result = evaluated
    document = st.StoreFile(cfg.store, "evaluation/evaluation.json").read_json()
    assert set(document["layers"]) == {"conv2", "relu2", "fc"}
    assert st.StoreFile(cfg.store, "evaluation/evaluation.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    markdown = st.StoreFile(cfg.store, "evaluation/evaluation.md").read_bytes().decode()
    assert "## Layer `fc`" in markdown and "Comparison on the same extraction" in markdown
    assert result["json"].endswith("evaluation/evaluation.json") and len(result["headline"]) == 3
    for summary in document["layers"].values():
        # rescoring the stored embeddings reproduces the explain stage's table exactly
        assert summary["stability"]["reproduces_table"] == 1.0
        assert 0.0 <= summary["stability"]["unchanged"] <= 1.0
        compare = summary["compare"]
        assert {r["axis"] for r in compare} == {"rules", "k", "vocab"}
        run_rows = [r for r in compare if (r["axis"], r["variant"]) in {("rules", "seed"), ("k", "k=4")}]
        assert [r["same_as_run"] for r in run_rows] == [1.0, 1.0]
    assert document["layers"]["conv2"]["labels"] is None
    assert document["layers"]["relu2"]["labels"]["source"].startswith("labels file")


def test_label_metrics_match_an_independent_computation(evaluated):
    cfg, _ = evaluated
    summary = st.StoreFile(cfg.store, "evaluation/fc/summary.json").read_json()
    table = st.StoreFile(cfg.store, "explanations/fc.parquet").read_parquet().sort_values("unit")
    truth = list(COLOURS)
    explanations = table["explanation"].tolist()
    match = [normalise(e) == normalise(t) for e, t in zip(explanations, truth)]
    assert summary["labels"]["present"]["exact_match"]["value"] == pytest.approx(np.mean(match), abs=1e-4)
    e, t = embed_sentences(explanations), embed_sentences(truth)
    cosine = float(np.mean(np.sum(e * t, axis=1)))
    for space, result in summary["labels"]["present"]["cosine"].items():
        assert result["value"] == pytest.approx(cosine, abs=1e-4), space  # ConSE's text side is MiniLM
    units = st.StoreFile(cfg.store, "evaluation/fc/units.parquet").read_parquet()
    assert units["match"].tolist() == match and units["truth"].tolist() == truth


def _direct_inputs(run):
    """The backend, vocabulary, concept vectors and image index, loaded here without the evaluation code."""
    backend = cached_backend(run.backend)
    vocabulary = load_vocabulary(run.extract.store)
    vectors = concept_embeddings(backend, vocabulary.concepts, run.backend.resolved_templates)
    return backend, vocabulary, vectors, st.StoreFile(run.extract.store, "index.parquet").read_parquet()


def test_auc_matches_sklearn_on_directly_embedded_images(evaluated, tiny_run_base):
    cfg, _ = evaluated
    units = st.StoreFile(cfg.store, "evaluation/relu2/units.parquet").read_parquet()
    backend, vocabulary, vectors, index = _direct_inputs(tiny_run_base)
    images = backend.embed_images([load_image(p) for p in index["path"]])
    group = st.RunStore(tiny_run_base.extract.store).arrays("r")
    fired = group["patches/relu2/image_id"][:]
    topk = group["topk/relu2/image_id"][:]
    for unit in range(16):
        text = vectors[vocabulary.concepts.index(units.loc[unit, "explanation"])]
        positives = [i for i in fired[unit] if i >= 0]
        negatives = [i for i in index["id"] if i not in topk[unit]]  # 16 images <= random_images: all of them
        scores = images[positives + negatives] @ text
        expected = roc_auc_score([1] * len(positives) + [0] * len(negatives), scores)
        assert units.loc[unit, "auc"] == pytest.approx(expected, abs=1e-5)


def test_compared_rules_and_k_match_scoring_from_scratch(evaluated, tiny_run_base):
    cfg, _ = evaluated
    labels = st.StoreFile(cfg.store, "evaluation/fc/compare_units.parquet").read_parquet()
    backend, vocabulary, vectors, index = _direct_inputs(tiny_run_base)
    topk = st.RunStore(tiny_run_base.extract.store).arrays("r")["topk/fc/image_id"][:]
    # SoftWPMI on each unit's whole top images, embedded here image by image
    per_unit = [backend.embed_images([load_image(index.loc[i, "path"]) for i in row if i >= 0]) for row in topk]
    expected = [s.best for s in explain_units("softwpmi", per_unit, vectors, vocabulary.concepts, **RuleSpec(name="softwpmi").kwargs())]
    assert labels["rules:softwpmi"].tolist() == expected
    # the seed rule on the first k' patches only (a logit unit's patch is its whole original image)
    patch_ids = st.RunStore(tiny_run_base.extract.store).arrays("r")["patches/fc/image_id"][:]
    first = [backend.embed_images([load_image(index.loc[i, "path"]) for i in row[:1] if i >= 0]) for row in patch_ids]
    expected_k1 = [s.best for s in explain_units("seed", first, vectors, vocabulary.concepts)]
    assert labels["k:k=1"].tolist() == expected_k1


def test_missing_explain_config_and_unexplained_layers_are_reported(tiny_run, tmp_path):
    st.RunStore(tiny_run.extract.store + "/explain_config.json").remove()
    with pytest.raises(NeuroscribeError, match="--explain-config"):
        run_evaluation(EvaluateConfig(store=tiny_run.extract.store, bootstrap=0))
    cfg = EvaluateConfig(store=tiny_run.extract.store, explain=tiny_run, layers=("relu1",), bootstrap=0)
    with pytest.raises(NeuroscribeError, match="no explanations"):
        run_evaluation(cfg)
    with pytest.raises(NeuroscribeError, match="not evaluated"):
        run_evaluation(EvaluateConfig(store=tiny_run.extract.store, explain=tiny_run, layers=("fc",), labels={"conv2": "x.txt"}))


def test_cli_local_run(tiny_run, tmp_path):
    from typer.testing import CliRunner

    from neuroscribe.cli import app

    labels = tmp_path / "conv2.txt"
    labels.write_text("\n".join(CONCEPTS[:4]))
    result = CliRunner().invoke(
        app, ["evaluate", "-s", tiny_run.extract.store, "--layers", "conv2", "--labels", str(labels), "--compare", "k",
              "--compare-k", "1", "--bootstrap", "2", "--permutations", "5", "--sentence-models", "minilm", "--local"],
    )
    assert result.exit_code == 0, result.output
    assert "evaluation.md" in result.output
    document = json.loads(st.StoreFile(tiny_run.extract.store, "evaluation/evaluation.json").read_bytes())
    assert list(document["layers"]) == ["conv2"]
    assert document["layers"]["conv2"]["labels"]["all"]["units"] == 4
    bad = CliRunner().invoke(app, ["evaluate", "-s", tiny_run.extract.store, "--labels", str(labels), "--local"])
    assert bad.exit_code != 0 and "exactly one layer in --layers" in str(bad.exception)


def test_evaluate_flow_on_local_dask_cluster(tiny_run, tmp_path):
    from prefect.client.orchestration import get_client

    from neuroscribe.flows._run import prefect_api, run_flow
    from neuroscribe.flows.evaluate import evaluate_flow

    cfg = _config(tiny_run, tmp_path, layers=("fc", "relu2"), compare=("rules",))
    with prefect_api():
        result = run_flow(evaluate_flow, cfg)
        with get_client(sync_client=True) as client:
            artifacts = {a.key: a for a in client.read_artifacts() if a.key}
    assert float(artifacts["evaluate-layer"].data) == 100.0  # the stage's progress artifact (two layers)
    assert "## Layer `fc`" in artifacts["evaluation"].data
    assert artifacts["evaluation-headline"].type == "table"
    document = st.StoreFile(cfg.store, "evaluation/evaluation.json").read_json()
    assert set(document["layers"]) == {"fc", "relu2"} and result["chart"].endswith("evaluation.png")
    # the flow computes what the in-process evaluation computes
    local = run_evaluation(cfg.model_copy(update={"store": cfg.store}))
    again = st.StoreFile(cfg.store, "evaluation/evaluation.json").read_json()
    assert again["layers"]["fc"]["labels"] == document["layers"]["fc"]["labels"]
    assert again["layers"]["relu2"]["auc"] == document["layers"]["relu2"]["auc"]
    assert local["headline"] == result["headline"]


def test_extra_clip_text_space_matches_its_text_encoder(tiny_run):
    from neuroscribe.scoring.factory import make_backend
    from neuroscribe.testing.tiny_clip import register_tiny_clip

    clip = register_tiny_clip(device="cpu")
    cfg = EvaluateConfig(store=tiny_run.extract.store, layers=("fc",), text_backends=(clip,), sentence_models=(), bootstrap=0, permutations=0)
    run_evaluation(cfg)
    cosine = st.StoreFile(cfg.store, "evaluation/fc/summary.json").read_json()["labels"]["all"]["cosine"]
    encoder = make_backend(clip)
    explanations = st.StoreFile(cfg.store, "explanations/fc.parquet").read_parquet().sort_values("unit")["explanation"].tolist()
    e, t = encoder.embed_texts(explanations), encoder.embed_texts(list(COLOURS))
    assert cosine[encoder.name]["value"] == pytest.approx(float(np.mean(np.sum(e * t, axis=1))), abs=1e-4)
    assert len(cosine) == 2  # the scoring backend's space and the CLIP one
