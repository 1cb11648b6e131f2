"""`screener scan`: analyse new videos under some paths, store them, refresh the reports."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer

from screener.cli.app import (
    EXIT_FAILURES,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_TERMINATED,
    EXIT_USAGE,
    app,
    say,
)
from screener.cli.app import fail as usage_error
from screener.cli.options import (
    AllFacesOption,
    ConfigOption,
    DbOption,
    DebugOption,
    EveryOption,
    ModelOption,
    QuietOption,
    RulesOption,
    build_settings,
    configure_logging,
    load_analyzer,
    open_store,
    show_progress,
)
from screener.terminal import printable


@app.command()
def scan(
    paths: Annotated[list[Path], typer.Argument(
        metavar="PATH...", help="Video files or folders (searched recursively).", exists=True)],
    out: Annotated[Path, typer.Option("--out", "-o", metavar="DIR",
                                      help="Folder for the HTML reports.")] = Path(
        "reports"
    ),
    db: DbOption = None,
    rules: RulesOption = None,
    every: EveryOption = None,
    workers: Annotated[
        int | None,
        typer.Option(metavar="N", help="Videos analysed in parallel: worker processes here, or of "
                     "--cluster local (at least 2 there). 0 means one per CPU core "
                     "[default: 0]. 1 analyses one video at a time in this process, with a "
                     "thread each for decoding, key frames and faces.", min=0,
                     show_default=False),
    ] = None,
    cluster: Annotated[
        str | None,
        typer.Option(metavar="URL|local", help="Analyse on a Dask cluster: the scheduler's address "
                     "(tcp://HOST:8786), or 'local' for worker processes started here for this "
                     "scan. Workers must see the videos at the same paths (a shared mount); "
                     "this machine alone writes the database and reports. Needs "
                     'pip install ".[cluster]".', show_default=False),
    ] = None,
    force: Annotated[bool, typer.Option(help="Re-analyse videos already stored.")] = False,
    evidence: Annotated[
        int | None,
        typer.Option("--evidence", metavar="N",
                     help="Keep the N faces that weighed most in each session's level as small "
                     "thumbnails, in the database and on the student page, to check the model "
                     "against. Reports then contain face images [default: 0, none].",
                     min=0, max=24, show_default=False),
    ] = None,
    pattern: Annotated[
        str | None,
        typer.Option(metavar="REGEX",
                     help="Regex with named groups (?P<student>..), (?P<session>..), "
                     "(?P<date>YYYY-MM-DD) matched against each video's path relative to the "
                     "folder scanned."),
    ] = None,
    model: ModelOption = None,
    all_faces: AllFacesOption = False,
    config: ConfigOption = None,
    quiet: QuietOption = False,
    log: Annotated[
        Path | None,
        typer.Option("--log", metavar="FILE",
                     help="Append one dated line per run to FILE (videos analysed, skipped and "
                     "failed; the exit code), and a dated line per failure; created private "
                     "(0600), with its folder. For cron, with --quiet.", show_default=False),
    ] = None,
    debug: DebugOption = False,
) -> None:
    """Analyse every new video under each PATH, store the sessions, and write HTML reports.

    Student and session come from the path: <student>/<file>.mp4 or
    <student>_<YYYY-MM-DD>[...].mp4 (see --pattern). Videos already analysed with the same
    model and rules are skipped unless --force; the same recording at two paths is stored
    once. With [storage] retention_days in --config, videos recorded before the retention
    period are not stored, and stored sessions recorded before it are erased, as by
    `screener forget --older-than`. Exit code 0 when every video was analysed (or was already,
    or has expired), 1 when some failed (each is listed with its reason) or none was found, 2
    for usage errors, 130 when interrupted (Ctrl-C), 143 when terminated (SIGTERM).
    """
    configure_logging(debug, quiet)
    with scan_log(log) as run_log:
        from screener.scanning.scan import (
            DatabaseLost,
            ScanInterrupted,
            StorageFull,
            Terminated,
            sigterm_as_interrupt,
        )
        from screener.scanning.scan import scan as run_scan
        from screener.storage.locking import LockError, LockTimeout, exclusive_scan
        from screener.storage.store import DATABASE_LOST
        from screener.video.discover import VIDEO_SUFFIXES, DiscoveryError, PathPattern

        def fail(message: str, code: int = EXIT_USAGE) -> typer.Exit:
            run_log.line(f"error: {message}")
            return usage_error(message, code)

        settings = build_settings(config, db, rules, every, model, all_faces,
                                  workers=workers, cluster=cluster, force=force or None,
                                  evidence_frames=evidence)
        try:
            path_pattern = PathPattern.compile(pattern) if pattern else None
        except DiscoveryError as exc:
            raise fail(str(exc)) from None
        progress = _tqdm_progress if show_progress(quiet) else None
        summary, lost = None, None
        # From here on, Ctrl-C or SIGTERM (even while the model loads) is the one
        # "interrupted" or "terminated" line.
        try:
            with sigterm_as_interrupt():
                analyzer = load_analyzer(settings)
                store = open_store(settings, create=True)
                with _analysis_backend(settings) as analyse, exclusive_scan(
                    settings.database_url, settings.lock_timeout_s,
                    lambda message: say(message, err=True),
                ):
                    try:
                        summary = run_scan(paths, analyzer, store, path_pattern, progress,
                                           analyse)
                        if progress:  # the bar is full; the pages can take a few seconds more
                            say("writing reports…", err=True)
                        _write_reports(store, out, settings, summary)
                    except DatabaseLost as exc:
                        summary, lost = exc.summary, store.problem(exc.__cause__ or exc)
                    except DATABASE_LOST as exc:  # while writing the reports
                        lost = store.problem(exc)
        except KeyboardInterrupt as exc:  # each stored session is whole; reports come next run
            done = exc.summary if isinstance(exc, ScanInterrupted) else summary
            terminated = isinstance(exc, Terminated) or getattr(exc, "terminated", False)
            message = (f"{'terminated' if terminated else 'interrupted'}: "
                       f"{done.count('analysed') if done else 0} sessions stored; run the scan "
                       "again to finish")
            say(message, err=True)
            run_log.line(message)
            raise _exit(EXIT_TERMINATED if terminated else EXIT_INTERRUPTED, done) from None
        except StorageFull as exc:  # every later video would fail the same way
            raise fail(f"the database's disk is full ({exc}): stopped after "
                       f"{exc.summary.count('analysed')} sessions stored; free some space and "
                       "run the scan again", EXIT_FAILURES) from None
        except DiscoveryError as exc:
            raise fail(str(exc)) from None
        except LockTimeout as exc:
            raise fail(str(exc), EXIT_FAILURES) from None
        except LockError as exc:
            raise fail(str(exc)) from None
        for outcome in summary.failed:
            say(f"FAILED {outcome.job.path}: {outcome.reason}", err=True, fg=typer.colors.RED)
            run_log.line(f"FAILED {outcome.job.path}: {outcome.reason}")
        if lost:
            message = (f"error: {lost}; the sessions stored before it are whole, and the next "
                       "scan goes on from there")
            say(message, err=True, fg=typer.colors.RED)
            run_log.line(message)
        elif not summary.outcomes:
            raise fail(f"no video found under {', '.join(map(str, paths))} (looked for "
                       f"{', '.join(sorted(VIDEO_SUFFIXES))})", EXIT_FAILURES)
        if not quiet:
            for outcome in summary.outcomes:
                if outcome.status in ("duplicate", "moved", "skipped", "expired"):
                    say(f"{outcome.job.path}: {outcome.reason}")
        erased = summary.erased
        if erased is not None and erased.sessions:
            message = (f"erased {erased.sessions} session(s) of {_students(erased.students)} "
                       f"recorded before {summary.retained_since:%Y-%m-%d} (the retention "
                       "period)")
            run_log.line(message)
            if not quiet:
                say(message)
        if not quiet or summary.failed or lost:
            others = "".join(f"{summary.count(status)} {status}, " for status in
                             ("moved", "duplicate", "skipped", "expired")
                             if summary.count(status))
            say(
                f"{summary.count('analysed')} analysed, {summary.count('unchanged')} unchanged, "
                f"{others}{len(summary.failed)} failed; reports: "
                f"{'not brought up to date' if lost else out / 'index.html'}; database: "
                f"{store.safe_url}"
            )
        raise _exit(EXIT_FAILURES if summary.failed or lost else EXIT_OK, summary)


def _write_reports(store, out: Path, settings, summary) -> None:  # noqa: ANN001
    """Bring the reports up to date; the pages of students erased for the retention period
    go, and the index is written without them whatever the manifest said."""
    from screener.cli.reports import write_reports
    from screener.reports.report import student_slug

    gone = summary.erased.gone if summary.erased is not None else []
    for student in gone:
        (out / f"{student_slug(student)}.html").unlink(missing_ok=True)
    if not write_reports(store, out, settings, refresh=True) and gone:
        write_reports(store, out, settings, [])  # the index alone


def _students(names: list[str]) -> str:
    return ", ".join(names) if len(names) <= 5 else f"{len(names)} students"


def _exit(code: int, summary) -> typer.Exit:  # noqa: ANN001
    exit_ = typer.Exit(code)
    exit_.summary = summary  # type: ignore[attr-defined]  # for the --log line
    return exit_


class ScanLog:
    """`scan --log FILE`: dated lines appended to a private file, so that a cron job that
    printed nothing can still be seen to have run, and its failures dated. Without a file,
    it writes nothing."""

    def __init__(self, fd: int | None = None) -> None:
        self._fd = fd

    @classmethod
    def open(cls, path: Path) -> ScanLog:
        path = path.expanduser()
        try:
            if not path.parent.exists():
                path.parent.mkdir(mode=0o700, parents=True)
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        except OSError as exc:
            raise usage_error(f"cannot write the log {path}: {exc.strerror or exc}") from None
        return cls(fd)

    def line(self, text: str) -> None:
        if self._fd is None:
            return
        stamp = datetime.now().astimezone().isoformat(timespec="seconds")
        with contextlib.suppress(OSError):  # a full disk must not turn a scan into a failure
            os.write(self._fd, f"{stamp} {printable(text)}\n".encode())

    def finish(self, summary, code: int) -> None:  # noqa: ANN001
        if summary is not None:
            skipped = sum(summary.count(s) for s in ("unchanged", "moved", "duplicate",
                                                     "skipped", "expired"))
            counts = (f"{summary.count('analysed')} analysed, {skipped} skipped, "
                      f"{len(summary.failed)} failed")
        else:
            counts = "nothing analysed"
        self.line(f"scan {'finished' if code == EXIT_OK else 'ended'}: {counts}; "
                  f"exit code {code}")
        if self._fd is not None:
            os.close(self._fd)


@contextmanager
def scan_log(path: Path | None) -> Iterator[ScanLog]:
    """The run's log; its summary line is written however the scan ends."""
    run_log = ScanLog.open(path) if path else ScanLog()
    code, summary = EXIT_FAILURES, None
    try:
        yield run_log
    except typer.Exit as exc:
        code, summary = exc.exit_code, getattr(exc, "summary", None)
        raise
    except Exception as exc:
        run_log.line(f"error: {type(exc).__name__}: {exc}")
        raise
    finally:
        run_log.finish(summary, code)


@contextmanager
def _analysis_backend(settings) -> Iterator:  # noqa: ANN001
    """Yields a `scan.AnalyseAll`, or None to analyse here; a cluster is shut down however the
    scan ends."""
    if not settings.cluster:
        yield None
        return
    from screener.scanning.cluster import ClusterError, DaskAnalysis

    try:
        with DaskAnalysis.from_settings(settings) as analyse:
            yield analyse
    except ClusterError as exc:
        raise usage_error(str(exc)) from None


def _tqdm_progress(total: int):  # -> scan.Progress
    import sys

    from tqdm import tqdm

    from screener.scanning.scan import Progress

    class Bar(Progress):
        def __init__(self) -> None:
            self.bar = tqdm(total=total, unit="video", desc="scanning", dynamic_ncols=True)

        def note(self, message: str) -> None:
            self.bar.write(printable(message), file=sys.stderr)

        def advance(self, outcome) -> None:  # noqa: ANN001
            self.bar.set_postfix_str(
                printable(f"{outcome.job.path.name}: {outcome.level or outcome.status}"))
            self.bar.update(1)

        def close(self) -> None:
            self.bar.close()

    return Bar()
