"""The ``neuroscribe`` command line: ``neuroscribe --help`` lists the commands.

Each command module registers on the shared ``app``; bad input (``NeuroscribeError``) is printed
as one line without a traceback and exits with status 2.
"""

from __future__ import annotations

import sys

from rich.console import Console

from neuroscribe.cli.app import app
from neuroscribe.errors import NeuroscribeError

# command modules register themselves on import, in the order `neuroscribe --help` lists them
from neuroscribe.cli import extract, ablate, vocabulary, explain, evaluate  # noqa: F401  # isort: skip


def main() -> None:
    try:
        app()
    except NeuroscribeError as exc:
        Console(stderr=True, soft_wrap=True).print(f"[bold red]error:[/] {exc}", highlight=False)  # one line, whatever the terminal width
        sys.exit(2)


__all__ = ["app", "main"]
