"""The `screener` command: parses options, builds `Settings`, and delegates to the library.

Exit codes: 0 every video analysed, 1 some failed (each listed with its reason), 2 usage errors.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer

from screener import __version__

app = typer.Typer(
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

EXIT_OK, EXIT_FAILURES, EXIT_USAGE = 0, 1, 2


class UserError(Exception):
    """A mistake in what the user asked for: printed as one line, exit code 2."""


def fail(message: str, code: int = EXIT_USAGE) -> typer.Exit:
    typer.secho(f"error: {message}", err=True, fg=typer.colors.RED)
    return typer.Exit(code)


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


ConfigOption = Annotated[
    Path | None,
    typer.Option("--config", help="TOML settings file (tables [keyframes], [faces], [emotions]).",
                 exists=True, dir_okay=False),
]
DbOption = Annotated[
    str | None,
    typer.Option("--db", help="Database URL, or the path of a SQLite file [default: "
                 "$SCREENER_DB, else a SQLite file in the user's data directory].",
                 show_default=False),
]
RulesOption = Annotated[
    str | None,
    typer.Option("--rules", help="Rule set: 'default', 'seed', or a TOML rules file."),
]
EveryOption = Annotated[
    float | None,
    typer.Option("--every", help="Seconds between key frames inside a scene [default: 1].",
                 min=0.05, show_default=False),
]
ModelOption = Annotated[
    Path | None,
    typer.Option("--model", help="ONNX emotion model [default: the shipped one].",
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


def open_store(settings):  # -> Store
    from screener.store import Store, StoreError

    try:
        return Store(settings.database_url)
    except StoreError as exc:
        raise fail(str(exc)) from None


def load_analyzer(settings):  # -> Analyzer
    from screener.analysis import Analyzer
    from screener.emotions import ModelError
    from screener.faces import DetectorError
    from screener.rules import RulesError

    try:
        return Analyzer.from_settings(settings)
    except (ModelError, DetectorError, RulesError) as exc:
        raise fail(str(exc)) from None


def _configure_logging(debug: bool, quiet: bool) -> None:
    level = logging.DEBUG if debug else logging.ERROR if quiet else logging.WARNING
    logging.getLogger("screener").setLevel(level)


def _show_progress(quiet: bool) -> bool:
    return not quiet and sys.stderr.isatty()


@app.command()
def scan(
    paths: Annotated[list[Path], typer.Argument(help="Video files or folders (searched "
                                                "recursively).", exists=True)],
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for the HTML reports.")] = Path(
        "reports"
    ),
    db: DbOption = None,
    rules: RulesOption = None,
    every: EveryOption = None,
    workers: Annotated[
        int | None,
        typer.Option(help="Videos analysed in parallel: worker processes here, or of "
                     "--cluster local (at least 2 there). 0 means one per CPU core "
                     "[default: 0]. 1 analyses one video at a time in this process, with a "
                     "thread each for decoding, key frames and faces.", min=0,
                     show_default=False),
    ] = None,
    cluster: Annotated[
        str | None,
        typer.Option(help="Analyse on a Dask cluster: the scheduler's address "
                     "(tcp://HOST:8786), or 'local' for worker processes started here for this "
                     "scan. Workers must see the videos at the same paths (a shared mount); "
                     "this machine alone writes the database and reports. Needs "
                     'pip install ".[cluster]".', show_default=False),
    ] = None,
    force: Annotated[bool, typer.Option(help="Re-analyse videos already stored.")] = False,
    pattern: Annotated[
        str | None,
        typer.Option(help="Regex with named groups (?P<student>..), (?P<session>..), "
                     "(?P<date>YYYY-MM-DD) matched against each video's path relative to the "
                     "folder scanned."),
    ] = None,
    model: ModelOption = None,
    all_faces: AllFacesOption = False,
    config: ConfigOption = None,
    quiet: QuietOption = False,
    debug: DebugOption = False,
) -> None:
    """Analyse every new video under PATHS, store the sessions, and write HTML reports.

    Student and session come from the path: <student>/<file>.mp4 or
    <student>_<YYYY-MM-DD>[...].mp4 (see --pattern). Videos already analysed with the same
    model and rules are skipped unless --force. Exit code 0 when every video was analysed
    (or was already), 1 when some failed (each is listed with its reason), 2 for usage errors.
    """
    _configure_logging(debug, quiet)
    from screener.discover import DiscoveryError, PathPattern
    from screener.locking import LockTimeout, exclusive_scan
    from screener.scan import scan as run_scan

    settings = build_settings(config, db, rules, every, model, all_faces,
                              workers=workers, cluster=cluster, force=force or None)
    try:
        path_pattern = PathPattern.compile(pattern) if pattern else None
    except DiscoveryError as exc:
        raise fail(str(exc)) from None
    analyzer = load_analyzer(settings)
    store = open_store(settings)
    progress = _tqdm_progress if _show_progress(quiet) else None
    try:
        with _analysis_backend(settings) as analyse, exclusive_scan(
            settings.database_url, settings.lock_timeout_s,
            lambda message: typer.echo(message, err=True),
        ):
            summary = run_scan(paths, analyzer, store, path_pattern, progress, analyse)
    except DiscoveryError as exc:
        raise fail(str(exc)) from None
    except LockTimeout as exc:
        raise fail(str(exc), EXIT_FAILURES) from None
    analysed = {o.job.student_id for o in summary.outcomes if o.status == "analysed"}
    changed = sorted(analysed & set(store.student_ids()))
    if changed or not (out / "index.html").exists():
        write_reports(store, out, settings, changed)
    for outcome in summary.failed:
        typer.secho(f"FAILED {outcome.job.path}: {outcome.reason}", err=True,
                    fg=typer.colors.RED)
    if not quiet or summary.failed:
        typer.echo(
            f"{summary.count('analysed')} analysed, {summary.count('unchanged')} unchanged, "
            f"{len(summary.failed)} failed; reports: {out / 'index.html'}; database: "
            f"{store.safe_url}"
        )
    raise typer.Exit(EXIT_FAILURES if summary.failed else EXIT_OK)


@contextmanager
def _analysis_backend(settings) -> Iterator:  # noqa: ANN001
    """Yields a `scan.AnalyseAll`, or None to analyse here; a cluster is shut down however the
    scan ends."""
    if not settings.cluster:
        yield None
        return
    from screener.cluster import ClusterError, DaskAnalysis

    try:
        with DaskAnalysis.from_settings(settings) as analyse:
            yield analyse
    except ClusterError as exc:
        raise fail(str(exc)) from None


def _tqdm_progress(total: int):  # -> scan.Progress
    from tqdm import tqdm

    from screener.scan import Progress

    class Bar(Progress):
        def __init__(self) -> None:
            self.bar = tqdm(total=total, unit="video", desc="scanning", dynamic_ncols=True)

        def advance(self, outcome) -> None:  # noqa: ANN001
            self.bar.set_postfix_str(f"{outcome.job.path.name}: {outcome.level or outcome.status}")
            self.bar.update(1)

        def close(self) -> None:
            self.bar.close()

    return Bar()


def write_reports(store, out: Path, settings, student_ids=None) -> list[Path]:  # noqa: ANN001
    from screener.emotions import ModelCard
    from screener.report import ReportError, render_reports

    try:
        card = ModelCard.for_model(settings.model_path, settings.emotions.flip_margin)
        return render_reports(store, out, card, student_ids)
    except ReportError as exc:
        raise fail(str(exc)) from None
    except OSError as exc:
        raise fail(f"cannot write reports to {out}: {exc.strerror or exc}", EXIT_FAILURES) from None


@app.command()
def history(
    student: Annotated[str, typer.Argument(help="Student id, as in the reports.")],
    db: DbOption = None,
    output_format: Annotated[
        str, typer.Option("--format", help="table, json or csv.")
    ] = "table",
) -> None:
    """One student's sessions over time, oldest first."""
    from screener.history import HISTORY_FORMATS, format_history

    if output_format not in HISTORY_FORMATS:
        raise fail(f"--format must be one of {', '.join(HISTORY_FORMATS)}")
    store = open_store(build_settings(db=db))
    sessions = store.sessions_of(student)
    if not sessions:
        known = store.student_ids()
        hint = f"; known students: {', '.join(known[:20])}" if known else "; the database is empty"
        raise fail(f"no sessions for student {student!r}{hint}")
    typer.echo(format_history(sessions, output_format), nl=False)


@app.command()
def report(
    students: Annotated[
        list[str] | None, typer.Argument(help="Students to re-render [default: all].")
    ] = None,
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for the HTML reports.")] = Path(
        "reports"
    ),
    db: DbOption = None,
) -> None:
    """Re-render the HTML reports from the database (no video is read)."""
    settings = build_settings(db=db)
    store = open_store(settings)
    if students:
        unknown = sorted(set(students) - set(store.student_ids()))
        if unknown:
            raise fail(f"no sessions for student(s): {', '.join(unknown)}")
    written = write_reports(store, out, settings, students or None)
    typer.echo(f"wrote {len(written)} report file(s) to {out}")


@app.command()
def analyze(
    video: Annotated[Path, typer.Argument(help="One video file.", exists=True, dir_okay=False)],
    csv_path: Annotated[
        Path | None, typer.Option("--csv", help="Write per-frame rows as CSV ('-' for stdout).")
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print one JSON document (frames, metrics, level).")
    ] = False,
    rules: RulesOption = None,
    every: EveryOption = None,
    model: ModelOption = None,
    all_faces: AllFacesOption = False,
    config: ConfigOption = None,
    quiet: QuietOption = False,
    debug: DebugOption = False,
) -> None:
    """Analyse one video without the database: per-frame emotions, metrics and the level."""
    _configure_logging(debug, quiet)
    from screener.analysis_output import frames_csv, result_document, summary_text
    from screener.discover import job_for
    from screener.keyframes import VideoReadError

    settings = build_settings(config, None, rules, every, model, all_faces)
    analyzer = load_analyzer(settings)
    job = job_for(video, video.parent)
    bar = None
    if _show_progress(quiet) and not (as_json or csv_path == Path("-")):
        from tqdm import tqdm

        bar = tqdm(unit=" key frames", desc=video.name, dynamic_ncols=True)
    try:
        result = analyzer.analyze(job, (lambda n: bar.update(1)) if bar is not None else None)
    except VideoReadError as exc:
        raise fail(f"{video}: {exc}", EXIT_FAILURES) from None
    finally:
        if bar is not None:
            bar.close()
    if csv_path == Path("-"):
        typer.echo(frames_csv(result), nl=False)
    elif csv_path:
        csv_path.write_text(frames_csv(result), encoding="utf-8")
    if as_json:
        typer.echo(json.dumps(result_document(result), indent=2))
    elif csv_path != Path("-"):
        typer.echo(summary_text(result))


from screener import cli_model  # noqa: E402,F401  (registers `train` and `evaluate`)


def main() -> None:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        app()
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        sys.exit(130)
