"""The `screener` command: parses options, builds `Settings`, and delegates to the library.

One module per command group, each registering on the app of `cli.app`; shared options live in
`cli.options`. Exit codes: 0 every video analysed, 1 some failed (each listed with its reason),
2 usage errors.
"""

from __future__ import annotations

import importlib
import logging
import sys

import typer

from screener.cli.app import app
from screener.terminal import log_to_stderr

__all__ = ["app", "main"]

COMMAND_MODULES = ("scan", "history", "reports", "forget", "analyze", "live", "model",
                   "model_files")
"""Each registers its commands on `app` when imported; `--help` lists them in this order."""

for _name in COMMAND_MODULES:
    importlib.import_module(f"screener.cli.{_name}")


def main() -> None:
    log_to_stderr(logging.WARNING)
    try:
        app()
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        sys.exit(130)
