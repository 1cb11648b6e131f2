"""Synthetic video frames showing a labelled FER2013 face, whose true emotion is known.

Shared by the session benchmark (whole videos) and by scripts/record_error_profile.py (one
still per face), so that the model's error profile on pipeline crops is measured on faces
framed, lit and blurred as the benchmark's are: a face at a varied size and position, drifting
and tilting a little, under varied lighting, blur and background; or, without a face, a moving
prop so that the detector has something to refuse.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import cv2
import numpy as np

from screener.domain import EMOTIONS
from screener.emotions.model import EmotionModel
from screener.faces import FaceDetector, largest_face_crop
from screener.settings import FaceSettings


def background(size: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """A room-like backdrop: a colour gradient, soft blobs and a few straight edges."""
    width, height = size
    c0, c1 = rng.integers(30, 220, 3), rng.integers(30, 220, 3)
    ramp = np.linspace(0, 1, width, dtype=np.float32)[None, :, None]
    image = (c0 * (1 - ramp) + c1 * ramp) * np.ones((height, 1, 1), np.float32)
    blobs = rng.normal(0, 1, (max(2, height // 40), max(2, width // 40), 3)).astype(np.float32)
    image += cv2.resize(blobs, (width, height), interpolation=cv2.INTER_CUBIC) * 18
    for _ in range(rng.integers(2, 6)):
        x0, y0 = int(rng.integers(0, width)), int(rng.integers(0, height))
        w, h = int(rng.integers(width // 10, width // 2)), int(rng.integers(height // 10, height))
        colour = tuple(int(v) for v in rng.integers(20, 235, 3))
        cv2.rectangle(image, (x0, y0), (x0 + w, y0 + h), colour, -1 if rng.random() < 0.5 else 3)
    return np.clip(image, 0, 255)


def segment_frames(image_path: str | Path | None, seconds: float, fps: int,
                   size: tuple[int, int], rng: np.random.Generator) -> Iterator[np.ndarray]:
    """BGR frames of one segment showing the face in `image_path` (None: no face)."""
    frames = int(seconds * fps)
    render = _segment(image_path, size, rng)
    for k in range(frames):
        yield render(k / max(1, frames - 1), k)


def face_still(image_path: str | Path, size: tuple[int, int], rng: np.random.Generator,
               jpeg_quality: int = 80) -> np.ndarray:
    """One frame as a segment of the benchmark would show it at a random moment, passed
    through JPEG at about the loss of the benchmark's H.264 (crf 23) so that compression
    artefacts are part of what the model reads."""
    frame = _segment(image_path, size, rng)(float(rng.uniform(0, 1)), int(rng.integers(0, 3)))
    ok, encoded = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, jpeg_quality])
    return cv2.imdecode(encoded, cv2.IMREAD_COLOR) if ok else frame


def _segment(image_path: str | Path | None, size: tuple[int, int],
             rng: np.random.Generator) -> Callable[[float, int], np.ndarray]:
    """Draws one segment's look and motion; returns its frame at a point `a` in [0, 1] of the
    segment (the `k`th frame's sensor noise)."""
    width, height = size
    backdrop = background(size, rng)
    gain = float(rng.uniform(0.6, 1.25))
    blur = float(rng.choice([0.0, 0.0, 0.8, 1.6]))
    noise = [rng.normal(0, 3, (height, width, 3)).astype(np.float32) for _ in range(3)]
    face = None
    if image_path is not None:
        face = cv2.imread(str(image_path), cv2.IMREAD_GRAYSCALE)
        side0 = float(rng.uniform(0.14, 0.55)) * height
        grow = float(rng.uniform(0.9, 1.1))
        half = side0 * 0.6
        start = np.array([rng.uniform(half, width - half), rng.uniform(half, height - half)])
        drift = rng.normal(0, 0.04, 2) * np.array([width, height])
        end = np.clip(start + drift, half, np.array([width, height]) - half)
        tilt0, tilt1 = float(rng.uniform(-12, 12)), float(rng.uniform(-3, 3))
    else:
        prop = rng.integers(40, 220, 3).astype(np.float32)
        p0, p1 = rng.uniform(0.2, 0.8, 2), rng.uniform(0.2, 0.8, 2)

    def render(a: float, k: int) -> np.ndarray:
        image = backdrop.copy()
        if face is not None:
            side = side0 * (1 + (grow - 1) * a)
            centre = start * (1 - a) + end * a
            paste(image, face, centre, side, tilt0 + tilt1 * a)
        else:
            centre = (p0 * (1 - a) + p1 * a) * np.array([width, height])
            axes = (int(height * 0.12), int(height * 0.2))
            cv2.ellipse(image, (int(centre[0]), int(centre[1])), axes, 30 * a, 0, 360,
                        tuple(float(v) for v in prop), -1)
        image *= gain
        if blur:
            image = cv2.GaussianBlur(image, (0, 0), blur)
        image += noise[k % len(noise)]
        return np.clip(image, 0, 255).astype(np.uint8)

    return render


def paste(image: np.ndarray, face: np.ndarray, centre: np.ndarray, side: float,
          angle: float) -> None:
    """The face scaled to `side`, rotated by `angle` degrees about its centre, blended in with
    feathered edges so that no hard square frames it."""
    n = face.shape[0]
    scale = side / n
    matrix = cv2.getRotationMatrix2D((n / 2, n / 2), angle, scale)
    matrix[:, 2] += centre - np.array([n / 2, n / 2])
    height, width = image.shape[:2]
    warped = cv2.warpAffine(face.astype(np.float32), matrix, (width, height),
                            flags=cv2.INTER_CUBIC)
    mask = np.zeros((n, n), np.float32)
    border = max(1, n // 12)
    mask[border:-border, border:-border] = 1
    mask = cv2.GaussianBlur(mask, (0, 0), border)
    alpha = cv2.warpAffine(mask, matrix, (width, height), flags=cv2.INTER_LINEAR)[..., None]
    image *= 1 - alpha
    image += alpha * warped[..., None]


def labelled_faces(split: Path) -> tuple[list[Path], np.ndarray]:
    """The image files of a FER2013 split folder (`<emotion>/*.jpg`), in a fixed order, with
    their labels (indexes into EMOTIONS)."""
    paths = [p for e in EMOTIONS for p in sorted((split / e).glob("*.jpg"))]
    return paths, np.array([EMOTIONS.index(p.parent.name) for p in paths], dtype=np.int64)


STILL_SIZES = ((640, 360), (960, 540), (1280, 720))
"""The benchmark sessions' frame sizes."""


def still_predictions(image_paths: Sequence[Path], detector: FaceDetector, model: EmotionModel,
                      faces: FaceSettings, seed: int = 7) -> tuple[np.ndarray, np.ndarray]:
    """The model's probabilities for each face as the pipeline reads it from a synthetic
    still (detector, aligned crop): (probabilities (n, 7), found (n,) bool); rows of faces the
    detector missed are zeros. Each image gets its own seeded scene, so an image's answer
    does not depend on which others are measured with it."""
    probabilities = np.zeros((len(image_paths), len(EMOTIONS)), np.float32)
    found = np.zeros(len(image_paths), bool)
    for i, path in enumerate(image_paths):
        rng = np.random.default_rng([seed, zlib.crc32(Path(path).name.encode())])
        size = STILL_SIZES[int(rng.integers(0, len(STILL_SIZES)))]
        crop = largest_face_crop(detector, face_still(path, size, rng), faces)
        if crop is not None:
            probabilities[i], found[i] = model.predict(crop[None])[0], True
    return probabilities, found
