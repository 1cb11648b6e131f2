"""`screener report`: re-render the HTML reports from the database, and the rendering that
`scan` shares."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from screener.cli.app import EXIT_FAILURES, app, fail, say
from screener.cli.options import DbOption, build_settings, open_store


def write_reports(store, out: Path, settings, student_ids=None,  # noqa: ANN001
                  refresh: bool = False) -> list[Path]:
    """`refresh`: only what is missing or outdated in `out` (`scan`); else the pages of
    `student_ids` (all when None) and the index."""
    from screener.emotions.model import ModelCard
    from screener.reports.report import ReportError, refresh_reports, render_reports

    try:
        card = ModelCard.for_model(settings.model_path, settings.emotions.flip_margin)
        if refresh:
            return refresh_reports(store, out, card)
        return render_reports(store, out, card, student_ids)
    except ReportError as exc:
        raise fail(str(exc)) from None
    except OSError as exc:
        raise fail(f"cannot write reports to {out}: {exc.strerror or exc}", EXIT_FAILURES) from None


@app.command()
def report(
    students: Annotated[
        list[str] | None,
        typer.Argument(metavar="STUDENT...", help="Students to re-render [default: all]."),
    ] = None,
    out: Annotated[Path, typer.Option("--out", "-o", metavar="DIR",
                                      help="Folder for the HTML reports.")] = Path(
        "reports"
    ),
    db: DbOption = None,
) -> None:
    """Re-render the HTML reports from the database (no video is read)."""
    settings = build_settings(db=db)
    store = open_store(settings, read_only=True)
    if students:
        unknown = sorted(set(students) - set(store.student_ids()))
        if unknown:
            raise fail(f"no sessions for student(s): {', '.join(unknown)}")
    written = write_reports(store, out, settings, students or None)
    say(f"wrote {len(written)} report file(s) to {out}; index: {out / 'index.html'}")
