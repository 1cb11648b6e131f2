"""Options shared by several commands, and how they become one `Settings` object."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Annotated

import typer

from screener.cli.app import fail
from screener.settings import MIN_EVERY_S

DataOption = Annotated[
    Path,
    typer.Option(
        "--data", metavar="DIR|CSV",
        help="FER2013 folder (train/, val/, <emotion>/*.jpg) or CSV (emotion,pixels,Usage).",
    ),
]


ConfigOption = Annotated[
    Path | None,
    typer.Option("--config", metavar="FILE",
                 help="TOML settings file (tables [keyframes], [faces], [emotions]).",
                 exists=True, dir_okay=False),
]
DbOption = Annotated[
    str | None,
    typer.Option("--db", metavar="URL|FILE",
                 help="Database URL, or the path of a SQLite file [default: "
                 "$SCREENER_DB, else a SQLite file in the user's data directory].",
                 show_default=False),
]
RulesOption = Annotated[
    str | None,
    typer.Option("--rules", metavar="NAME|FILE",
                 help="Rule set: 'default', 'seed', or a TOML rules file."),
]
EveryOption = Annotated[
    float | None,
    typer.Option("--every", metavar="SECONDS",
                 help="Seconds between key frames inside a scene [default: 1].",
                 min=MIN_EVERY_S, show_default=False),
]
ModelOption = Annotated[
    Path | None,
    typer.Option("--model", metavar="FILE", help="ONNX emotion model [default: the shipped one].",
                 exists=True, dir_okay=False),
]
AllFacesOption = Annotated[
    bool, typer.Option("--all-faces", help="Analyse every face, not only the largest.")
]
QuietOption = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars (for cron).")]
DebugOption = Annotated[bool, typer.Option("--debug", help="Log details and tracebacks.")]


def build_settings(
    config: Path | None = None,
    db: str | None = None,
    rules: str | None = None,
    every: float | None = None,
    model: Path | None = None,
    all_faces: bool = False,
    **top: object,
):  # -> Settings; imported lazily to keep `--help` fast
    """Defaults, then the --config file, then explicit options."""
    from dataclasses import replace

    from screener.settings import SettingsError, load_settings

    try:
        settings = load_settings(config)
    except SettingsError as exc:
        raise fail(str(exc)) from None
    if every is not None:
        settings = settings.replace(keyframes=replace(settings.keyframes, every_s=every))
    if model is not None:
        settings = settings.replace(emotions=replace(settings.emotions, model_path=model))
    if all_faces:
        settings = settings.replace(faces=replace(settings.faces, keep_all=True))
    changes = {k: v for k, v in {"db_url": db, "rules": rules, **top}.items() if v is not None}
    return settings.replace(**changes)


def open_store(settings, create: bool = False, read_only: bool = False):  # -> Store
    """Only the commands that store sessions (`scan`, `live --student`) create a database
    (`create`), and only its default folder; reading commands may open it `read_only`."""
    from screener.storage.store import Store, StoreError

    try:
        return Store(settings.database_url, create, make_folder=create and
                     settings.database_is_default, read_only=read_only)
    except StoreError as exc:
        raise fail(str(exc)) from None


def load_analyzer(settings, threads: int | None = None):  # -> Analyzer
    from screener.emotions.model import ModelError
    from screener.faces import DetectorError
    from screener.scanning.analysis import Analyzer
    from screener.session.rules import RulesError

    try:
        return Analyzer.from_settings(settings, threads)
    except (ModelError, DetectorError, RulesError) as exc:
        raise fail(str(exc)) from None


def configure_logging(debug: bool, quiet: bool) -> None:
    level = logging.DEBUG if debug else logging.ERROR if quiet else logging.WARNING
    logging.getLogger("screener").setLevel(level)


def show_progress(quiet: bool) -> bool:
    return not quiet and sys.stderr.isatty()
