"""The crop the emotion model reads: square, eyes level, framed relative to the face.

FER2013, the model's training set, holds roughly aligned, tightly framed 48x48 faces. A crop
whose margins are fixed pixels frames a face differently at 360p and at 4K, so the side of the
square is a multiple of the face box instead, and where the detector gives eye landmarks the
square is rotated so the eyes are level. The same face at any resolution gives the same crop.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from screener.domain import INPUT_SIZE, Box, Detection
from screener.settings import FaceSettings

_OVERSAMPLE = 2
"""The rotation is sampled at twice the output size, then area-averaged down: one bilinear
step straight to 48 px aliases the fine lines (brows, mouth) the model reads."""


def to_grey(image: np.ndarray) -> np.ndarray:
    return image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)


def eye_angle(landmarks: tuple[tuple[float, float], ...] | None) -> float:
    """Degrees the face is rolled (positive: the eye on the image's right is lower)."""
    if not landmarks:
        return 0.0
    (rx, ry), (lx, ly) = landmarks[0], landmarks[1]
    return math.degrees(math.atan2(ly - ry, lx - rx))


def face_crop(grey: np.ndarray, face: Detection | Box, scale: float,
              size: int = INPUT_SIZE) -> np.ndarray:
    """A `size` x `size` crop centred on the box, `scale` times its larger side, rotated so the
    eyes are level when the detection has landmarks. Parts outside the image repeat its edge."""
    detection = face if isinstance(face, Detection) else Detection(face)
    box = detection.box
    side = max(1.0, scale * max(box.w, box.h))
    cx, cy = box.x + box.w / 2, box.y + box.h / 2
    half = math.ceil(side * 0.75) + 1  # covers the square at any rotation (sqrt(2) / 2 < 0.75)
    x0, y0 = round(cx) - half, round(cy) - half
    region = _cut(grey, x0, y0, 2 * half)
    work = size * _OVERSAMPLE
    shrink = min(1.0, 2 * work / side)  # area-average big faces first; keep 2x headroom
    if shrink < 1.0:
        side_px = max(1, round(region.shape[0] * shrink))
        region = cv2.resize(region, (side_px, side_px), interpolation=cv2.INTER_AREA)
    ratio = region.shape[0] / (2 * half)
    centre = ((cx - x0) * ratio, (cy - y0) * ratio)
    matrix = cv2.getRotationMatrix2D(centre, eye_angle(detection.landmarks),
                                     work / (side * ratio))
    matrix[:, 2] += (work / 2 - centre[0], work / 2 - centre[1])
    rotated = cv2.warpAffine(region, matrix, (work, work), flags=cv2.INTER_LINEAR,
                             borderMode=cv2.BORDER_REPLICATE)
    return cv2.resize(rotated, (size, size), interpolation=cv2.INTER_AREA)


ALIGNED_SIZE = 112
ALIGNED_TEMPLATE = np.array([(38.2946, 51.6963), (73.5318, 51.5014), (56.0252, 71.7366),
                             (41.5493, 92.3655), (70.7299, 92.2041)], np.float32)
"""Where the five landmarks fall in a 112x112 aligned face (the ArcFace template), which
models trained on aligned real-world faces (RAF-DB's) expect."""


def aligned_crop(image: np.ndarray, landmarks: tuple[tuple[float, float], ...]) -> np.ndarray:
    """The 112x112 colour face warped by the similarity transform that best puts its five
    landmarks on the template: the input of models trained on aligned faces."""
    colour = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR) if image.ndim == 2 else image
    points = np.asarray(landmarks, np.float32)
    matrix, _ = cv2.estimateAffinePartial2D(points, ALIGNED_TEMPLATE, method=cv2.LMEDS)
    if matrix is None or not np.isfinite(matrix).all():
        raise ValueError("the landmarks do not define a face")
    return cv2.warpAffine(colour, matrix, (ALIGNED_SIZE, ALIGNED_SIZE), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_REPLICATE)


def model_crop(grey: np.ndarray, face: Detection, settings: FaceSettings) -> np.ndarray:
    """The crop the emotion model reads, framed and aligned as the settings say."""
    return face_crop(grey, face if settings.align_eyes else Detection(face.box),
                     settings.crop_scale)


def _cut(grey: np.ndarray, x0: int, y0: int, side: int) -> np.ndarray:
    """grey[y0:y0+side, x0:x0+side], its edge repeated where the square leaves the image."""
    height, width = grey.shape[:2]
    cx0, cy0 = max(0, x0), max(0, y0)
    cx1, cy1 = min(width, x0 + side), min(height, y0 + side)
    if cx1 <= cx0 or cy1 <= cy0:
        return np.zeros((side, side), grey.dtype)
    inside = grey[cy0:cy1, cx0:cx1]
    pads = (cy0 - y0, y0 + side - cy1, cx0 - x0, x0 + side - cx1)
    if any(pads):
        inside = cv2.copyMakeBorder(inside, *pads, cv2.BORDER_REPLICATE)
    return inside
