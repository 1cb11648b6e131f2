"""Classification metrics of the emotion model: accuracy, per-class precision/recall/F1, and
the confusion matrix, as the original write-up asked (the precision of the model per class)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from screener.emotions import EMOTIONS


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

    def to_dict(self) -> dict[str, Any]:
        return {
            "accuracy": self.accuracy,
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
