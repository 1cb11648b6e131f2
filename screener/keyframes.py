"""Representative frames of a video, found in one sequential decode pass.

PySceneDetect's ContentDetector splits the video into scenes (a webcam lesson is often a single
shot, so cuts alone are not enough); inside each scene, every `every_s` seconds opens a window
and the sharpest frame of the window (variance of the Laplacian) represents it. Only the best
frame of the open window is held, so memory does not grow with the video's length. Frames are
read in order because seeking in H.264 costs about a full decode.
"""

from __future__ import annotations

import logging
import math
import os
import queue
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from screener.domain import Frame, VideoInfo
from screener.errors import first_line
from screener.settings import KeyframeSettings


class VideoReadError(RuntimeError):
    """The file cannot be decoded as a video."""


def sharpness(grey: np.ndarray) -> float:
    return float(cv2.Laplacian(grey, cv2.CV_32F).var())


class KeyframeReader:
    """Iterate once to get the key frames; `info` is complete after the iteration."""

    def __init__(self, path: Path, settings: KeyframeSettings) -> None:
        from scenedetect import open_video
        from scenedetect.detector import FlashFilter
        from scenedetect.detectors import ContentDetector
        from scenedetect.video_stream import FrameRateUnavailable, VideoOpenFailure

        # Importing scenedetect resets its logger; our own reason says why a file failed.
        logging.getLogger("pyscenedetect").setLevel(logging.ERROR)
        self.path, self.settings = path, settings
        if not path.is_file():
            raise VideoReadError("not a readable file")
        _refuse_known_non_video(path)
        try:
            with _opencv_safe_path(path) as safe:
                self._video = open_video(str(safe), backend="opencv")
        except OSError as exc:
            raise VideoReadError(f"cannot open: {exc.strerror or exc}") from exc
        except FrameRateUnavailable as exc:
            raise VideoReadError("no frame rate in the file's metadata") from exc
        except VideoOpenFailure as exc:
            raise VideoReadError("cannot be opened as a video (not a video file, no video "
                                 "track, or damaged or truncated)") from exc
        except Exception as exc:
            raise VideoReadError(f"cannot open as a video: {first_line(exc)}") from exc
        fps = float(self._video.frame_rate or 0)
        if not math.isfinite(fps) or fps <= 0 or fps > 1000:
            raise VideoReadError(f"implausible frame rate ({fps:g} fps) in the file's metadata")
        self.fps = fps
        self.stride = max(1, round(fps / settings.analysis_fps))
        """Every frame is decoded, but only every `stride`-th is converted to BGR and
        analysed: the conversion costs about as much as the decoding (docs/benchmarks.md)."""
        self._detector = ContentDetector(
            threshold=settings.cut_threshold,
            min_scene_len=max(1, round(settings.min_scene_s * fps)),
            filter_mode=FlashFilter.Mode.SUPPRESS,
        )
        self._declared_s = float(self._video.duration.seconds or 0.0)
        width, height = self._video.frame_size
        self.info = VideoInfo(fps=fps, frame_count=0, duration_s=0.0, width=width,
                              height=height, scenes=0)

    def __iter__(self) -> Iterator[Frame]:
        every = self.settings.every_s
        scene, scene_start, frames_read, last_t = 0, 0.0, 0, 0.0
        window: tuple[int, int] | None = None
        best: Frame | None = None
        for position, image in self._decoded():
            t = float(position.seconds)
            index = frames_read
            frames_read += 1
            last_t = t
            if image is None:
                continue
            small = _downscale(image, self.settings.analysis_width)
            if self._detector.process_frame(position, small) and index > 0:
                scene, scene_start = scene + 1, t
            key = (scene, int((t - scene_start) // every))
            if key != window:
                if best is not None:
                    yield best
                window, best = key, None
            score = sharpness(cv2.cvtColor(small, cv2.COLOR_BGR2GRAY))
            if best is None or score > best.sharpness:
                best = Frame(t_s=t, index=index, image=image, scene=scene, sharpness=score)
        if best is not None:
            yield best
        if frames_read == 0:
            raise VideoReadError("no frame could be decoded")
        decoded_s = last_t + 1.0 / self.fps
        if decoded_s < self._declared_s * _SHORTEST_COMPLETE_SHARE:
            # An mp4 with its index first ("faststart") opens fine when cut short, e.g. while
            # still being copied; storing it would file a partial session under a hash that
            # the complete file will not have, so it is refused and retried next scan.
            raise VideoReadError(
                f"truncated or still being copied: decoded {decoded_s:.1f} s of the "
                f"{self._declared_s:.1f} s its index declares"
            )
        self.info = VideoInfo(
            fps=self.fps,
            frame_count=frames_read,
            duration_s=round(decoded_s, 3),
            width=self.info.width,
            height=self.info.height,
            scenes=scene + 1,
        )

    def _decoded(self) -> Iterator[tuple[Any, np.ndarray | None]]:
        """(position, image) of every frame, the image only for analysed frames. Decoding runs
        in a thread a few frames ahead, so it overlaps the analysis (both release the GIL
        for most of their work); a bounded queue keeps memory flat."""
        frames: queue.Queue[tuple[Any, Any]] = queue.Queue(maxsize=8)
        stop = threading.Event()

        def decode() -> None:
            count = 0
            try:
                while not stop.is_set():
                    analyse = count % self.stride == 0
                    image = self._video.read(decode=analyse)
                    if image is False or image is None:
                        break
                    frames.put((self._video.position, image if analyse else None))
                    count += 1
                frames.put((_END, None))
            except Exception as exc:
                frames.put((_END, VideoReadError(
                    f"decoding failed after {count} frames: {first_line(exc)}")))

        worker = threading.Thread(target=decode, name="screener-decode", daemon=True)
        worker.start()
        try:
            while True:
                position, item = frames.get()
                if position is _END:
                    if item is not None:
                        raise item
                    return
                yield position, item
        finally:
            stop.set()
            while worker.is_alive():
                with suppress(queue.Empty):
                    frames.get(timeout=0.05)
            worker.join()


_END = object()

_SHORTEST_COMPLETE_SHARE = 0.9
"""Below this share of the duration a container declares, a video is taken as cut short; above
it, the gap is a container's rounding (edit lists, variable frame rates)."""

_NOT_VIDEO_SIGNATURES = (
    # (offset, bytes, what the file is). OpenCV would open any of these images as a one-frame
    # "video"; audio and archives only get a clearer reason than "cannot be opened".
    (0, b"\x89PNG\r\n\x1a\n", "a PNG image"),
    (0, b"\xff\xd8\xff", "a JPEG image"),
    (0, b"GIF8", "a GIF image"),
    (0, b"BM", "a BMP image"),
    (0, b"II*\0", "a TIFF image"),
    (0, b"MM\0*", "a TIFF image"),
    (8, b"WEBP", "a WebP image"),
    (8, b"WAVE", "WAV audio"),
    (0, b"PK\x03\x04", "a ZIP archive"),
)


def _refuse_known_non_video(path: Path) -> None:
    """A clear reason for files that are obviously not videos, whatever their name says."""
    try:
        with path.open("rb") as handle:
            head = handle.read(16)
    except OSError as exc:
        raise VideoReadError(f"cannot read: {exc.strerror or exc}") from exc
    if not head:
        raise VideoReadError("empty file (0 bytes)")
    for offset, magic, kind in _NOT_VIDEO_SIGNATURES:
        if head[offset : offset + len(magic)] == magic:
            raise VideoReadError(f"not a video: the file is {kind}")


@contextmanager
def _opencv_safe_path(path: Path) -> Iterator[Path]:
    """A path OpenCV can take. OpenCV crashes the process on a str that is not valid UTF-8
    (a file name with non-UTF-8 bytes), so such a file is opened through a temporary symlink;
    the link can go once the file is open."""
    try:
        str(path).encode("utf-8")
    except UnicodeEncodeError:
        with tempfile.TemporaryDirectory(prefix="screener-") as folder:
            link = Path(folder) / f"video{path.suffix.encode('ascii', 'ignore').decode()}"
            os.symlink(os.fsencode(path.resolve()), os.fsencode(link))
            yield link
    else:
        yield path


def _downscale(image: np.ndarray, width: int) -> np.ndarray:
    if image.shape[1] <= width:
        return image
    height = max(1, round(image.shape[0] * width / image.shape[1]))
    return cv2.resize(image, (width, height), interpolation=cv2.INTER_LINEAR)
