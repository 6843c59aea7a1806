"""Static checks of infra/docker-compose.yml and infra/Dockerfile (no Docker daemon here).

The compose file is interpolated with infra/.env.example the way Compose does, then validated
against the Compose Specification schema that check-jsonschema vendors; where a compose CLI is
installed, its own ``config`` check runs too.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

INFRA = Path(__file__).resolve().parents[2] / "infra"
REPO = INFRA.parent
COMPOSE = INFRA / "docker-compose.yml"
ENV_EXAMPLE = INFRA / ".env.example"

VARIABLE = re.compile(r"\$\$|\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}|\$(?P<bare>[A-Za-z_][A-Za-z0-9_]*)")


def env_example() -> dict[str, str]:
    pairs = (line.split("=", 1) for line in ENV_EXAMPLE.read_text().splitlines() if line.strip() and not line.startswith("#"))
    return {k.strip(): v.strip() for k, v in pairs}


def interpolate(text: str, env: dict[str, str]) -> str:
    """Compose's variable substitution: ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?error}, $$."""

    def substitute(match: re.Match) -> str:
        if match.group(0) == "$$":
            return "$"
        name = match.group("name") or match.group("bare")
        op, arg, value = match.group("op"), match.group("arg"), env.get(name)
        if op in (":-", "-") and (value is None or (op == ":-" and value == "")):
            return arg
        if op in (":?", "?") and (value is None or (op == ":?" and value == "")):
            raise AssertionError(f"compose needs {name}: {arg}")
        return value or ""

    return VARIABLE.sub(substitute, text)


def compose_model(env: dict[str, str]) -> dict:
    return yaml.safe_load(interpolate(COMPOSE.read_text(), env))


def compose_validator():
    jsonschema = pytest.importorskip("jsonschema")
    builtin = pytest.importorskip("check_jsonschema.builtin_schemas", reason="check-jsonschema (dev extra) vendors the compose schema")
    schema = builtin.get_builtin_schema("vendor.compose-spec")
    return jsonschema.validators.validator_for(schema)(schema)


def test_compose_file_is_valid_against_the_compose_specification():
    validator = compose_validator()
    model = compose_model(env_example())
    errors = [f"{'/'.join(map(str, e.path))}: {e.message}" for e in validator.iter_errors(model)]
    assert not errors, errors
    # the validator is live: a misspelt key is refused
    model["services"]["postgres"]["imagee"] = "postgres"
    assert any("imagee" in e.message for e in validator.iter_errors(model))


def test_required_secrets_must_be_given():
    env = env_example()
    del env["MINIO_ROOT_PASSWORD"]
    with pytest.raises(AssertionError, match="MINIO_ROOT_PASSWORD"):
        compose_model(env)


def test_compose_has_the_whole_stack_wired_together():
    services = compose_model(env_example())["services"]
    assert {"postgres", "prefect-server", "minio", "dask-scheduler", "dask-gpu-worker", "dask-cpu-worker", "prefect-worker"} <= set(services)
    assert "postgresql+asyncpg://" in services["prefect-server"]["environment"]["PREFECT_API_DATABASE_CONNECTION_URL"]
    gpu = services["dask-gpu-worker"]
    assert "--resources" in gpu["command"] and gpu["command"][gpu["command"].index("--resources") + 1] == "GPU=1"
    assert gpu["deploy"]["resources"]["reservations"]["devices"][0]["capabilities"] == ["gpu"]
    assert "--resources" not in services["dask-cpu-worker"]["command"]
    for name in ("dask-scheduler", "dask-gpu-worker", "dask-cpu-worker", "prefect-worker"):
        env = services[name]["environment"]
        assert env["AWS_ENDPOINT_URL"] == "http://minio:9000" and env["PREFECT_API_URL"] == "http://prefect-server:4200/api"
        assert env["AWS_SECRET_ACCESS_KEY"] == env_example()["MINIO_ROOT_PASSWORD"]
    for name in ("dask-gpu-worker", "dask-cpu-worker"):
        assert services[name]["command"][:3] == ["dask", "worker", "tcp://dask-scheduler:8786"]


def _compose_cli() -> list[str] | None:
    if shutil.which("docker") and subprocess.run(["docker", "compose", "version"], capture_output=True, check=False).returncode == 0:
        return ["docker", "compose"]
    return ["docker-compose"] if shutil.which("docker-compose") else None


def test_compose_cli_config_check():
    cli = _compose_cli()
    if cli is None:
        pytest.skip("no compose CLI here (docker compose plugin or Debian's docker-compose); the schema test above still ran")
    env = dict(os.environ) | env_example()
    result = subprocess.run(
        [*cli, "-f", str(COMPOSE), "--env-file", str(ENV_EXAMPLE), "config", "--quiet"],
        capture_output=True, text=True, env=env, cwd=REPO, check=False, timeout=60,
    )
    assert result.returncode == 0, result.stderr


def test_dockerfile_copies_what_exists_and_sets_the_home_the_deployments_use():
    text = (INFRA / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.11", text, re.MULTILINE)
    assert "NEUROSCRIBE_HOME=/opt/neuroscribe" in text
    for line in re.findall(r"^COPY (.+)$", text, re.MULTILINE):
        sources = line.split()[:-1]
        for source in sources:
            if source != ".":
                assert (REPO / source).exists(), f"Dockerfile copies missing {source}"
    prefect_yaml = yaml.safe_load((REPO / "deployments" / "prefect.yaml").read_text())
    assert "$NEUROSCRIBE_HOME" in str(prefect_yaml["pull"])
