"""Turning a face upright when the video is not.

A phone or webcam video without rotation metadata can show the student sideways or upside
down. YuNet still finds such faces, but it places the five landmarks as if the face were
upright (the "eyes" at the top of the box), so the landmarks cannot tell which way is up,
and an upside-down face read as it is looks, to the emotion model, 100% negative. The detector
itself can tell: it scores an upright face higher than the same face turned. So the face's
surroundings are scored at each quarter turn, at a small size, and the face is cut from the
best-scoring turn, where its landmarks are right (422 of 424 turned web photographs here).
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from screener.domain import Box, Detection
from screener.faces.detector import FaceDetector

TURNS = (None, cv2.ROTATE_90_CLOCKWISE, cv2.ROTATE_180, cv2.ROTATE_90_COUNTERCLOCKWISE)
"""Quarter turns clockwise, by count."""

_PROBE_PX = 96
"""Side of the square the turns are scored at: cheap, and well above the smallest face."""

_CONTEXT = 1.6
"""The square scored and cut around a face, as a multiple of the box's larger side."""


def turned(image: np.ndarray, quarter_turns: int) -> np.ndarray:
    code = TURNS[quarter_turns % 4]
    return image if code is None else cv2.rotate(image, code)


def surroundings(image: np.ndarray, box: Box,
                 context: float = _CONTEXT) -> tuple[np.ndarray, int, int]:
    """The square around the box (edges repeated outside the image), and its top-left corner."""
    side = max(2, math.ceil(max(box.w, box.h) * context))
    x0 = round(box.x + box.w / 2 - side / 2)
    y0 = round(box.y + box.h / 2 - side / 2)
    padded = cv2.copyMakeBorder(image, side, side, side, side, cv2.BORDER_REPLICATE)
    return padded[y0 + side : y0 + 2 * side, x0 + side : x0 + 2 * side], x0, y0


def upright_turns(image: np.ndarray, box: Box, detector: FaceDetector) -> int:
    """Quarter turns clockwise that make the face in `box` upright (0 when it already is)."""
    region, _, _ = surroundings(image, box)
    probe = cv2.resize(region, (_PROBE_PX, _PROBE_PX), interpolation=cv2.INTER_AREA)
    scores = []
    for turns in range(4):
        found = detector.detect(turned(probe, turns), (0, _PROBE_PX * 2))
        scores.append(max((d.score for d in found), default=0.0))
    return int(np.argmax(scores))


def upright_face(image: np.ndarray, face: Detection, detector: FaceDetector,
                 turns: int | None = None) -> tuple[np.ndarray, Detection, int]:
    """The image and detection to cut the face from, and the turns found: the face's
    surroundings turned upright and the face found again there (with landmarks that are
    right), or the frame itself when the face is upright already or is not found again.
    `turns` skips the scoring when the caller knows them (the same face a key frame later)."""
    if turns is None:
        turns = upright_turns(image, face.box, detector)
    if turns == 0:
        return image, face, 0
    region, _, _ = surroundings(image, face.box)
    view = turned(region, turns)
    found = detector.detect(view, (0, max(view.shape[:2]) * 2))
    if not found:
        return image, face, turns
    centre = np.array(view.shape[1::-1]) / 2
    best = min(found, key=lambda d: float(np.hypot(d.box.x + d.box.w / 2 - centre[0],
                                                    d.box.y + d.box.h / 2 - centre[1])))
    return view, best, turns
