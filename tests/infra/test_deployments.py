"""Static checks of deployments/prefect.yaml: the schema ``prefect deploy`` reads, entrypoints that import,
parameters that validate against each flow's config, a valid cron schedule, one work pool everywhere."""

from __future__ import annotations

import importlib
from pathlib import Path

import jsonschema
import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
PREFECT_YAML = REPO / "deployments" / "prefect.yaml"


def prefect_yaml() -> dict:
    return yaml.safe_load(PREFECT_YAML.read_text())


def load_entrypoint(entrypoint: str):
    path, _, name = entrypoint.partition(":")
    return getattr(importlib.import_module(path.removesuffix(".py").replace("/", ".")), name)


def test_prefect_yaml_parses_with_prefect_deploys_own_model():
    models = pytest.importorskip("prefect.cli.deploy._models", reason="this Prefect keeps its prefect.yaml model elsewhere")
    parsed = models.PrefectYamlModel.model_validate(prefect_yaml())
    names = {d.name for d in parsed.deployments}
    assert {"explain", "ablate", "sweep-weekly"} <= names
    assert all(d.entrypoint and d.work_pool and d.work_pool.name == "neuroscribe" for d in parsed.deployments)


def test_every_deployment_runs_an_entry_flow_whose_config_accepts_its_parameters():
    from prefect.flows import Flow
    from prefect.utilities.callables import parameter_schema

    for deployment in prefect_yaml()["deployments"]:
        entry = load_entrypoint(deployment["entrypoint"])
        assert isinstance(entry, Flow), deployment["entrypoint"]
        params = deployment["parameters"]
        assert list(params) == ["config"]
        entry.validate_parameters(params)  # pydantic: what a flow run does with them
        # the JSON schema the server enforces on runs of the deployment
        schema = parameter_schema(entry.fn).model_dump_for_openapi()
        jsonschema.validate(params, schema)


def test_the_schedule_is_a_valid_cron_and_the_sweep_is_skippable():
    from prefect.client.schemas.schedules import CronSchedule

    from neuroscribe.sweep import SweepConfig, plan_sweep

    [sweep] = [d for d in prefect_yaml()["deployments"] if d["entrypoint"].endswith(":sweep")]
    [schedule] = sweep["schedules"]
    CronSchedule(cron=schedule["cron"], timezone=schedule["timezone"])
    combos = plan_sweep(SweepConfig.model_validate(sweep["parameters"]["config"]))
    assert len(combos) == len({c.store for c in combos}) >= 4


def test_workers_everywhere_poll_the_pool_the_deployments_use():
    pool = prefect_yaml()["definitions"]["work_pool"]["name"]
    compose = (REPO / "infra" / "docker-compose.yml").read_text()
    k8s = (REPO / "infra" / "k8s" / "prefect-worker.yaml").read_text()
    for text in (compose, k8s, (REPO / "deployments" / "README.md").read_text()):
        assert f'"--pool", "{pool}"' in text or f"--pool {pool}" in text


def test_result_storage_block_name_matches_the_deployments_env():
    from neuroscribe.flows.deployed import RESULTS_BLOCK

    env = prefect_yaml()["definitions"]["work_pool"]["job_variables"]["env"]
    assert env["PREFECT_RESULTS_DEFAULT_STORAGE_BLOCK"] == f"remote-file-system/{RESULTS_BLOCK}"
    assert env["PREFECT_RESULTS_PERSIST_BY_DEFAULT"] == "true"
