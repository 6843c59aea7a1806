"""The Prefect extract flow on a local Dask cluster stores what the in-process extraction stores."""

from __future__ import annotations

import numpy as np

from neuroscribe import store as st
from neuroscribe.config import DatasetSpec, ExtractConfig, ModelSpec, RunnerSpec
from neuroscribe.extraction import run_extraction


def test_extract_flow_on_local_dask_cluster_matches_in_process_run(image_folder, tmp_path):
    from prefect.client.orchestration import get_client

    from neuroscribe.flows._run import prefect_api, run_flow
    from neuroscribe.flows.extract import extract_flow

    cfg = ExtractConfig(
        model=ModelSpec(name="neuroscribe.testing.tiny_models:tiny_cnn"),
        layers="conv2,fc",
        dataset=DatasetSpec(uri=str(image_folder), shard_size=3),
        store=str(tmp_path / "flow"),
        k=3,
        runner=RunnerSpec(n_workers=1, threads_per_worker=2, device="cpu", shards_per_task=2),
    )
    with prefect_api():
        summary = run_flow(extract_flow, cfg)
        with get_client(sync_client=True) as client:
            artifacts = {a.key: a for a in client.read_artifacts() if a.key}
    assert summary["ok"] == 12 and summary["shards"] == 4
    assert artifacts["extract-shards"].type == "progress" and float(artifacts["extract-shards"].data) == 100.0
    assert "Extraction" in artifacts["extract-summary"].data
    local = cfg.model_copy(update={"store": str(tmp_path / "local")})
    run_extraction(local)
    a, b = st.RunStore(cfg.store).arrays("r"), st.RunStore(local.store).arrays("r")
    for name in ("activations/conv2/max", "activations/fc/mean", "topk/conv2/image_id", "topk/conv2/maps"):
        np.testing.assert_allclose(a[name][:], b[name][:], rtol=1e-6)
