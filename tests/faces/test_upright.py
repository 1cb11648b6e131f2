"""A face lying sideways or upside down in a video without rotation metadata is turned
upright before the model reads it: read as it lies, it looks wholly negative to the model."""

import cv2
import numpy as np
import pytest

from screener.domain import EMOTIONS, Frame
from screener.faces import FaceTracker, make_detector
from screener.faces.upright import upright_turns
from screener.settings import FaceSettings, Settings

TURNED = {1: cv2.ROTATE_90_CLOCKWISE, 2: cv2.ROTATE_180, 3: cv2.ROTATE_90_COUNTERCLOCKWISE}


def _frame(image: np.ndarray, index: int = 0) -> Frame:
    return Frame(t_s=float(index), index=index, image=image, scene=0, sharpness=1.0)


@pytest.mark.parametrize("turns", [1, 2, 3])
def test_a_turned_face_is_found_to_need_turning_back(astronaut, turns):
    settings = FaceSettings(aligned_crop=True)
    detector = make_detector(settings)
    image = cv2.rotate(astronaut, TURNED[turns])
    face = max(detector.detect(image), key=lambda d: d.score)
    assert (turns + upright_turns(image, face.box, detector)) % 4 == 0
    upright = max(detector.detect(astronaut), key=lambda d: d.score)
    assert upright_turns(astronaut, upright.box, detector) == 0


@pytest.mark.parametrize("turns", [1, 2, 3])
def test_a_turned_face_gives_the_crops_of_the_upright_face(astronaut, turns):
    settings = FaceSettings(aligned_crop=True)
    detector = make_detector(settings)
    upright = FaceTracker(detector, settings).faces(_frame(astronaut))[0]
    tracker = FaceTracker(detector, settings)
    image = cv2.rotate(astronaut, TURNED[turns])
    faces = [tracker.faces(_frame(image, i))[0] for i in range(2)]  # a full search, then near
    for face in faces:  # the same face, framed as the detector boxes it again
        assert np.corrcoef(face.crop.ravel(), upright.crop.ravel())[0, 1] > 0.65
        assert np.corrcoef(face.aligned.ravel(), upright.aligned.ravel())[0, 1] > 0.65


def test_without_turning_an_upside_down_face_reads_otherwise(astronaut):
    """The switch does what it says: the crop of the face as it lies is another picture."""
    detector = make_detector(FaceSettings(aligned_crop=True))
    image = cv2.rotate(astronaut, cv2.ROTATE_180)
    turned = FaceTracker(detector, FaceSettings(aligned_crop=True)).faces(_frame(image))[0]
    as_it_lies = FaceTracker(detector, FaceSettings(upright=False)).faces(_frame(image))[0]
    assert np.corrcoef(turned.crop.ravel(), as_it_lies.crop.ravel())[0, 1] < 0.5


def test_an_upside_down_smiling_face_reads_happy_in_a_scan(astronaut, make_video):
    from screener.scanning.analysis import Analyzer
    from screener.video.discover import job_for

    canvas = np.full((480, 640, 3), 90, np.uint8)
    canvas[90:390, 170:470] = cv2.resize(astronaut[20:300, 110:390], (300, 300))
    frames = [cv2.rotate(canvas, cv2.ROTATE_180)] * 20
    video = make_video("alex/2026-01-05.mp4", frames)
    result = Analyzer.from_settings(Settings()).analyze(job_for(video, video.parent.parent))
    labels = [o.label for o in result.observations if o.label]
    assert labels and labels.count("happy") / len(labels) > 0.8, labels
    assert set(labels) <= set(EMOTIONS)
