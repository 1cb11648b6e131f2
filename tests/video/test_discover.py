import hashlib
import os
import re
from datetime import date, datetime
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from screener.video.discover import (
    DiscoveryError,
    PathPattern,
    discover,
    file_sha256,
    job_for,
    unreadable_reason,
    with_hash,
)


def touch(path: Path, content: bytes = b"not really a video") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    return path


def set_mtime(path: Path, when: datetime) -> None:
    stamp = when.timestamp()
    os.utime(path, (stamp, stamp))


def only(jobs):
    assert len(jobs) == 1, jobs
    return jobs[0]


def test_student_and_date_from_the_file_name(tmp_path):
    video = touch(tmp_path / "alex_2026-03-02.mp4")
    set_mtime(video, datetime(2020, 1, 1, 12, 0, 0))  # the name's date must win over mtime
    job = only(discover([tmp_path]))
    assert job.student_id == "alex"
    assert job.session_id == "alex_2026-03-02"
    assert job.recorded_at == datetime(2026, 3, 2)
    assert job.path == video
    assert job.sha256 == ""


def test_text_after_the_date_separated_by_a_dash_keeps_the_student(tmp_path):
    touch(tmp_path / "alex_2026-03-02-second.mp4")
    job = only(discover([tmp_path]))
    assert job.student_id == "alex"
    assert job.session_id == "alex_2026-03-02-second"
    assert job.recorded_at == datetime(2026, 3, 2)


def test_underscore_suffix_after_the_date_keeps_the_student(tmp_path):
    touch(tmp_path / "alex_2026-03-02_morning.mp4")
    job = only(discover([tmp_path]))
    assert job.student_id == "alex"


def test_folder_above_the_file_is_the_student_and_mtime_the_date(tmp_path):
    video = touch(tmp_path / "maria" / "lesson one.mp4")
    set_mtime(video, datetime(2025, 1, 2, 3, 4, 5))
    job = only(discover([tmp_path]))
    assert job.student_id == "maria"
    assert job.session_id == "lesson one"
    assert job.recorded_at == datetime(2025, 1, 2, 3, 4, 5)


def test_name_convention_wins_over_the_folder(tmp_path):
    touch(tmp_path / "maria" / "alex_2026-03-02.mp4")
    job = only(discover([tmp_path]))
    assert job.student_id == "alex"


def test_date_anywhere_in_the_name_is_used_with_the_folder_student(tmp_path):
    video = touch(tmp_path / "maria" / "recorded 2026-04-05 am.mp4")
    set_mtime(video, datetime(2020, 6, 7))
    job = only(discover([tmp_path]))
    assert job.student_id == "maria"
    assert job.recorded_at == datetime(2026, 4, 5)


def test_plain_file_at_the_root_falls_back_to_its_stem(tmp_path):
    video = touch(tmp_path / "lecture.mp4")
    set_mtime(video, datetime(2024, 11, 30, 8, 15, 0))
    job = only(discover([tmp_path]))
    assert job.student_id == "lecture"
    assert job.session_id == "lecture"
    assert job.recorded_at == datetime(2024, 11, 30, 8, 15, 0)


def test_an_impossible_date_in_the_name_falls_back_to_mtime(tmp_path):
    video = touch(tmp_path / "alex_2026-13-45.mp4")
    set_mtime(video, datetime(2023, 5, 6, 7, 8, 9))
    job = only(discover([tmp_path]))
    assert job.student_id == "alex"
    assert job.recorded_at == datetime(2023, 5, 6, 7, 8, 9)


def test_pattern_with_named_groups_beats_the_folder_convention(tmp_path):
    video = touch(tmp_path / "cohortA" / "jo--s3--2026-05-06.mp4")
    set_mtime(video, datetime(2020, 1, 1))
    pattern = PathPattern.compile(
        r"^[^/]+/(?P<student>\w+)--(?P<session>s\d+)--(?P<date>\d{4}-\d{2}-\d{2})"
    )
    job = only(discover([tmp_path], pattern))
    assert (job.student_id, job.session_id) == ("jo", "s3")
    assert job.recorded_at == datetime(2026, 5, 6)
    # Without the pattern the folder names the student.
    assert only(discover([tmp_path])).student_id == "cohortA"


def test_pattern_without_session_or_date_uses_stem_and_mtime(tmp_path):
    video = touch(tmp_path / "id-007.mov")
    set_mtime(video, datetime(2022, 2, 3, 4, 5, 6))
    job = only(discover([tmp_path], PathPattern.compile(r"id-(?P<student>\d+)")))
    assert job.student_id == "007"
    assert job.session_id == "id-007"
    assert job.recorded_at == datetime(2022, 2, 3, 4, 5, 6)


def test_pattern_that_does_not_match_falls_back_to_the_conventions(tmp_path):
    touch(tmp_path / "alex_2026-03-02.mp4")
    job = only(discover([tmp_path], PathPattern.compile(r"^nomatch-(?P<student>\w+)")))
    assert job.student_id == "alex"
    assert job.recorded_at == datetime(2026, 3, 2)


def test_pattern_is_matched_against_the_name_of_a_file_given_directly(tmp_path):
    video = touch(tmp_path / "deep" / "er" / "kim.s1.mp4")
    job = only(discover([video], PathPattern.compile(r"^(?P<student>\w+)\.(?P<session>\w+)\.")))
    assert (job.student_id, job.session_id) == ("kim", "s1")


@pytest.mark.parametrize("text", [r"(?P<student>", r"[a-", r"(?P<student>a)(?P<student>b)"])
def test_invalid_regex_is_a_discovery_error(text):
    with pytest.raises(DiscoveryError, match="not a valid regular expression"):
        PathPattern.compile(text)


def test_regex_without_a_student_group_is_a_discovery_error():
    with pytest.raises(DiscoveryError, match="student"):
        PathPattern.compile(r"(?P<name>\w+)_(?P<date>\d{4}-\d{2}-\d{2})")


def test_non_video_files_are_ignored(tmp_path):
    touch(tmp_path / "alex_2026-03-02.mp4")
    for name in ("notes.txt", "thumb.jpg", "alex_2026-03-02.mp4.bak", "mp4", "README"):
        touch(tmp_path / name)
    jobs = discover([tmp_path])
    assert [j.path.name for j in jobs] == ["alex_2026-03-02.mp4"]


def test_extensions_are_case_insensitive(tmp_path):
    names = ["a.MP4", "b.Mov", "c.mkv", "d.WEBM", "e.AvI", "f.m4v"]
    for name in names:
        touch(tmp_path / name)
    assert sorted(j.path.name for j in discover([tmp_path])) == sorted(names)


def test_folders_are_searched_recursively(tmp_path):
    touch(tmp_path / "a" / "b" / "c" / "deep_2026-01-01.mp4")
    touch(tmp_path / "x" / "y" / "clip.mp4")
    jobs = {j.path.name: j for j in discover([tmp_path])}
    assert set(jobs) == {"deep_2026-01-01.mp4", "clip.mp4"}
    assert jobs["deep_2026-01-01.mp4"].student_id == "deep"
    assert jobs["clip.mp4"].student_id == "y"  # the folder right above the file


def test_output_is_sorted_by_student_then_date(tmp_path):
    # Walk order (folder a before z) differs from the wanted order.
    touch(tmp_path / "a" / "alex_2026-03-09.mp4")
    touch(tmp_path / "a" / "bob_2026-01-05.mp4")
    touch(tmp_path / "z" / "alex_2026-03-02.mp4")
    touch(tmp_path / "m" / "aaron_2027-01-01.mp4")
    jobs = discover([tmp_path])
    assert [(j.student_id, j.recorded_at.date().isoformat()) for j in jobs] == [
        ("aaron", "2027-01-01"),
        ("alex", "2026-03-02"),
        ("alex", "2026-03-09"),
        ("bob", "2026-01-05"),
    ]


def test_missing_path_is_a_discovery_error(tmp_path):
    missing = tmp_path / "nowhere"
    with pytest.raises(DiscoveryError, match="nowhere"):
        discover([missing])


def test_the_same_file_given_twice_appears_once(tmp_path):
    video = touch(tmp_path / "sub" / "alex_2026-03-02.mp4")
    roundabout = tmp_path / "sub" / ".." / "sub" / "alex_2026-03-02.mp4"
    assert len(discover([video, video])) == 1
    assert len(discover([tmp_path, video, roundabout])) == 1


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="named pipes")
def test_a_pipe_given_directly_is_a_job_so_the_scan_can_report_it(tmp_path):
    pipe = tmp_path / "kim.mp4"
    os.mkfifo(pipe)
    [job] = discover([pipe])
    assert job.path == pipe and unreadable_reason(pipe) is not None


def test_empty_folder_gives_no_jobs(tmp_path):
    (tmp_path / "empty").mkdir()
    assert discover([tmp_path / "empty"]) == []


def test_file_sha256_matches_hashlib(tmp_path):
    content = bytes(range(256)) * 5 + b"tail"
    path = touch(tmp_path / "v.mp4", content)
    expected = hashlib.sha256(content).hexdigest()
    assert file_sha256(path) == expected
    assert file_sha256(path, chunk=7) == expected  # many chunks, last one partial
    empty = touch(tmp_path / "e.mp4", b"")
    assert file_sha256(empty) == hashlib.sha256(b"").hexdigest()


def test_with_hash_fills_in_the_digest_and_keeps_the_rest(tmp_path):
    path = touch(tmp_path / "alex_2026-03-02.mp4", b"abc")
    job = only(discover([tmp_path]))
    hashed = with_hash(job)
    assert hashed.sha256 == hashlib.sha256(b"abc").hexdigest()
    assert (hashed.path, hashed.student_id, hashed.recorded_at) == (
        path, "alex", datetime(2026, 3, 2)
    )


# Property-based: any reasonable student name and date survive the round trip through a path.
_names = st.text(
    alphabet=st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="/\\\0"),
    min_size=1, max_size=30,
).filter(lambda s: s.strip(". ") == s and re.search(r"\d{4}-\d{2}-\d{2}", s) is None)


@given(student=_names, date=st.dates(min_value=date(1990, 1, 1), max_value=date(2090, 12, 31)),
       tail=st.sampled_from(["", "_morning", "-2", " take 2"]))
def test_named_date_files_give_student_and_date(student, date, tail):
    video = Path("/videos") / f"{student}_{date.isoformat()}{tail}.mp4"
    job = job_for(video, Path("/videos"))
    assert job.student_id == student
    assert job.recorded_at.date() == date


@given(student=_names, stem=_names, day=st.dates(min_value=date(2000, 1, 1)))
def test_a_folder_names_the_student_when_the_file_is_not_student_date(student, stem, day):
    video = Path("/videos") / student / f"{stem} {day.isoformat()}.mov"
    job = job_for(video, Path("/videos"))
    assert job.student_id == student
    assert job.recorded_at.date() == day
