"""Following the student's face from one key frame to the next."""

from __future__ import annotations

import cv2
import numpy as np

from screener.domain import Box, Detection, Face, Frame
from screener.faces.crop import aligned_crop, model_crop, to_grey
from screener.faces.detector import FaceDetector
from screener.faces.upright import upright_face
from screener.settings import FaceSettings

_TRACKED_FACE_PX = 80
"""Near the last face, the search image is scaled so that face is about this wide: small
enough to be cheap, well above the detectors' smallest faces."""

_TRACKED_SIZE_RANGE = (0.6, 1.6)
"""How much a tracked face may shrink or grow between key frames and still be the same face."""

STUDENT_SCORE_MARGIN = 0.25
"""The student's face is the largest of the faces scoring within this of the most confident
one: at YuNet's low threshold a large, doubtful box (a badge, a poster) must not win on size."""


def student_face(found: list[Detection]) -> Detection | None:
    if not found:
        return None
    best = max(d.score for d in found)
    return max((d for d in found if d.score >= best - STUDENT_SCORE_MARGIN),
               key=lambda d: d.box.area)


def faces_in_frame(frame: Frame, detector: FaceDetector, settings: FaceSettings) -> list[Face]:
    """The student's face, or every face (largest first) when `keep_all` is set."""
    return [cut_face(frame, d, detector, settings)[0] for d in detections(frame, detector,
                                                                          settings)]


def detections(frame: Frame, detector: FaceDetector, settings: FaceSettings) -> list[Detection]:
    found = detector.detect(frame.image)
    if settings.keep_all:
        return sorted(found, key=lambda d: d.box.area, reverse=True)
    return [d for d in [student_face(found)] if d is not None]


def cut_face(frame: Frame, detection: Detection, detector: FaceDetector,
             settings: FaceSettings, turns: int | None = None) -> tuple[Face, int]:
    """The face's crops, cut upright (see `upright`) when the detector gives landmarks, and
    the quarter turns that took."""
    image, upright = frame.image, detection
    if settings.upright and detection.landmarks is not None:
        image, upright, turns = upright_face(frame.image, detection, detector, turns)
    aligned = None
    if settings.aligned_crop and upright.landmarks is not None:
        try:
            aligned = aligned_crop(image, upright.landmarks)
        except ValueError:
            aligned = None
    crop = model_crop(to_grey(image), upright, settings)
    return Face(frame.t_s, frame.index, detection.box, crop, aligned), turns or 0


class FaceTracker:
    """Finds the student's face in consecutive key frames of one video.

    Searching only around the last face, at about its size, is cheaper than a full-frame
    search. The full search still runs when the face is lost, at a cut, and every
    `full_search_every` key frames, so a face that appears elsewhere is not missed long.
    With `keep_all` every key frame gets the full search. Not thread-safe: one per video."""

    def __init__(self, detector: FaceDetector, settings: FaceSettings) -> None:
        self.detector, self.settings = detector, settings
        self._last: Box | None = None
        self._scene = -1
        self._tracked = 0
        self._turns = 0

    def faces(self, frame: Frame) -> list[Face]:
        near = None
        if (self._last is not None and frame.scene == self._scene
                and self._tracked < self.settings.full_search_every
                and not self.settings.keep_all):
            near = self._search_near(frame.image, self._last)
        if near is None:
            found = []
            for detection in detections(frame, self.detector, self.settings):
                face, turns = cut_face(frame, detection, self.detector, self.settings)
                found.append(face)
                self._turns = turns if len(found) == 1 else self._turns
            self._tracked = 0
        else:
            face, _ = cut_face(frame, near, self.detector, self.settings, self._turns)
            found = [face]
            self._tracked += 1
        self._last = found[0].box if found and not self.settings.keep_all else None
        self._scene = frame.scene
        return found

    def _search_near(self, image: np.ndarray, last: Box) -> Detection | None:
        height, width = image.shape[:2]
        margin = max(last.w, last.h) // 2
        x0, y0 = max(0, last.x - margin), max(0, last.y - margin)
        x1 = min(width, last.x + last.w + margin)
        y1 = min(height, last.y + last.h + margin)
        scale = min(1.0, _TRACKED_FACE_PX / max(1, last.w))
        region = image[y0:y1, x0:x1]
        if scale < 1.0:
            region = cv2.resize(region, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        expected = last.w * scale
        sizes = (round(expected * _TRACKED_SIZE_RANGE[0]), round(expected * _TRACKED_SIZE_RANGE[1]))
        near = [d for d in self.detector.detect(region, sizes) if sizes[0] <= d.box.w <= sizes[1]]
        if not near:
            return None
        d = student_face(near)
        b = d.box
        points = None if d.landmarks is None else tuple(
            (x0 + x / scale, y0 + y / scale) for x, y in d.landmarks)
        return Detection(Box(x0 + round(b.x / scale), y0 + round(b.y / scale),
                             round(b.w / scale), round(b.h / scale)), points, d.score)
