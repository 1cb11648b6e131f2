"""OpenCV's Haar cascade (Viola and Jones), the original project's detector: no landmarks, so
its crops are framed relative to the box but not rotated."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from screener.domain import Box, Detection
from screener.faces.crop import to_grey
from screener.faces.detector import DetectorError
from screener.settings import FaceSettings


class HaarFaceDetector:
    def __init__(self, settings: FaceSettings, cascade: Path | None = None) -> None:
        path = cascade or Path(cv2.data.haarcascades) / "haarcascade_frontalface_default.xml"
        self._cascade = cv2.CascadeClassifier(str(path))
        if self._cascade.empty():
            raise DetectorError(f"cannot load Haar cascade {path}")
        self.settings = settings

    def detect(self, image: np.ndarray, sizes: tuple[int, int] | None = None) -> list[Detection]:
        grey = to_grey(image)
        scale = min(1.0, self.settings.width_for(grey.shape[1]) / grey.shape[1])
        if scale < 1.0:
            size = (round(grey.shape[1] * scale), round(grey.shape[0] * scale))
            grey = cv2.resize(grey, size, interpolation=cv2.INTER_AREA)
        if sizes is None:
            smallest, largest = self.settings.smallest_face(grey.shape), 0
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
            Detection(Box(round(x / scale), round(y / scale), round(w / scale), round(h / scale)))
            for (x, y, w, h) in found
        ]
