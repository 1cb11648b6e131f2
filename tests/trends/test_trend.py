"""A student's trend on a stored history (SQLite in a temporary folder)."""

import pytest

from screener.storage.store import Store
from screener.trends.trend import DIRECTIONS, student_trend
from tests.trends.test_baseline import result, save


@pytest.fixture
def store(tmp_path) -> Store:
    return Store(f"sqlite:///{tmp_path}/screener.db")


def history(store: Store, shares: list[float], insufficient: tuple[int, ...] = ()):
    """Sessions on days 1, 2, ... with these estimates (intervals +-0.05)."""
    for day, share in enumerate(shares, start=1):
        if day in insufficient:
            save(store, result(day, share, level="insufficient", rules_tag="other@1"))
        else:
            save(store, result(day, share))
    return store.sessions_of("ana")


def days(sessions) -> list[int]:
    return [s.recorded_at.day for s in sessions]


def test_fewer_than_three_usable_sessions_is_not_enough(store):
    trend = student_trend(history(store, [0.2, 0.8, 0.9], insufficient=(3,)))
    assert trend.direction == "not enough sessions"
    assert "2" in trend.explanation
    assert days(trend.sessions) == [1, 2]


def test_recent_sessions_above_the_usual_band_are_rising(store):
    trend = student_trend(history(store, [0.2, 0.25, 0.2, 0.22, 0.5, 0.55]))
    assert trend.direction == "rising"
    assert days(trend.recent) == [5, 6] and days(trend.baseline) == [1, 2, 3, 4]
    assert days(trend.sessions) == [1, 2, 3, 4, 5, 6]
    assert trend.baseline_share == pytest.approx(0.21)
    assert trend.explanation.startswith("Negative affect is rising")
    assert "21%" in trend.explanation


def test_one_high_session_alone_is_not_a_trend(store):
    trend = student_trend(history(store, [0.2, 0.25, 0.2, 0.22, 0.6, 0.25]))
    assert trend.direction == "steady"
    assert trend.explanation.startswith("No clear change")


def test_overlapping_intervals_are_steady_however_the_estimates_move(store):
    # 0.29's interval (0.24-0.34) overlaps the usual band (median interval 0.15-0.25).
    trend = student_trend(history(store, [0.2, 0.2, 0.2, 0.28, 0.29]))
    assert trend.direction == "steady"


def test_recent_sessions_below_the_usual_band_are_falling(store):
    trend = student_trend(history(store, [0.7, 0.6, 0.65, 0.7, 0.3, 0.2]))
    assert trend.direction == "falling"
    assert trend.explanation.startswith("Negative affect is falling")


def test_with_three_sessions_the_latest_is_compared_with_the_two_before(store):
    trend = student_trend(history(store, [0.1, 0.15, 0.6]))
    assert trend.direction == "rising"
    assert days(trend.recent) == [3] and days(trend.baseline) == [1, 2]
    assert "the latest session lies above" in trend.explanation


def test_the_baseline_is_at_most_five_sessions_and_skips_those_with_too_few_faces(store):
    shares = [0.9, 0.9, 0.2, 0.2, 0.9, 0.2, 0.2, 0.2, 0.5, 0.5]
    trend = student_trend(history(store, shares, insufficient=(5,)))
    assert days(trend.baseline) == [3, 4, 6, 7, 8]
    assert trend.direction == "rising"
    assert trend.direction in DIRECTIONS


def test_sessions_stored_before_estimates_existed_are_left_out(store):
    sessions = history(store, [0.2, 0.2, 0.2, 0.6])
    store.update_metrics(sessions[0].pk, {"negative_share": 0.2})
    trend = student_trend(store.sessions_of("ana"))
    assert days(trend.baseline) == [2, 3] and days(trend.recent) == [4]


def test_steady_says_which_sessions_overlap_the_usual_band_in_words(store):
    one = student_trend(history(store, [0.2, 0.3, 0.25]))
    assert one.explanation == (
        "No clear change: the latest session overlaps the student's usual 25% (median of 2 "
        "earlier sessions; usual range likely 20% to 30%).")


def test_steady_with_two_recent_sessions_uses_the_plural(store):
    two = student_trend(history(store, [0.2, 0.3, 0.25, 0.3, 0.2]))
    assert days(two.recent) == [4, 5] and days(two.baseline) == [1, 2, 3]
    assert two.explanation == (
        "No clear change: the latest 2 sessions overlap the student's usual 25% (median of 3 "
        "earlier sessions; usual range likely 20% to 30%).")


def test_with_four_sessions_the_latest_two_are_compared_with_the_two_before(store):
    trend = student_trend(history(store, [0.1, 0.15, 0.6, 0.65]))
    assert days(trend.recent) == [3, 4] and days(trend.baseline) == [1, 2]
    assert trend.direction == "rising"
    assert "the latest 2 sessions lie above" in trend.explanation


def test_falling_needs_the_recent_intervals_wholly_below_the_usual_intervals(store):
    # Usual intervals 0.45-0.55; the latest reach 0.50 and 0.49: inside the band, not below it.
    steady = student_trend(history(store, [0.5, 0.5, 0.5, 0.45, 0.44]))
    assert steady.direction == "steady"


def test_rising_needs_the_recent_intervals_wholly_above_the_usual_intervals(store):
    # The latest intervals start at 0.50 and 0.51, inside the usual 0.45-0.55.
    steady = student_trend(history(store, [0.5, 0.5, 0.5, 0.55, 0.56]))
    assert steady.direction == "steady"
