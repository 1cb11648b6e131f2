import cv2
import numpy as np

from screener.domain import Box, Frame
from screener.faces import (
    FaceTracker,
    HaarFaceDetector,
    crop_face,
    faces_in_frame,
    largest_face_crop,
)
from screener.settings import FaceSettings

# Where the astronaut's face is in scikit-image's 512x512 photo (checked by eye).
FACE_REGION = (150, 40, 330, 250)


def _inside(box: Box, region: tuple[int, int, int, int], scale: float = 1.0) -> bool:
    cx, cy = (box.x + box.w / 2) / scale, (box.y + box.h / 2) / scale
    return region[0] <= cx <= region[2] and region[1] <= cy <= region[3]


def test_haar_finds_the_astronauts_face(astronaut):
    boxes = HaarFaceDetector(FaceSettings()).detect(astronaut)
    assert boxes, "no face found"
    assert _inside(max(boxes, key=lambda b: b.area), FACE_REGION)


def test_boxes_map_back_from_the_downscaled_detection(astronaut):
    big = cv2.resize(astronaut, (1536, 1536))
    boxes = HaarFaceDetector(FaceSettings(detect_width=512)).detect(big)
    assert boxes
    assert _inside(max(boxes, key=lambda b: b.area), FACE_REGION, scale=3.0)


def test_no_face_in_a_plain_image():
    image = np.full((480, 640, 3), 127, np.uint8)
    assert HaarFaceDetector(FaceSettings()).detect(image) == []


def test_crop_has_the_model_input_size_and_clips_at_borders():
    grey = np.arange(100 * 100, dtype=np.uint32).reshape(100, 100).astype(np.uint8)
    crop = crop_face(grey, Box(0, 0, 30, 30), offsets=(20, 40))
    assert crop.shape == (48, 48)
    inner = crop_face(grey, Box(10, 10, 20, 20), offsets=(0, 0))
    expected = cv2.resize(grey[10:30, 10:30], (48, 48), interpolation=cv2.INTER_AREA)
    assert np.array_equal(inner, expected)


def _two_faces(astronaut) -> np.ndarray:
    face = astronaut[20:300, 110:390]
    canvas = np.full((400, 900, 3), 100, np.uint8)
    canvas[40:320, 20:300] = face
    small = cv2.resize(face, (180, 180))
    canvas[100:280, 650:830] = small
    return canvas


def test_largest_face_is_the_student_unless_all_are_kept(astronaut):
    frame = Frame(t_s=0.0, index=0, image=_two_faces(astronaut), scene=0, sharpness=1.0)
    detector = HaarFaceDetector(FaceSettings())
    one = faces_in_frame(frame, detector, FaceSettings())
    both = faces_in_frame(frame, detector, FaceSettings(keep_all=True))
    assert len(one) == 1 and one[0].box.x < 300
    assert any(f.box.x < 300 for f in both) and any(f.box.x >= 600 for f in both)
    assert len(both) > len(one)
    assert one[0].crop.shape == (48, 48)


def test_largest_face_crop_is_none_without_a_face():
    blank = np.zeros((200, 200), np.uint8)
    assert largest_face_crop(HaarFaceDetector(FaceSettings()), blank, FaceSettings()) is None


class RecordingDetector:
    """The Haar detector, recording the width of every image it searched."""

    def __init__(self) -> None:
        self.inner = HaarFaceDetector(FaceSettings())
        self.widths: list[int] = []

    def detect(self, image, sizes=None):
        self.widths.append(image.shape[1])
        return self.inner.detect(image, sizes)


def _face_at(astronaut, x: int, scene: int = 0, index: int = 0) -> Frame:
    canvas = np.full((720, 1280, 3), 90, np.uint8)
    face = cv2.resize(astronaut[20:300, 110:390], (300, 300))
    canvas[150:450, x : x + 300] = face
    return Frame(t_s=float(index), index=index, image=canvas, scene=scene, sharpness=1.0)


def test_the_tracker_searches_near_the_last_face_and_falls_back_to_the_whole_frame(astronaut):
    detector = RecordingDetector()
    tracker = FaceTracker(detector, FaceSettings(full_search_every=10))
    boxes = [tracker.faces(_face_at(astronaut, x, index=i))[0].box
             for i, x in enumerate((500, 520, 540))]
    assert detector.widths[0] == 1280 and max(detector.widths[1:]) < 300  # searched near
    assert [b.x for b in boxes] == sorted(b.x for b in boxes)  # it follows the face
    full = faces_in_frame(_face_at(astronaut, 540), detector.inner, FaceSettings())[0].box
    assert abs(boxes[2].x - full.x) < 0.2 * full.w and abs(boxes[2].w - full.w) < 0.3 * full.w

    detector.widths.clear()
    moved = tracker.faces(_face_at(astronaut, 50, index=3))[0].box  # jumped: not near any more
    assert detector.widths[-1] == 1280 and moved.x < 400
    detector.widths.clear()
    tracker.faces(_face_at(astronaut, 60, scene=1, index=4))  # a cut: search everything
    assert detector.widths == [1280]


def test_without_tracking_every_key_frame_gets_a_full_search(astronaut):
    detector = RecordingDetector()
    tracker = FaceTracker(detector, FaceSettings(full_search_every=0))
    for i in range(3):
        assert tracker.faces(_face_at(astronaut, 500, index=i))
    assert detector.widths == [1280, 1280, 1280]


def test_a_size_range_limits_the_faces_searched_for(astronaut):
    """The tracker passes the size it expects; faces outside that range are not looked for."""
    frame = _face_at(astronaut, 400)
    detector = HaarFaceDetector(FaceSettings())
    face = max(detector.detect(frame.image), key=lambda b: b.area)
    assert face in detector.detect(frame.image, (face.w // 2, face.w * 2))
    assert detector.detect(frame.image, (face.w * 2, face.w * 4)) == []
    assert all(b.w <= face.w // 2 for b in detector.detect(frame.image, (20, face.w // 2)))
