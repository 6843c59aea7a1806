"""Static checks of infra/k8s: every manifest is valid against the Kubernetes API schemas (kubernetes-validate)."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

K8S = Path(__file__).resolve().parents[2] / "infra" / "k8s"
KUBERNETES_VERSION = "1.30"


def manifests() -> list[tuple[str, dict]]:
    docs = []
    for path in sorted(K8S.glob("*.yaml")):
        docs += [(path.name, doc) for doc in yaml.safe_load_all(path.read_text()) if doc]
    return docs


def by_name(kind: str, name: str) -> dict:
    return next(d for _, d in manifests() if d["kind"] == kind and d["metadata"]["name"] == name)


def container(deployment: str) -> dict:
    return by_name("Deployment", deployment)["spec"]["template"]["spec"]["containers"][0]


@pytest.fixture(scope="module")
def validate():
    kv = pytest.importorskip("kubernetes_validate", reason="kubernetes-validate (dev extra) ships the API schemas")

    def check(doc: dict) -> None:
        kv.validate(doc, KUBERNETES_VERSION, strict=True)

    check.error = kv.ValidationError
    return check


def test_every_manifest_is_valid_for_the_kubernetes_api(validate):
    docs = [(f, d) for f, d in manifests() if d["kind"] != "Kustomization"]
    assert len(docs) >= 14
    for file, doc in docs:
        validate(doc)  # raises with the path of the bad field
    # the validator is live: a misspelt field is refused
    broken = copy.deepcopy(by_name("Deployment", "dask-gpu-worker"))
    broken["spec"]["replica"] = 2
    with pytest.raises(validate.error):
        validate(broken)


def test_kustomization_lists_every_manifest_but_the_secret_example():
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    files = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml", "secrets.example.yaml"}
    assert set(kustomization["resources"]) == files
    assert [i["name"] for i in kustomization["images"]] == ["neuroscribe"]


def test_gpu_workers_declare_the_gpu_resource_and_get_a_gpu():
    gpu = container("dask-gpu-worker")
    assert "--resources=GPU=1" in gpu["command"] and gpu["resources"]["limits"]["nvidia.com/gpu"] == 1
    cpu = container("dask-cpu-worker")
    assert not any("resources" in arg for arg in cpu["command"]) and "nvidia.com/gpu" not in cpu["resources"].get("limits", {})


def test_pods_reach_each_other_by_service_and_credentials_come_from_secrets():
    services = {d["metadata"]["name"]: d for _, d in manifests() if d["kind"] == "Service"}
    assert {"postgres", "prefect-server", "dask-scheduler", "minio"} <= set(services)
    env = by_name("ConfigMap", "neuroscribe-env")["data"]
    assert env["PREFECT_API_URL"] == "http://prefect-server:4200/api" and env["AWS_ENDPOINT_URL"] == "http://minio:9000"
    assert not any(word in key.lower() for key in env for word in ("secret", "password", "key_id"))
    for name in ("dask-gpu-worker", "dask-cpu-worker", "prefect-worker"):
        sources = container(name)["envFrom"]
        assert {"configMapRef": {"name": "neuroscribe-env"}} in sources and {"secretRef": {"name": "neuroscribe-s3"}} in sources
        assert any("tcp://dask-scheduler:8786" in arg for arg in container(name)["command"]) or name == "prefect-worker"
