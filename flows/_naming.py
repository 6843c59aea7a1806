"""Meaningful flow-run names (model, dataset, layers) read from the run's config parameter."""

from __future__ import annotations

import posixpath

from prefect.runtime import flow_run


def _get(obj, *path):
    for key in path:
        obj = obj.get(key) if isinstance(obj, dict) else getattr(obj, key, None)  # None stays None
    return obj


def config_run_name(prefix: str):
    def name() -> str:
        cfg = flow_run.parameters.get("config", {})
        cfg = _get(cfg, "extract") or cfg  # an ExplainConfig names its extraction's model, dataset and layers
        model = _get(cfg, "model", "name") or "model"
        dataset = _get(cfg, "dataset", "uri") or ""
        layers = _get(cfg, "layers") or ([_get(cfg, "layer")] if _get(cfg, "layer") else [])
        parts = [prefix, model.split(":")[-1], posixpath.basename(str(dataset).rstrip("/")) or "data", "+".join(layers)]
        return "-".join(p for p in parts if p)

    return name
