"""What the README promises of the `screener` command, end to end: that a rules file and
`--every` reach the analysis, that a new model or rule set re-analyses a stored video, and the
exit code and message of each mistake a user or a cron job can make."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

import screener
from screener.storage.store import Store
from tests.cli.test_cli import run
from tests.conftest import REPO, banded_model, face_frames, write_video

# One key frame per 0.5 s window (5 frames at 10 fps), each window one brightness of the
# astronaut's face, which the banded model reads as one emotion: S sad, D disgust, H happy.
LABELS = "HHSSSHDDDDHSSDSSSSHHDDDH"
_EMOTION = {"S": "sad", "D": "disgust", "H": "happy"}
_BRIGHTNESS = {"S": -90, "D": 10, "H": 100}

CUSTOM_RULES = """\
name = "school"
negative = ["angry", "disgust", "sad"]   # this school counts disgust, not fear
min_run = 3
smoothing_window = 3

[[rule]]
name = "many-episodes"
level = "high"
when = { negative_episodes = ">= 4" }

[[rule]]
name = "long-stretch"
level = "moderate"
when = { longest_negative_run_s = ">= 8" }

[[rule]]
name = "otherwise"
level = "low"
"""


def known_video(path: Path, astronaut: np.ndarray, labels: str = LABELS) -> Path:
    face = cv2.resize(astronaut[20:300, 110:390], (220, 220))
    canvas = np.full((240, 320, 3), 90, np.uint8)
    canvas[10:230, 50:270] = face
    frames = []
    for label in labels:
        frames += [cv2.convertScaleAbs(canvas, alpha=1.0, beta=_BRIGHTNESS[label])] * 5
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_video(path, frames, fps=10)


def face_video(path: Path, astronaut: np.ndarray, seed: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_video(path, face_frames(astronaut, 12, seed=seed))


@pytest.fixture
def model(tmp_path: Path) -> Path:
    return banded_model(tmp_path / "banded.onnx", dark="sad", mid="disgust", bright="happy")


@pytest.fixture
def rules_file(tmp_path: Path) -> Path:
    path = tmp_path / "school.toml"
    path.write_text(CUSTOM_RULES)
    return path


def test_a_rules_file_and_every_reach_the_analysis(tmp_path, astronaut, model, rules_file):
    """Every number below follows from the rules file, not from the defaults: disgust counts
    (share 17/24, not sad alone's 9/24), episodes are 3 faces long (4, not 2 at 5 faces),
    smoothing is the mode of the last 3 labels (smoothed over 10, the same faces make 3
    episodes), and a face stands for 0.5 s (the longest stretch, 16 faces, is 8 s)."""
    video = known_video(tmp_path / "kai_2026-01-01.mp4", astronaut)
    result = run("analyze", video, "--json", "--every", "0.5", "--model", model,
                 "--rules", rules_file)
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    assert [f["label"] for f in doc["frames"]] == [_EMOTION[c] for c in LABELS]
    metrics = doc["metrics"]
    assert metrics["frames_analysed"] == metrics["face_frames"] == len(LABELS)
    assert metrics["negative_share"] == pytest.approx(17 / 24)
    assert metrics["share_fear"] == 0.0
    assert (metrics["episodes_sad"], metrics["episodes_disgust"]) == (2, 2)
    assert metrics["negative_episodes"] == 4
    assert metrics["longest_negative_run_s"] == pytest.approx(8.0)
    assert (doc["level"], doc["rule"]) == ("high", "many-episodes")
    assert doc["evidence"] == {"negative_episodes": 4.0}
    assert doc["rules_version"].startswith("school@")


@pytest.mark.slow
def test_rescanning_after_a_rules_or_model_change_replaces_the_session(tmp_path, astronaut,
                                                                      model, rules_file):
    """The README: a video stored with the same model and rules is skipped; a new model or
    rule set re-analyses it and replaces the old session."""
    video = known_video(tmp_path / "v" / "kai_2026-01-01.mp4", astronaut)
    db = f"sqlite:///{tmp_path}/s.db"

    def scan(*options: object) -> str:
        result = run("scan", video.parent, "--out", tmp_path / "r", "--db", db, "--every",
                     "0.5", *options)
        assert result.exit_code == 0, result.output
        return result.output

    def stored() -> tuple[str, str, str, str]:
        [session] = Store(db).sessions_of("kai")
        return (session.level, session.fired_rule, session.rules_version.split("@")[0],
                session.model_version)

    assert "1 analysed, 0 unchanged" in scan("--model", model)
    level, rule, rules, banded = stored()
    assert (level, rule, rules) == ("low", "no-negative-pattern", "default")  # sad alone: 9/24
    assert "0 analysed, 1 unchanged" in scan("--model", model)
    assert "1 analysed, 0 unchanged" in scan("--model", model, "--rules", rules_file)
    assert stored() == ("high", "many-episodes", "school", banded)
    assert "0 analysed, 1 unchanged" in scan("--model", model, "--rules", rules_file)
    assert "1 analysed, 0 unchanged" in scan("--rules", rules_file)  # the shipped model
    assert stored()[2] == "school" and stored()[3] != banded
    assert "0 analysed, 1 unchanged" in scan("--rules", rules_file)
    with Store(db).engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM sessions").scalar() == 1


# Exit codes and messages (README: "Commands" and "From cron"; docs/commands.md).

def _tables(path: Path) -> object:
    """What a database holds, or the error reading it gives (a corrupt file)."""
    try:
        with sqlite3.connect(path) as conn:
            names = [r[0] for r in conn.execute("SELECT name FROM sqlite_master ORDER BY name")]
            meta = conn.execute("SELECT * FROM screener_meta").fetchall() if (
                "screener_meta" in names) else None
            return names, meta
    except sqlite3.DatabaseError as exc:
        return str(exc)


def _foreign(path: Path) -> None:
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE invoices (id INTEGER PRIMARY KEY, total REAL)")


def _corrupt(path: Path) -> None:
    path.write_bytes(b"SQLite format 3\0" + bytes(range(256)) * 16)


def _newer(path: Path) -> None:
    Store(f"sqlite:///{path}")
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE screener_meta SET value = '99' WHERE key = 'schema_version'")


@pytest.mark.parametrize("command", ["scan", "history", "report"])
@pytest.mark.parametrize(
    ("make", "message"),
    [
        (_foreign, "is not a screener database"),
        (_corrupt, "cannot open database"),
        (_newer, "has schema version 99, newer than this screener understands"),
    ],
    ids=["foreign", "corrupt", "newer"],
)
def test_a_database_that_is_not_ours_exits_2_with_one_line(tmp_path, astronaut, command, make,
                                                            message):
    """A crontab line pointing at the wrong file is a setup error (2), not a failed video (1);
    no table is added to it and nothing is analysed."""
    path = tmp_path / "other.db"
    make(path)
    before = _tables(path)
    face_video(tmp_path / "v" / "kai_2026-01-01.mp4", astronaut)
    args = {"scan": ["scan", tmp_path / "v", "--out", tmp_path / "r"],
            "history": ["history", "kai"], "report": ["report", "--out", tmp_path / "r"]}
    result = run(*args[command], "--db", path)
    assert result.exit_code == 2, result.output
    [line] = result.output.splitlines()
    assert line.startswith("error: ") and message in line and str(path) in line
    assert _tables(path) == before
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ("[keyframes]\nevery_s = 0\n", "keyframes.every_s must be positive"),
        ("[keyframes\n", "invalid TOML"),
        ("colour = 'blue'\n", "unknown setting 'colour'"),
    ],
)
@pytest.mark.parametrize("command", ["scan", "analyze"])
def test_a_bad_config_file_exits_2_with_one_line(tmp_path, astronaut, config, message, command):
    video = face_video(tmp_path / "v" / "kai_2026-01-01.mp4", astronaut)
    path = tmp_path / "settings.toml"
    path.write_text(config)
    args = {"scan": ["scan", video, "--out", tmp_path / "r", "--db", f"sqlite:///{tmp_path}/s.db"],
            "analyze": ["analyze", video]}
    result = run(*args[command], "--config", path)
    assert result.exit_code == 2, result.output
    [line] = result.output.splitlines()
    assert line.startswith("error: ") and message in line
    assert not (tmp_path / "s.db").exists() and not (tmp_path / "r").exists()


def test_a_missing_config_file_exits_2(tmp_path):
    result = run("analyze", REPO / "README.md", "--config", tmp_path / "no.toml")
    assert result.exit_code == 2 and "no.toml" in result.output
    assert "Traceback" not in result.output


def _fifo(path: Path) -> str:
    os.mkfifo(path)  # no writer ever comes: opened for reading it would wait forever
    return str(path)


def _written(path: Path, text: str) -> str:
    path.write_text(text)
    return str(path)


DEEP = "x = " + "[" * 5000 + "]" * 5000 + "\n"


@pytest.mark.parametrize(
    ("option", "make", "message"),
    [
        ("--config", lambda tmp: "/dev/zero", "not a regular file"),
        ("--rules", lambda tmp: "/dev/zero", "not a regular file"),
        ("--config", lambda tmp: _fifo(tmp / "fifo.toml"), "not a regular file"),
        ("--config", lambda tmp: _written(tmp / "big.toml", "#" * 2**21), "larger than 1 MiB"),
        ("--config", lambda tmp: _written(tmp / "deep.toml", DEEP), "nested too deeply"),
        ("--rules", lambda tmp: _written(tmp / "deep.toml", DEEP), "nested too deeply"),
        ("--config", lambda tmp: _written(tmp / "s.toml", "lock_timeout_s = -1\n"),
         "lock_timeout_s must be 0 or more"),
        ("--config", lambda tmp: _written(tmp / "s.toml", "[keyframes]\nevery_s = 0.001\n"),
         "every_s must be at least 0.05"),
    ],
    ids=["config-dev-zero", "rules-dev-zero", "config-fifo", "config-2mib", "config-deep",
         "rules-deep", "lock-timeout-negative", "every-below-minimum"],
)
def test_endless_or_hostile_settings_exit_2_with_one_line_within_seconds(tmp_path, option,
                                                                         make, message):
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "screener", "analyze", str(REPO / "README.md"), option,
         make(tmp_path)], capture_output=True, text=True, timeout=60,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert time.monotonic() - started < 30
    assert done.returncode == 2, done.stderr
    [line] = done.stderr.splitlines()
    assert line.startswith("error: ") and message in line


@pytest.mark.parametrize("command", ["scan", "analyze"])
def test_a_rules_file_error_exits_2_naming_file_and_line(tmp_path, astronaut, rules_file,
                                                          command):
    text = CUSTOM_RULES.replace('">= 8"', '"at least 8"')
    rules_file.write_text(text)
    line_number = text.splitlines().index(
        'when = { longest_negative_run_s = "at least 8" }') + 1
    video = face_video(tmp_path / "v" / "kai_2026-01-01.mp4", astronaut)
    args = {"scan": ["scan", video, "--out", tmp_path / "r", "--db", f"sqlite:///{tmp_path}/s.db"],
            "analyze": ["analyze", video]}
    result = run(*args[command], "--rules", rules_file)
    assert result.exit_code == 2, result.output
    [line] = result.output.splitlines()
    assert line.startswith(f"error: {rules_file}:{line_number}: bad condition 'at least 8'")
    assert not (tmp_path / "s.db").exists()


@pytest.mark.parametrize("command", ["scan", "analyze"])
def test_a_model_that_is_not_onnx_exits_2_with_one_line(tmp_path, astronaut, command):
    video = face_video(tmp_path / "v" / "kai_2026-01-01.mp4", astronaut)
    bad = tmp_path / "model.onnx"
    bad.write_text("not a model")
    args = {"scan": ["scan", video, "--out", tmp_path / "r", "--db", f"sqlite:///{tmp_path}/s.db"],
            "analyze": ["analyze", video]}
    result = run(*args[command], "--model", bad)
    assert result.exit_code == 2, result.output
    [line] = result.output.splitlines()
    assert line.startswith(f"error: cannot load emotion model {bad}")
    missing = run(*args[command], "--model", tmp_path / "none.onnx")
    assert missing.exit_code == 2 and "none.onnx" in missing.output
    assert "Traceback" not in missing.output
    assert not (tmp_path / "s.db").exists()


def test_version_prints_the_packaged_version_and_exits_0():
    import tomllib

    packaged = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    result = run("--version")
    assert result.exit_code == 0
    assert result.output == f"screener {packaged}\n"
    assert screener.__version__ == packaged


def test_a_database_fault_on_one_video_fails_it_alone(tmp_path, astronaut):
    """The README: when some video fails, each is listed with its reason, the others are still
    stored, exit code 1; the failed one is retried by the next scan."""
    db = tmp_path / "s.db"
    Store(f"sqlite:///{db}")
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TRIGGER refuse_lee BEFORE INSERT ON sessions "
                     "WHEN NEW.session_id = 'lee_2026-01-02' "
                     "BEGIN SELECT RAISE(ABORT, 'disk quota exceeded'); END")
    folder = tmp_path / "v"
    for name, seed in (("kai_2026-01-01", 1), ("lee_2026-01-02", 2), ("max_2026-01-03", 3)):
        face_video(folder / f"{name}.mp4", astronaut, seed)

    def scan():
        return run("scan", folder, "--out", tmp_path / "r", "--db", db, "--workers", "1")

    result = scan()
    assert result.exit_code == 1, result.output
    failed = [line for line in result.output.splitlines() if line.startswith("FAILED")]
    assert len(failed) == 1, result.output
    assert failed[0].startswith(f"FAILED {folder / 'lee_2026-01-02.mp4'}: could not store: ")
    assert "disk quota exceeded" in failed[0]
    assert "[SQL:" not in result.output  # one line per failure, as promised
    assert "2 analysed, 0 unchanged, 1 failed" in result.output
    assert "Traceback" not in result.output
    assert Store(f"sqlite:///{db}").student_ids() == ["kai", "max"]
    assert (tmp_path / "r" / "index.html").is_file()
    again = scan()
    assert again.exit_code == 1 and "0 analysed, 2 unchanged, 1 failed" in again.output


def test_a_full_disk_stops_the_scan_with_one_line_and_exit_1(tmp_path, astronaut, monkeypatch):
    """Every later video would fail the same way: analysing them would waste the time and
    print a failure each."""
    import sqlalchemy as sa

    import screener.scanning.scan

    folder = tmp_path / "v"
    for name, seed in (("kai_2026-01-01", 1), ("lee_2026-01-02", 2), ("max_2026-01-03", 3)):
        face_video(folder / f"{name}.mp4", astronaut, seed)

    def full(self, result):
        raise sa.exc.OperationalError("INSERT INTO sessions ...", {},
                                      sqlite3.OperationalError("database or disk is full"))

    analysed = []
    analyse_one = screener.scanning.scan.analyse_one

    def counted(analyzer, job):
        analysed.append(job)
        return analyse_one(analyzer, job)

    monkeypatch.setattr(Store, "save", full)
    monkeypatch.setattr(screener.scanning.scan, "analyse_one", counted)
    result = run("scan", folder, "--out", tmp_path / "r", "--db", tmp_path / "s.db",
                 "--workers", "1")
    assert result.exit_code == 1, result.output
    [line] = result.output.splitlines()
    assert line.startswith("error: the database's disk is full (database or disk is full)")
    assert "0 sessions stored" in line
    assert len(analysed) == 1
