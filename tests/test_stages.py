"""A stage (plan -> items -> run -> reduce) gives the same result in this process and as Prefect tasks."""

from __future__ import annotations

import time

import pytest

from neuroscribe.stages import InProcess, Plan, Stage, one_item


class Config:
    layers = ("conv1", "fc")
    delay = 0.0


def square_slowly(cfg, item: int) -> int:
    # later items finish first under a parallel executor: the results must still come back in item order
    time.sleep(cfg.delay * (4 - item % 5))
    return item * item


def first_five(cfg, offset: int) -> Plan:
    return Plan([offset + i for i in range(5)], done=2)


def total(cfg, results: list[int], offset: int) -> dict:
    return {"results": results, "sum": sum(results), "offset": offset}


SQUARES = Stage("squares", square_slowly, plan=first_five, reduce=total, unit="number")


def layer_name(cfg, layer: str) -> str:
    return layer.upper()


def test_in_process_runs_every_item_in_order_and_reduces():
    assert InProcess(progress=False)(SQUARES, Config(), 0) == {"results": [0, 1, 4, 9, 16], "sum": 30, "offset": 0}


def test_defaults_map_the_config_layers_and_one_item_passes_the_inputs():
    assert InProcess(progress=False)(Stage("upper", layer_name), Config()) == ["CONV1", "FC"]
    assert one_item(Config(), "x") == ["x"] and one_item(Config()) == [None]


def test_task_labels_name_the_layer_and_first_unit():
    stage = Stage("embed", layer_name)
    assert [stage.label(i) for i in (("fc", [64, 65]), "fc", [3, 4], None, (2, "plan"))] == ["fc-64", "fc", "3", "all", "2"]


@pytest.mark.slow
def test_prefect_executor_gives_the_in_process_result_and_a_finished_progress_artifact():
    from prefect import flow
    from prefect.client.orchestration import get_client

    from neuroscribe.flows._executor import PrefectExecutor
    from neuroscribe.flows._run import prefect_api

    cfg = Config()
    cfg.delay = 0.05

    @flow
    def squares_flow(offset: int) -> dict:
        return PrefectExecutor()(SQUARES, cfg, offset)

    with prefect_api():
        result = squares_flow(10)
        with get_client(sync_client=True) as client:
            artifacts = {a.key: a for a in client.read_artifacts() if a.key}
    assert result == InProcess(progress=False)(SQUARES, Config(), 10)
    assert artifacts["squares"].type == "progress" and float(artifacts["squares"].data) == 100.0
