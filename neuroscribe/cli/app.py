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


# Options shared by the commands that run flows: one definition, the same help everywhere.
MODEL_HELP = "torchvision name (resnet50, vit_b_16), timm:<name>, efficientnet_lite0/1/2, or package.module:factory"
ModelOption = Annotated[str | None, typer.Option("--model", "-m", help=MODEL_HELP)]
WeightsOption = Annotated[str | None, typer.Option(help="torchvision weight enum name, or DEFAULT")]
CheckpointOption = Annotated[str | None, typer.Option(help="local state-dict file (module. prefix stripped)")]
BatchSizeOption = Annotated[int | None, typer.Option(help="images per forward pass")]
DeviceOption = Annotated[str | None, typer.Option(help="auto, cpu or cuda")]
DaskAddressOption = Annotated[str | None, typer.Option(help="existing Dask scheduler (default: a local cluster)")]
WorkersOption = Annotated[int | None, typer.Option(help="local cluster worker processes")]
OverwriteOption = Annotated[bool, typer.Option(help="replace a store that holds a different extraction")]
StorageOption = Annotated[list[str] | None, typer.Option(help="fsspec option key=value for store and dataset")]
WaitOption = Annotated[
    float | None,
    typer.Option("--wait", help="seconds to queue behind another run writing the same store (default: fail at once, naming it)"),
]
MaxImagePixelsOption = Annotated[
    int | None,
    typer.Option(help="images over this many pixels are skipped, JPEGs decoded at reduced scale (default PIL's ~179 Mpx)"),
]
ClassNamesOption = Annotated[str | None, typer.Option(help="file with the model's class names, one per line")]
ClassListOption = Annotated[str | None, typer.Option(help="dataset class-folder order, one name per line")]
LimitOption = Annotated[int | None, typer.Option(help="use only the first N images")]
LocalOption = Annotated[bool, typer.Option(help="run in this process with a progress bar instead of the Prefect flow on Dask")]


def runner_overrides(
    batch_size: int | None, device: str | None, dask_address: str | None, workers: int | None, wait: float | None = None
) -> dict:
    return {"batch_size": batch_size, "device": device, "dask_address": dask_address, "n_workers": workers, "wait_for_store_s": wait}


@dataclasses.dataclass(frozen=True)
class ExtractOptions:
    """The flags of ``neuroscribe extract``, defined once: every command that extracts (``explain`` too)
    takes all of them through ``with_options``, so ExtractConfig's fields reach each one the same way."""

    layers: Annotated[str | None, typer.Option("--layers", "-l", help="comma-separated layer names (see `neuroscribe layers`)")] = None
    dataset: Annotated[
        str | None, typer.Option("--dataset", "-d", help="image folder or file list; local, s3:// or any fsspec URL")
    ] = None
    store: Annotated[str | None, typer.Option("--store", "-s", help="run store: local path or s3://bucket/prefix")] = None
    model: ModelOption = None
    weights: WeightsOption = None
    checkpoint: CheckpointOption = None
    class_names: ClassNamesOption = None
    class_list: ClassListOption = None
    limit: LimitOption = None
    shard_size: Annotated[int | None, typer.Option(help="images per shard (default 256)")] = None
    k: Annotated[int | None, typer.Option(help="top-activating images kept per unit (default 50)")] = None
    batch_size: BatchSizeOption = None
    device: DeviceOption = None
    dask_address: DaskAddressOption = None
    workers: WorkersOption = None
    overwrite: OverwriteOption = False
    storage_option: StorageOption = None
    max_image_pixels: MaxImagePixelsOption = None
    wait: WaitOption = None

    def overrides(self) -> dict[str, Any]:
        """ExtractConfig fields given on the command line (None: not given, the YAML or the default holds)."""
        options = parse_storage_options(self.storage_option)
        return {
            "layers": self.layers,
            "store": self.store,
            "k": self.k,
            "overwrite": self.overwrite or None,
            "store_options": options or None,
            "model": {"name": self.model, "weights": self.weights, "checkpoint": self.checkpoint, "class_names_file": self.class_names},
            "dataset": {
                "uri": self.dataset, "class_list": self.class_list, "limit": self.limit, "shard_size": self.shard_size,
                "storage_options": options or None, "max_image_pixels": self.max_image_pixels,
            },
            "runner": runner_overrides(self.batch_size, self.device, self.dask_address, self.workers, self.wait),
        }


def with_options(**groups: type) -> Callable[[Callable], Callable]:
    """Give a typer command the flags of option dataclasses: ``@with_options(extraction=ExtractOptions)`` adds every
    field of ``ExtractOptions`` as a flag (before the command's own) and calls the command with ``extraction=`` one
    instance of it. Typer reads the flags from the returned function's signature."""

    def decorate(command: Callable) -> Callable:
        own = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY)
               for p in inspect.signature(command, eval_str=True).parameters.values() if p.name not in groups]
        added = []
        for cls in groups.values():
            hints = get_type_hints(cls, include_extras=True)
            added += [inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, default=f.default, annotation=hints[f.name])
                      for f in dataclasses.fields(cls)]

        @functools.wraps(command)
        def run(**kwargs: Any) -> Any:
            for name, cls in groups.items():
                kwargs[name] = cls(**{f.name: kwargs.pop(f.name) for f in dataclasses.fields(cls)})
            return command(**kwargs)

        parameters = added + own
        run.__signature__ = inspect.Signature(parameters, return_annotation=inspect.signature(command).return_annotation)
        run.__annotations__ = {p.name: p.annotation for p in parameters}
        return run

    return decorate
