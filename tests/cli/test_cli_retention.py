"""`[storage] retention_days` applied by `screener scan`: a video recorded before the period is
not stored again, and sessions stored before it are erased with their pages and index row."""

from datetime import date

from screener.reports.report import student_slug
from tests.cli.test_cli import run
from tests.cli.test_cli_forget import students
from tests.conftest import face_frames


def test_a_scan_with_a_retention_period_neither_keeps_nor_stores_old_recordings(
        tmp_path, astronaut, make_video):
    db = f"sqlite:///{tmp_path}/screener.db"
    make_video("v/kim_2020-01-01.mp4", face_frames(astronaut, 12, seed=0))
    make_video(f"v/lee_{date.today():%Y-%m-%d}.mp4", face_frames(astronaut, 12, seed=1))
    videos, out = tmp_path / "v", tmp_path / "reports"
    kept = run("scan", videos, "--out", out, "--db", db)  # no retention period yet
    assert kept.exit_code == 0, kept.output
    assert students(db) == ["kim", "lee"]
    page = out / f"{student_slug('kim')}.html"
    assert page.is_file() and page.name in (out / "index.html").read_text()

    config = tmp_path / "school.toml"
    config.write_text("[storage]\nretention_days = 365\n")
    applied = run("scan", videos, "--out", out, "--db", db, "--config", config)
    assert applied.exit_code == 0, applied.output
    assert (f"{videos / 'kim_2020-01-01.mp4'}: recorded 2020-01-01, before the retention "
            "period of 365 days: not stored") in applied.output
    assert "erased 1 session(s) of kim recorded before" in applied.output
    assert "0 analysed, 1 unchanged, 1 expired, 0 failed" in applied.output
    assert students(db) == ["lee"]
    assert not page.exists() and page.name not in (out / "index.html").read_text()
    assert (out / f"{student_slug('lee')}.html").is_file()

    again = run("scan", videos, "--out", out, "--db", db, "--config", config, "--quiet")
    assert again.exit_code == 0 and again.output == ""
    assert students(db) == ["lee"] and not page.exists()
    assert run("history", "kim", "--db", db).exit_code == 2
