"""Face sources beyond FER2013's labels: the FER+ crowd votes on the same images, and the web
photographs of `datasets/wild`, cut as a scan cuts faces and split by person.

A model tuned on some people and measured on the same people looks better than it is, so
`wild` is halved by person with a fixed hash: the `fit` half may be trained and tuned on, the
`held_out` half is only ever reported.
"""

from __future__ import annotations

import csv
import zlib
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from screener.domain import EMOTIONS
from screener.faces import make_detector, model_crop, student_face, to_grey
from screener.faces.crop import aligned_crop
from screener.settings import FaceSettings

FERPLUS_COLUMNS = ("neutral", "happiness", "surprise", "sadness", "anger", "disgust", "fear")
_FERPLUS_AS = {"neutral": "neutral", "happiness": "happy", "surprise": "surprise",
               "sadness": "sad", "anger": "angry", "disgust": "disgust", "fear": "fear"}
_FERPLUS_TRUSTED = {"unique", "unique_by_fer2013_label", "duplicate_resolved",
                    "duplicate_same_votes"}
"""Rows whose votes belong to their image beyond doubt (the data set's README)."""

_SMALLEST_SIDE = 100
"""Photographs smaller than this are enlarged before detection, as a scan of a small video is."""


def wild_half(person: str) -> str:
    """`fit` or `held_out`: the same person always falls in the same half."""
    return "held_out" if zlib.crc32(person.encode("utf-8")) % 2 else "fit"


def fit_fold(person: str) -> int:
    """0 or 1: which of two folds of persons a fit person falls in, from the hash's next bit,
    so that a member trained on one fold can be measured on persons it never saw (cross-fitting)
    without reading the held-out half."""
    return (zlib.crc32(person.encode("utf-8")) >> 1) % 2


def ferplus_votes(csv_path: Path, image_paths: list[str]) -> np.ndarray:
    """(N, 7) vote shares in `EMOTIONS` order for each image, NaN where FER+ has no trusted
    vote on an emotion (contempt, unknown and not-a-face votes are left out)."""
    votes: dict[str, np.ndarray] = {}
    with csv_path.open(newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            if row["match_status"] not in _FERPLUS_TRUSTED:
                continue
            counts = np.zeros(len(EMOTIONS), np.float32)
            for column in FERPLUS_COLUMNS:
                counts[EMOTIONS.index(_FERPLUS_AS[column])] = float(row[column])
            if counts.sum() > 0:
                votes[row["path"]] = counts / counts.sum()
    shares = np.full((len(image_paths), len(EMOTIONS)), np.nan, np.float32)
    for i, path in enumerate(image_paths):
        key = "/".join(Path(path).parts[-3:])
        if key in votes:
            shares[i] = votes[key]
    return shares


@dataclass
class WildFaces:
    """The largest face of each photograph, as both kinds of crop."""

    grey: np.ndarray
    """(N, 48, 48) uint8, as `screener.faces.model_crop` cuts it."""
    aligned: np.ndarray
    """(N, 112, 112, 3) uint8 BGR, aligned on the landmarks."""
    labels: np.ndarray
    persons: list[str]
    paths: list[str]
    missed: int
    """Photographs in which no face was found."""

    def half(self, which: str) -> WildFaces:
        keep = np.array([wild_half(p) == which for p in self.persons], bool)
        return self._keep(keep)

    def fold(self, which: int) -> WildFaces:
        """The faces of the persons in `fit_fold` `which`."""
        return self._keep(np.array([fit_fold(p) == which for p in self.persons], bool))

    def _keep(self, keep: np.ndarray) -> WildFaces:
        return WildFaces(self.grey[keep], self.aligned[keep], self.labels[keep],
                         [p for p, k in zip(self.persons, keep, strict=True) if k],
                         [p for p, k in zip(self.paths, keep, strict=True) if k], self.missed)


def load_wild(root: Path, settings: FaceSettings | None = None, half: str | None = None,
              limit: int | None = None) -> WildFaces:
    """Faces of `root/labels.csv` (path, label, person), detected and cut as a scan does;
    `limit` takes that many photographs, evenly spread."""
    settings = settings or FaceSettings()
    detector = make_detector(settings)
    grey, aligned, labels, persons, paths, missed = [], [], [], [], [], 0
    with (root / "labels.csv").open(newline="", encoding="utf-8") as handle:
        rows = [r for r in csv.DictReader(handle) if half is None or wild_half(r["person"]) == half]
    if limit and len(rows) > limit:
        rows = [rows[round(i)] for i in np.linspace(0, len(rows) - 1, limit)]
    for row in rows:
        image = cv2.imread(str(root / row["path"]))
        if image is None:
            missed += 1
            continue
        if min(image.shape[:2]) < _SMALLEST_SIDE:
            factor = _SMALLEST_SIDE * 1.6 / min(image.shape[:2])
            image = cv2.resize(image, None, fx=factor, fy=factor, interpolation=cv2.INTER_CUBIC)
        face = student_face(detector.detect(image))
        if face is None or face.landmarks is None:
            missed += 1
            continue
        grey.append(model_crop(to_grey(image), face, settings))
        aligned.append(aligned_crop(image, face.landmarks))
        labels.append(EMOTIONS.index(row["label"]))
        persons.append(row["person"])
        paths.append(row["path"])
    return WildFaces(np.array(grey, np.uint8).reshape(-1, 48, 48),
                     np.array(aligned, np.uint8).reshape(-1, 112, 112, 3),
                     np.array(labels, np.int64), persons, paths, missed)
