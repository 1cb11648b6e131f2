"""Crops framed relative to the face, eyes levelled: the same face gives the same crop at any
resolution and any head tilt."""

from pathlib import Path

import cv2
import numpy as np
import pytest

from screener.domain import Box, Detection
from screener.faces import make_detector
from screener.faces.crop import eye_angle, face_crop, to_grey
from screener.settings import FaceSettings
from tests.conftest import SHARED


def test_crop_has_the_model_input_size_and_repeats_the_edge_outside_the_image():
    grey = np.full((100, 100), 50, np.uint8)
    grey[:, 50:] = 200
    crop = face_crop(grey, Box(-20, -20, 40, 40), scale=1.0)
    assert crop.shape == (48, 48)
    assert crop.min() >= 49  # no black border where the square left the image


def test_without_landmarks_the_crop_is_the_box_square_scaled_about_its_centre():
    y, x = np.mgrid[0:200, 0:200]
    grey = ((np.sin(x / 7) + np.cos(y / 5)) * 60 + 128).astype(np.uint8)
    crop = face_crop(grey, Box(60, 60, 80, 80), scale=1.0, size=80)
    assert np.abs(crop.astype(int) - grey[60:140, 60:140]).mean() < 3
    assert np.abs(crop.astype(int) - grey[61:141, 60:140]).mean() > 5
    wider = face_crop(grey, Box(80, 80, 40, 40), scale=2.0, size=80)
    assert np.array_equal(crop, wider)  # 2 x a 40-px box about the same centre


def test_eye_angle_is_positive_when_the_eye_on_the_right_is_lower():
    assert eye_angle(((10, 10), (20, 20), (0, 0), (0, 0), (0, 0))) == 45.0
    assert eye_angle(None) == 0.0


def _similar(a: np.ndarray, b: np.ndarray, inner: bool = False) -> float:
    """Mean absolute difference after a slight blur, so a pixel of jitter in the detector's
    box does not count as a different framing; `inner` compares the middle two thirds."""
    a, b = (cv2.GaussianBlur(c.astype(np.float32), (0, 0), 1.5) for c in (a, b))
    if inner:
        a, b = a[8:40, 8:40], b[8:40, 8:40]
    return float(np.abs(a - b).mean())


def _pixel_margin_crop(grey: np.ndarray, box: Box) -> np.ndarray:
    """The crop screener made before: the box widened by (20, 40) px whatever its size."""
    region = grey[max(0, box.y - 40):box.y + box.h + 40, max(0, box.x - 20):box.x + box.w + 20]
    return cv2.resize(region, (48, 48), interpolation=cv2.INTER_AREA)


def test_the_same_face_at_another_resolution_gives_the_same_crop(astronaut):
    """The face 45 px wide (360p-like) to 270 px (4K-like): one framing up to the detector's
    own jitter on a small face, where fixed pixel margins framed it very differently."""
    detector = make_detector(FaceSettings())
    crops, before = [], []
    for scale in (0.5, 1.0, 3.0):
        image = cv2.resize(astronaut, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA
                           if scale < 1 else cv2.INTER_CUBIC)
        face = max(detector.detect(image), key=lambda d: d.box.area)
        crops.append(face_crop(to_grey(image), face, 0.9))
        before.append(_pixel_margin_crop(to_grey(image), face.box))
    assert _similar(crops[1], crops[2]) < 8
    assert _similar(crops[0], crops[2]) < 0.6 * _similar(before[0], before[2])


def _fer_face(shared: Path, emotion: str, k: int) -> np.ndarray:
    """The k-th FER2013 `val` face of that emotion, 240 px, on a plain 400x400 ground."""
    folder = shared / "datasets" / "fer2013" / "val" / emotion
    if not folder.is_dir():
        pytest.skip("../shared/datasets/fer2013 is absent")
    face = cv2.imread(str(sorted(folder.glob("*.jpg"))[k]))
    canvas = np.full((400, 400, 3), 120, np.uint8)
    canvas[80:320, 80:320] = cv2.resize(face, (240, 240), interpolation=cv2.INTER_CUBIC)
    return canvas


def test_the_aligned_crop_of_a_tilted_face_is_nearer_the_upright_one():
    """Six FER2013 faces tilted 15 degrees either way: YuNet's eye landmarks follow most of
    the tilt, and levelling them brings the crop much nearer the upright face's crop than
    the crop left tilted (compared inside the face, away from the pasted square's edges)."""
    detector = make_detector(FaceSettings())
    turned, aligned, unaligned = [], [], []
    for emotion in ("neutral", "happy", "sad"):
        for k in (3, 5):
            image = _fer_face(SHARED, emotion, k)
            upright = max(detector.detect(image), key=lambda d: d.box.area)
            reference = face_crop(to_grey(image), upright, 0.9)
            for tilt in (-15, 15):
                rotation = cv2.getRotationMatrix2D((200, 200), tilt, 1.0)
                tilted_image = cv2.warpAffine(image, rotation, (400, 400),
                                              borderMode=cv2.BORDER_REPLICATE)
                tilted = max(detector.detect(tilted_image), key=lambda d: d.box.area)
                turned.append(-(eye_angle(tilted.landmarks) - eye_angle(upright.landmarks))
                              / tilt)
                grey = to_grey(tilted_image)
                aligned.append(_similar(face_crop(grey, tilted, 0.9), reference, inner=True))
                unaligned.append(_similar(face_crop(grey, Detection(tilted.box), 0.9),
                                          reference, inner=True))
    assert np.median(turned) > 0.6  # the landmarks see most of the tilt
    assert np.mean(aligned) < 0.75 * np.mean(unaligned)
