"""Content keys and code versions: stable for equal inputs, different for different ones."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys

from neuroscribe import __version__
from neuroscribe.config import DatasetSpec, ModelSpec
from neuroscribe.fingerprint import code_version, content_key


def test_content_key_ignores_dict_order_and_matches_a_sha256_of_canonical_json():
    a = {"model": {"name": "resnet50", "weights": None}, "layers": ["layer3", "layer4"], "k": 50}
    b = {"k": 50, "layers": ["layer3", "layer4"], "model": {"weights": None, "name": "resnet50"}}
    assert content_key(a) == content_key(b)
    expected = hashlib.sha256(json.dumps(a, sort_keys=True).encode()).hexdigest()
    assert content_key(a, length=64) == expected
    assert content_key(a, length=10) == expected[:10]


def test_content_key_of_a_model_is_the_key_of_its_json_dump():
    spec = ModelSpec(name="resnet50", weights="DEFAULT")
    assert content_key(spec) == content_key(spec.model_dump(mode="json"))
    assert content_key({"model": spec}) == content_key({"model": spec.model_dump(mode="json")})


def test_content_key_changes_with_any_input():
    base = {"model": "resnet50", "layers": ["layer3", "layer4"], "k": 50}
    variants = [
        {**base, "k": 51},
        {**base, "model": "resnet18"},
        {**base, "layers": ["layer4", "layer3"]},  # list order is meaningful
        {**base, "extra": None},
        {k: v for k, v in base.items() if k != "k"},
        {**base, "k": "50"},  # a string is not the number
    ]
    keys = {content_key(v) for v in variants}
    assert len(keys) == len(variants) and content_key(base) not in keys


def test_content_key_never_holds_storage_secrets():
    with_secret = DatasetSpec(uri="s3://b/x", storage_options={"secret": "s3cr3t-1"})
    other_secret = DatasetSpec(uri="s3://b/x", storage_options={"secret": "s3cr3t-2"})
    assert content_key(with_secret) == content_key(other_secret)  # secrets are masked before hashing


def _code_version_in_new_process(module_dir, *modules: str) -> str:
    script = f"from neuroscribe.fingerprint import code_version; print(code_version(*{modules!r}))"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(module_dir), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([sys.executable, "-c", script], env=env, check=True, capture_output=True, text=True).stdout.strip()


def test_code_version_changes_when_a_listed_module_changes_and_only_then(tmp_path):
    module = tmp_path / "fp_probe_module.py"
    other = tmp_path / "fp_probe_other.py"
    module.write_text("def f():\n    return 1\n")
    other.write_text("X = 1\n")
    first = _code_version_in_new_process(tmp_path, "fp_probe_module", "fp_probe_other")
    assert first.startswith(f"{__version__}+")
    assert _code_version_in_new_process(tmp_path, "fp_probe_other", "fp_probe_module") == first  # order-free

    module.write_text("def f():\n    return 2\n")
    changed = _code_version_in_new_process(tmp_path, "fp_probe_module", "fp_probe_other")
    assert changed != first
    assert _code_version_in_new_process(tmp_path, "fp_probe_other") == _code_version_in_new_process(tmp_path, "fp_probe_other")
    # a module not listed does not enter the version
    module.write_text("def f():\n    return 3\n")
    assert _code_version_in_new_process(tmp_path, "fp_probe_other") == code_version_of_source(other.read_text())


def code_version_of_source(*sources: str) -> str:
    """The version computed independently: package version, then each source in module-name order."""
    digest = hashlib.sha256(__version__.encode())
    for source in sources:
        digest.update(source.encode())
    return f"{__version__}+{digest.hexdigest()[:12]}"


def test_code_version_of_a_package_module_hashes_its_source():
    import neuroscribe.fingerprint as module

    with open(module.__file__, encoding="utf-8") as f:
        assert code_version("neuroscribe.fingerprint") == code_version_of_source(f.read())
