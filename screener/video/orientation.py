"""How to turn a decoded picture upright, from the display matrix the file carries.

Phones record portrait video as sideways pixels plus a display matrix (rotation, sometimes a
mirror); players apply it, and so must the analysis, or the faces lie on their side and the
face detector misses them. The steps are the ones FFmpeg's command line inserts
(fftools' autorotate: transpose, hflip, vflip), so a frame looks as `ffplay` shows it.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Sequence

import cv2
import numpy as np

Steps = tuple[str, ...]
"""In order, each one of "clock", "cclock", "clock_flip", "cclock_flip", "hflip", "vflip"."""

UPRIGHT: Steps = ()
_TRANSPOSING = {"clock", "cclock", "clock_flip", "cclock_flip"}


def steps_from_matrix(matrix: Sequence[int] | bytes | None) -> Steps:
    """The steps for a display matrix (nine 16.16 / 2.30 fixed-point integers, FFmpeg's
    `AV_FRAME_DATA_DISPLAYMATRIX` layout, or its 36-byte payload). Angles other than quarter
    turns are rare and left as they are."""
    if matrix is None:
        return UPRIGHT
    if isinstance(matrix, bytes | bytearray | memoryview):
        if len(matrix) < 36:
            return UPRIGHT
        matrix = struct.unpack("=9i", bytes(matrix)[:36])
    m = [float(v) / 65536 for v in matrix[:6]]
    theta = _clockwise_degrees(m)
    if theta is None:
        return UPRIGHT
    if abs(theta - 90) < 1:
        return ("cclock_flip",) if m[3] > 0 else ("clock",)
    if abs(theta - 180) < 1:
        return (("hflip",) if m[0] < 0 else ()) + (("vflip",) if m[4] < 0 else ())
    if abs(theta - 270) < 1:
        return ("clock_flip",) if m[3] < 0 else ("cclock",)
    if abs(theta) < 1 and m[4] < 0:
        return ("vflip",)
    return UPRIGHT


def _clockwise_degrees(m: list[float]) -> float | None:
    """fftools' get_rotation: av_display_rotation_get negated, in [0, 360)."""
    scale0, scale1 = math.hypot(m[0], m[3]), math.hypot(m[1], m[4])
    if scale0 == 0 or scale1 == 0:
        return None
    counter_clockwise = -math.degrees(math.atan2(m[1] / scale1, m[0] / scale0))
    theta = -round(counter_clockwise)
    return theta - 360 * math.floor(theta / 360 + 0.9 / 360)


def swaps_sides(steps: Steps) -> bool:
    return any(step in _TRANSPOSING for step in steps)


def upright(image: np.ndarray, steps: Steps) -> np.ndarray:
    for step in steps:
        image = _APPLY[step](image)
    return image


_APPLY = {
    "clock": lambda image: cv2.rotate(image, cv2.ROTATE_90_CLOCKWISE),
    "cclock": lambda image: cv2.rotate(image, cv2.ROTATE_90_COUNTERCLOCKWISE),
    "cclock_flip": lambda image: cv2.transpose(image),
    "clock_flip": lambda image: cv2.flip(cv2.transpose(image), -1),
    "hflip": lambda image: cv2.flip(image, 1),
    "vflip": lambda image: cv2.flip(image, 0),
}


def describe(steps: Steps) -> str:
    return ", ".join(_WORDS[step] for step in steps) or "upright"


_WORDS = {
    "clock": "turned a quarter clockwise",
    "cclock": "turned a quarter counter-clockwise",
    "cclock_flip": "transposed",
    "clock_flip": "anti-transposed",
    "hflip": "mirrored",
    "vflip": "flipped upside down",
}
