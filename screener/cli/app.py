"""The `screener` Typer application, its exit codes and the one-line error every command uses.

Command modules register on `app`; they import this module and `options`, never each other.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

import typer
from typer.core import TyperArgument, TyperCommand, TyperOption

from screener import __version__
from screener.privacy import mask_urls
from screener.terminal import printable_lines


class _ReadableArgument(TyperArgument):
    """`PATH...` in usage and help, as users know from other tools, not `{paths}...` and
    `<list[Path]>`."""

    def _usage_display_name(self) -> str:
        name = (self.metavar or self.name.upper()).removesuffix("...")
        name = name if self.nargs == 1 else f"{name}..."
        return name if self.required else f"[{name}]"

    def _rich_display_name(self) -> str:
        return self._usage_display_name()

    def display_type_rich(self, ctx: Any) -> str | None:
        return None


class _ReadableOption(TyperOption):
    """`--every FLOAT` rather than `--every <float range>` where no metavar was given."""

    def display_type_rich(self, ctx: Any) -> str | None:
        if self.metavar is not None:
            return self.metavar
        shown = super().display_type_rich(ctx)
        if not shown:
            return shown
        return re.sub(r"^list\[(.*)\]$", r"\1", shown.strip("<>").removesuffix(" range")).upper()


class _ReadableCommand(TyperCommand):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for param in self.params:
            if type(param) is TyperArgument:
                param.__class__ = _ReadableArgument
            elif type(param) is TyperOption:
                param.__class__ = _ReadableOption


class _Typer(typer.Typer):
    def command(self, *args: Any, cls: Any = None, **kwargs: Any) -> Any:
        return super().command(*args, cls=cls or _ReadableCommand, **kwargs)


app = _Typer(
    name="screener",
    help=(
        "Offline screening of recorded student videos for sustained negative facial affect "
        "(sadness, anger, fear). A screening aid for a counsellor, never a diagnosis."
    ),
    epilog=(
        "Examples:\n\n\b\n  screener scan videos/ --out reports/   # analyse new videos, write "
        "reports\n  screener history student42            # one student's sessions over time"
        "\n  screener analyze lesson.mp4 --json     # one video, no database"
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)

EXIT_OK, EXIT_FAILURES, EXIT_USAGE, EXIT_INTERRUPTED, EXIT_TERMINATED = 0, 1, 2, 130, 143


class UserError(Exception):
    """A mistake in what the user asked for: printed as one line, exit code 2."""


def fail(message: str, code: int = EXIT_USAGE) -> typer.Exit:
    say(f"error: {message}", err=True, fg=typer.colors.RED)
    return typer.Exit(code)


def say(text: str, err: bool = False, nl: bool = True, fg: str | None = None) -> None:
    """Every line a command prints goes through here: names from the file system or the
    database are escaped (`terminal.printable`), never sent raw to the terminal, and a URL
    shows no credential (`privacy.mask_urls`), whichever message quotes it."""
    typer.secho(printable_lines(mask_urls(text)), err=err, nl=nl, fg=fg)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"screener {__version__}")
        raise typer.Exit()


@app.callback()
def main_options(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show version.")
    ] = False,
) -> None:
    """Offline screening of student videos for sustained negative affect."""
