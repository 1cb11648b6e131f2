"""Annotations drawn on a live frame, as the original real-time program drew them: a box around
each face in its emotion's colour with the smoothed label above it, a small bar per emotion,
and the recent alerts across the top."""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from screener.domain import EMOTIONS, Observation

EMOTION_COLOURS: dict[str, tuple[int, int, int]] = {
    "angry": (0, 0, 255),
    "sad": (255, 0, 0),
    "happy": (0, 255, 255),
    "surprise": (255, 255, 0),
}
"""BGR, the original's choice (red, blue, yellow, cyan); every other emotion is green."""
DEFAULT_COLOUR = (0, 255, 0)
ALERT_COLOUR = (0, 0, 255)

_FONT = cv2.FONT_HERSHEY_SIMPLEX


def colour_of(label: str | None) -> tuple[int, int, int]:
    return EMOTION_COLOURS.get(label or "", DEFAULT_COLOUR)


def draw_annotations(
    image: np.ndarray,
    observations: Sequence[Observation],
    alerts: Sequence[str] = (),
    status: str = "",
) -> np.ndarray:
    """Draws on `image` itself (a frame the caller owns) and returns it."""
    scale = max(0.5, image.shape[1] / 1280)
    thickness = max(2, round(2 * scale))
    for o in observations:
        if o.box is None:
            continue
        label = o.smoothed_label or o.label
        colour = colour_of(label)
        b = o.box
        cv2.rectangle(image, (b.x, b.y), (b.x + b.w, b.y + b.h), colour, thickness)
        cv2.putText(image, label or "", (b.x, max(0, b.y - round(10 * scale))), _FONT,
                    0.8 * scale, colour, thickness, cv2.LINE_AA)
    student = next((o for o in observations if o.probabilities is not None), None)
    if student is not None:
        _probability_bars(image, student.probabilities, scale)  # type: ignore[arg-type]
    y = round(30 * scale)
    for message in alerts:
        cv2.putText(image, message, (round(10 * scale), y), _FONT, 0.8 * scale, ALERT_COLOUR,
                    thickness, cv2.LINE_AA)
        y += round(30 * scale)
    if status:
        cv2.putText(image, status, (round(10 * scale), image.shape[0] - round(10 * scale)),
                    _FONT, 0.5 * scale, (255, 255, 255), max(1, thickness // 2), cv2.LINE_AA)
    return image


def _probability_bars(image: np.ndarray, probabilities: Sequence[float], scale: float) -> None:
    """One bar per emotion in the top right corner, on a dark panel so it reads on any frame."""
    row, width = round(16 * scale), round(120 * scale)
    label_w = round(70 * scale)
    x0 = image.shape[1] - width - label_w - round(10 * scale)
    y0 = round(10 * scale)
    panel = image[y0 : y0 + row * len(EMOTIONS) + 4, x0 : x0 + label_w + width + 4]
    panel[:] = (panel * 0.4).astype(np.uint8)
    for i, (emotion, p) in enumerate(zip(EMOTIONS, probabilities, strict=True)):
        top = y0 + i * row + 2
        cv2.putText(image, emotion, (x0 + 2, top + row - 4), _FONT, 0.4 * scale,
                    (255, 255, 255), 1, cv2.LINE_AA)
        length = round(width * float(p))
        if length:
            cv2.rectangle(image, (x0 + label_w, top + 2),
                          (x0 + label_w + length, top + row - 3), colour_of(emotion), -1)
