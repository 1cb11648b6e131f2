"""Evidence frames: which faces are kept, and their thumbnails."""

from datetime import datetime
from pathlib import Path

import cv2
import numpy as np
import pytest

from screener.domain import EMOTIONS, Box, Observation, VideoJob
from screener.scanning.analysis import Analyzer
from screener.session.aggregate import with_smoothing
from screener.session.evidence import (
    MOST_NEGATIVE,
    STRETCH,
    THUMBNAIL_PX,
    face_thumbnail,
    longest_negative_stretch,
    select_evidence,
)
from screener.settings import Settings, SettingsError
from tests.conftest import face_frames

NEGATIVE = ("angry", "sad", "fear")


def observation(i: int, label: str | None, p_negative: float = 0.0) -> Observation:
    if label is None:
        return Observation(float(i), i, None, None, None)
    probs = [0.0] * len(EMOTIONS)
    probs[EMOTIONS.index("sad")] = p_negative
    probs[EMOTIONS.index(label if label != "sad" else "neutral")] += 1.0 - p_negative
    return Observation(float(i), i, Box(i, 0, 10, 10), tuple(probs), label)


def session(labels: list[str | None], p_negative: list[float] | None = None) -> list[Observation]:
    p_negative = p_negative or [0.9 if lb in NEGATIVE else 0.1 for lb in labels]
    return with_smoothing([observation(i, lb, p) for i, (lb, p) in
                           enumerate(zip(labels, p_negative, strict=True))], 1)


def thumbs(observations: list[Observation]) -> dict:
    return {(o.frame_index, o.box): f"jpeg{o.frame_index}".encode()
            for o in observations if o.box is not None}


def test_half_spread_over_the_longest_negative_stretch_the_rest_most_negative():
    labels = ["happy"] * 3 + ["sad"] * 3 + ["happy"] * 2 + ["sad"] * 9 + ["neutral"] * 5
    p = [0.1] * len(labels)
    p[20] = 0.45  # the most negative face outside the stretches, a neutral one
    p[4] = 0.95   # in the short stretch: most negative of all
    obs = session(labels, p)
    chosen = select_evidence(obs, thumbs(obs), 4, NEGATIVE)
    assert [(f.frame_index, f.reason) for f in chosen] == [
        (4, MOST_NEGATIVE), (8, STRETCH), (16, STRETCH), (20, MOST_NEGATIVE)]
    assert chosen[0].jpeg == b"jpeg4" and chosen[0].label == "sad"
    assert chosen[0].negative_probability == pytest.approx(0.95)


@pytest.mark.parametrize("count", [1, 3, 6])
def test_the_count_asked_for_is_respected(count):
    obs = session(["sad"] * 10 + ["happy"] * 10)
    chosen = select_evidence(obs, thumbs(obs), count, NEGATIVE)
    assert len(chosen) == count
    assert [f.t_s for f in chosen] == sorted(f.t_s for f in chosen)
    assert len({f.frame_index for f in chosen}) == count


def test_nothing_without_faces_or_when_off():
    obs = session([None, None, "happy"])
    assert select_evidence(obs, thumbs(obs), 0, NEGATIVE) == []
    empty = session([None, None])
    assert select_evidence(empty, thumbs(empty), 3, NEGATIVE) == []


def test_a_calm_session_shows_its_most_negative_faces():
    obs = session(["happy"] * 6, [0.1, 0.3, 0.05, 0.2, 0.0, 0.25])
    chosen = select_evidence(obs, thumbs(obs), 2, NEGATIVE)
    assert [(f.frame_index, f.reason) for f in chosen] == [(1, MOST_NEGATIVE), (5, MOST_NEGATIVE)]


def test_longest_stretch_follows_the_smoothed_labels():
    obs = with_smoothing([observation(i, lb, 0.5) for i, lb in enumerate(
        ["sad", "sad", "happy", "sad", "sad", "sad", "happy", "happy", "happy"])], 3)
    # Smoothing over 3 keeps the lone happy at 2 negative, so the stretch runs 0..6.
    assert [o.frame_index for o in longest_negative_stretch(obs, NEGATIVE)] == list(range(7))


def test_thumbnail_is_a_small_colour_jpeg_of_the_face_region():
    image = np.zeros((480, 640, 3), np.uint8)
    image[100:300, 200:400] = (0, 0, 255)  # a red square where the face is
    jpeg = face_thumbnail(image, Box(220, 140, 160, 120), 1.0)
    decoded = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert max(decoded.shape[:2]) == THUMBNAIL_PX and decoded.shape[2] == 3
    b, g, r = decoded[decoded.shape[0] // 2, decoded.shape[1] // 2]
    assert r > 200 and g < 60 and b < 60
    assert len(jpeg) < 8000
    # A box at the edge is clipped to the image, never an error.
    assert cv2.imdecode(np.frombuffer(face_thumbnail(image, Box(630, 470, 40, 40), 1.0),
                                      np.uint8), cv2.IMREAD_COLOR) is not None


def test_the_setting_is_bounded():
    with pytest.raises(SettingsError, match="evidence_frames"):
        Settings(evidence_frames=-1)
    with pytest.raises(SettingsError, match="evidence_frames"):
        Settings(evidence_frames=1000)


def test_analysis_keeps_frames_only_when_asked(make_video, astronaut):
    video = make_video("face.mp4", face_frames(astronaut, 80), fps=10)
    job = VideoJob(Path(video), "ana", "ana-1", datetime(2026, 1, 1), "0" * 64)
    off = Analyzer.from_settings(Settings()).analyze(job)
    assert off.evidence_frames == []
    on = Analyzer.from_settings(Settings(evidence_frames=3)).analyze(job)
    assert len(on.evidence_frames) == 3
    faces = {(o.t_s, o.label) for o in on.observations if o.label}
    for frame in on.evidence_frames:
        assert (frame.t_s, frame.label) in faces
        image = cv2.imdecode(np.frombuffer(frame.jpeg, np.uint8), cv2.IMREAD_COLOR)
        assert max(image.shape[:2]) == THUMBNAIL_PX
        assert image.std(axis=2).mean() > 3  # colour, not the model's grey input
    assert on.metrics == off.metrics


def test_the_most_negative_faces_are_kept_apart_in_time():
    p = [0.9 - 0.01 * i if 10 <= i < 15 else 0.5 if i == 30 else 0.1 for i in range(40)]
    obs = session(["happy"] * 40, p)
    chosen = select_evidence(obs, thumbs(obs), 2, NEGATIVE)
    # 10..14 are one moment: the second frame comes from elsewhere.
    assert [f.frame_index for f in chosen] == [10, 30]
    few = session(["happy"] * 3, [0.3, 0.2, 0.1])
    assert len(select_evidence(few, thumbs(few), 3, NEGATIVE)) == 3  # too few to keep apart
