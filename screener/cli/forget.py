"""`screener forget`: erase students, or sessions past the retention period, for good."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Annotated

import typer

from screener.cli.app import EXIT_FAILURES, app, fail, say
from screener.cli.options import ConfigOption, DbOption, build_settings, open_store


@app.command()
def forget(
    students: Annotated[
        list[str] | None,
        typer.Argument(metavar="STUDENT...", help="Students to erase completely.",
                       show_default=False),
    ] = None,
    older_than: Annotated[
        int | None,
        typer.Option("--older-than", metavar="DAYS", min=1, show_default=False,
                     help="Also erase every session recorded more than DAYS days ago, of all "
                     "students [default: [storage] retention_days of --config when no STUDENT "
                     "is named]."),
    ] = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Erase without asking.")] = False,
    out: Annotated[Path, typer.Option("--out", "-o", metavar="DIR",
                                      help="Folder of the HTML reports: the erased students' "
                                      "pages are removed and the index written again.")] = Path(
        "reports"
    ),
    db: DbOption = None,
    config: ConfigOption = None,
) -> None:
    """Erase students (sessions, observations, evidence frames, report pages, their row in
    the index) or old sessions, for good: on SQLite the freed bytes are overwritten and the
    file rebuilt. The videos are not touched: a later scan of them stores them again."""
    from screener.storage.erase import erase, to_erase

    settings = build_settings(config, db)
    names = list(dict.fromkeys(students or []))
    days = older_than if older_than is not None or names else (
        settings.storage.retention_days or None)
    if not names and days is None:
        raise fail("name the students to forget, or --older-than DAYS (or set [storage] "
                   "retention_days in the --config file)")
    store = open_store(settings)
    unknown = sorted(set(names) - set(store.student_ids()))
    if unknown:
        raise fail(f"no sessions for student(s): {', '.join(unknown)}")
    before = datetime.now() - timedelta(days=days) if days is not None else None
    count, whose = to_erase(store, names, before)
    if not count:
        say(f"nothing to erase: no session recorded before {before:%Y-%m-%d}")
        return
    what = f"{count} session(s) of {_students(whose)}"
    if before is not None:
        what += f" (every session recorded before {before:%Y-%m-%d}"
        what += f", and all of {', '.join(names)})" if names else ")"
    if not yes and not typer.confirm(f"Erase {what} from {store.safe_url}? This cannot be "
                                     "undone", default=False):
        raise typer.Exit(EXIT_FAILURES)
    erased = erase(store, names, before)
    _refresh(store, settings, erased, out)
    say(f"erased {erased.sessions} session(s) of {_students(erased.students)}")
    left = [video for video in erased.videos if Path(video).exists()]
    if left:
        say(f"note: {len(left)} of their videos are still on disk (e.g. {left[0]}); a scan "
            "of them stores them again")


def _students(names: list[str]) -> str:
    return ", ".join(names) if len(names) <= 5 else f"{len(names)} students"


def _refresh(store, settings, erased, out: Path) -> None:  # noqa: ANN001
    """Baselines of the students who keep sessions rest on the ones left; pages go."""
    from screener.cli.reports import write_reports
    from screener.reports.report import student_slug
    from screener.session.rules import RulesError, load_rules
    from screener.trends.baseline import refresh_baselines

    try:
        rules = load_rules(settings.rules)
    except RulesError as exc:
        raise fail(str(exc)) from None
    for student in sorted(set(erased.students) - set(erased.gone)):
        refresh_baselines(store, student, rules)
    for student in erased.gone:
        (out / f"{student_slug(student)}.html").unlink(missing_ok=True)
    if (out / "index.html").exists():
        write_reports(store, out, settings, refresh=True)
    else:
        say(f"no reports at {out}: pass --out with the reports folder to update its index")
