"""Face detection behind a `FaceDetector` interface, and the crops the emotion model reads.

The default is OpenCV's Haar cascade (Viola-Jones), as in the original project; anything with
a `detect(image) -> list[Box]` method can replace it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import cv2
import numpy as np

from screener.domain import Box, Face, Frame
from screener.emotions import INPUT_SIZE
from screener.settings import FaceSettings


class FaceDetector(Protocol):
    def detect(self, image: np.ndarray, sizes: tuple[int, int] | None = None) -> list[Box]:
        """Faces in a BGR or grey image, in that image's pixel coordinates. `sizes` is the
        smallest and largest face side worth finding, when the caller knows it (a tracked
        face): a detector may use it to search less, and may ignore it."""
        ...


class HaarFaceDetector:
    def __init__(self, settings: FaceSettings, cascade: Path | None = None) -> None:
        path = cascade or Path(cv2.data.haarcascades) / "haarcascade_frontalface_default.xml"
        self._cascade = cv2.CascadeClassifier(str(path))
        if self._cascade.empty():
            raise RuntimeError(f"cannot load Haar cascade {path}")
        self.settings = settings

    def detect(self, image: np.ndarray, sizes: tuple[int, int] | None = None) -> list[Box]:
        grey = to_grey(image)
        scale = min(1.0, self.settings.detect_width / grey.shape[1])
        if scale < 1.0:
            size = (round(grey.shape[1] * scale), round(grey.shape[0] * scale))
            grey = cv2.resize(grey, size, interpolation=cv2.INTER_AREA)
        if sizes is None:
            smallest, largest = int(min(grey.shape[:2]) * self.settings.min_size_frac), 0
        else:
            smallest, largest = round(sizes[0] * scale), round(sizes[1] * scale)
        side = max(20, smallest)
        found = self._cascade.detectMultiScale(
            grey,
            scaleFactor=self.settings.scale_factor,
            minNeighbors=self.settings.min_neighbors,
            minSize=(side, side),
            maxSize=(largest, largest),
        )
        return [
            Box(round(x / scale), round(y / scale), round(w / scale), round(h / scale))
            for (x, y, w, h) in found
        ]


def to_grey(image: np.ndarray) -> np.ndarray:
    return image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)


def crop_face(grey: np.ndarray, box: Box, offsets: tuple[int, int]) -> np.ndarray:
    """The box widened by the margins (clipped to the image), resized to the model input."""
    dx, dy = offsets
    height, width = grey.shape[:2]
    x0, x1 = max(0, box.x - dx), min(width, box.x + box.w + dx)
    y0, y1 = max(0, box.y - dy), min(height, box.y + box.h + dy)
    return cv2.resize(grey[y0:y1, x0:x1], (INPUT_SIZE, INPUT_SIZE), interpolation=cv2.INTER_AREA)


def faces_in_frame(frame: Frame, detector: FaceDetector, settings: FaceSettings) -> list[Face]:
    """The student's face (the largest), or every face when `keep_all` is set."""
    boxes = sorted(detector.detect(frame.image), key=lambda b: b.area, reverse=True)
    if not settings.keep_all:
        boxes = boxes[:1]
    grey = to_grey(frame.image)
    return [Face(frame.t_s, frame.index, box, crop_face(grey, box, settings.offsets))
            for box in boxes]


_TRACKED_FACE_PX = 80
"""Near the last face, the search image is scaled so that face is about this wide: small
enough to be cheap, well above the Haar cascade's 24 px window."""


_TRACKED_SIZE_RANGE = (0.6, 1.6)
"""How much a tracked face may shrink or grow between key frames and still be the same face."""


class FaceTracker:
    """Finds the student's face in consecutive key frames of one video.

    A full-frame search costs ~25 ms at 720p; searching only around the last face, at about
    its size, costs a few. The full search still runs when the face is lost, at a cut, and
    every `full_search_every` key frames, so a face that appears elsewhere is not missed long.
    With `keep_all` every key frame gets the full search. Not thread-safe: one per video."""

    def __init__(self, detector: FaceDetector, settings: FaceSettings) -> None:
        self.detector, self.settings = detector, settings
        self._last: Box | None = None
        self._scene = -1
        self._tracked = 0

    def faces(self, frame: Frame) -> list[Face]:
        box = None
        if (self._last is not None and frame.scene == self._scene
                and self._tracked < self.settings.full_search_every
                and not self.settings.keep_all):
            box = self._search_near(frame.image, self._last)
        if box is None:
            found = faces_in_frame(frame, self.detector, self.settings)
            self._tracked = 0
        else:
            crop = crop_face(to_grey(frame.image), box, self.settings.offsets)
            found = [Face(frame.t_s, frame.index, box, crop)]
            self._tracked += 1
        self._last = found[0].box if found and not self.settings.keep_all else None
        self._scene = frame.scene
        return found

    def _search_near(self, image: np.ndarray, last: Box) -> Box | None:
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
        near = [b for b in self.detector.detect(region, sizes) if sizes[0] <= b.w <= sizes[1]]
        if not near:
            return None
        b = max(near, key=lambda box: box.area)
        return Box(x0 + round(b.x / scale), y0 + round(b.y / scale),
                   round(b.w / scale), round(b.h / scale))


def largest_face_crop(
    detector: FaceDetector, image: np.ndarray, settings: FaceSettings
) -> np.ndarray | None:
    boxes = detector.detect(image)
    if not boxes:
        return None
    return crop_face(to_grey(image), max(boxes, key=lambda b: b.area), settings.offsets)
