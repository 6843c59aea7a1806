"""The shared typer application; each ``neuroscribe/cli/<command>.py`` adds its commands to ``app``.

The CLI is the top layer: it imports the flows (``neuroscribe.flows``), never the other way round
(``tests/test_layering.py`` checks every import, in functions too). The command bodies import the
flows and the heavy core (torch, prefect, open_clip, zarr) when the command runs, not when the module
loads, because every ``neuroscribe`` call loads every command module: ``neuroscribe --help`` takes
0.5 s so, and 8-11 s with them at module level (2 shared cores; ``benchmarks/cli_start.py``).
"""

from __future__ import annotations

from typing import Annotated

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


def runner_overrides(
    batch_size: int | None, device: str | None, dask_address: str | None, workers: int | None, wait: float | None = None
) -> dict:
    return {"batch_size": batch_size, "device": device, "dask_address": dask_address, "n_workers": workers, "wait_for_store_s": wait}
