"""What the README promises of the `screener` command, end to end: that a rules file and
`--every` reach the analysis, that a new model or rule set re-analyses a stored video, and the
exit code and message of each mistake a user or a cron job can make."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import cv2
import numpy as np
import pytest

import screener
from screener.store import Store
from tests.conftest import REPO, banded_model, face_frames, write_video
from tests.test_cli import run

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
    smoothing looks at the last 3 labels (a lone disgust at 13 ends a sad episode; over 10
    it would not), and a face stands for 0.5 s (the longest stretch, 16 faces, is 8 s)."""
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
    assert (level, rule, rules) == ("low", "otherwise", "default")  # sad alone: 9/24
    assert "0 analysed, 1 unchanged" in scan("--model", model)
    assert "1 analysed, 0 unchanged" in scan("--model", model, "--rules", rules_file)
    assert stored() == ("high", "many-episodes", "school", banded)
    assert "0 analysed, 1 unchanged" in scan("--model", model, "--rules", rules_file)
    assert "1 analysed, 0 unchanged" in scan("--rules", rules_file)  # the shipped model
    assert stored()[2] == "school" and stored()[3] != banded
    assert "0 analysed, 1 unchanged" in scan("--rules", rules_file)
    with Store(db).engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM sessions").scalar() == 1
