"""Classification metrics of the emotion model: accuracy, per-class precision/recall/F1, and
the confusion matrix, as the original write-up asked (the precision of the model per class);
and how far its confidence can be trusted (expected calibration error, reliability diagram)."""

from __future__ import annotations

import csv
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from screener.domain import EMOTIONS


@dataclass(frozen=True)
class ClassMetrics:
    precision: float
    recall: float
    f1: float
    support: int


@dataclass(frozen=True)
class Evaluation:
    accuracy: float
    per_class: dict[str, ClassMetrics]
    confusion: list[list[int]]
    """Rows are true classes, columns predicted, both in `EMOTIONS` order."""
    count: int
    ece: float | None = None
    """Expected calibration error, when the evaluation had the probabilities."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "accuracy": self.accuracy,
            **({"ece": self.ece} if self.ece is not None else {}),
            "count": self.count,
            "classes": list(EMOTIONS),
            "per_class": {k: vars(v) for k, v in self.per_class.items()},
            "confusion": self.confusion,
        }


def evaluate_predictions(labels: np.ndarray, predicted: np.ndarray) -> Evaluation:
    labels = np.asarray(labels, dtype=np.int64)
    predicted = np.asarray(predicted, dtype=np.int64)
    n = len(EMOTIONS)
    confusion = np.zeros((n, n), dtype=np.int64)
    np.add.at(confusion, (labels, predicted), 1)
    per_class = {}
    for i, name in enumerate(EMOTIONS):
        tp = confusion[i, i]
        predicted_i = confusion[:, i].sum()
        actual_i = confusion[i, :].sum()
        precision = tp / predicted_i if predicted_i else 0.0
        recall = tp / actual_i if actual_i else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        per_class[name] = ClassMetrics(float(precision), float(recall), float(f1), int(actual_i))
    accuracy = float(np.trace(confusion) / max(1, len(labels)))
    return Evaluation(accuracy, per_class, confusion.tolist(), int(len(labels)))


def evaluate_probabilities(labels: np.ndarray, probabilities: np.ndarray) -> Evaluation:
    """`evaluate_predictions` of the likeliest classes, with the calibration error as well."""
    evaluation = evaluate_predictions(labels, np.asarray(probabilities).argmax(axis=1))
    return replace(evaluation, ece=expected_calibration_error(probabilities, labels))


CALIBRATION_BINS = 15


def reliability(
    probabilities: np.ndarray, labels: np.ndarray, bins: int = CALIBRATION_BINS
) -> list[tuple[float, float, int]]:
    """(mean confidence, accuracy, count) of each of `bins` equal-width confidence bins
    (lo, hi], where confidence is the probability of the likeliest class."""
    probabilities = np.asarray(probabilities, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64)
    confidence = probabilities.max(axis=1)
    correct = probabilities.argmax(axis=1) == labels
    index = np.clip(np.ceil(confidence * bins).astype(np.int64) - 1, 0, bins - 1)
    rows = []
    for b in range(bins):
        members = index == b
        count = int(members.sum())
        if count:
            rows.append((float(confidence[members].mean()), float(correct[members].mean()), count))
        else:
            rows.append((0.0, 0.0, 0))
    return rows


def expected_calibration_error(
    probabilities: np.ndarray, labels: np.ndarray, bins: int = CALIBRATION_BINS
) -> float:
    """The gap between confidence and accuracy, averaged over equal-width confidence bins
    weighted by how many images fall in each (Naeini et al. 2015; Guo et al. 2017)."""
    total = len(labels)
    if total == 0:
        return 0.0
    return float(
        sum(count * abs(accuracy - confidence) for confidence, accuracy, count in
            reliability(probabilities, labels, bins)) / total
    )


def draw_reliability(
    curves: dict[str, tuple[np.ndarray, np.ndarray]], path: Path, title: str = ""
) -> None:
    """Reliability diagram, drawn with OpenCV: accuracy against confidence per bin for each
    named set of (probabilities, labels), over the diagonal of perfect calibration."""
    size, left, top, bottom = 480, 70, 50, 80 + 22 * len(curves)
    image = np.full((top + size + bottom, left + size + 30, 3), 255, np.uint8)
    font = cv2.FONT_HERSHEY_SIMPLEX

    def point(confidence: float, accuracy: float) -> tuple[int, int]:
        return left + int(round(confidence * size)), top + size - int(round(accuracy * size))

    for tick in np.linspace(0, 1, 6):
        cv2.line(image, point(tick, 0), point(tick, 1), (230, 230, 230), 1)
        cv2.line(image, point(0, tick), point(1, tick), (230, 230, 230), 1)
        cv2.putText(image, f"{tick:.1f}", (point(tick, 0)[0] - 12, top + size + 18), font,
                    0.4, (0, 0, 0), 1)
        cv2.putText(image, f"{tick:.1f}", (left - 34, point(0, tick)[1] + 4), font, 0.4,
                    (0, 0, 0), 1)
    cv2.rectangle(image, point(0, 0), point(1, 1), (0, 0, 0), 1)
    cv2.line(image, point(0, 0), point(1, 1), (150, 150, 150), 1, cv2.LINE_AA)
    colours = [(40, 40, 220), (200, 110, 20), (30, 160, 30), (160, 40, 160)]
    for k, (name, (probabilities, labels)) in enumerate(curves.items()):
        colour = colours[k % len(colours)]
        rows = [(c, a) for c, a, n in reliability(probabilities, labels) if n]
        for (c0, a0), (c1, a1) in zip(rows, rows[1:], strict=False):
            cv2.line(image, point(c0, a0), point(c1, a1), colour, 2, cv2.LINE_AA)
        for c, a in rows:
            cv2.circle(image, point(c, a), 4, colour, -1, cv2.LINE_AA)
        ece = expected_calibration_error(probabilities, labels)
        y = top + size + 62 + 22 * k
        cv2.line(image, (left, y - 5), (left + 24, y - 5), colour, 2)
        cv2.putText(image, f"{name}: ECE {ece:.3f}", (left + 32, y), font, 0.5, (0, 0, 0), 1)
    cv2.putText(image, "confidence", (left + size // 2 - 40, top + size + 38), font, 0.45,
                (0, 0, 0), 1)
    cv2.putText(image, "accuracy", (4, top - 12), font, 0.45, (0, 0, 0), 1)
    cv2.putText(image, title, (left + 70, top - 20), font, 0.5, (0, 0, 0), 1)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), image):
        raise OSError(f"cannot write {path}")


def write_probabilities(
    path: Path, image_paths: list[str], labels: np.ndarray, probabilities: np.ndarray
) -> None:
    """One row per image: its path, true label and the probability of each emotion."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["path", "label", *EMOTIONS])
        for image, label, row in zip(image_paths, labels, probabilities, strict=True):
            writer.writerow([image, EMOTIONS[int(label)], *(f"{p:.6f}" for p in row)])


def draw_confusion(evaluation: Evaluation, path: Path, title: str = "") -> None:
    """A row-normalised confusion matrix as a PNG, drawn with OpenCV (no plotting library)."""
    matrix = np.asarray(evaluation.confusion, dtype=np.float64)
    rows = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    cell, left, top = 70, 110, 60
    n = len(EMOTIONS)
    image = np.full((top + cell * n + 90, left + cell * n + 20, 3), 255, np.uint8)
    font = cv2.FONT_HERSHEY_SIMPLEX
    for i in range(n):
        for j in range(n):
            shade = int(255 - 200 * rows[i, j])
            x0, y0 = left + j * cell, top + i * cell
            cv2.rectangle(image, (x0, y0), (x0 + cell, y0 + cell), (255, shade, shade), -1)
            cv2.rectangle(image, (x0, y0), (x0 + cell, y0 + cell), (200, 200, 200), 1)
            ink = (255, 255, 255) if rows[i, j] > 0.6 else (0, 0, 0)
            cv2.putText(image, f"{rows[i, j]:.2f}", (x0 + 12, y0 + 32), font, 0.5, ink, 1)
            cv2.putText(image, f"{int(matrix[i, j])}", (x0 + 12, y0 + 52), font, 0.4, ink, 1)
        cv2.putText(image, EMOTIONS[i], (8, top + i * cell + 40), font, 0.5, (0, 0, 0), 1)
        label_origin = (left + i * cell + 4, top + n * cell + 22)
        cv2.putText(image, EMOTIONS[i][:8], label_origin, font, 0.45, (0, 0, 0), 1)
    cv2.putText(image, "true \\ predicted", (8, 40), font, 0.5, (0, 0, 0), 1)
    caption = title or f"accuracy {evaluation.accuracy:.3f} on {evaluation.count} images"
    cv2.putText(image, caption, (left, top + n * cell + 60), font, 0.55, (0, 0, 0), 1)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), image):
        raise OSError(f"cannot write {path}")
