import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from screener.domain import EMOTIONS, Box, Observation
from screener.session.aggregate import (
    BASELINE_METRICS,
    metric_names,
    session_metrics,
    smooth_labels,
    with_smoothing,
)
from screener.session.error_profile import ErrorProfile
from screener.session.rules import load_rules

NEGATIVE = ("angry", "sad", "fear")


def probs_for(label: str) -> tuple[float, ...]:
    """0.7 on the label's class and 0.05 on each of the other six: sums to 1."""
    return tuple(0.7 if e == label else 0.05 for e in EMOTIONS)


def observations(labels, step_s: float = 1.0, smoothed=None) -> list[Observation]:
    """One observation per frame; None is a frame without a face."""
    result = []
    for i, label in enumerate(labels):
        if label is None:
            result.append(Observation(i * step_s, i, None, None, None))
        else:
            result.append(
                Observation(
                    i * step_s, i, Box(10, 10, 40, 40), probs_for(label), label,
                    smoothed[i] if smoothed else None,
                )
            )
    return result


# --- smooth_labels ---------------------------------------------------------------------------


def test_smoothing_is_the_mode_of_the_last_window_labels():
    # i=2: [a a b] -> a; i=3: [a b b] -> b; i=4: [b b c] -> b
    assert smooth_labels(["a", "a", "b", "b", "c"], 3) == ["a", "a", "a", "b", "b"]


def test_smoothing_ties_go_to_the_most_recent_label():
    # i=1: [a b] tie -> b; i=2: [b a] tie -> a
    assert smooth_labels(["a", "b", "a"], 2) == ["a", "b", "a"]
    # i=3: [a b b a] tie between a and b, a is the more recent; i=4: [b b a c] -> b
    assert smooth_labels(["a", "b", "b", "a", "c"], 4) == ["a", "b", "b", "a", "b"]


def test_smoothing_damps_a_single_frame_flicker():
    labels = ["happy"] * 4 + ["angry"] + ["happy"] * 3
    assert smooth_labels(labels, 5) == ["happy"] * 8


def test_window_of_one_is_the_identity_and_empty_stays_empty():
    labels = ["sad", "happy", "sad", "fear"]
    assert smooth_labels(labels, 1) == labels
    assert smooth_labels([], 10) == []


def test_window_longer_than_the_sequence_uses_everything_so_far():
    # i=2: [x y y] -> y; i=3: [x y y x] tie -> x (most recent)
    assert smooth_labels(["x", "y", "y", "x"], 100) == ["x", "y", "y", "x"]


# --- with_smoothing --------------------------------------------------------------------------


def test_with_smoothing_skips_no_face_observations_and_leaves_them_untouched():
    obs = observations(["sad", None, "happy", None, "happy", "sad"])
    smoothed = with_smoothing(obs, 3)
    # Faces only: [sad, happy, happy, sad]; window 3:
    # [sad] sad; [sad happy] tie -> happy; [sad happy happy] happy; [happy happy sad] happy
    assert [o.smoothed_label for o in smoothed] == ["sad", None, "happy", None, "happy", "happy"]
    assert smoothed[1] is obs[1]
    assert smoothed[3] is obs[3]
    assert [o.label for o in smoothed] == [o.label for o in obs]
    assert [o.t_s for o in smoothed] == [o.t_s for o in obs]


# --- session_metrics -------------------------------------------------------------------------


def test_metrics_of_a_small_hand_worked_session():
    obs = observations(["happy", "sad", "sad", None, "neutral", "angry"], step_s=0.5)
    m = session_metrics(obs, NEGATIVE, min_run=2, step_s=0.5, duration_s=3.0, scenes=2)
    assert m["frames_analysed"] == 6
    assert m["face_frames"] == 5
    assert m["faces_found"] == 5
    assert m["face_coverage"] == pytest.approx(5 / 6)
    assert m["duration_s"] == 3.0
    assert m["scenes"] == 2
    expected_shares = {"happy": 0.2, "sad": 0.4, "neutral": 0.2, "angry": 0.2}
    for emotion in EMOTIONS:
        assert m[f"share_{emotion}"] == pytest.approx(expected_shares.get(emotion, 0.0))
    assert sum(m[f"share_{e}"] for e in EMOTIONS) == pytest.approx(1.0)
    assert m["negative_share"] == pytest.approx(0.6)  # sad, sad, angry of 5
    assert m["positive_share"] == pytest.approx(0.2)
    assert m["valence"] == pytest.approx(0.2 - 0.6)
    # mean probability of sad: (0.7 * 2 + 0.05 * 3) / 5 = 0.31
    assert m["mean_p_sad"] == pytest.approx(0.31)
    assert m["mean_p_angry"] == pytest.approx((0.7 + 0.05 * 4) / 5)
    assert m["mean_p_fear"] == pytest.approx(0.05)
    assert m["negative_probability"] == pytest.approx(0.18 + 0.31 + 0.05)
    assert m["dominant_emotion"] == "sad"
    # Runs over faces: happy | sad sad | neutral | angry -> one sad episode at min_run 2,
    # longest negative stretch 2 faces * 0.5 s.
    assert m["episodes_sad"] == 1
    assert m["episodes_angry"] == 0
    assert m["negative_episodes"] == 1
    assert m["longest_negative_run_s"] == pytest.approx(1.0)


def test_an_episode_needs_min_run_consecutive_faces():
    four = observations(["neutral"] + ["sad"] * 4 + ["neutral"])
    five = observations(["neutral"] + ["sad"] * 5 + ["neutral"])
    m4 = session_metrics(four, NEGATIVE, min_run=5, step_s=1.0)
    m5 = session_metrics(five, NEGATIVE, min_run=5, step_s=1.0)
    assert (m4["episodes_sad"], m4["negative_episodes"]) == (0, 0)
    assert (m5["episodes_sad"], m5["negative_episodes"]) == (1, 1)
    assert m4["longest_negative_run_s"] == 4.0
    assert m5["longest_negative_run_s"] == 5.0


def test_a_long_run_is_one_episode_and_separate_runs_count_separately():
    one_long = session_metrics(observations(["fear"] * 12), NEGATIVE, min_run=5, step_s=2.0)
    assert one_long["episodes_fear"] == 1
    assert one_long["longest_negative_run_s"] == 24.0
    two = observations(["sad"] * 5 + ["happy"] + ["sad"] * 6)
    m = session_metrics(two, NEGATIVE, min_run=5, step_s=1.0)
    assert m["episodes_sad"] == 2
    assert m["negative_episodes"] == 2
    assert m["longest_negative_run_s"] == 6.0


def test_mixed_negative_emotions_form_one_run_but_separate_episodes():
    obs = observations(["sad", "sad", "angry", "angry", "fear", "happy"])
    m = session_metrics(obs, NEGATIVE, min_run=2, step_s=0.25)
    assert (m["episodes_sad"], m["episodes_angry"], m["episodes_fear"]) == (1, 1, 0)
    assert m["negative_episodes"] == 2
    assert m["longest_negative_run_s"] == pytest.approx(5 * 0.25)


def test_runs_use_smoothed_labels_while_shares_use_raw_labels():
    labels = ["sad"] * 6
    obs = observations(labels, smoothed=["neutral"] * 6)
    m = session_metrics(obs, NEGATIVE, min_run=5, step_s=1.0)
    assert m["share_sad"] == 1.0
    assert m["negative_share"] == 1.0
    assert m["negative_episodes"] == 0
    assert m["longest_negative_run_s"] == 0.0


def test_no_face_frames_between_faces_do_not_break_a_run():
    obs = observations(["sad", None, "sad", None, "sad"])
    m = session_metrics(obs, NEGATIVE, min_run=3, step_s=1.0)
    assert m["episodes_sad"] == 1
    assert m["face_coverage"] == pytest.approx(3 / 5)


def test_several_faces_in_one_frame_count_once_for_coverage():
    box = Box(0, 0, 20, 20)
    obs = [
        Observation(0.0, 0, box, probs_for("happy"), "happy"),
        Observation(0.0, 0, box, probs_for("sad"), "sad"),
        Observation(1.0, 1, None, None, None),
    ]
    m = session_metrics(obs, NEGATIVE, min_run=5, step_s=1.0)
    assert m["frames_analysed"] == 2
    assert m["face_frames"] == 1
    assert m["faces_found"] == 2
    assert m["face_coverage"] == 0.5
    assert m["share_happy"] == 0.5


def test_custom_negative_set():
    obs = observations(["disgust", "sad", "happy", "disgust"])
    m = session_metrics(obs, ("disgust",), min_run=2, step_s=1.0)
    assert m["negative_share"] == 0.5
    assert m["negative_probability"] == pytest.approx((0.7 * 2 + 0.05 * 2) / 4)
    assert m["episodes_sad"] == 0  # sad is not negative here
    assert m["longest_negative_run_s"] == 1.0  # disgust runs are 1 face each


@pytest.mark.parametrize("labels", [[None, None, None], []])
def test_no_faces_gives_zeros(labels):
    m = session_metrics(observations(labels), NEGATIVE, min_run=5, step_s=1.0)
    assert m["frames_analysed"] == len(labels)
    assert m["face_frames"] == 0
    assert m["faces_found"] == 0
    assert m["face_coverage"] == 0.0
    assert m["dominant_emotion"] is None
    for emotion in EMOTIONS:
        assert m[f"share_{emotion}"] == 0.0
        assert m[f"mean_p_{emotion}"] == 0.0
        assert m[f"episodes_{emotion}"] == 0
    assert m["negative_share"] == 0.0
    assert m["negative_probability"] == 0.0
    assert m["valence"] == 0.0
    assert m["negative_episodes"] == 0
    assert m["longest_negative_run_s"] == 0.0
    assert m["negative_share_est"] is None and m["negative_share_low"] is None


# --- the corrected estimate ------------------------------------------------------------------


def leaky_profile() -> ErrorProfile:
    """A model right 2 times in 3, whose other answers are 5% each and the rest neutral."""
    rates = np.full((len(EMOTIONS), len(EMOTIONS)), 0.05)
    np.fill_diagonal(rates, 2 / 3)
    rates[:, EMOTIONS.index("neutral")] += 1 - rates.sum(axis=1)
    return ErrorProfile(confusion=rates * 600)


def labelled_as_the_profile_says(true: str, count: int, profile: ErrorProfile, seed: int):
    """`count` faces of a true emotion, their labels in the profile's proportions, shuffled."""
    rates = profile.label_rates[EMOTIONS.index(true)]
    labels = np.repeat(EMOTIONS, np.round(rates * count).astype(int)).tolist()
    np.random.default_rng(seed).shuffle(labels)
    return labels


def test_the_estimate_corrects_the_raw_share_and_the_default_rules_use_it():
    """55% truly sad, in one stretch, then neutral: the raw share reads under half, the
    estimate about 55%, so the default rules say high where the raw share would not."""
    profile = leaky_profile()
    labels = (labelled_as_the_profile_says("sad", 120, profile, 1)
              + labelled_as_the_profile_says("neutral", 100, profile, 2))
    obs = with_smoothing(observations(labels), 10)
    m = session_metrics(obs, NEGATIVE, min_run=5, step_s=1.0, error_profile=profile)
    assert m["negative_share"] < 0.5
    assert m["negative_share_est"] == pytest.approx(120 / 220, abs=0.02)
    assert m["negative_share_low"] < m["negative_share_est"] < m["negative_share_high"]
    assert m["longest_negative_run_s"] >= 10
    default = load_rules("default")
    assert default.assess(m).level == "high"
    assert default.assess({**m, "negative_share_est": m["negative_share"]}).level != "high"


def test_without_a_profile_the_estimate_is_the_raw_share():
    m = session_metrics(observations(["sad", "happy", "sad", "neutral"]), NEGATIVE, 5, 1.0)
    assert m["negative_share_est"] == m["negative_share"] == 0.5
    assert m["negative_share_low"] <= 0.5 <= m["negative_share_high"]


def test_metric_names_lists_every_numeric_metric():
    m = session_metrics(observations(["happy", "sad"]), NEGATIVE, min_run=5, step_s=1.0)
    assert set(m) - {"dominant_emotion"} == metric_names() - BASELINE_METRICS
    for name in metric_names() - BASELINE_METRICS:
        assert isinstance(m[name], int | float), name


@settings(max_examples=60, deadline=None)
@given(
    labels=st.lists(st.sampled_from(EMOTIONS), min_size=1, max_size=50),
    negative=st.sets(st.sampled_from(EMOTIONS)),
    min_run=st.integers(1, 6),
)
def test_shares_sum_to_one_and_negative_share_is_a_fraction(labels, negative, min_run):
    m = session_metrics(observations(labels), tuple(negative), min_run=min_run, step_s=1.0)
    assert abs(sum(m[f"share_{e}"] for e in EMOTIONS) - 1.0) <= 1e-9
    assert 0.0 <= m["negative_share"] <= 1.0
    assert m["negative_share"] == pytest.approx(sum(m[f"share_{e}"] for e in negative))
    assert m["faces_found"] == len(labels)
    assert m["longest_negative_run_s"] <= len(labels)


def test_negative_probability_does_not_change_with_the_process_hash_seed():
    """Worker processes (--workers, --cluster) have other hash seeds than the scanning process;
    these probabilities sum to a different float in a different order."""
    import os
    import subprocess
    import sys

    code = (
        "from screener.session.aggregate import session_metrics\n"
        "from screener.domain import Box, Observation\n"
        "o = Observation(0, 0, Box(0, 0, 9, 9), (0.02663, 0, 0.05952, 0.78943, 0.12442, 0, 0),"
        " 'happy')\n"
        "print(repr(session_metrics([o], negative=('angry', 'sad', 'fear'), min_run=5,"
        " step_s=1.0, duration_s=1.0, scenes=1)['negative_probability']))\n"
    )
    values = {
        subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                       env={**os.environ, "PYTHONHASHSEED": str(seed)}).stdout.strip()
        for seed in range(8)
    }
    assert values == {"0.21057"}


def test_the_estimates_blocks_last_thirty_seconds_whatever_the_sampling():
    """At two faces a second a 30-s block is 60 faces: the interval must be the one made with
    blocks of that many faces, not of 30 or of 15."""
    from screener.session.estimate import estimate_negative_share

    rng = np.random.default_rng(11)
    labels = [("sad" if (i // 45) % 3 == 0 else "happy") for i in range(600)]
    labels = [label if rng.random() > 0.1 else "neutral" for label in labels]
    obs = observations(labels, step_s=0.5)
    m = session_metrics(obs, NEGATIVE, min_run=5, step_s=0.5)
    probabilities = np.array([o.probabilities for o in obs])
    expected = estimate_negative_share(probabilities, sorted(NEGATIVE), None, block=60)
    assert (m["negative_share_low"], m["negative_share_high"]) == pytest.approx(
        (expected.low, expected.high))
    for other in (30, 15, 120):
        wrong = estimate_negative_share(probabilities, sorted(NEGATIVE), None, block=other)
        assert (wrong.low, wrong.high) != pytest.approx((expected.low, expected.high))
