"""The small records that flow between the pipeline stages, one way:
VideoJob -> Frame -> Face -> Observation -> SessionResult."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

EMOTIONS: tuple[str, ...] = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
"""FER2013 label order: the index of a class is its FER2013 label."""

NEGATIVE_EMOTIONS: frozenset[str] = frozenset({"angry", "sad", "fear"})

INPUT_SIZE = 48
"""Side of the grey square face crop the emotion model reads."""


@dataclass(frozen=True)
class VideoJob:
    """One video to analyse, with who and when it shows, worked out from its path."""

    path: Path
    student_id: str
    session_id: str
    recorded_at: datetime
    sha256: str = ""
    source: str = ""
    """Where a live session was read from (`live: camera 0`), stored instead of the path."""


@dataclass(frozen=True)
class Box:
    x: int
    y: int
    w: int
    h: int

    @property
    def area(self) -> int:
        return self.w * self.h


@dataclass(frozen=True)
class Detection:
    """A face a detector found: its box, and where it has them the five landmarks (the
    subject's right eye, left eye, nose tip, right and left mouth corners, in image pixels)."""

    box: Box
    landmarks: tuple[tuple[float, float], ...] | None = None
    score: float = 1.0


@dataclass
class Frame:
    """A representative frame of a sampling window inside a scene."""

    t_s: float
    index: int
    image: np.ndarray
    """BGR, full resolution."""
    scene: int
    sharpness: float


@dataclass
class Face:
    """A face found in a key frame; it keeps the frame's time and index, not its image, so
    that a full-size frame is freed as soon as its faces are found."""

    t_s: float
    frame_index: int
    box: Box
    crop: np.ndarray
    """48x48 grey, aligned and framed relative to the face, ready for the emotion model."""
    aligned: np.ndarray | None = None
    """112x112 colour (BGR), warped onto the five-landmark template, for models trained on
    aligned real-world faces; None without landmarks (the Haar detector)."""


@dataclass(frozen=True)
class Observation:
    """What the emotion model saw in one analysed frame (one face, or none)."""

    t_s: float
    frame_index: int
    box: Box | None
    probabilities: tuple[float, ...] | None
    label: str | None
    smoothed_label: str | None = None

    @property
    def has_face(self) -> bool:
        return self.box is not None


@dataclass(frozen=True)
class VideoInfo:
    fps: float
    frame_count: int
    duration_s: float
    width: int
    height: int
    """As displayed: a portrait phone recording is taller than wide."""
    scenes: int
    undecodable_frames: int = 0
    notes: tuple[str, ...] = ()
    """Data quality: damage met, choices made (which video stream), in words."""


@dataclass(frozen=True)
class Assessment:
    """The level a rule set gave, the rule that fired and the numbers that made it fire."""

    level: str
    rule: str
    explanation: str
    evidence: dict[str, float] = field(default_factory=dict)
    rules_version: str = ""


@dataclass(frozen=True)
class EvidenceFrame:
    """One kept face: where it is in the video, what the model read, and why it was kept."""

    t_s: float
    frame_index: int
    label: str
    negative_probability: float
    reason: str
    """Why it was kept: `evidence.STRETCH` or `evidence.MOST_NEGATIVE`."""
    jpeg: bytes


@dataclass
class SessionResult:
    job: VideoJob
    info: VideoInfo
    observations: list[Observation]
    metrics: dict[str, Any]
    assessment: Assessment
    model_version: str
    model_accuracy: float | None = None
    stage_seconds: dict[str, float] = field(default_factory=dict)
    """Where the analysis time went (not stored)."""
    evidence_frames: list[EvidenceFrame] = field(default_factory=list)
    """Thumbnails of the faces behind the level, in time order; only with `--evidence N`."""

    @property
    def level(self) -> str:
        return self.assessment.level
