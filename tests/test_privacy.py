"""Credentials inside URLs never reach a terminal, a log, the database or a page; files about a
student are readable by their owner only."""

from __future__ import annotations

import os
import stat

import pytest

from screener.privacy import create_private, mask_urls, write_private


@pytest.mark.parametrize("url, shown", [
    ("rtsp://admin:pw@cam.local:554/live", "rtsp://admin:***@cam.local:554/live"),
    ("rtsp://admin:p@ss@cam/live", "rtsp://admin:***@cam/live"),
    ("http://cam/x.ts?user=admin&pwd=S", "http://cam/x.ts?user=admin&pwd=***"),
    ("postgresql://u@h/db?password=S", "postgresql://u@h/db?password=***"),
    ("postgresql+psycopg://u:S@h/db?sslmode=require&PassWord=S",
     "postgresql+psycopg://u:***@h/db?sslmode=require&PassWord=***"),
    ("https://h/a?api_key=S&access_token=S&X-Amz-Signature=S&sig=S&Secret=S&auth=S&pass=S"
     "&passwd=S&key=S&token=S&page=2",
     "https://h/a?api_key=***&access_token=***&X-Amz-Signature=***&sig=***&Secret=***&auth=***"
     "&pass=***&passwd=***&key=***&token=***&page=2"),
    ("https://h/cb#id_token=S&state=1", "https://h/cb#id_token=***&state=1"),
    ("http://cam.local/feed.mjpg", "http://cam.local/feed.mjpg"),
    ("/videos/sam/pwd=S.mp4", "/videos/sam/pwd=S.mp4"),
])
def test_a_url_shows_no_credential(url, shown):
    assert mask_urls(url) == shown


def test_a_message_quoting_a_url_shows_no_credential():
    message = "cannot open database postgresql://u@h/db?password=S: connection refused."
    assert mask_urls(message) == (
        "cannot open database postgresql://u@h/db?password=***: connection refused.")


def test_files_about_a_student_are_readable_by_their_owner_only(tmp_path):
    old = os.umask(0o022)
    try:
        replaced = tmp_path / "frames.csv"
        replaced.write_text("old")
        os.chmod(replaced, 0o644)
        write_private(replaced, b"new")
        recording = tmp_path / "live.mp4"
        create_private(recording)
    finally:
        os.umask(old)
    assert replaced.read_bytes() == b"new"
    for path in (replaced, recording):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["frames.csv", "live.mp4"]
