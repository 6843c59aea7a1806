"""The shared typer application; each ``neuroscribe/cli/<command>.py`` adds its commands to ``app``.

The CLI is the top layer: it imports the flows (``neuroscribe.flows``), never the other way round
(``tests/test_layering.py`` checks every import, in functions too). The command bodies import the
flows and the heavy core (torch, prefect, open_clip, zarr) when the command runs, not when the module
loads, because every ``neuroscribe`` call loads every command module: ``neuroscribe --help`` takes
0.5 s so, and 8-11 s with them at module level (2 shared cores; ``benchmarks/cli_start.py``).
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
from collections.abc import Callable
from typing import Annotated, Any, get_type_hints

import typer

app = typer.Typer(
    name="neuroscribe",
    help="Explain in natural language what each unit of a vision network detects, and which units each class needs.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def parse_storage_options(pairs: list[str] | None) -> dict:
    """``--storage-option key=value`` pairs into an fsspec options dict (values are never logged)."""
    options: dict = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep:
            raise typer.BadParameter(f"{pair!r} is not key=value")
        options[key] = value
    return options


# Flags used by several commands, one definition each (the same help everywhere). The groups below
# bundle the flags that travel together; `with_options` expands them.
MODEL_HELP = "torchvision name (resnet50, vit_b_16), timm:<name>, efficientnet_lite0/1/2, or package.module:factory"
WeightsOption = Annotated[str | None, typer.Option(help="torchvision weight enum name, or DEFAULT")]
DaskAddressOption = Annotated[str | None, typer.Option(help="existing Dask scheduler (default: a local cluster)")]
WorkersOption = Annotated[int | None, typer.Option("--workers", help="local cluster worker processes")]
StorageOption = Annotated[list[str] | None, typer.Option(help="fsspec option key=value for store and dataset")]
WaitOption = Annotated[
    float | None,
    typer.Option("--wait", help="seconds to queue behind another run writing the same store (default: fail at once, naming it)"),
]
MaxImagePixelsOption = Annotated[
    int | None,
    typer.Option(help="images over this many pixels are skipped, JPEGs decoded at reduced scale (default PIL's ~179 Mpx)"),
]
LimitOption = Annotated[int | None, typer.Option(help="use only the first N images")]
LocalOption = Annotated[bool, typer.Option(help="run in this process with a progress bar instead of the Prefect flow on Dask")]


@dataclasses.dataclass(frozen=True)
class ModelOptions:
    """The flags that load a model: a ModelSpec."""

    model: Annotated[str | None, typer.Option("--model", "-m", help=MODEL_HELP)] = None
    weights: WeightsOption = None
    checkpoint: Annotated[str | None, typer.Option(help="local state-dict file (module. prefix stripped)")] = None
    class_names: Annotated[str | None, typer.Option(help="file with the model's class names, one per line")] = None

    def overrides(self) -> dict[str, Any]:
        return {"name": self.model, "weights": self.weights, "checkpoint": self.checkpoint, "class_names_file": self.class_names}


@dataclasses.dataclass(frozen=True)
class DataOptions:
    """How the dataset is read (its URI is each command's own flag: ablate's must be labelled)."""

    class_list: Annotated[str | None, typer.Option(help="dataset class-folder order, one name per line")] = None
    limit: LimitOption = None
    storage_option: StorageOption = None
    max_image_pixels: MaxImagePixelsOption = None

    @property
    def storage_options(self) -> dict | None:
        """``--storage-option`` pairs as fsspec options, for the store and the dataset alike."""
        return parse_storage_options(self.storage_option) or None

    def overrides(self, uri: str | None) -> dict[str, Any]:
        """A DatasetSpec's fields (None: not given, the YAML or the default holds)."""
        return {"uri": uri, "class_list": self.class_list, "limit": self.limit, "storage_options": self.storage_options,
                "max_image_pixels": self.max_image_pixels}


@dataclasses.dataclass(frozen=True)
class RunnerOptions:
    """Where and how the forward passes run: a RunnerSpec."""

    batch_size: Annotated[int | None, typer.Option(help="images per forward pass")] = None
    device: Annotated[str | None, typer.Option(help="auto, cpu or cuda")] = None
    dask_address: DaskAddressOption = None
    n_workers: WorkersOption = None  # named as RunnerSpec's fields, so `dataclasses.asdict` gives the overrides
    wait_for_store_s: WaitOption = None


@dataclasses.dataclass(frozen=True)
class ExtractOptions:
    """The flags of ``neuroscribe extract``, defined once: every command that extracts (``explain`` too)
    takes all of them, so ExtractConfig's fields reach each one the same way."""

    layers: Annotated[str | None, typer.Option("--layers", "-l", help="comma-separated layer names (see `neuroscribe layers`)")] = None
    dataset: Annotated[
        str | None, typer.Option("--dataset", "-d", help="image folder or file list; local, s3:// or any fsspec URL")
    ] = None
    store: Annotated[str | None, typer.Option("--store", "-s", help="run store: local path or s3://bucket/prefix")] = None
    model: ModelOptions = ModelOptions()
    data: DataOptions = DataOptions()
    shard_size: Annotated[int | None, typer.Option(help="images per shard (default 256)")] = None
    k: Annotated[int | None, typer.Option(help="top-activating images kept per unit (default 50)")] = None
    overwrite: Annotated[bool, typer.Option(help="replace a store that holds a different extraction")] = False
    runner: RunnerOptions = RunnerOptions()

    def overrides(self) -> dict[str, Any]:
        """ExtractConfig fields given on the command line (None: not given, the YAML or the default holds)."""
        return {
            "layers": self.layers,
            "store": self.store,
            "k": self.k,
            "overwrite": self.overwrite or None,
            "store_options": self.data.storage_options,
            "model": self.model.overrides(),
            "dataset": self.data.overrides(self.dataset) | {"shard_size": self.shard_size},
            "runner": dataclasses.asdict(self.runner),
        }


def _flags(group: type) -> list[inspect.Parameter]:
    """An option group's fields as keyword-only flags, nested groups expanded in place."""
    hints = get_type_hints(group, include_extras=True)
    flags = []
    for f in dataclasses.fields(group):
        if dataclasses.is_dataclass(hints[f.name]):
            flags += _flags(hints[f.name])
        else:
            flags.append(inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, default=f.default, annotation=hints[f.name]))
    return flags


def _collect(group: type, values: dict[str, Any]) -> Any:
    """One instance of ``group`` from the parsed flags, popped out of ``values``."""
    hints = get_type_hints(group, include_extras=True)
    return group(**{f.name: _collect(hints[f.name], values) if dataclasses.is_dataclass(hints[f.name]) else values.pop(f.name)
                    for f in dataclasses.fields(group)})


def with_options(command: Callable) -> Callable:
    """Give a typer command the flags of its option groups: a parameter annotated with an option dataclass
    (``extraction: ExtractOptions``) stands for that dataclass's fields as flags, listed in its place, and
    the command is called with one instance of it. Typer reads the flags from the returned function's signature."""
    signature = inspect.signature(command, eval_str=True)
    groups = {p.name: p.annotation for p in signature.parameters.values() if dataclasses.is_dataclass(p.annotation)}
    parameters = []
    for p in signature.parameters.values():
        parameters += _flags(p.annotation) if p.name in groups else [p.replace(kind=inspect.Parameter.KEYWORD_ONLY)]

    @functools.wraps(command)
    def run(**values: Any) -> Any:
        built = {name: _collect(group, values) for name, group in groups.items()}
        return command(**values, **built)

    run.__signature__ = signature.replace(parameters=parameters)
    run.__annotations__ = {p.name: p.annotation for p in parameters}
    return run
