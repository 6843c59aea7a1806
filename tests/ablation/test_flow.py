"""The ablate flow maps parts over a Dask cluster and gives the in-process sweep's results; reruns resume."""

from __future__ import annotations

import pandas as pd
import pytest
from neuroscribe.flows._run import prefect_api, run_flow
from neuroscribe.flows.ablate import ablate_flow

from neuroscribe.ablation.pipeline import AblateConfig, plan_sweep, run_sweep
from neuroscribe.config import DatasetSpec, ModelSpec, RunnerSpec
from neuroscribe.testing.planted import write_planted_folder


@pytest.mark.slow  # a temporary Prefect server and two local Dask clusters: about 45 s on 2 cores
def test_flow_on_dask_matches_the_local_sweep(tmp_path):
    folder = write_planted_folder(tmp_path / "planted", 2, seed=11)
    runner = RunnerSpec(n_workers=1, threads_per_worker=2, device="cpu", batch_size=4)
    cfg = AblateConfig(model=ModelSpec(name="neuroscribe.testing.planted:planted_cnn"), layer="conv",
                       dataset=DatasetSpec(uri=str(folder)), store=str(tmp_path / "flow"), runner=runner,
                       units_per_task=2, fast="suffix")  # the closed path would make one part; this maps three
    with prefect_api():  # one temporary server for both runs
        summary = run_flow(ablate_flow, cfg)
        again = run_flow(ablate_flow, cfg)  # every part is done: nothing is submitted
    plan = plan_sweep(cfg)
    assert len(plan.parts) == 3 and summary["run_key"] == plan.run_key and summary["images"] == 8
    local = run_sweep(cfg.model_copy(update={"store": str(tmp_path / "local")}))
    assert local["run_key"] == summary["run_key"]
    flow_table = pd.read_parquet(tmp_path / "flow" / "ablation" / "conv.parquet")
    local_table = pd.read_parquet(tmp_path / "local" / "ablation" / "conv.parquet")
    pd.testing.assert_frame_equal(flow_table, local_table)
    # the rerun assembled the same table from the parts
    assert {k: v for k, v in again.items() if k != "seconds"} == {k: v for k, v in summary.items() if k != "seconds"}
