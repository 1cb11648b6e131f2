import csv
import io
import json
from dataclasses import replace
from datetime import datetime

from screener.reports.history_table import HISTORY_FORMATS, format_history, history_rows
from screener.storage.store import Store, StoredSession
from tests.storage.test_store import make_result

COLUMNS = [
    "recorded_at", "session_id", "level", "negative_share_est", "negative_share_low",
    "negative_share_high", "negative_share", "face_coverage",
    "frames_analysed", "faces_found", "fired_rule", "video_path", "data_quality",
]


def stored(pk: int, session_id: str, recorded_at: datetime, level: str, negative_share: float,
           face_coverage: float, frames: int, faces: int, rule: str) -> StoredSession:
    return StoredSession(
        pk=pk, student_id="alex", session_id=session_id,
        video_path=f"/videos/{session_id}.mp4", video_sha256=f"{pk:064x}",
        recorded_at=recorded_at, duration_s=60.0, frames_analysed=frames, faces_found=faces,
        face_coverage=face_coverage, negative_share=negative_share, level=level,
        fired_rule=rule, explanation="because", evidence={}, metrics={},
        model_version="m@1", rules_version="default@1", processed_at=datetime(2026, 4, 1),
    )


# Deliberately not in date order: the output keeps the order it is given.
SESSIONS = [
    stored(2, "alex_2026-03-09", datetime(2026, 3, 9, 14, 30), "high", 0.61234567, 0.5, 20, 10,
           "sustained-negative"),
    stored(1, "alex_2026-03-02", datetime(2026, 3, 2), "low", 0.25, 0.9, 40, 36, "otherwise"),
]


def test_formats():
    assert set(HISTORY_FORMATS) == {"table", "json", "csv"}


def test_json_keeps_order_and_values():
    data = json.loads(format_history(SESSIONS, "json"))
    assert data["student"] == "alex"
    assert [s["session_id"] for s in data["sessions"]] == ["alex_2026-03-09", "alex_2026-03-02"]
    first, second = data["sessions"]
    assert first == {
        "recorded_at": "2026-03-09 14:30:00",
        "session_id": "alex_2026-03-09",
        "level": "high",
        "negative_share_est": None,
        "negative_share_low": None,
        "negative_share_high": None,
        "negative_share": 0.6123,
        "face_coverage": 0.5,
        "frames_analysed": 20,
        "faces_found": 10,
        "fired_rule": "sustained-negative",
        "video_path": "/videos/alex_2026-03-09.mp4",
        "data_quality": [],
    }
    assert second["recorded_at"] == "2026-03-02"  # midnight: the date alone
    assert second["level"] == "low"
    assert second["negative_share"] == 0.25
    assert second["faces_found"] == 36


def test_json_of_no_sessions():
    assert json.loads(format_history([], "json")) == {"student": None, "sessions": []}


def test_csv_has_the_header_and_one_row_per_session():
    text = format_history(SESSIONS, "csv")
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[0] == COLUMNS
    assert len(rows) == 1 + len(SESSIONS)
    records = list(csv.DictReader(io.StringIO(text)))
    assert [r["level"] for r in records] == ["high", "low"]
    assert records[0]["negative_share"] == "0.6123"
    assert records[1]["frames_analysed"] == "40"
    assert records[1]["recorded_at"] == "2026-03-02"


def test_csv_quotes_awkward_values():
    awkward = stored(3, 'odd, "quoted" id', datetime(2026, 1, 1), "moderate", 0.4, 1.0, 5, 5,
                     "mostly-negative")
    records = list(csv.DictReader(io.StringIO(format_history([awkward], "csv"))))
    assert len(records) == 1
    assert records[0]["session_id"] == 'odd, "quoted" id'


def test_table_shows_levels_and_percentages_in_aligned_columns():
    text = format_history(SESSIONS, "table")
    lines = text.rstrip("\n").split("\n")
    assert len(lines) == 2 + len(SESSIONS)  # header, rule, one line per session
    header = lines[0]
    assert header.split() == ["date", "session", "level", "negative", "share", "raw", "face",
                              "seen", "frames", "rule"]
    assert set(lines[1].replace(" ", "")) == {"-"}
    first, second = lines[2], lines[3]
    for token in ("2026-03-09 14:30:00", "high", "61%", "50%", "20", "sustained-negative"):
        assert token in first
    for token in ("2026-03-02", "low", "25%", "90%", "40", "otherwise"):
        assert token in second
    level_column = header.index("level")
    assert first[level_column:].startswith("high")
    assert second[level_column:].startswith("low")
    # The share of key frames with a face, as JSON's face_coverage; not faces_found, a count.
    seen_column = header.index("face seen")
    assert first[seen_column:].startswith("50% ") and second[seen_column:].startswith("90% ")
    coverage = [r["face_coverage"] for r in json.loads(format_history(SESSIONS, "json"))
                ["sessions"]]
    assert coverage == [0.5, 0.9]
    assert not any(line.endswith(" ") for line in lines)


ESTIMATED = replace(SESSIONS[0], metrics={
    "negative_share_est": 0.71234, "negative_share_low": 0.55, "negative_share_high": 0.8,
})


def test_the_corrected_estimate_and_its_interval_lead_in_every_format():
    table = format_history([ESTIMATED, SESSIONS[1]], "table").splitlines()
    estimate_column = table[0].index("negative share")
    raw_column = table[0].index("raw")
    assert table[2][estimate_column:].startswith("71% (likely 55% to 80%)")
    assert table[2][raw_column:].startswith("61%")
    assert table[3][estimate_column:].startswith("-")  # stored before estimates existed
    [row] = json.loads(format_history([ESTIMATED], "json"))["sessions"]
    assert (row["negative_share_est"], row["negative_share_low"], row["negative_share_high"],
            row["negative_share"]) == (0.7123, 0.55, 0.8, 0.6123)
    [record] = csv.DictReader(io.StringIO(format_history([ESTIMATED], "csv")))
    assert (record["negative_share_est"], record["negative_share_low"]) == ("0.7123", "0.55")


def test_history_rows_round_shares_to_four_places():
    rows = history_rows(SESSIONS)
    assert rows[0]["negative_share"] == 0.6123
    assert rows[1]["face_coverage"] == 0.9


def test_table_of_no_sessions_is_just_the_header():
    lines = format_history([], "table").rstrip("\n").split("\n")
    assert lines[0].split()[0] == "date"
    assert len(lines) == 2


def test_history_read_back_from_either_backend_is_the_same(db_url):
    store = Store(db_url)
    later = make_result("alex", 9, "b" * 64, ["sad", "sad", "happy"], level="high")
    later.job = replace(later.job, recorded_at=datetime(2026, 3, 9, 14, 30))
    store.save(later)
    store.save(make_result("alex", 2, "a" * 64, ["happy", None]))
    data = json.loads(format_history(store.sessions_of("alex"), "json"))
    assert data["student"] == "alex"
    assert [(s["recorded_at"], s["session_id"], s["level"]) for s in data["sessions"]] == [
        ("2026-03-02", "alex-2", "low"), ("2026-03-09 14:30:00", "alex-9", "high")]
    assert [(s["negative_share"], s["face_coverage"], s["frames_analysed"], s["faces_found"])
            for s in data["sessions"]] == [(0.0, 0.5, 2, 1), (0.6667, 1.0, 3, 3)]
    assert data["sessions"][1]["video_path"] == "/videos/alex_9.mp4"
    rows = list(csv.DictReader(io.StringIO(format_history(store.sessions_of("alex"), "csv"))))
    assert [r["recorded_at"] for r in rows] == ["2026-03-02", "2026-03-09 14:30:00"]


def test_data_quality_is_shown_in_every_format():
    notes = ["12 frames could not be decoded (damaged file)", "video stream 2 of 2 used"]
    damaged = replace(SESSIONS[0], metrics={"data_quality": notes})
    table = format_history([damaged, SESSIONS[1]], "table")
    assert "data quality" in table.splitlines()[0]
    assert "12 frames could not be decoded (damaged file); video stream 2 of 2 used" in table
    assert json.loads(format_history([damaged], "json"))["sessions"][0]["data_quality"] == notes
    [record] = csv.DictReader(io.StringIO(format_history([damaged], "csv")))
    assert record["data_quality"] == "; ".join(notes)


def test_history_reads_a_database_this_user_cannot_write(tmp_path):
    """A counsellor given read access to a shared database (or a read-only mount) can read
    it: reading commands open SQLite read-only, creating and migrating nothing."""
    from tests.storage.test_locking import run_unprivileged

    folder = tmp_path / "shared"
    folder.mkdir()
    db = folder / "screener.db"
    store = Store(f"sqlite:///{db}")
    store.save(make_result("alex", 2, "a" * 64, ["happy", "sad"]))
    store.engine.dispose()
    before = sorted(p.name for p in folder.iterdir())
    db.chmod(0o444)
    folder.chmod(0o555)
    try:
        result = run_unprivileged("history", "alex", "--db", str(db), "--format", "json")
        report = run_unprivileged("report", "--db", str(db), "--out", str(tmp_path / "out"))
    finally:
        folder.chmod(0o755)
    assert result.returncode == 0, result.stderr
    assert [s["session_id"] for s in json.loads(result.stdout)["sessions"]] == ["alex-2"]
    assert report.returncode == 0, report.stderr
    assert sorted(p.name for p in folder.iterdir()) == before
