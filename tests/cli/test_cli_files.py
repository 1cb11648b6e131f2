"""End to end: what screener writes, keeps and leaves on disk. Nothing outside its database,
lock and reports (no telemetry), private modes, nothing created unasked, reports that always
match the database, and one recording at two paths."""

from __future__ import annotations

import json
import os
import re
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from screener.cli import app
from screener.reports.report import student_slug
from screener.resources import resource_path
from tests.conftest import REPO, face_frames, interruptible, write_video

runner = CliRunner()


def run(*args: object):
    return runner.invoke(app, [str(a) for a in args], catch_exceptions=False)


def screener(*args: object, env: dict[str, str] | None = None, cwd: Path | None = None,
             timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "screener", *map(str, args)], env=env, cwd=cwd,
                          capture_output=True, text=True, timeout=timeout)


def videos(folder: Path, astronaut, names: list[str], frames: int = 12) -> list[Path]:
    made = []
    for i, name in enumerate(names):
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        made.append(write_video(path, face_frames(astronaut, frames, seed=i)))
    return made


def tree(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


def assert_reports_match_the_database(out: Path, db_file: Path) -> None:
    """Every student stored has a page, the index links to exactly those pages, and each link
    resolves."""
    with sa.create_engine(f"sqlite:///{db_file}").connect() as conn:
        students = set(conn.execute(sa.text("SELECT student_id FROM students")).scalars())
    links = set(re.findall(r'href="([^"#]+\.html)"', (out / "index.html").read_text()))
    assert links == {f"{student_slug(s)}.html" for s in students}
    for link in links:
        assert (out / link).read_text().rstrip().endswith("</html>")
    assert {p.name for p in out.glob("*.html")} == links | {"index.html"}


# 1 and 2: no telemetry, nothing outside the database and reports, private modes


@pytest.mark.slow
def test_a_scan_from_a_fresh_home_writes_only_its_private_database(tmp_path, astronaut):
    home, work, out = tmp_path / "home", tmp_path / "work", tmp_path / "reports"
    home.mkdir(), work.mkdir()
    videos(work / "videos", astronaut, ["kim_2026-01-01.mp4", "lee_2026-01-02.mp4"])
    before = tree(work)
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("XDG_", "ORT_", "SCREENER_"))}
    env["HOME"] = str(home)
    result = screener("scan", "videos", "--out", out, "--workers", "2", "--quiet", env=env,
                      cwd=work)
    assert result.returncode == 0, result.stderr
    data = home / ".local" / "share" / "screener"
    assert tree(home) == {".local", ".local/share", ".local/share/screener",
                          *(f".local/share/screener/{name}" for name in os.listdir(data))}
    assert set(os.listdir(data)) <= {"screener.db", "screener.db.lock", "screener.db-wal",
                                     "screener.db-shm"}
    assert {"screener.db", "screener.db.lock"} <= set(os.listdir(data))
    assert tree(work) == before  # nothing beside the videos either
    assert stat.S_IMODE(data.stat().st_mode) == 0o700
    for name in os.listdir(data):
        assert stat.S_IMODE((data / name).stat().st_mode) == 0o600, name
    assert stat.S_IMODE(out.stat().st_mode) == 0o700


def test_onnxruntime_telemetry_is_off_unless_the_user_says_otherwise():
    code = "import os, screener; print(os.environ['ORT_DISABLE_TELEMETRY'])"
    env = {k: v for k, v in os.environ.items() if k != "ORT_DISABLE_TELEMETRY"}
    assert subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                          text=True).stdout.strip() == "1"
    env["ORT_DISABLE_TELEMETRY"] = "0"
    assert subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                          text=True).stdout.strip() == "0"


# 9: nothing created that the user did not ask for


@pytest.mark.parametrize("command", [["history", "kim"], ["report"]])
def test_reading_commands_never_create_a_database(command, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for db in (tmp_path / "typo.db", Path("/nonexistent_dir/x.db")):
        result = run(*command, "--db", db)
        assert result.exit_code == 2
        assert f"no database at {db}" in result.output
        assert "Traceback" not in result.output
        assert not db.exists() and not db.parent.exists() or db.parent == tmp_path
    assert list(tmp_path.iterdir()) == []


def test_a_scan_never_creates_the_folder_of_a_database_it_was_given(tmp_path, astronaut,
                                                                    monkeypatch):
    videos(tmp_path / "v", astronaut, ["kim_2026-01-01.mp4"])
    for db in (tmp_path / "missing" / "x.db", Path("/nonexistent_dir/x.db")):
        result = run("scan", tmp_path / "v", "--out", tmp_path / "out", "--db", db)
        assert result.exit_code == 2, result.output
        assert f"no folder {db.parent}" in result.output
        assert not db.parent.exists()
    monkeypatch.setenv("SCREENER_DB", str(tmp_path / "missing" / "x.db"))
    assert run("scan", tmp_path / "v", "--out", tmp_path / "out").exit_code == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["v"]


def test_evaluate_creates_no_folder(tmp_path):
    result = run("evaluate", "--data", tmp_path, "--confusion", tmp_path / "no" / "c.png")
    assert result.exit_code == 2
    assert f"no folder {tmp_path / 'no'}" in result.output
    assert not (tmp_path / "no").exists()


@pytest.fixture
def fake_training(monkeypatch, tmp_path):
    """`screener.lab.training` replaced by a stand-in that records where it was asked to write."""
    import cv2
    import numpy as np

    for split in ("train", "val"):
        for emotion, value in (("happy", 200), ("sad", 40)):
            folder = tmp_path / "data" / split / emotion
            folder.mkdir(parents=True)
            cv2.imwrite(str(folder / "a.jpg"), np.full((48, 48), value, np.uint8))
    calls: list[tuple[Path, Path | None]] = []

    def train(train_data, val_data, out, settings, checkpoints):  # noqa: ANN001
        calls.append((out, checkpoints))
        evaluation = SimpleNamespace(accuracy=0.5)
        return SimpleNamespace(best_epoch=1, epochs_run=1, evaluation=evaluation,
                               accuracy_by_flip_margin={0.0: 0.5}, model_path=out,
                               onnx_path=out.with_suffix(".onnx"), wall_s=1.0)

    monkeypatch.setitem(sys.modules, "screener.lab.training", SimpleNamespace(
        train=train, missing_training_packages=lambda: []))
    return tmp_path / "data", calls


def test_train_where_it_cannot_export_says_how_to_finish_and_succeeds(fake_training,
                                                                       tmp_path, monkeypatch):
    from screener.lab.shipping import ExportDeferred

    data, _ = fake_training

    def deferred(*_args):  # noqa: ANN002
        raise ExportDeferred("the best epoch is in ckpt/best.keras; run the same command")

    monkeypatch.setattr(sys.modules["screener.lab.training"], "train", deferred)
    result = run("train", "--data", data, "--out", tmp_path / "m.keras")
    assert result.exit_code == 0, result.output
    assert result.output.strip().splitlines()[-1] == (
        "trained; the best epoch is in ckpt/best.keras; run the same command")


def test_train_never_writes_the_shipped_model_unasked(fake_training, tmp_path, monkeypatch):
    data, calls = fake_training
    monkeypatch.chdir(tmp_path)
    assert run("train", "--data", data).exit_code == 0
    assert calls[-1] == (Path("emotion_minixception.keras"), None)  # here; checkpoints beside
    models = resource_path("models")
    monkeypatch.chdir(models)
    result = run("train", "--data", data)
    assert result.exit_code == 2 and "shipped model" in result.output
    assert len(calls) == 1
    monkeypatch.chdir(tmp_path)
    assert run("train", "--data", data, "--out", models / "mine.keras").exit_code == 0
    assert calls[-1] == (models / "mine.keras", Path("mine.checkpoints"))  # not in models/


# 3: reports are never lost


@pytest.mark.slow
def test_reports_follow_the_database_into_any_folder(tmp_path, astronaut):
    videos(tmp_path / "v", astronaut, ["kim_2026-01-01.mp4", "lee_2026-01-02.mp4"])
    db_file, out = tmp_path / "s.db", tmp_path / "reports"
    assert run("scan", tmp_path / "v", "--out", out, "--db", db_file).exit_code == 0
    assert_reports_match_the_database(out, db_file)
    pages = {p: p.stat().st_mtime_ns for p in out.glob("*.html")}
    time.sleep(0.01)
    again = run("scan", tmp_path / "v", "--out", out, "--db", db_file)
    assert "0 analysed, 2 unchanged, 0 failed" in again.output
    assert {p: p.stat().st_mtime_ns for p in out.glob("*.html")} == pages  # nothing rewritten

    (out / f"{student_slug('lee')}.html").unlink()
    dead = out / ".report-k1ll3d.tmp"
    dead.write_text("<html>half")
    os.utime(dead, (time.time() - 3600,) * 2)
    assert run("scan", tmp_path / "v", "--out", out, "--db", db_file).exit_code == 0
    assert_reports_match_the_database(out, db_file)
    assert not dead.exists()

    for folder in (out, tmp_path / "elsewhere"):
        if folder.exists():
            for page in folder.iterdir():
                page.unlink()
            folder.rmdir()
        assert run("scan", tmp_path / "v", "--out", folder, "--db", db_file).exit_code == 0
        assert_reports_match_the_database(folder, db_file)


@pytest.mark.slow
def test_ctrl_c_stops_a_scan_with_one_line_and_the_next_scan_finishes(tmp_path, astronaut):
    names = [f"{name}_2026-01-0{i + 1}.mp4" for i, name in enumerate(["ana", "bo", "cy", "di"])]
    videos(tmp_path / "v", astronaut, names, frames=300)
    db_file, out = tmp_path / "s.db", tmp_path / "reports"
    command = [sys.executable, "-m", "screener", "scan", str(tmp_path / "v"), "--out", str(out),
               "--db", str(db_file), "--workers", "2", "--quiet"]
    scan = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=interruptible)
    deadline = time.monotonic() + 120
    while _stored(db_file) < 1 and scan.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    scan.send_signal(signal.SIGINT)
    stdout, stderr = scan.communicate(timeout=60)
    assert scan.returncode == 130, stderr
    stored = _stored(db_file)
    assert 1 <= stored < len(names), "the scan finished before it could be interrupted"
    assert stderr.strip() == (f"interrupted: {stored} sessions stored; run the scan again to "
                              "finish")
    again = subprocess.run(command[:-1], capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    assert f"{len(names) - stored} analysed, {stored} unchanged" in again.stdout
    assert_reports_match_the_database(out, db_file)


def _stored(db_file: Path) -> int:
    if not db_file.exists():
        return 0
    engine = sa.create_engine(f"sqlite:///file:{db_file}?mode=ro&uri=true",
                              connect_args={"timeout": 0.1})
    try:
        with engine.connect() as conn:
            return conn.execute(sa.text("SELECT count(*) FROM sessions")).scalar_one()
    except sa.exc.DBAPIError:
        return 0
    finally:
        engine.dispose()


# 4: one recording at two paths


def test_a_copy_is_a_duplicate_and_a_moved_recording_follows_its_file(tmp_path, astronaut):
    [original] = videos(tmp_path / "v", astronaut, ["ana/lesson.mp4"])
    copy = tmp_path / "v" / "bo" / "lesson.mp4"
    copy.parent.mkdir()
    copy.write_bytes(original.read_bytes())
    db_file, out = tmp_path / "s.db", tmp_path / "reports"
    result = run("scan", tmp_path / "v", "--out", out, "--db", db_file)
    assert result.exit_code == 0, result.output
    assert f"{copy}: duplicate of {original}" in result.output
    assert "1 analysed, 0 unchanged, 1 duplicate, 0 failed" in result.output
    assert run("history", "bo", "--db", db_file).exit_code == 2  # no session for the copy

    only_copy = run("scan", copy.parent, "--out", out, "--db", db_file)  # ana's file is still there
    assert f"{copy}: duplicate of {original}" in only_copy.output, only_copy.output

    copy.unlink()
    moved = tmp_path / "v" / "cy" / "lesson 2026-02-03.mp4"
    moved.parent.mkdir()
    original.rename(moved)
    result = run("scan", tmp_path / "v", "--out", out, "--db", db_file)
    assert result.exit_code == 0, result.output
    assert "0 analysed, 0 unchanged, 1 moved, 0 failed" in result.output
    [session] = json.loads(run("history", "cy", "--db", db_file, "--format", "json").output
                           )["sessions"]
    assert session["video_path"] == str(moved) and session["recorded_at"] == "2026-02-03"
    assert run("history", "ana", "--db", db_file).exit_code == 2
    assert_reports_match_the_database(out, db_file)  # ana's page gone, cy's written


def test_the_first_path_in_sorted_order_keeps_a_new_recording(tmp_path, astronaut,
                                                                monkeypatch):
    monkeypatch.chdir(tmp_path)
    [found_first] = videos(tmp_path / "v", astronaut, ["ana/lesson.mp4"])  # student ana < zz
    sorted_first = tmp_path / "v" / "aa" / "zz_2026-01-01.mp4"  # but v/aa < v/ana
    sorted_first.parent.mkdir()
    sorted_first.write_bytes(found_first.read_bytes())
    result = run("scan", "v", "--out", "r", "--db", "s.db")
    assert f"{Path('v/ana/lesson.mp4')}: duplicate of {Path('v/aa/zz_2026-01-01.mp4')}" in \
        result.output, result.output
    assert run("history", "zz", "--db", "s.db").exit_code == 0
    # A session stored with a relative path (older scans) is the same file, not a copy of it.
    engine = sa.create_engine(f"sqlite:///{tmp_path / 's.db'}")
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE sessions SET video_path = 'v/aa/zz_2026-01-01.mp4'"))
    engine.dispose()
    result = run("scan", "v", "--out", "r", "--db", "s.db")
    assert "0 analysed, 0 unchanged, 1 moved, 1 duplicate, 0 failed" in result.output
    [session] = json.loads(run("history", "zz", "--db", "s.db", "--format", "json").output
                           )["sessions"]
    assert session["video_path"] == str(sorted_first)


# 11: friction


def test_a_scan_that_finds_no_video_says_so_and_exits_1(tmp_path, astronaut):
    (tmp_path / "empty").mkdir()
    result = run("scan", tmp_path / "empty", "--out", tmp_path / "r", "--db", tmp_path / "s.db")
    assert result.exit_code == 1 and "no video found under" in result.output


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="named pipes")
def test_a_pipe_given_directly_is_a_failure(tmp_path):
    pipe = tmp_path / "kim.mp4"
    os.mkfifo(pipe)
    result = run("scan", pipe, "--out", tmp_path / "r", "--db", tmp_path / "s.db")
    assert result.exit_code == 1
    assert f"FAILED {pipe}: not a regular file" in result.output


@pytest.mark.slow
def test_each_failure_is_printed_once_and_paths_are_stored_absolute(tmp_path, astronaut):
    videos(tmp_path / "v", astronaut, ["kim_2026-01-01.mp4"])
    (tmp_path / "v" / "lee_2026-01-02.mp4").write_text("not a video")
    result = screener("scan", "v", "--out", "r", "--db", "s.db", cwd=tmp_path)
    assert result.returncode == 1
    lines = [line for line in (result.stdout + result.stderr).splitlines()
             if "lee_2026-01-02" in line]
    assert len(lines) == 1 and lines[0].startswith("FAILED v/lee_2026-01-02.mp4: "), lines
    history = screener("history", "kim", "--db", "s.db", "--format", "json", cwd=tmp_path)
    [session] = json.loads(history.stdout)["sessions"]
    assert session["video_path"] == str(tmp_path / "v" / "kim_2026-01-01.mp4")


@pytest.mark.parametrize("command", ["scan", "history", "report", "analyze", "train",
                                     "evaluate"])
def test_help_shows_readable_metavariables(command):
    text = run(command, "--help").output
    names = [line.strip().split("  ")[0] for line in text.splitlines()
             if line.startswith("Usage:") or re.match(r"  (-|[A-Z.\[]+ )", line)]
    assert any("--help" in name for name in names)
    for name in names:
        assert not re.search(r"<\w+( range)?>|<list\[|\{\w+\}", name), name


def test_the_readme_crontab_line_names_screener_by_an_absolute_path():
    lines = [line for line in (REPO / "README.md").read_text().splitlines()
             if re.match(r"\s*[\d*]+ [\d*]+ \* \* \* ", line)]
    assert lines
    for line in lines:
        command = line.split("&&")[-1].split()[0]
        assert command.startswith("/") and command.endswith("/bin/screener"), line


def test_ctrl_c_while_the_model_loads_is_the_same_one_line(tmp_path, monkeypatch):
    import screener.cli.scan as scan_command

    def interrupted(*args: object, **kwargs: object):
        raise KeyboardInterrupt

    monkeypatch.setattr(scan_command, "load_analyzer", interrupted)
    (tmp_path / "v").mkdir()
    result = run("scan", tmp_path / "v", "--out", tmp_path / "r", "--db", tmp_path / "s.db")
    assert result.exit_code == 130
    assert result.output.strip().splitlines() == [
        "interrupted: 0 sessions stored; run the scan again to finish"]
