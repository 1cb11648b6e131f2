"""Generate the synthetic sample videos bundled in ``sample_videos/``.

Why this exists: the screener needs small, redistributable example videos for demos, docs
and smoke tests, but real student recordings can never be shipped.  These clips are built
only from images that scikit-image bundles (the public-domain NASA portrait of astronaut
Eileen Collins for the "student" face; CC0 coffee and public-domain rocket photos for
stretches with no face).  The still photos are animated with a slow pan / zoom / small
rotation and brightness drift, with hard cuts between images, so the pipeline sees frames
that change, scene cuts, and stretches without a face.  Expressions never change: it is one
photo.

Everything is deterministic (fixed seeds), so the files can be regenerated with::

    python scripts/make_sample_videos.py [--out sample_videos]
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from skimage import data

FPS = 15
SIZE = (480, 360)  # width, height; mp4v via OpenCV has no bitrate knob, so this keeps files small
# Haar-cascade face box in skimage.data.astronaut() is about x 177-272, y 66-161.
FACE_CENTRE = (224.0, 140.0)  # slightly below the eyes so the crop keeps the chin and hair
BLUR_SIGMA = 2.0  # output pixels: webcam-like softness, and much smaller mp4v files
FACE_CROP_H = 270.0  # source pixels shown vertically at zoom 1.0 (Haar box ~30-45% of height)


@dataclass(frozen=True)
class Look:
    """Per-student appearance, so that the 'students' are not identical."""

    flip: bool = False
    zoom: float = 1.0  # >1 shows the face larger
    tint: tuple[float, float, float] = (1.0, 1.0, 1.0)  # per-channel gain, BGR
    noise: float = 0.0  # std-dev of static grain added to the source photo


@dataclass(frozen=True)
class Segment:
    image: str  # "face" or the name of a scikit-image picture without faces
    seconds: float


@dataclass(frozen=True)
class Clip:
    path: str
    look: Look
    segments: tuple[Segment, ...]
    seed: int


ALEX = Look(flip=False, zoom=1.0, tint=(0.92, 1.0, 1.08), noise=0.0)
MARIA = Look(flip=True, zoom=1.15, tint=(1.08, 1.0, 0.94), noise=3.0)

CLIPS: tuple[Clip, ...] = (
    Clip(
        "alex_2026-03-02.mp4",
        ALEX,
        (Segment("face", 9), Segment("coffee", 5), Segment("face", 7)),
        seed=1,
    ),
    Clip("alex_2026-03-09.mp4", ALEX, (Segment("face", 14), Segment("rocket", 6)), seed=2),
    Clip(
        "alex_2026-03-16.mp4",
        ALEX,
        (Segment("coffee", 4), Segment("face", 10), Segment("rocket", 5), Segment("face", 5)),
        seed=3,
    ),
    Clip("maria/maria_2026-03-03.mp4", MARIA, (Segment("rocket", 6), Segment("face", 16)), seed=4),
    Clip(
        "maria/maria_2026-03-10.mp4",
        MARIA,
        (Segment("face", 8), Segment("coffee", 6), Segment("face", 8)),
        seed=5,
    ),
)


def source_image(name: str, look: Look, rng: np.random.Generator) -> np.ndarray:
    """Load a scikit-image picture as float32 BGR with the student's look applied."""
    # skimage's chelsea (a cat) is not used: the Haar cascade finds her face when zoomed in.
    pictures = {"face": data.astronaut, "coffee": data.coffee, "rocket": data.rocket}
    img = cv2.cvtColor(pictures[name](), cv2.COLOR_RGB2BGR).astype(np.float32)
    if look.flip:
        img = img[:, ::-1].copy()
    img *= np.array(look.tint, dtype=np.float32)
    if look.noise > 0:
        img += rng.normal(0.0, look.noise, img.shape[:2])[..., None].astype(np.float32)
    return img


def view(name: str, img: np.ndarray, look: Look) -> tuple[tuple[float, float], float]:
    """Centre (source pixels) and base scale (output px per source px) for an image."""
    h, w = img.shape[:2]
    if name == "face":
        cx, cy = FACE_CENTRE
        if look.flip:
            cx = w - 1 - cx
        return (cx, cy), SIZE[1] / FACE_CROP_H * look.zoom
    # no-face pictures: fill the frame with margin for pan, zoom-out and rotation
    return (w / 2, h / 2), 1.3 * max(SIZE[0] / w, SIZE[1] / h)


def render_segment(
    name: str, img: np.ndarray, look: Look, n_frames: int, rng: np.random.Generator
) -> Iterator[np.ndarray]:
    """Slow Ken-Burns motion: pan, zoom, a few degrees of rotation and brightness drift."""
    (cx, cy), base = view(name, img, look)
    phases = rng.uniform(0, 2 * np.pi, size=5)
    periods = rng.uniform(6.0, 12.0, size=5) * FPS  # frames per oscillation
    pan = 10.0 if name == "face" else 20.0  # source pixels
    for i in range(n_frames):
        wave = np.sin(2 * np.pi * i / periods + phases)
        scale = base * (1.0 + 0.06 * wave[0])
        angle = 3.0 * wave[1]  # degrees
        px, py = cx + pan * wave[2], cy + 0.6 * pan * wave[3]
        m = cv2.getRotationMatrix2D((px, py), angle, scale)
        m[:, 2] += (SIZE[0] / 2 - px, SIZE[1] / 2 - py)
        frame = cv2.warpAffine(
            img, m, SIZE, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT101
        )
        frame = cv2.GaussianBlur(frame, (0, 0), BLUR_SIGMA) * (1.0 + 0.10 * wave[4])
        yield np.clip(frame, 0, 255).astype(np.uint8)


def write_clip(clip: Clip, out_dir: Path) -> Path:
    path = out_dir / clip.path
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(clip.seed)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), FPS, SIZE)
    if not writer.isOpened():
        raise RuntimeError(f"cannot open video writer for {path}")
    try:
        for seg in clip.segments:
            img = source_image(seg.image, clip.look, rng)
            for frame in render_segment(seg.image, img, clip.look, round(seg.seconds * FPS), rng):
                writer.write(frame)
    finally:
        writer.release()
    return path


def timeline(clip: Clip) -> str:
    parts, t = [], 0.0
    for seg in clip.segments:
        what = "face" if seg.image == "face" else f"no face ({seg.image})"
        parts.append(f"{t:g}-{t + seg.seconds:g} s {what}")
        t += seg.seconds
    return "; ".join(parts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("sample_videos"))
    args = parser.parse_args()
    for clip in CLIPS:
        path = write_clip(clip, args.out)
        print(f"{path}  {path.stat().st_size:>9,d} B  {timeline(clip)}")


if __name__ == "__main__":
    main()
