"""Face detection behind a `FaceDetector` interface, and the crops the emotion model reads.

One module per detector, as PySceneDetect keeps one per scene detector: `yunet` (the default,
a small CNN with landmarks) and `haar` (the original project's cascade). `crop` frames and
aligns a face for the model; `tracking` follows the student's face between key frames.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from screener.domain import Detection
from screener.faces.crop import face_crop, model_crop, to_grey
from screener.faces.haar import HaarFaceDetector
from screener.faces.tracking import FaceTracker, faces_in_frame, student_face
from screener.faces.yunet import YuNetFaceDetector
from screener.settings import FaceSettings

__all__ = [
    "DetectorError", "FaceDetector", "FaceTracker", "HaarFaceDetector", "YuNetFaceDetector",
    "face_crop", "faces_in_frame", "largest_face_crop", "make_detector", "model_crop",
    "student_face", "to_grey",
]


class DetectorError(RuntimeError):
    """The face detector cannot be loaded (a missing or unreadable model file)."""


class FaceDetector(Protocol):
    def detect(self, image: np.ndarray, sizes: tuple[int, int] | None = None) -> list[Detection]:
        """Faces in a BGR or grey image, in that image's pixel coordinates. `sizes` is the
        smallest and largest face side worth finding, when the caller knows it (a tracked
        face): a detector may use it to search less, and may ignore it."""
        ...


DETECTORS = {"yunet": YuNetFaceDetector, "haar": HaarFaceDetector}


def make_detector(settings: FaceSettings) -> FaceDetector:
    return DETECTORS[settings.detector](settings)


def largest_face_crop(
    detector: FaceDetector, image: np.ndarray, settings: FaceSettings
) -> np.ndarray | None:
    face = student_face(detector.detect(image))
    if face is None:
        return None
    return model_crop(to_grey(image), face, settings)
