"""The detectors behind `FaceDetector`, the factory, and choosing the student's face."""

import cv2
import numpy as np
import pytest

from screener.domain import Frame
from screener.faces import (
    DetectorError,
    HaarFaceDetector,
    YuNetFaceDetector,
    faces_in_frame,
    largest_face_crop,
    make_detector,
)
from screener.settings import FaceSettings, KeyframeSettings
from screener.video.keyframes import KeyframeReader

# Where the astronaut's face is in scikit-image's 512x512 photo (checked by eye).
FACE_REGION = (150, 40, 330, 250)
DETECTORS = ["yunet", "haar"]


def _inside(box, region, scale: float = 1.0) -> bool:
    cx, cy = (box.x + box.w / 2) / scale, (box.y + box.h / 2) / scale
    return region[0] <= cx <= region[2] and region[1] <= cy <= region[3]


def _detector(name: str, **changes):
    return make_detector(FaceSettings(detector=name, **changes))


def test_the_factory_gives_yunet_by_default_and_haar_when_asked():
    assert isinstance(make_detector(FaceSettings()), YuNetFaceDetector)
    assert isinstance(_detector("haar"), HaarFaceDetector)


@pytest.mark.parametrize("name", DETECTORS)
def test_finds_the_astronauts_face(astronaut, name):
    found = _detector(name).detect(astronaut)
    assert found, "no face found"
    assert _inside(max(found, key=lambda d: d.box.area).box, FACE_REGION)


def test_a_yunet_row_with_infinite_or_nan_numbers_is_no_face(astronaut):
    """Seen on an 85x32 web photo: `OverflowError: cannot convert float infinity to integer`."""
    detector = _detector("yunet")
    good = np.array([10, 12, 60, 70, 25, 30, 50, 30, 38, 45, 28, 60, 48, 60, 0.9], np.float32)
    rows = np.stack([good, good.copy(), good.copy()])
    rows[1, 2], rows[2, 7] = np.inf, np.nan

    class Net:
        def setInputSize(self, size):  # noqa: N802 (OpenCV's name)
            pass

        def detect(self, image):
            return 1, rows

    detector._net = Net()
    [found] = detector.detect(np.zeros((32, 85, 3), np.uint8), sizes=(0, None))
    assert found.box.w == 60 and found.score == pytest.approx(0.9)


def test_yunet_landmarks_lie_inside_their_box_eyes_above_mouth(astronaut):
    face = max(_detector("yunet").detect(astronaut), key=lambda d: d.box.area)
    assert face.landmarks is not None and len(face.landmarks) == 5
    b = face.box
    for x, y in face.landmarks:
        assert b.x <= x <= b.x + b.w and b.y <= y <= b.y + b.h
    right_eye, left_eye, _, right_mouth, left_mouth = face.landmarks
    assert right_eye[0] < left_eye[0]  # the subject's right eye is on the image's left
    assert max(right_eye[1], left_eye[1]) < min(right_mouth[1], left_mouth[1])
    assert 0.7 <= face.score <= 1.0


@pytest.mark.parametrize("name", DETECTORS)
def test_boxes_map_back_from_the_downscaled_detection(astronaut, name):
    big = cv2.resize(astronaut, (1536, 1536))
    found = _detector(name, detect_width=512).detect(big)
    assert found
    face = max(found, key=lambda d: d.box.area)
    assert _inside(face.box, FACE_REGION, scale=3.0)
    if face.landmarks:
        x, y = face.landmarks[2]  # the nose, in full-size pixels
        assert _inside(type(face.box)(round(x), round(y), 0, 0), FACE_REGION, scale=3.0)


@pytest.mark.parametrize("name", DETECTORS)
def test_no_face_in_a_plain_image(name):
    image = np.full((480, 640, 3), 127, np.uint8)
    assert _detector(name).detect(image) == []


def _two_faces(astronaut) -> np.ndarray:
    face = astronaut[20:300, 110:390]
    canvas = np.full((400, 900, 3), 100, np.uint8)
    canvas[40:320, 20:300] = face
    canvas[100:280, 650:830] = cv2.resize(face, (180, 180))
    return canvas


@pytest.mark.parametrize("name", DETECTORS)
def test_largest_face_is_the_student_unless_all_are_kept(astronaut, name):
    frame = Frame(t_s=0.0, index=0, image=_two_faces(astronaut), scene=0, sharpness=1.0)
    one = faces_in_frame(frame, _detector(name), FaceSettings(detector=name))
    every = FaceSettings(detector=name, keep_all=True)
    both = faces_in_frame(frame, _detector(name, keep_all=True), every)
    assert len(one) == 1 and one[0].box.x < 300
    assert any(f.box.x < 300 for f in both) and any(f.box.x >= 600 for f in both)
    assert one[0].crop.shape == (48, 48)


def _crowd(astronaut, side: int, rows: int = 3, columns: int = 6) -> tuple[np.ndarray, int]:
    """A 1080p frame with `rows * columns` faces `side` px wide, spread out on a busy ground."""
    rng = np.random.default_rng(3)
    canvas = cv2.resize(rng.integers(60, 160, (27, 48, 3), dtype=np.uint8), (1920, 1080),
                        interpolation=cv2.INTER_CUBIC)
    face = cv2.resize(astronaut[30:290, 120:380], (side, side), interpolation=cv2.INTER_AREA)
    for r in range(rows):
        for c in range(columns):
            x, y = 150 + c * 300 + (r % 2) * 80, 200 + r * 300
            canvas[y:y + side, x:x + side] = face
    return canvas, rows * columns


def test_all_faces_finds_faces_of_about_20_px_in_a_1080p_crowd(astronaut):
    image, count = _crowd(astronaut, 64)  # the face itself about 20 px of the 64
    settings = FaceSettings(keep_all=True)
    frame = Frame(t_s=0.0, index=0, image=image, scene=0, sharpness=1.0)
    faces = faces_in_frame(frame, make_detector(settings), settings)
    assert len(faces) >= 0.9 * count
    assert all(14 <= f.box.w <= 26 for f in faces)


def test_yunet_finds_a_face_in_nearly_every_key_frame_of_a_real_clip(shared_videos):
    detector = make_detector(FaceSettings())
    frames = list(KeyframeReader(shared_videos / "WolfgangLanger_Pexels.mp4",
                                 KeyframeSettings()))
    found = sum(bool(detector.detect(f.image)) for f in frames)
    assert len(frames) >= 15 and found >= 0.95 * len(frames)


def test_largest_face_crop_is_none_without_a_face():
    blank = np.zeros((200, 200), np.uint8)
    assert largest_face_crop(make_detector(FaceSettings()), blank, FaceSettings()) is None


def test_a_missing_or_unreadable_detector_model_is_a_one_line_error(tmp_path):
    with pytest.raises(DetectorError, match="face detector model not found") as missing:
        make_detector(FaceSettings(detector_model=tmp_path / "nope.onnx"))
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"not a network")
    with pytest.raises(DetectorError, match="cannot load face detector model") as broken:
        make_detector(FaceSettings(detector_model=junk))
    for error in (missing, broken):
        assert "\n" not in str(error.value)


def test_the_student_is_the_largest_face_among_the_confident_ones():
    from screener.domain import Box, Detection
    from screener.faces import student_face

    face = Detection(Box(0, 0, 100, 100), score=0.95)
    poster = Detection(Box(0, 0, 300, 300), score=0.45)  # bigger, but doubtful
    near = Detection(Box(0, 0, 150, 150), score=0.8)
    assert student_face([face, poster]) == face
    assert student_face([face, poster, near]) == near
    assert student_face([]) is None
