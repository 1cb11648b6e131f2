"""`screener history`: one student's sessions from the database."""

from __future__ import annotations

from typing import Annotated

import typer

from screener.cli.app import app, fail, say
from screener.cli.options import DbOption, build_settings, open_store


@app.command()
def history(
    student: Annotated[str, typer.Argument(metavar="STUDENT",
                                           help="Student id, as in the reports.")],
    db: DbOption = None,
    output_format: Annotated[
        str, typer.Option("--format", metavar="table|json|csv", help="table, json or csv.")
    ] = "table",
) -> None:
    """One student's sessions over time, oldest first."""
    from screener.reports.history_table import HISTORY_FORMATS, format_history

    if output_format not in HISTORY_FORMATS:
        raise fail(f"--format must be one of {', '.join(HISTORY_FORMATS)}")
    store = open_store(build_settings(db=db), read_only=True)
    sessions = store.sessions_of(student)
    if not sessions:
        known = store.student_ids()
        hint = f"; known students: {', '.join(known[:20])}" if known else "; the database is empty"
        raise fail(f"no sessions for student {student!r}{hint}")
    say(format_history(sessions, output_format), nl=False)
