"""Following the student's face between key frames: a search near the last face, with a full
search when it is lost, at a cut, and every `full_search_every` key frames."""

import cv2
import numpy as np
import pytest

from screener.domain import Frame
from screener.faces import FaceTracker, faces_in_frame, make_detector
from screener.settings import FaceSettings

DETECTORS = ["yunet", "haar"]


class RecordingDetector:
    """A real detector, recording the width of every image it searched."""

    def __init__(self, name: str) -> None:
        self.inner = make_detector(FaceSettings(detector=name))
        self.widths: list[int] = []

    def detect(self, image, sizes=None):
        self.widths.append(image.shape[1])
        return self.inner.detect(image, sizes)


def _face_at(astronaut, x: int, scene: int = 0, index: int = 0) -> Frame:
    canvas = np.full((720, 1280, 3), 90, np.uint8)
    face = cv2.resize(astronaut[20:300, 110:390], (300, 300))
    canvas[150:450, x : x + 300] = face
    return Frame(t_s=float(index), index=index, image=canvas, scene=scene, sharpness=1.0)


@pytest.mark.parametrize("name", DETECTORS)
def test_the_tracker_searches_near_the_last_face_and_falls_back_to_the_whole_frame(
        astronaut, name):
    detector = RecordingDetector(name)
    settings = FaceSettings(detector=name, full_search_every=10, upright=False)
    tracker = FaceTracker(detector, settings)
    faces = [tracker.faces(_face_at(astronaut, x, index=i))[0]
             for i, x in enumerate((500, 520, 540))]
    assert detector.widths[0] == 1280 and max(detector.widths[1:]) < 300  # searched near
    boxes = [f.box for f in faces]
    assert [b.x for b in boxes] == sorted(b.x for b in boxes)  # it follows the face
    full = faces_in_frame(_face_at(astronaut, 540), detector.inner, settings)[0]
    assert abs(boxes[2].x - full.box.x) < 0.2 * full.box.w
    assert abs(boxes[2].w - full.box.w) < 0.3 * full.box.w
    assert np.abs(faces[2].crop.astype(int) - full.crop).mean() < 25  # landmarks mapped back

    detector.widths.clear()
    moved = tracker.faces(_face_at(astronaut, 50, index=3))[0].box  # jumped: not near any more
    assert detector.widths[-1] == 1280 and moved.x < 400
    detector.widths.clear()
    tracker.faces(_face_at(astronaut, 60, scene=1, index=4))  # a cut: search everything
    assert detector.widths == [1280]


def test_without_tracking_every_key_frame_gets_a_full_search(astronaut):
    detector = RecordingDetector("yunet")
    tracker = FaceTracker(detector, FaceSettings(full_search_every=0, upright=False))
    for i in range(3):
        assert tracker.faces(_face_at(astronaut, 500, index=i))
    assert detector.widths == [1280, 1280, 1280]


@pytest.mark.parametrize("name", DETECTORS)
def test_a_size_range_limits_the_faces_found(astronaut, name):
    """The tracker passes the size it expects; faces outside that range are not returned."""
    frame = _face_at(astronaut, 400)
    detector = make_detector(FaceSettings(detector=name))
    face = max(detector.detect(frame.image), key=lambda d: d.box.area).box
    assert any(d.box == face for d in detector.detect(frame.image, (face.w // 2, face.w * 2)))
    assert detector.detect(frame.image, (face.w * 2, face.w * 4)) == []


def _faces_at(astronaut, faces: list[tuple[int, int]], index: int) -> Frame:
    """The astronaut's face at each (x, side), all in one frame of one scene."""
    canvas = np.full((720, 1280, 3), 90, np.uint8)
    for x, side in faces:
        canvas[150 : 150 + side, x : x + side] = cv2.resize(astronaut[20:300, 110:390],
                                                             (side, side))
    return Frame(t_s=float(index), index=index, image=canvas, scene=0, sharpness=1.0)


def test_a_larger_face_appearing_elsewhere_becomes_the_student_at_the_next_full_search(
        astronaut):
    """Tracking looks only near the last face; the periodic full search is what finds a
    closer student who sat down later, within `full_search_every` + 1 key frames."""
    every = 3
    tracker = FaceTracker(make_detector(FaceSettings()), FaceSettings(full_search_every=every))
    small, large = (100, 160), (700, 320)
    [first] = tracker.faces(_faces_at(astronaut, [small], 0))
    assert first.box.x < 400
    chosen = [tracker.faces(_faces_at(astronaut, [small, large], i))[0].box
              for i in range(1, every + 2)]
    assert chosen[0].x < 400  # still tracked near the small face: no full search yet
    assert chosen[-1].x > 600 and chosen[-1].w > 1.5 * first.box.w  # found by the full search
