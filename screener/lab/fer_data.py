"""Labelled face images for training and evaluation: the FER2013 folder layout or its CSV.

Folder layout: `<root>/<emotion>/*.<image>` (any subset of the seven emotion folders), or a
root holding `train/` and `val/` splits of that layout. CSV: `emotion,pixels,Usage` with 2304
space-separated grey values per row.
"""

from __future__ import annotations

import csv
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from screener.domain import EMOTIONS, INPUT_SIZE

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".pgm", ".ppm"}
CSV_USAGE = {"train": ("Training",), "val": ("PublicTest",), "test": ("PrivateTest",)}


class DatasetError(ValueError):
    """The data the user pointed at is not a labelled face dataset screener can read."""


@dataclass
class LabelledImages:
    images: np.ndarray
    """(N, 48, 48) uint8 grey faces."""
    labels: np.ndarray
    """(N,) int labels indexing `EMOTIONS`."""
    paths: list[str]

    def __len__(self) -> int:
        return len(self.labels)

    def counts(self) -> dict[str, int]:
        return {name: int((self.labels == i).sum()) for i, name in enumerate(EMOTIONS)}


FaceCropper = Callable[[np.ndarray], np.ndarray | None]
"""Turns a grey image into a 48x48 face crop, or None when it finds no face."""


def load_split(source: Path, split: str, cropper: FaceCropper | None = None) -> LabelledImages:
    """Load one split (`train`, `val`, `test`) from a CSV, a split folder, or an emotion folder.

    A folder with `<split>/` inside is read there; otherwise the folder itself must hold
    emotion folders (useful for evaluating on any labelled set).
    """
    if not source.exists():
        raise DatasetError(f"data not found: {source}")
    if source.is_file():
        if source.suffix.lower() != ".csv":
            raise DatasetError(f"{source}: expected a FER2013 CSV or a folder of emotion folders")
        return _load_csv(source, CSV_USAGE[split])
    folder = source / split if (source / split).is_dir() else source
    return load_folder(folder, cropper)


def load_folder(folder: Path, cropper: FaceCropper | None = None) -> LabelledImages:
    subdirs = sorted(p for p in folder.iterdir() if p.is_dir())
    unknown = [p.name for p in subdirs if p.name not in EMOTIONS]
    if unknown:
        raise DatasetError(
            f"{folder}: folder(s) {', '.join(unknown)} are not emotions; "
            f"expected any of {', '.join(EMOTIONS)}"
        )
    if not subdirs:
        raise DatasetError(f"{folder}: no emotion folders ({', '.join(EMOTIONS)}) inside")
    images: list[np.ndarray] = []
    labels: list[int] = []
    paths: list[str] = []
    for sub in subdirs:
        label = EMOTIONS.index(sub.name)
        for path in sorted(sub.iterdir()):
            if path.suffix.lower() not in IMAGE_SUFFIXES:
                continue
            grey = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
            if grey is None:
                raise DatasetError(f"{path}: not an image OpenCV can read")
            face = cropper(grey) if cropper else _to_input_size(grey)
            if face is None:
                continue
            images.append(face)
            labels.append(label)
            paths.append(str(path))
    if not images:
        raise DatasetError(f"{folder}: no usable images found")
    return LabelledImages(np.stack(images), np.asarray(labels, dtype=np.int64), paths)


def _to_input_size(grey: np.ndarray) -> np.ndarray:
    if grey.shape == (INPUT_SIZE, INPUT_SIZE):
        return grey
    return cv2.resize(grey, (INPUT_SIZE, INPUT_SIZE), interpolation=cv2.INTER_AREA)


def _load_csv(path: Path, usages: tuple[str, ...]) -> LabelledImages:
    images: list[np.ndarray] = []
    labels: list[int] = []
    paths: list[str] = []
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        missing = {"emotion", "pixels"} - set(reader.fieldnames or [])
        if missing:
            raise DatasetError(f"{path}: CSV lacks column(s) {', '.join(sorted(missing))}")
        for row_number, row in enumerate(reader, start=2):
            if "Usage" in row and row["Usage"] and row["Usage"] not in usages:
                continue
            try:
                label = int(row["emotion"])
                pixels = np.array((row["pixels"] or "").split(), dtype=np.uint8)
            except (ValueError, OverflowError, TypeError) as exc:
                raise DatasetError(f"{path}:{row_number}: {exc}") from exc
            if not 0 <= label < len(EMOTIONS) or pixels.size != INPUT_SIZE * INPUT_SIZE:
                raise DatasetError(
                    f"{path}:{row_number}: need an emotion 0-6 and {INPUT_SIZE * INPUT_SIZE} pixels"
                )
            images.append(pixels.reshape(INPUT_SIZE, INPUT_SIZE))
            labels.append(label)
            paths.append(f"{path}:{row_number}")
    if not images:
        raise DatasetError(f"{path}: no rows with Usage {' or '.join(usages)}")
    return LabelledImages(np.stack(images), np.asarray(labels, dtype=np.int64), paths)
