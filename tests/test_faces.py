import cv2
import numpy as np

from screener.domain import Box, Frame
from screener.faces import HaarFaceDetector, crop_face, faces_in_frame, largest_face_crop
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
