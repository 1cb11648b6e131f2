"""End to end through the `screener` command (Typer's CliRunner), on generated and real videos."""

import json
import os
import shutil
import stat
from pathlib import Path

import pytest
from typer.testing import CliRunner

from screener.cli import app
from tests.conftest import SAMPLE_VIDEOS, face_frames, import_or_missing, plain_frames

runner = CliRunner()


def run(*args: str):
    return runner.invoke(app, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture
def db(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path}/screener.db"


@pytest.fixture(scope="module")
def sample_scan(tmp_path_factory):
    """One scan of the bundled sample videos, shared by the tests that only read its results."""
    root = tmp_path_factory.mktemp("sample")
    db = f"sqlite:///{root}/screener.db"
    result = run("scan", SAMPLE_VIDEOS, "--out", root / "reports", "--db", db)
    return root, db, result


@pytest.mark.slow
def test_scan_of_the_sample_videos_writes_reports_and_history(sample_scan):
    root, db, result = sample_scan
    assert result.exit_code == 0, result.output
    videos = sorted(SAMPLE_VIDEOS.rglob("*.mp4"))
    assert f"{len(videos)} analysed, 0 unchanged, 0 failed" in result.output
    index = (root / "reports" / "index.html").read_text()
    assert "alex" in index and "maria" in index
    assert len(list((root / "reports").glob("*.html"))) == 3  # index + two students


@pytest.mark.slow
def test_history_lists_sessions_in_date_order(sample_scan):
    _, db, _ = sample_scan
    result = run("history", "alex", "--db", db, "--format", "json")
    assert result.exit_code == 0, result.output
    sessions = json.loads(result.output)["sessions"]
    dates = [s["recorded_at"] for s in sessions]
    assert len(dates) == 3 and dates == sorted(dates)
    assert {s["level"] for s in sessions} <= {"insufficient", "low", "moderate", "high"}
    table = run("history", "alex", "--db", db)
    assert table.output.count("alex_2026-03") == 3
    csv_out = run("history", "alex", "--db", db, "--format", "csv")
    assert csv_out.output.splitlines()[0].startswith("recorded_at,session_id,level")
    assert len(csv_out.output.splitlines()) == 4


@pytest.mark.slow
def test_second_scan_is_a_no_op_and_force_redoes_it(sample_scan):
    root, db, _ = sample_scan
    videos = len(list(SAMPLE_VIDEOS.rglob("*.mp4")))
    again = run("scan", SAMPLE_VIDEOS, "--out", root / "reports", "--db", db)
    assert again.exit_code == 0
    assert f"0 analysed, {videos} unchanged, 0 failed" in again.output
    single = SAMPLE_VIDEOS / "alex_2026-03-02.mp4"
    forced = run("scan", single, "--out", root / "reports", "--db", db, "--force")
    assert "1 analysed, 0 unchanged" in forced.output
    assert len(json.loads(run("history", "alex", "--db", db, "--format", "json").output)
               ["sessions"]) == 3


@pytest.mark.slow
def test_report_re_renders_from_the_database(sample_scan, tmp_path):
    _, db, _ = sample_scan
    result = run("report", "--out", tmp_path / "again", "--db", db)
    assert result.exit_code == 0, result.output
    assert (tmp_path / "again" / "index.html").is_file()
    assert len(list((tmp_path / "again").glob("*.html"))) == 3
    assert run("report", "nobody", "--out", tmp_path / "x", "--db", db).exit_code == 2


@pytest.mark.slow
def test_a_broken_video_is_reported_and_the_others_still_stored(tmp_path, db, astronaut,
                                                               make_video):
    folder = tmp_path / "videos"
    make_video("videos/dana_2026-01-05.mp4", face_frames(astronaut, 30))
    (folder / "dana_2026-01-06.mp4").write_text("not a video")
    (folder / "empty_2026-01-07.mp4").write_bytes(b"")
    result = run("scan", folder, "--out", tmp_path / "out", "--db", db, "--quiet")
    assert result.exit_code == 1
    assert "FAILED" in result.output and "dana_2026-01-06.mp4" in result.output
    assert "empty_2026-01-07.mp4" in result.output
    assert "1 analysed, 0 unchanged, 2 failed" in result.output
    assert "Traceback" not in result.output
    history = json.loads(run("history", "dana", "--db", db, "--format", "json").output)
    assert [s["session_id"] for s in history["sessions"]] == ["dana_2026-01-05"]


def test_pattern_option_names_students(tmp_path, db, astronaut, make_video):
    make_video("v/class7-kim-2026.02.01.mp4", face_frames(astronaut, 12))
    pattern = r"class7-(?P<student>[a-z]+)-"
    result = run("scan", tmp_path / "v", "--out", tmp_path / "o", "--db", db, "--pattern", pattern)
    assert result.exit_code == 0, result.output
    assert run("history", "kim", "--db", db).exit_code == 0


@pytest.mark.parametrize(
    "args",
    [
        ["scan", "/no/such/folder"],
        ["scan", ".", "--pattern", "(unclosed"],
        ["scan", ".", "--pattern", "no-named-group"],
        ["scan", ".", "--rules", "no-such-ruleset"],
        ["scan", ".", "--workers", "-1"],
        ["history", "x", "--format", "xml"],
        ["train", "--data", "/no/such/data"],
        ["train", "--data", ".", "--batch-size", "30"],
        ["train", "--data", ".", "--teacher", "/no/such/teacher.onnx"],
        ["train", "--data", ".", "--distill", "1.5"],
        ["train", "--data", ".", "--consistent"],
        ["train", "--data", ".", "--mixup", "-0.2"],
        ["train", "--data", ".", "--arch", "resnet"],
        ["train", "--data", ".", "--arch", "vgg", "--dropout", "1"],
        ["calibrate", "--data", ".", "--split", "all"],
    ],
)
def test_usage_errors_exit_2_without_traceback(args, db):
    result = runner.invoke(app, [*args, "--db", db] if args[0] in {"scan", "history"} else args)
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output


def test_train_refuses_a_missing_model_to_start_from_before_loading_data(tmp_path):
    result = run("train", "--data", tmp_path, "--init-from", tmp_path / "gone.keras")
    assert result.exit_code == 2
    assert "model to start from not found" in result.output and "Traceback" not in result.output


def test_db_may_be_a_plain_file_path(tmp_path, astronaut, make_video, monkeypatch):
    make_video("v/kim_2026-02-01.mp4", face_frames(astronaut, 12))
    monkeypatch.chdir(tmp_path)
    (tmp_path / "records").mkdir()
    result = run("scan", "v", "--out", "o", "--db", "records/s.db")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "records" / "s.db").is_file()
    history = run("history", "kim", "--db", str(tmp_path / "records" / "s.db"))
    assert history.exit_code == 0 and "kim" in history.output


def test_a_teacher_that_is_not_a_model_is_a_usage_error(tmp_path):
    import_or_missing("tensorflow", "tensorflow")
    import cv2
    import numpy as np

    for split, value in (("train", 40), ("train", 80), ("val", 120)):
        folder = tmp_path / "data" / split / "happy"
        folder.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(folder / f"{value}.png"), np.full((48, 48), value, np.uint8))
    teacher = tmp_path / "teacher.onnx"
    teacher.write_text("not an ONNX model")
    result = run("train", "--data", tmp_path / "data", "--teacher", teacher,
                 "--out", tmp_path / "m.keras", "--epochs", "1", "--batch-size", "4")
    assert result.exit_code == 2, result.output
    assert "cannot load emotion model" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "m.keras").exists()


@pytest.mark.slow
def test_unknown_student_is_a_clear_error(sample_scan):
    _, db, _ = sample_scan
    result = run("history", "nobody", "--db", db)
    assert result.exit_code == 2
    assert "no sessions for student 'nobody'" in result.output and "alex" in result.output


def test_analyze_json_has_frames_metrics_and_level(tmp_path, astronaut, make_video):
    frames = face_frames(astronaut, 20) + plain_frames(20, (0, 0, 200))
    video = make_video("erin_2026-04-01.mp4", frames)
    result = run("analyze", video, "--json", "--every", "0.5")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    assert doc["student"] == "erin" and doc["level"] in {"insufficient", "low", "moderate", "high"}
    frames = doc["frames"]
    assert len(frames) == doc["metrics"]["frames_analysed"] == 8
    with_face = [f for f in frames if f["box"]]
    assert 3 <= len(with_face) <= 5
    assert all(abs(sum(f["probabilities"].values()) - 1) < 1e-3 for f in with_face)
    assert all(f["t_s"] >= 1.9 for f in frames if not f["box"])
    assert 0.0 <= doc["metrics"]["negative_share"] <= 1.0
    m = doc["metrics"]
    assert 0.0 <= m["negative_share_low"] <= m["negative_share_est"] <= m["negative_share_high"]
    assert "negative_share_vs_baseline" not in m  # no database, no baseline


def test_analyze_writes_per_frame_csv(tmp_path, astronaut, make_video):
    video = make_video("fay.mp4", face_frames(astronaut, 30))
    out = tmp_path / "frames.csv"
    result = run("analyze", video, "--csv", out)
    assert result.exit_code == 0, result.output
    rows = out.read_text().splitlines()
    assert rows[0].startswith("t_s,frame_index,x,y,w,h,label,smoothed_label,p_angry")
    assert len(rows) == 1 + 3
    assert "a screening aid, not a diagnosis" in result.output
    assert "corrected for the model's errors" in result.output


def test_the_per_frame_csv_is_readable_by_its_owner_only(tmp_path, astronaut, make_video):
    video = make_video("fay.mp4", face_frames(astronaut, 10))
    out = tmp_path / "frames.csv"
    out.write_text("an older export")
    out.chmod(0o644)
    old = os.umask(0o022)
    try:
        result = run("analyze", video, "--csv", out)
    finally:
        os.umask(old)
    assert result.exit_code == 0, result.output
    assert out.read_text().startswith("t_s,frame_index")
    assert stat.S_IMODE(out.stat().st_mode) == 0o600


def test_analyze_a_broken_file_exits_1(tmp_path):
    bad = tmp_path / "bad.mp4"
    bad.write_text("text")
    result = run("analyze", bad)
    assert result.exit_code == 1
    assert "bad.mp4" in result.output and "Traceback" not in result.output


# Real recordings from ../shared (skipped in a fresh clone).

def analyze_json(path: Path) -> dict:
    result = run("analyze", path, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


@pytest.mark.slow
def test_real_clip_finds_a_face_in_most_key_frames(shared_videos):
    doc = analyze_json(shared_videos / "WolfgangLanger_Pexels.mp4")
    assert doc["metrics"]["frames_analysed"] >= 15
    assert doc["metrics"]["face_coverage"] >= 0.8


@pytest.mark.slow
def test_clip_without_a_face_is_insufficient(shared_videos):
    doc = analyze_json(shared_videos / "no_face.mp4")
    assert doc["level"] == "insufficient"
    assert doc["metrics"]["faces_found"] == 0


@pytest.mark.slow
def test_face_leaving_lowers_coverage(shared_videos):
    leaving = analyze_json(shared_videos / "face_noface.mov")["metrics"]["face_coverage"]
    staying = analyze_json(shared_videos / "single_face.mp4")["metrics"]["face_coverage"]
    assert leaving < staying


@pytest.mark.slow
def test_scan_of_real_clips_stores_each_as_a_session(shared_videos, tmp_path, db):
    folder = tmp_path / "lee"
    folder.mkdir()
    for name in ("single_face.mp4", "no_face.mp4", "face_noface.mov"):
        shutil.copy(shared_videos / name, folder / name)
    result = run("scan", tmp_path, "--out", tmp_path / "out", "--db", db, "--quiet")
    assert result.exit_code == 0, result.output
    history = json.loads(run("history", "lee", "--db", db, "--format", "json").output)
    assert len(history["sessions"]) == 3


def _write_grey(path: Path, value: int) -> None:
    import cv2
    import numpy as np

    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), np.full((48, 48), value, np.uint8))


@pytest.mark.slow
def test_every_page_states_the_accuracy_measured_at_the_flip_margin_scans_use(sample_scan):
    import re

    from screener.emotions.model import ModelCard
    from screener.settings import Settings

    root, _, _ = sample_scan
    settings = Settings()
    accuracy = ModelCard.for_model(settings.model_path, settings.emotions.flip_margin).val_accuracy
    assert accuracy != ModelCard.for_model(settings.model_path, 0.0).val_accuracy
    pages = sorted((root / "reports").glob("*.html"))
    stated = {re.search(r"labels (\d+)% of FER2013", page.read_text()).group(1) for page in pages}
    assert stated == {f"{accuracy:.0%}".rstrip("%")}


def test_evaluate_reports_hand_computed_metrics(tmp_path):
    from tests.conftest import brightness_model

    model = brightness_model(tmp_path / "bright.onnx")
    data = tmp_path / "faces"
    # The model says happy for bright images and sad for dark ones.
    for name, value in [("happy/1.png", 220), ("happy/2.png", 200), ("happy/3.png", 30),
                        ("sad/1.png", 20), ("sad/2.png", 40), ("angry/1.png", 230)]:
        _write_grey(data / name, value)
    result = run("evaluate", "--data", data, "--model", model, "--json",
                 "--confusion", tmp_path / "c.png")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    assert doc["accuracy"] == pytest.approx(4 / 6)
    assert doc["per_class"]["happy"]["precision"] == pytest.approx(2 / 3)
    assert doc["per_class"]["happy"]["recall"] == pytest.approx(2 / 3)
    assert doc["per_class"]["sad"]["precision"] == pytest.approx(2 / 3)
    assert doc["per_class"]["sad"]["recall"] == pytest.approx(1.0)
    assert doc["per_class"]["sad"]["f1"] == pytest.approx(0.8)
    assert doc["per_class"]["angry"]["recall"] == 0.0
    angry, happy, sad = 0, 3, 4
    assert doc["confusion"][happy][sad] == 1 and doc["confusion"][angry][happy] == 1
    assert (tmp_path / "c.png").is_file()


def test_evaluate_reads_the_fer_csv(tmp_path):
    from tests.conftest import brightness_model

    model = brightness_model(tmp_path / "bright.onnx")
    bright, dark = " ".join(["210"] * 2304), " ".join(["10"] * 2304)
    (tmp_path / "fer.csv").write_text(
        "emotion,pixels,Usage\n"
        f"3,{bright},PublicTest\n4,{dark},PublicTest\n4,{bright},PublicTest\n"
        f"3,{dark},Training\n"
    )
    result = run("evaluate", "--data", tmp_path / "fer.csv", "--model", model, "--json")
    doc = json.loads(result.output)
    assert doc["count"] == 3
    assert doc["accuracy"] == pytest.approx(2 / 3)


def test_evaluate_mirrors_the_faces_within_the_flip_margin(tmp_path):
    import cv2
    import numpy as np

    from tests.conftest import brightness_model

    model = brightness_model(tmp_path / "left.onnx", left_half=True)
    # The model sees only the left half: this face is slightly happy (happy 0.76, sad 0.24, a
    # gap of 0.53); its mirror is surely sad, so averaged with it the face is sad.
    face = np.full((48, 48), 10, np.uint8)
    face[:, :24] = 135
    (tmp_path / "faces" / "sad").mkdir(parents=True)
    cv2.imwrite(str(tmp_path / "faces" / "sad" / "1.png"), face)

    def accuracy(*margin: str) -> float:
        result = run("evaluate", "--data", tmp_path / "faces", "--model", model, "--json",
                     *margin)
        assert result.exit_code == 0, result.output
        return json.loads(result.output)["accuracy"]

    assert accuracy("--flip-margin", "0") == 0.0
    assert accuracy() == 0.0  # the default margin, 0.2, leaves a gap of 0.53 alone
    assert accuracy("--flip-margin", "0.6") == 1.0
    assert accuracy("--flip-margin", "1") == 1.0
    refused = run("evaluate", "--data", tmp_path / "faces", "--model", model,
                  "--flip-margin", "1.5")
    assert refused.exit_code == 2
    assert "between 0 and 1" in refused.output


def test_evaluate_rejects_folders_that_are_not_emotions(tmp_path):
    _write_grey(tmp_path / "faces" / "smiling" / "1.png", 100)
    result = run("evaluate", "--data", tmp_path / "faces")
    assert result.exit_code == 2
    assert "smiling" in result.output


@pytest.mark.slow
def test_two_workers_store_the_same_sessions_as_one(tmp_path):
    single_db, parallel_db = f"sqlite:///{tmp_path}/single.db", f"sqlite:///{tmp_path}/parallel.db"
    for db, workers in ((single_db, "1"), (parallel_db, "2")):
        result = run("scan", SAMPLE_VIDEOS, "--out", tmp_path / workers, "--db", db,
                     "--workers", workers)
        assert result.exit_code == 0, result.output

    def sessions(db: str, student: str) -> list[tuple]:
        doc = json.loads(run("history", student, "--db", db, "--format", "json").output)
        return [(s["session_id"], s["level"], s["negative_share"], s["frames_analysed"],
                 s["faces_found"]) for s in doc["sessions"]]

    for student in ("alex", "maria"):
        assert sessions(parallel_db, student) == sessions(single_db, student)


def _run_on_a_terminal(*args: str) -> tuple[int, str]:
    """Run `python -m screener ...` with a pseudo-terminal as its stdout and stderr."""
    import fcntl
    import os
    import pty
    import struct
    import subprocess
    import sys
    import termios

    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 120, 0, 0))
    process = subprocess.Popen([sys.executable, "-m", "screener", *args], stdin=follower,
                               stdout=follower, stderr=follower)
    os.close(follower)
    chunks = []
    while True:
        try:
            chunk = os.read(leader, 4096)
        except OSError:
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(leader)
    return process.wait(timeout=120), b"".join(chunks).decode(errors="replace")


@pytest.mark.slow
def test_progress_bars_show_on_a_terminal(tmp_path, astronaut, make_video):
    video = make_video("gil_2026-05-05.mp4", face_frames(astronaut, 30))
    code, output = _run_on_a_terminal("analyze", str(video))
    assert code == 0, output
    assert "3 key frames" in output and "Traceback" not in output
    code, output = _run_on_a_terminal("scan", str(tmp_path), "--out", str(tmp_path / "r"),
                                      "--db", f"sqlite:///{tmp_path}/t.db")
    assert code == 0, output
    assert "1/1" in output and "video" in output


@pytest.mark.slow
def test_odd_and_hostile_file_names_are_analysed_and_escaped(tmp_path, db, astronaut,
                                                             make_video):
    import os

    folder = tmp_path / "v"
    make_video("v/plain.mp4", face_frames(astronaut, 12))
    (folder / "plain.mp4").rename(Path(os.fsdecode(bytes(folder) + b"/b\xe9a_2026-01-01.mp4")))
    make_video("v/<script>alert(1)<_script>_2026-01-02.mp4", face_frames(astronaut, 12, seed=5))
    result = run("scan", folder, "--out", tmp_path / "r", "--db", db)
    assert result.exit_code == 0, result.output
    assert "2 analysed" in result.output
    assert run("history", "b\ufffda", "--db", db).exit_code == 0
    index = (tmp_path / "r" / "index.html").read_text()
    assert "<script>alert" not in index and "&lt;script&gt;alert(1)&lt;_script&gt;" in index


def test_a_scan_that_cannot_get_the_database_exits_1_with_a_message(tmp_path, db, astronaut,
                                                                     make_video):
    from tests.storage.test_locking import hold_lock

    make_video("v/hal_2026-01-01.mp4", face_frames(astronaut, 12))
    config = tmp_path / "settings.toml"
    config.write_text("lock_timeout_s = 0.3\n")
    holder = hold_lock(db, 5)
    try:
        result = run("scan", tmp_path / "v", "--out", tmp_path / "r", "--db", db,
                     "--config", config)
    finally:
        holder.kill()
        holder.wait()
    assert result.exit_code == 1
    assert "another scan" in result.output and "still holds" in result.output
    assert run("history", "hal", "--db", db).exit_code == 2  # nothing was analysed


def test_an_unusable_report_folder_is_a_clear_error_and_keeps_the_sessions(tmp_path, db,
                                                                         astronaut, make_video):
    make_video("v/ivy_2026-01-01.mp4", face_frames(astronaut, 12))
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the report folder should be")
    result = run("scan", tmp_path / "v", "--out", blocker, "--db", db)
    assert result.exit_code == 1
    assert "cannot write reports" in result.output and "Traceback" not in result.output
    assert run("history", "ivy", "--db", db).exit_code == 0


def test_a_full_disk_while_writing_reports_is_a_clear_error(tmp_path, db, astronaut, make_video,
                                                            monkeypatch):
    import errno
    import os

    make_video("v/jo_2026-01-01.mp4", face_frames(astronaut, 12))

    def no_space(*_args, **_kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr("screener.privacy.os.replace", no_space)
    result = run("scan", tmp_path / "v", "--out", tmp_path / "r", "--db", db)
    assert result.exit_code == 1
    assert "No space left on device" in result.output and "Traceback" not in result.output
    assert not list((tmp_path / "r").glob(".report-*"))
    monkeypatch.undo()
    assert run("history", "jo", "--db", db).exit_code == 0
    assert run("report", "--out", tmp_path / "r", "--db", db).exit_code == 0


def test_report_says_where_the_index_is(tmp_path):
    from screener.storage.store import Store
    from tests.storage.test_store import make_result

    db = f"sqlite:///{tmp_path}/s.db"
    Store(db).save(make_result("alex", 2, "a" * 64, ["happy", "sad"]))
    result = run("report", "--out", tmp_path / "r", "--db", db)
    assert result.exit_code == 0, result.output
    index = tmp_path / "r" / "index.html"
    assert index.is_file() and result.output.strip().endswith(f"index: {index}")


def test_evaluate_reports_ece_and_writes_each_images_probabilities(tmp_path):
    import csv

    import numpy as np

    from screener.lab.evaluation import expected_calibration_error
    from tests.conftest import brightness_model

    model = brightness_model(tmp_path / "bright.onnx")
    for name, value in [("happy/1.png", 220), ("sad/1.png", 20), ("sad/2.png", 210)]:
        _write_grey(tmp_path / "faces" / name, value)
    out = tmp_path / "out" / "p.csv"
    result = run("evaluate", "--data", tmp_path / "faces", "--model", model, "--json",
                 "--probabilities", out)
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    with out.open() as handle:
        rows = list(csv.DictReader(handle))
    assert [(Path(r["path"]).parent.name, r["label"]) for r in rows] == [
        ("happy", "happy"), ("sad", "sad"), ("sad", "sad")]
    probabilities = np.array([[float(r[e]) for e in doc["classes"]] for r in rows])
    assert probabilities.argmax(axis=1).tolist() == [3, 4, 3]  # the bright sad face: happy
    labels = np.array([3, 4, 4])
    assert doc["ece"] == pytest.approx(expected_calibration_error(probabilities, labels), abs=1e-5)
    assert doc["ece"] == pytest.approx(1 / 3, abs=1e-3)  # all near-certain, two of three right


def test_calibrate_stores_a_temperature_that_evaluate_then_applies(tmp_path):
    from tests.conftest import brightness_model

    model = brightness_model(tmp_path / "bright.onnx")
    model.with_suffix(".json").write_text(json.dumps({"name": "bright", "val_accuracy": 0.5,
                                                      "equalise_dark": False}))
    # Bright faces are happy to the model, near-certainly; half of these are sad.
    for i in range(4):
        _write_grey(tmp_path / "faces" / "happy" / f"{i}.png", 220)
        _write_grey(tmp_path / "faces" / "sad" / f"{i}.png", 220)

    def evaluated() -> dict:
        result = run("evaluate", "--data", tmp_path / "faces", "--model", model, "--json")
        assert result.exit_code == 0, result.output
        return json.loads(result.output)

    before = evaluated()
    result = run("calibrate", "--data", tmp_path / "faces", "--model", model,
                 "--diagram", tmp_path / "reliability.png")
    assert result.exit_code == 0, result.output
    meta = json.loads(model.with_suffix(".json").read_text())
    assert meta["val_accuracy"] == 0.5 and meta["calibration"]["temperature"] > 5
    assert (tmp_path / "reliability.png").is_file()
    after = evaluated()
    assert after["accuracy"] == before["accuracy"] == 0.5
    assert before["ece"] == pytest.approx(0.5, abs=1e-3)
    assert after["ece"] < 0.25
    from screener.emotions.model import OnnxEmotionModel

    assert "+T" in OnnxEmotionModel(model).name
    assert "+T" not in OnnxEmotionModel(model, temperature=1.0).name


def test_calibrate_refuses_missing_data_in_one_line(tmp_path):
    from tests.conftest import brightness_model

    model = brightness_model(tmp_path / "bright.onnx")
    result = run("calibrate", "--data", tmp_path / "nowhere", "--model", model)
    assert result.exit_code == 2
    assert "not found" in result.output and "Traceback" not in result.output


def test_calibrate_never_writes_into_the_shipped_model(tmp_path):
    """Every scan reads the shipped model's .json: calibrate needs an explicit copy."""
    from screener.settings import Settings

    shipped = Settings().model_path.with_suffix(".json")
    before = shipped.read_bytes()
    for args in ((), ("--model", Settings().model_path)):
        result = run("calibrate", "--data", tmp_path / "nowhere", *args)
        assert result.exit_code == 2
        [line] = result.output.strip().splitlines()
        assert "will not write into the shipped model" in line and "--model" in line
    assert shipped.read_bytes() == before


def test_train_without_the_training_extra_says_how_to_install_it_before_loading_data(
    tmp_path, monkeypatch
):
    """FER2013 takes a while to load: the missing TensorFlow is said first, in one line."""
    import sys

    import screener.lab.fer_data

    for name in ("tensorflow", "keras", "tf2onnx"):
        monkeypatch.setitem(sys.modules, name, None)  # `import keras` now fails
    loaded = []
    monkeypatch.setattr(screener.lab.fer_data, "load_split", lambda *a, **k: loaded.append(a))
    result = run("train", "--data", tmp_path, "--out", tmp_path / "m.keras")
    assert result.exit_code == 2
    assert loaded == []
    assert result.output.strip().splitlines() == [
        'error: training needs the train extra (missing: tensorflow, keras, tf2onnx): '
        'pip install "screener[train]"']


@pytest.mark.slow
def test_analyze_says_how_much_of_a_damaged_video_could_not_be_decoded(tmp_path, astronaut,
                                                                      make_video):
    from tests.video.test_decoders import with_packet_zeroed

    # A zeroed packet, one thread: FFmpeg may conceal flipped bytes unnoticed (it did, once
    # with several threads and once with one, each in a CI run); what is tested is the sentence.
    video = with_packet_zeroed(make_video("face.mp4", face_frames(astronaut, 40)), 20,
                               tmp_path / "damaged.mp4")
    config = tmp_path / "one_thread.toml"
    config.write_text("[keyframes]\ndecoder_threads = 1\n")
    result = run("analyze", video, "--config", config)
    assert result.exit_code == 0, result.output
    lines = [line for line in result.output.splitlines() if "data quality" in line]
    assert len(lines) == 1, result.output
    [line] = lines
    assert line.startswith("  data quality: ") and line.endswith("could not be decoded "
                                                                  "(damaged file)")
    document = json.loads(run("analyze", video, "--json", "--config", config).output)
    assert document["metrics"]["undecodable_frames"] >= 1
    assert document["video_info"]["notes"] == document["metrics"]["data_quality"]


def test_evidence_frames_are_kept_and_shown_only_when_asked(tmp_path, astronaut, make_video):
    import sqlalchemy as sa

    make_video("v/ana_2026-01-05.mp4", face_frames(astronaut, 60))
    make_video("w/bo_2026-01-05.mp4", face_frames(astronaut, 60, seed=3))
    db = f"sqlite:///{tmp_path}/screener.db"
    out = tmp_path / "out"
    assert run("scan", tmp_path / "w", "--out", out, "--db", db, "--quiet").exit_code == 0
    config = tmp_path / "evidence.toml"
    config.write_text("evidence_frames = 5\n")
    result = run("scan", tmp_path / "v", "--out", out, "--db", db, "--quiet",
                 "--config", config, "--evidence", "2")
    assert result.exit_code == 0, result.output
    engine = sa.create_engine(db)
    with engine.connect() as conn:
        stored = conn.execute(sa.text(
            "SELECT st.student_id, COUNT(*) FROM evidence_frames e JOIN sessions s "
            "ON s.id = e.session_pk JOIN students st ON st.id = s.student_pk "
            "GROUP BY st.student_id")).all()
    engine.dispose()
    assert stored == [("ana", 2)]  # the option wins over the file; bo was scanned without
    pages = {p.name.split("-")[0]: p.read_text() for p in out.glob("*.html")}
    assert pages["ana"].count('src="data:image/jpeg;base64,') == 2
    assert "<img" not in pages["bo"] and "<img" not in pages["index.html"]
    assert run("scan", tmp_path / "v", "--db", db, "--evidence", "25").exit_code == 2


def _server_gone(*_args, **_kwargs):
    import sqlalchemy as sa

    raise sa.exc.OperationalError(
        "SELECT students.student_id FROM students", {},
        Exception("server closed the connection unexpectedly\n\tThis probably means the "
                  "server terminated abnormally"))


@pytest.mark.parametrize("where", ["storing", "reports"])
def test_a_database_lost_mid_scan_is_one_line_and_the_summary(tmp_path, db, astronaut,
                                                              make_video, monkeypatch, where):
    """PostgreSQL restarted under a scan: no traceback, but what failed, what was done, exit 1."""
    from screener.reports import report
    from screener.storage.store import Store

    make_video("v/dana_2026-01-05.mp4", face_frames(astronaut, 12))
    make_video("v/eli_2026-01-05.mp4", face_frames(astronaut, 12, seed=3))
    if where == "storing":  # the first video stored, the server gone for the second
        save, saved = Store.save, []

        def save_once(self, result):
            if saved:
                _server_gone()
            saved.append(result)
            return save(self, result)

        monkeypatch.setattr(Store, "save", save_once)
    else:
        monkeypatch.setattr(report, "refresh_reports", _server_gone)
    result = run("scan", tmp_path / "v", "--out", tmp_path / "out", "--db", db, "--quiet",
                 "--workers", "1")
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    [error] = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert error.startswith(f"error: database {db} failed: server closed the connection "
                            "unexpectedly;")
    analysed = 1 if where == "storing" else 2
    assert f"{analysed} analysed, 0 unchanged, 0 failed; reports: " in result.output


def test_a_database_problem_never_shows_its_password():
    from screener.storage.store import Store

    store = Store.__new__(Store)
    store.url = "postgresql+psycopg://screener:s3cret@db.school/screener"
    error = Exception('connection to "db.school" failed: password "s3cret" rejected')
    problem = store.problem(error)
    assert "s3cret" not in problem and "***" in problem
    store.url = "postgresql+psycopg://screener@db.school/screener?password=s3cret"
    problem = store.problem(Exception('password "s3cret" rejected'))
    assert "s3cret" not in problem and "***" in problem


@pytest.mark.parametrize("setting", ["[emotions]\nflip_margin = 1.0\n",
                                     "[faces]\ncrop_scale = 2.0\n"])
def test_settings_from_the_config_file_change_what_the_model_sees(tmp_path, astronaut,
                                                                  make_video, setting):
    """A model that reads only the left half of a face: mirroring changes its answer, and so
    does a wider crop (more background). The same video scanned with and without the setting
    must be stored with other probabilities."""
    from screener.storage.store import Store
    from tests.conftest import brightness_model

    model = brightness_model(tmp_path / "left.onnx", left_half=True)
    video = make_video("v/lee_2026-01-01.mp4", face_frames(astronaut, 20))
    config = tmp_path / "settings.toml"
    config.write_text(setting)

    def probabilities(name: str, *extra: object) -> list:
        db = f"sqlite:///{tmp_path}/{name}.db"
        result = run("scan", video, "--out", tmp_path / name, "--db", db, "--model", model,
                     "--quiet", "--workers", "1", *extra)
        assert result.exit_code == 0, result.output
        store = Store(db, create=False)
        [session] = store.sessions_of("lee")
        seen = [o.probabilities for o in store.observations_of(session.pk) if o.probabilities]
        store.engine.dispose()
        assert seen
        return seen

    default, configured = probabilities("default"), probabilities("set", "--config", config)
    assert len(default) == len(configured)
    assert max(abs(a - b) for p, q in zip(default, configured, strict=True)
               for a, b in zip(p, q, strict=True)) > 0.01


def test_a_database_urls_password_is_never_printed(tmp_path):
    url = "postgresql://u@127.0.0.1:9/db?sslmode=disable&password=S3CRET"
    result = run("history", "sam", "--db", url)
    assert result.exit_code != 0
    assert "S3CRET" not in result.output
    assert "password=***" in result.output


def test_another_programs_sqlite_file_is_refused_untouched(tmp_path):
    import sqlite3

    foreign = tmp_path / "invoices.db"
    conn = sqlite3.connect(foreign)
    conn.execute("CREATE TABLE invoices (id INTEGER, total REAL)")
    conn.execute("INSERT INTO invoices VALUES (1, 9.5)")
    conn.commit()
    conn.close()
    before = foreign.read_bytes()
    (tmp_path / "videos").mkdir()
    result = run("scan", tmp_path / "videos", "--db", foreign, "--out", tmp_path / "reports")
    assert result.exit_code == 2
    assert "is not a screener database" in result.output
    assert foreign.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["invoices.db", "videos"]
    conn = sqlite3.connect(foreign)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
    conn.close()


def test_scan_log_dates_every_run_and_each_failure(tmp_path, db, astronaut, make_video):
    """`--log`: a quiet run that succeeds prints nothing, yet leaves a dated line; failures
    are dated too, so a cron recipe can pick tonight's."""
    import re
    import stat
    from datetime import date

    make_video("v/ivy_2026-01-01.mp4", face_frames(astronaut, 12))
    log = tmp_path / "state" / "screener" / "scan.log"
    quiet = run("scan", tmp_path / "v", "--out", tmp_path / "r", "--db", db, "--quiet",
                "--log", log)
    assert quiet.exit_code == 0 and quiet.output == ""
    assert stat.S_IMODE(log.stat().st_mode) == 0o600
    (tmp_path / "v" / "lee_2026-01-02.mp4").write_bytes(b"not a video")
    failed = run("scan", tmp_path / "v", "--out", tmp_path / "r", "--db", db, "--quiet",
                 "--log", log)
    assert failed.exit_code == 1
    empty = run("scan", tmp_path / "r", "--db", db, "--quiet", "--log", log)
    assert empty.exit_code == 1
    lines = log.read_text().splitlines()
    stamp = rf"{date.today().isoformat()}T\d\d:\d\d:\d\d[+-]\d\d:\d\d"
    assert all(re.match(stamp + " ", line) for line in lines), lines
    texts = [line.split(" ", 1)[1] for line in lines]
    assert texts[0] == "scan finished: 1 analysed, 0 skipped, 0 failed; exit code 0"
    assert texts[1].startswith(f"FAILED {tmp_path / 'v' / 'lee_2026-01-02.mp4'}: ")
    assert texts[2] == "scan ended: 0 analysed, 1 skipped, 1 failed; exit code 1"
    assert texts[3].startswith("error: no video found under")
    assert texts[4] == "scan ended: nothing analysed; exit code 1"
    assert len(texts) == 5


def test_scan_says_what_it_does_while_the_bar_cannot_move(tmp_path, db, monkeypatch):
    """Workers take seconds to start, and pages to be written after the bar is full: a line
    each on stderr, only where the progress bar is shown."""
    import screener.cli.scan as scan_command
    import screener.scanning.scan as scanning

    def analyse_all(jobs, analyzer):
        for job in jobs:
            yield job, None, "not analysed in this test"

    monkeypatch.setattr(scanning, "_analyse_all", analyse_all)
    for name in ("a_2026-01-01.mp4", "b_2026-01-01.mp4", "c_2026-01-01.mp4"):
        (tmp_path / "v").mkdir(exist_ok=True)
        (tmp_path / "v" / name).write_bytes(name.encode())
    args = ("scan", tmp_path / "v", "--out", tmp_path / "r", "--db", db, "--workers", "2")
    monkeypatch.setattr(scan_command, "show_progress", lambda quiet: not quiet)
    shown = run(*args)
    assert shown.exit_code == 1
    assert "starting 2 workers…" in shown.stderr and "writing reports…" in shown.stderr
    assert shown.stderr.index("starting 2 workers…") < shown.stderr.index("writing reports…")
    assert "starting" not in shown.stdout and "writing reports" not in shown.stdout
    quiet = run(*args, "--quiet")
    assert "starting" not in quiet.output and "writing reports" not in quiet.output
