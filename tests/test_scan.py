"""The scan orchestrator under faults: a SIGKILL mid-scan loses only the video in progress."""

import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from tests.conftest import face_frames, write_video

VIDEOS = 8


def _stored_sessions(db: Path) -> int:
    if not db.exists():
        return 0
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=0.1) as conn:
            return conn.execute("SELECT count(*) FROM sessions").fetchone()[0]
    except sqlite3.Error:
        return 0


def test_a_killed_scan_leaves_whole_sessions_and_the_next_scan_finishes(tmp_path, astronaut):
    folder = tmp_path / "videos"
    folder.mkdir()
    for i in range(VIDEOS):
        write_video(folder / f"kim_2026-02-{i + 1:02d}.mp4",
                    face_frames(astronaut, 300, seed=i), fps=10)
    db = tmp_path / "screener.db"
    out = tmp_path / "reports"
    command = [sys.executable, "-m", "screener", "scan", str(folder), "--out", str(out),
               "--db", f"sqlite:///{db}", "--quiet"]

    scan = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while _stored_sessions(db) < 1 and scan.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    scan.send_signal(signal.SIGKILL)
    scan.wait()
    assert scan.returncode == -signal.SIGKILL, "the scan finished before it could be killed"

    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        sessions = conn.execute("SELECT id, frames_analysed FROM sessions").fetchall()
        for session_id, frames in sessions:
            rows = conn.execute("SELECT count(*) FROM observations WHERE session_pk = ?",
                                (session_id,)).fetchone()[0]
            assert rows == frames  # a session is stored whole, with all its observations
    assert 1 <= len(sessions) < VIDEOS
    if out.exists():
        assert not list(out.glob(".report-*"))
        for page in out.glob("*.html"):
            assert page.read_text().rstrip().endswith("</html>")

    again = subprocess.run(command[:-1], capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    assert f"{VIDEOS - len(sessions)} analysed, {len(sessions)} unchanged, 0 failed" in again.stdout
    assert _stored_sessions(db) == VIDEOS
    assert (out / "index.html").is_file()
