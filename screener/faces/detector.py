"""What every face detector offers, and how it fails to load."""

from __future__ import annotations

from typing import Protocol

import numpy as np

from screener.domain import Detection


class DetectorError(RuntimeError):
    """The face detector cannot be loaded (a missing or unreadable model file)."""


class FaceDetector(Protocol):
    def detect(self, image: np.ndarray, sizes: tuple[int, int] | None = None) -> list[Detection]:
        """Faces in a BGR or grey image, in that image's pixel coordinates. `sizes` is the
        smallest and largest face side worth finding, when the caller knows it (a tracked
        face): a detector may use it to search less, and may ignore it."""
        ...
