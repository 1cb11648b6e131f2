"""Face detection behind a `FaceDetector` interface, and the crops the emotion model reads.

One module per detector, as PySceneDetect keeps one per scene detector: `yunet` (the default,
a small CNN with landmarks) and `haar` (the original project's cascade), both meeting the
interface in `detector`. `crop` frames and aligns a face for the model; `tracking` picks the
student's face and follows it between key frames.
"""

from __future__ import annotations

import numpy as np

from screener.faces.crop import face_crop, model_crop, to_grey
from screener.faces.detector import DetectorError, FaceDetector
from screener.faces.haar import HaarFaceDetector
from screener.faces.tracking import FaceTracker, faces_in_frame, student_face
from screener.faces.yunet import YuNetFaceDetector
from screener.settings import FaceSettings

__all__ = [
    "DetectorError", "FaceDetector", "FaceTracker", "HaarFaceDetector", "YuNetFaceDetector",
    "face_crop", "faces_in_frame", "faces_version", "largest_face_crop", "make_detector",
    "model_crop", "student_face", "to_grey",
]


DETECTORS = {"yunet": YuNetFaceDetector, "haar": HaarFaceDetector}


def make_detector(settings: FaceSettings) -> FaceDetector:
    return DETECTORS[settings.detector](settings)


def faces_version(settings: FaceSettings) -> str:
    """How faces reach the model, as stored beside the model's version: a new detector,
    threshold or framing changes what the model reads, so stored sessions are re-analysed as
    after a model change."""
    found_by = (f"yunet{settings.score_threshold:g}" if settings.detector == "yunet"
                else "haar")
    aligned = "+eyes" if settings.align_eyes and settings.detector == "yunet" else ""
    upright = "+upright" if settings.upright and settings.detector == "yunet" else ""
    return f"{found_by}+crop{settings.crop_scale:g}{aligned}{upright}"


def largest_face_crop(
    detector: FaceDetector, image: np.ndarray, settings: FaceSettings
) -> np.ndarray | None:
    face = student_face(detector.detect(image))
    if face is None:
        return None
    return model_crop(to_grey(image), face, settings)
