"""Personal baselines on a stored history (SQLite in a temporary folder)."""

from datetime import datetime
from pathlib import Path
from types import SimpleNamespace

import pytest

from screener.domain import Assessment, SessionResult, VideoInfo, VideoJob
from screener.scanning.analysis import Analyzer
from screener.scanning.scan import scan
from screener.session.rules import parse_rules
from screener.settings import Settings
from screener.storage.store import Store
from screener.trends.baseline import (
    baseline_share,
    refresh_baselines,
    save_with_baseline,
    with_baseline,
)

RULES = parse_rules(
    """
name = "personal"
[[rule]]
name = "above-usual"
level = "moderate"
when = { negative_share_vs_baseline = ">= 20" }
[[rule]]
name = "otherwise"
level = "low"
""",
    "personal.toml",
)


def result(day: int, share: float, sha: str | None = None, student: str = "ana",
           level: str | None = None, rules_tag: str | None = None) -> SessionResult:
    """A session whose estimate is `share`, interval +-0.05, assessed by RULES unless told."""
    metrics = {
        "frames_analysed": 60, "faces_found": 60, "face_coverage": 1.0, "face_frames": 60,
        "negative_share": share, "negative_share_est": share,
        "negative_share_low": max(0.0, share - 0.05), "negative_share_high": share + 0.05,
    }
    assessment = RULES.assess(metrics)
    if level is not None or rules_tag is not None:
        assessment = Assessment(level or "low", "other", "", {}, rules_tag or RULES.tag)
    job = VideoJob(Path(f"/videos/{student}_{day}.mp4"), student, f"{student}-{day:02d}",
                   datetime(2026, 3, day), sha or f"{student}{day:02d}".ljust(64, "0"))
    info = VideoInfo(fps=25.0, frame_count=1500, duration_s=60.0, width=640, height=480,
                     scenes=1)
    return SessionResult(job, info, [], metrics, assessment, "m@1")


def save(store: Store, r: SessionResult) -> None:
    """What a scan does with each result."""
    store.save(with_baseline(r, store.sessions_of(r.job.student_id), RULES))
    refresh_baselines(store, r.job.student_id, RULES)


@pytest.fixture
def store(tmp_path) -> Store:
    return Store(f"sqlite:///{tmp_path}/screener.db")


def by_day(store: Store, student: str = "ana") -> dict[int, object]:
    return {s.recorded_at.day: s for s in store.sessions_of(student)}


def test_a_first_session_has_no_baseline_and_the_next_is_compared_with_it(store):
    save(store, result(1, 0.2))
    save(store, result(2, 0.5))
    sessions = by_day(store)
    assert "negative_share_vs_baseline" not in sessions[1].metrics
    assert sessions[2].metrics["negative_share_vs_baseline"] == pytest.approx(30.0)
    assert (sessions[1].level, sessions[2].level) == ("low", "moderate")
    assert sessions[2].fired_rule == "above-usual"
    assert ("the change from the student's usual negative share is +30 percentage points"
            in sessions[2].explanation)


def test_the_baseline_is_the_median_of_up_to_the_last_five_usable_sessions(store):
    for day, share in enumerate([0.9, 0.1, 0.2, 0.3, 0.4, 0.5], start=1):
        save(store, result(day, share))
    save(store, result(7, 0.9, level="insufficient", rules_tag="other@1"))  # skipped
    save(store, result(8, 0.45))
    # Days 2-6 (0.1 .. 0.5): median 0.3; day 1 is the sixth back and day 7 has too few faces.
    assert by_day(store)[8].metrics["negative_share_vs_baseline"] == pytest.approx(15.0)
    assert baseline_share(store.sessions_of("ana")[:1]) == pytest.approx(0.9)
    assert baseline_share([]) is None


def test_reanalysing_an_older_session_updates_the_later_ones(store):
    save(store, result(1, 0.2, sha="a" * 64))
    save(store, result(2, 0.5))
    assert by_day(store)[2].level == "moderate"
    save(store, result(1, 0.45, sha="a" * 64))  # the same video, analysed again
    later = by_day(store)[2]
    assert later.metrics["negative_share_vs_baseline"] == pytest.approx(5.0)
    assert later.level == "low" and later.fired_rule == "otherwise"
    assert len(store.sessions_of("ana")) == 2


def test_an_earlier_recording_stored_late_becomes_the_baseline_of_the_later_ones(store):
    save(store, result(5, 0.6))
    assert "negative_share_vs_baseline" not in by_day(store)[5].metrics
    save(store, result(1, 0.3))
    sessions = by_day(store)
    assert "negative_share_vs_baseline" not in sessions[1].metrics
    assert sessions[5].metrics["negative_share_vs_baseline"] == pytest.approx(30.0)
    assert sessions[5].level == "moderate"


def test_sessions_assessed_with_other_rules_get_the_metric_but_keep_their_level(store):
    save(store, result(1, 0.2))
    save(store, result(2, 0.9, level="high", rules_tag="default@old"))
    session = by_day(store)[2]
    assert session.metrics["negative_share_vs_baseline"] == pytest.approx(70.0)
    assert (session.level, session.rules_version) == ("high", "default@old")


def test_other_students_are_not_a_baseline(store):
    save(store, result(1, 0.9, student="ben"))
    save(store, result(2, 0.2))
    assert "negative_share_vs_baseline" not in by_day(store)[2].metrics


def test_a_scan_stores_each_session_with_its_baseline(tmp_path, store):
    """Through the scan loop, whatever order the analyses come back in."""
    folder = tmp_path / "videos"
    folder.mkdir()
    shares = {"ana_2026-03-01.mp4": 0.1, "ana_2026-03-02.mp4": 0.2, "ana_2026-03-03.mp4": 0.6}
    for name in shares:
        (folder / name).write_bytes(name.encode())

    def analyse(jobs, _analyzer):
        for job in sorted(jobs, key=lambda j: j.path.name, reverse=True):  # latest first
            r = result(job.recorded_at.day, shares[job.path.name], sha=job.sha256)
            yield job, r, ""

    analyzer = Analyzer(Settings(), None, SimpleNamespace(name="m@1"), RULES)  # type: ignore[arg-type]
    summary = scan([folder], analyzer, store, analyse=analyse)
    assert summary.count("analysed") == 3
    sessions = by_day(store)
    assert sessions[2].metrics["negative_share_vs_baseline"] == pytest.approx(10.0)
    assert sessions[3].metrics["negative_share_vs_baseline"] == pytest.approx(45.0)
    assert [sessions[d].level for d in (1, 2, 3)] == ["low", "low", "moderate"]


def test_the_result_a_writer_gets_back_is_the_session_as_stored(store):
    """Scan and live print and report the returned result at once, before reading the
    database back: it must carry the baseline and the level that rests on it."""
    save_with_baseline(store, result(1, 0.2), RULES)
    pk, returned = save_with_baseline(store, result(2, 0.5), RULES)
    stored = by_day(store)[2]
    assert stored.pk == pk
    assert returned.metrics["negative_share_vs_baseline"] == pytest.approx(30.0)
    assert returned.metrics == stored.metrics
    assert (returned.assessment.level, returned.assessment.rule) == (
        "moderate", "above-usual")
    _, first = save_with_baseline(store, result(3, 0.1, student="ben"), RULES)
    assert "negative_share_vs_baseline" not in first.metrics and first.assessment.level == "low"


def test_a_session_is_compared_only_with_other_videos_recorded_before_it(store):
    earlier, same_day = result(1, 0.2), result(2, 0.9, sha="b" * 64)
    store.save(earlier)
    store.save(same_day)
    again = result(2, 0.5, sha="b" * 64)  # the day-2 video re-analysed: not its own baseline
    compared = with_baseline(again, store.sessions_of("ana"), RULES)
    assert compared.metrics["negative_share_vs_baseline"] == pytest.approx(30.0)
    store.save(result(3, 0.9))  # recorded later: not a baseline of day 2
    compared = with_baseline(result(2, 0.5, sha="c" * 64), store.sessions_of("ana"), RULES)
    assert compared.metrics["negative_share_vs_baseline"] == pytest.approx(30.0)
    alone = with_baseline(result(1, 0.4, sha="d" * 64), store.sessions_of("ana"), RULES)
    assert "negative_share_vs_baseline" not in alone.metrics


def test_a_result_assessed_with_other_rules_keeps_its_level_when_compared(store):
    store.save(result(1, 0.2))
    compared = with_baseline(result(2, 0.9, level="high", rules_tag="default@old"),
                             store.sessions_of("ana"), RULES)
    assert compared.metrics["negative_share_vs_baseline"] == pytest.approx(70.0)
    assert (compared.assessment.level, compared.assessment.rules_version) == (
        "high", "default@old")


def test_refreshing_counts_the_sessions_it_changed_and_re_assesses_only_its_own_rules(store):
    store.save(result(1, 0.2))
    store.save(result(2, 0.5))
    store.save(result(3, 0.9, level="low", rules_tag="default@old"))
    assert refresh_baselines(store, "ana", RULES) == 2
    assert refresh_baselines(store, "ana", RULES) == 0
    sessions = by_day(store)
    assert sessions[2].level == "moderate"
    assert (sessions[3].level, sessions[3].rules_version) == ("low", "default@old")


def test_the_difference_from_the_baseline_keeps_two_decimals(store):
    save(store, result(1, 0.2))
    save(store, result(2, 0.45678))
    assert by_day(store)[2].metrics["negative_share_vs_baseline"] == 25.68


def test_new_content_at_a_stored_path_replaces_its_session_and_leaves_no_ghost(tmp_path, store):
    """A file copied again over a half-copied one, or a replaced mp4: the path holds one
    session, and the old content is in neither the history nor the baseline."""
    import os
    from dataclasses import replace

    video = tmp_path / "videos" / "ana" / "lesson.mp4"  # no date in the name: its mtime
    video.parent.mkdir(parents=True)
    shares = {b"half": 0.2, b"whole": 0.6}

    def analyse(jobs, _analyzer):
        for job in jobs:
            share = shares[job.path.read_bytes()]
            yield job, replace(result(job.recorded_at.day, share), job=job), ""

    analyzer = Analyzer(Settings(), None, SimpleNamespace(name="m@1"), RULES)  # type: ignore[arg-type]
    for content, day in ((b"half", 1), (b"whole", 2)):
        video.write_bytes(content)
        stamp = datetime(2026, 3, day, 9).timestamp()
        os.utime(video, (stamp, stamp))
        [outcome] = scan([tmp_path / "videos"], analyzer, store, analyse=analyse).outcomes
    assert (outcome.status, outcome.level) == ("analysed", "low")  # as stored, not vs the ghost
    [session] = store.sessions_of("ana")
    assert session.negative_share == 0.6 and session.recorded_at.day == 2
    assert "negative_share_vs_baseline" not in session.metrics  # no ghost to compare with
    assert session.level == "low"
