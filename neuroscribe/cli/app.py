"""The shared typer application; each ``neuroscribe/cli/<command>.py`` adds its commands to ``app``."""

from __future__ import annotations

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
