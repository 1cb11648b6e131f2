"""`screener forget` end to end: a student, or sessions past the retention period, erased from
the database and the reports, after a question unless `--yes`."""

from datetime import datetime, timedelta
from pathlib import Path

import pytest

from screener.cli import app
from screener.reports.report import student_slug
from screener.storage.store import Store
from tests.cli.test_cli import run, runner
from tests.storage.test_erase import stored


@pytest.fixture
def school(tmp_path: Path) -> tuple[str, Path]:
    """ana (two sessions, one 400 days old) and bo, stored, with their reports."""
    db = f"sqlite:///{tmp_path}/screener.db"
    store = Store(db)
    now = datetime.now().replace(microsecond=0)
    stored(store, "ana", 1, "1" * 64, now - timedelta(days=400))
    stored(store, "ana", 2, "2" * 64, now - timedelta(days=3))
    stored(store, "bo", 1, "3" * 64, now - timedelta(days=2))
    store.engine.dispose()
    out = tmp_path / "reports"
    assert run("report", "--out", out, "--db", db).exit_code == 0
    return db, out


def answering(answer: str, *args: object):
    return runner.invoke(app, [str(a) for a in args], input=answer, catch_exceptions=False)


def students(db: str) -> list[str]:
    store = Store(db, create=False)
    try:
        return store.student_ids()
    finally:
        store.engine.dispose()


def test_forget_asks_then_erases_the_student_their_page_and_their_index_row(school):
    db, out = school
    page = out / f"{student_slug('ana')}.html"
    assert page.is_file() and "ana" in (out / "index.html").read_text()
    refused = answering("n\n", "forget", "ana", "--out", out, "--db", db)
    assert refused.exit_code == 1 and "Erase 2 session(s) of ana" in refused.output
    assert students(db) == ["ana", "bo"] and page.is_file()
    result = answering("y\n", "forget", "ana", "--out", out, "--db", db)
    assert result.exit_code == 0, result.output
    assert "erased 2 session(s) of ana" in result.output
    assert students(db) == ["bo"] and not page.exists()
    index = (out / "index.html").read_text()
    assert "ana" not in index.replace("analys", "") and "bo" in index
    assert run("history", "ana", "--db", db).exit_code == 2


def test_forget_older_than_drops_every_student_s_old_sessions_without_asking(school):
    db, out = school
    result = run("forget", "--older-than", "365", "--yes", "--out", out, "--db", db)
    assert result.exit_code == 0, result.output
    assert "erased 1 session(s) of ana" in result.output
    assert students(db) == ["ana", "bo"]
    store = Store(db, create=False)
    assert len(store.sessions_of("ana")) == 1
    store.engine.dispose()


def test_the_retention_period_can_come_from_the_settings_file(school, tmp_path):
    db, out = school
    config = tmp_path / "school.toml"
    config.write_text("[storage]\nretention_days = 1\n")
    result = run("forget", "--config", config, "--yes", "--out", out, "--db", db)
    assert result.exit_code == 0, result.output
    assert "erased 3 session(s) of ana, bo" in result.output
    assert students(db) == []
    assert run("forget", "--db", db).exit_code == 2  # neither students nor a period
    assert run("forget", "nobody", "--db", db).exit_code == 2
