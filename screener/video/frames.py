"""What every video decoder gives a scan, whichever library decodes: frames in order, each
with a small BGR copy for the analysis and the full image on demand, and the same errors.

The backends (`screener.video.decoders`) differ in what they decode and skip, not in what they
hand over.
"""

from __future__ import annotations

import math
import queue
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from contextlib import suppress
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from screener.settings import KeyframeSettings


class VideoReadError(RuntimeError):
    """The file cannot be decoded as a video."""


@dataclass(frozen=True)
class DecodedFrame:
    t_s: float
    index: int
    """The frame's number at the video's average frame rate."""
    small: np.ndarray | None
    """BGR at about the settings' `analysis_width`, for the first frame decoded in each run of
    `stride` frames; None for the others, which are decoded only."""
    full: Callable[[], np.ndarray] | None
    """The full-resolution BGR image, converted on demand: only key frames need it."""


class VideoDecoder(ABC):
    """Opened on construction (a `VideoReadError` says why not); iterate once for the frames."""

    fps: float
    width: int
    height: int
    declared_s: float
    """The duration the file declares for its video (else for the whole container), to tell
    a file cut short from a complete one; see `reached_s`."""
    undecodable: int = 0
    """Frames lost to damage (packets that failed to decode, frames marked corrupt), counted
    by the iteration."""
    notes: tuple[str, ...] = ()
    """What the decoder chose that a reader of the report should know."""
    _reached_s: float = 0.0
    stride: int
    """About one frame in `stride` is converted, i.e. the settings' `analysis_fps`."""
    read_ahead: int = 8
    """Frames decoded ahead in a thread of their own; 0 decodes in the caller's thread (to
    profile the parts one by one)."""

    def _set_rate(self, fps: float, settings: KeyframeSettings) -> None:
        if not math.isfinite(fps) or fps <= 0 or fps > 1000:
            raise VideoReadError(f"implausible frame rate ({fps:g} fps) in the file's metadata")
        self.fps = fps
        self.stride = max(1, round(fps / settings.analysis_fps))
        self._analysis_width = settings.analysis_width

    @abstractmethod
    def _frames(self) -> Iterator[DecodedFrame]: ...

    def reached_s(self, decoded_s: float) -> float:
        """How far the file's content goes, to compare with `declared_s`, given how far the
        video decoded."""
        return decoded_s

    def _check_damage(self, frames: int) -> None:
        if frames and self.undecodable * 2 > frames:
            raise VideoReadError(f"mostly undecodable: {self.undecodable} of {frames} frames "
                                 "are damaged (a corrupt or partly overwritten file)")

    def __iter__(self) -> Iterator[DecodedFrame]:
        """The frames, decoded in a thread a few frames ahead so that decoding overlaps the
        analysis (both release the GIL for most of their work); a bounded queue keeps memory
        flat."""
        frames = self._frames()
        return read_ahead_of(frames, self.read_ahead) if self.read_ahead else frames


class DamagedWhileThreaded(VideoReadError):
    """Raised by a multi-threaded decoder at the first damage it meets: the analysis starts
    again with one thread (`decoder_threads=1`)."""


CANNOT_OPEN = ("cannot be opened as a video (not a video file, no video track, or damaged "
               "or truncated)")


def read_ahead_of(items: Iterator[Any], depth: int) -> Iterator[Any]:
    """`items`, produced by a thread at most `depth` ahead; its exception is raised here."""
    buffer: queue.Queue[tuple[bool, Any]] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def produce() -> None:
        try:
            for item in items:
                if stop.is_set():
                    break
                buffer.put((False, item))
            buffer.put((True, None))
        except Exception as exc:
            buffer.put((True, exc))
        finally:
            with suppress(Exception):
                items.close()  # type: ignore[attr-defined]

    worker = threading.Thread(target=produce, name="screener-decode", daemon=True)
    worker.start()
    try:
        while True:
            done, item = buffer.get()
            if done:
                if item is not None:
                    raise item
                return
            yield item
    finally:
        stop.set()
        while worker.is_alive():
            with suppress(queue.Empty):
                buffer.get(timeout=0.05)
        worker.join()


def analysis_size(width: int, height: int, analysis_width: int) -> tuple[int, int]:
    """Even sides (I420 needs them), about `analysis_width` wide; never larger."""
    if width <= analysis_width:
        return width, height
    target = max(2, analysis_width // 2 * 2)
    return target, max(2, round(height * target / width / 2) * 2)


def downscale_to(image: np.ndarray, width: int, height: int) -> np.ndarray:
    if image.shape[1] == width and image.shape[0] == height:
        return image
    return cv2.resize(image, (width, height), interpolation=cv2.INTER_LINEAR)


def downscale(image: np.ndarray, width: int) -> np.ndarray:
    if image.shape[1] <= width:
        return image
    height = max(1, round(image.shape[0] * width / image.shape[1]))
    return cv2.resize(image, (width, height), interpolation=cv2.INTER_LINEAR)
