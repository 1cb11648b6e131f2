"""Training-time augmentation of 48x48 grey faces: the original recipe (turn, shift, zoom,
flip), cutout, the variation of the scan's own crops, and mixup."""

from __future__ import annotations

import cv2
import numpy as np

from screener.domain import INPUT_SIZE


def augment_batch(
    images: np.ndarray, rng: np.random.Generator, cutout: float = 0.0, crop_jitter: bool = False
) -> np.ndarray:
    """The original recipe: rotation 10 degrees, shifts and zoom of 10%, horizontal flips.
    With `cutout`, that share of images also loses a random square of 12 to 24 px (filled
    with mid grey), so the network cannot lean on one region such as the mouth alone.
    With `crop_jitter`, the faces also vary as the scan's crops do (`jitter_like_video`)."""
    out = np.empty_like(images)
    centre = (INPUT_SIZE / 2, INPUT_SIZE / 2)
    turn, zoom, shift = (12, 0.15, 0.1) if crop_jitter else (10, 0.1, 0.1)
    for i, image in enumerate(images):
        angle = rng.uniform(-turn, turn)
        scale = rng.uniform(1 - zoom, 1 + zoom)
        matrix = cv2.getRotationMatrix2D(centre, angle, scale)
        matrix[:, 2] += rng.uniform(-shift, shift, size=2) * INPUT_SIZE
        warped = cv2.warpAffine(
            image, matrix, (INPUT_SIZE, INPUT_SIZE), borderMode=cv2.BORDER_REFLECT_101
        )
        if crop_jitter:
            warped = jitter_like_video(warped, rng)
        out[i] = warped[:, ::-1] if rng.random() < 0.5 else warped
    if cutout > 0:
        for i in np.flatnonzero(rng.random(len(images)) < cutout):
            side = int(rng.integers(12, 25))
            y, x = rng.integers(0, INPUT_SIZE - side + 1, size=2)
            out[i, y : y + side, x : x + side] = 128
    return out


def jitter_like_video(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """What separates a scan's face crop from a FER2013 image besides framing: the face was
    small in the frame (upscaled from 16-40 px), out of focus or compressed (blur), and lit
    and exposed differently (brightness, contrast, gamma). Each happens to some faces only,
    so the clean images are still seen."""
    face = image
    if rng.random() < 0.3:
        side = int(rng.integers(16, 41))
        small = cv2.resize(face, (side, side), interpolation=cv2.INTER_AREA)
        face = cv2.resize(small, (INPUT_SIZE, INPUT_SIZE), interpolation=cv2.INTER_LINEAR)
    if rng.random() < 0.3:
        face = cv2.GaussianBlur(face, (0, 0), rng.uniform(0.4, 1.2))
    if rng.random() < 0.8:
        values = face.astype(np.float32) / 255.0
        values = values ** np.exp(rng.uniform(-0.35, 0.35))
        mean = values.mean()
        values = (values - mean) * rng.uniform(0.65, 1.35) + mean + rng.uniform(-0.15, 0.15)
        face = np.clip(values * 255.0 + 0.5, 0, 255).astype(np.uint8)
    return face


def mixup(
    images: np.ndarray,
    targets: np.ndarray,
    weights: np.ndarray,
    alpha: float,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Blend each image with another of its batch, by a share drawn from Beta(alpha, alpha),
    and its target and weight by the same share (Zhang et al. 2018): the network sees points
    between the training images, not only the images, which regularises a small model."""
    share = rng.beta(alpha, alpha, size=len(images)).astype(np.float32)
    partner = rng.permutation(len(images))

    def blend(values: np.ndarray) -> np.ndarray:
        s = share.reshape(-1, *[1] * (values.ndim - 1))
        return (s * values + (1.0 - s) * values[partner]).astype(np.float32)

    return blend(images.astype(np.float32)), blend(targets), blend(weights)
