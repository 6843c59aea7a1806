"""Shared fixtures: tiny synthetic image folders, the shared ImageNet samples, and Prefect isolation."""

from __future__ import annotations

import os
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
SAMPLES = REPO.parent / "shared" / "data" / "imagenet-samples"


@pytest.fixture(scope="session")
def samples_dir() -> Path:
    """The 500 real ImageNet images beside the checkout (absent in a user's clone)."""
    if not (SAMPLES / "labels.tsv").is_file():
        pytest.skip(f"needs the shared ImageNet samples at {SAMPLES} (not part of a user's clone)")
    return SAMPLES


def make_image_folder(root: Path, classes: int = 3, per_class: int = 4, size=(40, 48), seed: int = 0) -> Path:
    """root/<class>/<n>.png with class-dependent colour so that classes differ."""
    rng = np.random.default_rng(seed)
    for c in range(classes):
        folder = root / f"class{c}"
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            arr = rng.integers(0, 256, size=(size[1], size[0], 3), dtype=np.uint8)
            arr[..., c % 3] = 255 - (i * 20)
            Image.fromarray(arr).save(folder / f"img{i:03d}.png")
    return root


@pytest.fixture
def image_folder(tmp_path) -> Path:
    return make_image_folder(tmp_path / "images")


@pytest.fixture(scope="session", autouse=True)
def _isolated_prefect_home(tmp_path_factory):
    """Each test session gets its own Prefect home (ephemeral SQLite database, local results)."""
    home = tmp_path_factory.mktemp("prefect-home")
    os.environ.setdefault("PREFECT_HOME", str(home))
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    yield


@pytest.fixture
def s3_options():
    """fsspec options of a throwaway S3 endpoint (moto server on 127.0.0.1) holding only an empty bucket ``test``."""
    boto3 = pytest.importorskip("boto3")
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    # moto keeps its buckets in process-wide state shared by every server it starts: reset it, so each
    # test gets an empty endpoint (else a store another test wrote is still there)
    urllib.request.urlopen(urllib.request.Request(f"{endpoint}/moto-api/reset", method="POST"), timeout=30).close()
    credentials = {"key": "test-key", "secret": "test-secret"}
    boto3.client(
        "s3", endpoint_url=endpoint, aws_access_key_id=credentials["key"], aws_secret_access_key=credentials["secret"], region_name="us-east-1"
    ).create_bucket(Bucket="test")
    yield {**credentials, "client_kwargs": {"endpoint_url": endpoint, "region_name": "us-east-1"}}
    server.stop()
