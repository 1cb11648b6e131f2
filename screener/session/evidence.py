"""Evidence frames: small colour thumbnails of the faces that weighed most in a session's level,
so a counsellor can check the model's reading in seconds without opening the video.

Opt-in (`--evidence N`): they put images of faces into the database and the reports. Only the
analysis sees frames, so thumbnails are cut there, one per analysed face (a JPEG of a few KB,
about 15 MB an hour of video at one key frame a second), and the few worth keeping are chosen
once the session's labels are known.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

import cv2
import numpy as np

from screener.domain import EMOTIONS, Box, EvidenceFrame, Observation

THUMBNAIL_PX = 96
"""Longer side of a thumbnail: enough to read an expression, too small for much else."""
JPEG_QUALITY = 80
STRETCH = "longest negative stretch"
MOST_NEGATIVE = "most negative face"
"""Why a face was kept (`EvidenceFrame.reason`)."""


FaceKey = tuple[int, Box]
"""A face in a video: its key frame's index and its box."""


def face_thumbnail(image: np.ndarray, box: Box, scale: float) -> bytes:
    """The face region the model read (a square `scale` times the box's larger side, centred
    on it, not rotated), in colour, as a JPEG whose longer side is `THUMBNAIL_PX`."""
    height, width = image.shape[:2]
    half = scale * max(box.w, box.h) / 2
    cx, cy = box.x + box.w / 2, box.y + box.h / 2
    x0, x1 = max(0, round(cx - half)), min(width, round(cx + half))
    y0, y1 = max(0, round(cy - half)), min(height, round(cy + half))
    region = image[y0:y1, x0:x1]
    if region.size == 0:
        region = np.zeros((THUMBNAIL_PX, THUMBNAIL_PX, 3), np.uint8)
    scale = THUMBNAIL_PX / max(region.shape[:2])
    size = (max(1, round(region.shape[1] * scale)), max(1, round(region.shape[0] * scale)))
    interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    small = cv2.resize(region, size, interpolation=interpolation)
    ok, encoded = cv2.imencode(".jpg", small, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if not ok:  # pragma: no cover - OpenCV always encodes a non-empty image
        raise RuntimeError("cannot encode a face thumbnail")
    return encoded.tobytes()


def select_evidence(
    observations: Sequence[Observation],
    thumbnails: dict[FaceKey, bytes],
    count: int,
    negative: Collection[str],
) -> list[EvidenceFrame]:
    """Up to `count` faces, in time order: half (rounded up) spread over the longest stretch of
    negative smoothed labels, the level's strongest sign of sustained affect, and the rest the
    faces with the highest negative probability elsewhere, kept apart (about half the share of
    the session each frame would cover) so that one moment does not fill the page. A calm
    session still shows its most negative faces, so a reader can check that they are calm."""
    faces = [o for o in observations
             if o.box is not None and o.label and o.probabilities
             and (o.frame_index, o.box) in thumbnails]
    if count <= 0 or not faces:
        return []
    columns = [EMOTIONS.index(e) for e in sorted(negative) if e in EMOTIONS]

    def negative_probability(o: Observation) -> float:
        return float(sum(o.probabilities[i] for i in columns))  # type: ignore[index]

    chosen: dict[int, str] = {}
    stretch = longest_negative_stretch(faces, negative)
    for i in _spread(len(stretch), min(len(stretch), (count + 1) // 2)):
        chosen[id(stretch[i])] = STRETCH
    position = {id(o): i for i, o in enumerate(faces)}
    ranked = sorted(faces, key=lambda o: (-negative_probability(o), o.t_s))
    gap = max(2, len(faces) // (2 * count))
    for spaced in (True, False):  # apart from the faces already chosen, if there are enough
        taken = sorted(position[k] for k in chosen)
        for o in ranked:
            if len(chosen) >= count:
                break
            i = position[id(o)]
            if id(o) in chosen or (spaced and any(abs(i - j) < gap for j in taken)):
                continue
            chosen[id(o)] = MOST_NEGATIVE
            taken.append(i)
    return [
        EvidenceFrame(o.t_s, o.frame_index, o.label, round(negative_probability(o), 4),
                      chosen[id(o)], thumbnails[(o.frame_index, o.box)])
        for o in faces if id(o) in chosen
    ]


def longest_negative_stretch(
    faces: Sequence[Observation], negative: Collection[str]
) -> list[Observation]:
    """The longest run of consecutive faces whose smoothed label is negative (the stretch behind
    `longest_negative_run_s`); the first such run on a tie."""
    best = (0, 0)
    start = 0
    for i, o in enumerate(faces):
        if (o.smoothed_label or o.label) not in negative:
            start = i + 1
        elif i + 1 - start > best[1] - best[0]:
            best = (start, i + 1)
    return list(faces[best[0]:best[1]])


def _spread(length: int, count: int) -> list[int]:
    """`count` indexes spread evenly over 0..length-1, both ends included."""
    if count <= 0:
        return []
    if count == 1:
        return [length // 2]
    return sorted({round(i * (length - 1) / (count - 1)) for i in range(count)})
