"""A video's frames, decoded in order, from a swappable backend.

`PyAvDecoder` (the default) can skip the frames no other frame refers to (`skip_nonref`):
in an H.264 stream with B-frames that is about every other frame, a third less decoding, and
the key-frame stage only looks at about 10 frames per second anyway (docs/benchmarks.md).
`OpenCvDecoder` decodes every frame through PySceneDetect's OpenCV stream, as screener first
did. Both convert to BGR only the frames the analysis will look at: the conversion costs about
as much as the decoding.
"""

from __future__ import annotations

import math
import os
import queue
import tempfile
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from screener.errors import first_line
from screener.settings import KeyframeSettings
from screener.video.container import (
    best_video_stream,
    declared_video_seconds,
    probe,
    stream_choice_note,
)
from screener.video.discover import has_surrogates
from screener.video.orientation import UPRIGHT, Steps, steps_from_matrix, swaps_sides, upright


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
        return _read_ahead(frames, self.read_ahead) if self.read_ahead else frames


def open_decoder(path: Path, settings: KeyframeSettings) -> VideoDecoder:
    if not path.is_file():
        raise VideoReadError("not a readable file")
    _refuse_known_non_video(path)
    if settings.decoder == "opencv":
        return OpenCvDecoder(path, settings)
    return PyAvDecoder(path, settings)


_CANNOT_OPEN = ("cannot be opened as a video (not a video file, no video track, or damaged "
                "or truncated)")


class PyAvDecoder(VideoDecoder):
    def __init__(self, path: Path, settings: KeyframeSettings) -> None:
        self._resources = ExitStack()
        try:
            self._open(path, settings)
        except BaseException:
            self._resources.close()
            raise

    def _open(self, path: Path, settings: KeyframeSettings) -> None:
        import av

        try:
            source: Any = str(path)
            if has_surrogates(source):
                # FFmpeg cannot open such a name; a file object reads a little slower.
                source = self._resources.enter_context(path.open("rb"))
            self._container = self._resources.enter_context(
                av.open(source, metadata_errors="ignore"))
        except av.FFmpegError as exc:
            raise VideoReadError(_CANNOT_OPEN) from exc
        except OSError as exc:
            raise VideoReadError(f"cannot open: {exc.strerror or exc}") from exc
        stream = self._stream = best_video_stream(self._container)
        if stream is None:
            raise VideoReadError(_CANNOT_OPEN)
        self.notes = stream_choice_note(self._container, stream)
        rate = stream.average_rate or stream.guessed_rate or stream.base_rate
        if not rate:
            raise VideoReadError("no frame rate in the file's metadata")
        self._set_rate(float(rate), settings)
        context = stream.codec_context
        self._threads = settings.decoder_threads
        if settings.decoder_threads:
            context.thread_count = settings.decoder_threads
        if settings.decoder_threads != 1:
            # Frame threads mark the frames they could not decode whole ("corrupt"); slice
            # threads, PyAV's default, do not, so a damaged file would go unnoticed.
            stream.thread_type = "AUTO"
        if settings.skip_nonref:
            context.skip_frame = "NONREF"
        if settings.skip_deblocking:
            context.options = {"skip_loop_filter": "all"}
        self.width, self.height = context.width, context.height
        self._steps: Steps | None = None
        self._time_base = stream.time_base
        self._start = stream.start_time or 0
        self.declared_s = declared_video_seconds(self._container, stream)
        self._judge_by_all_streams = self.declared_s is None
        if self.declared_s is None:
            self.declared_s = (self._container.duration or 0) / 1_000_000

    def _frames(self) -> Iterator[DecodedFrame]:
        import av

        slot, decoded, failed = -1, 0, 0
        damaged: Exception | None = None
        try:
            for packet in self._container.demux():
                self._reach(packet)
                if packet.stream is not self._stream:
                    continue
                try:
                    frames = packet.decode()
                except av.FFmpegError as exc:
                    # A damaged packet costs its frames, not the video, as with OpenCV.
                    damaged, failed = exc, failed + 1
                    self._damage()
                    continue
                for frame in frames:
                    if frame.pts is None:
                        continue
                    if frame.is_corrupt:
                        self._damage()
                    if self._steps is None:
                        self._orient(frame)
                    t = max(0.0, float((frame.pts - self._start) * self._time_base))
                    index = round(t * self.fps)
                    decoded += 1
                    if index // self.stride == slot:
                        yield DecodedFrame(t, index, None, None)
                        continue
                    slot = index // self.stride
                    yield DecodedFrame(t, index, self._small(frame),
                                       partial(self._full, frame))
        except av.FFmpegError as exc:
            raise VideoReadError(f"decoding failed after {decoded} frames: "
                                 f"{first_line(exc)}") from exc
        finally:
            self._resources.close()
        if decoded == 0 and damaged is not None:
            raise VideoReadError(f"no frame could be decoded ({first_line(damaged)})")
        self._check_damage(decoded + failed)

    def _damage(self) -> None:
        self.undecodable += 1
        if self._threads != 1:
            # How FFmpeg conceals damage depends on how many frames it decodes at once, so
            # only a one-thread decode reads a damaged file the same in every mode.
            raise DamagedWhileThreaded("damaged video decoded with several threads")

    def _reach(self, packet: Any) -> None:
        """How far the file's data goes, over all streams: a container's duration can only be
        checked against what its streams hold (audio may outlast the video)."""
        if packet.pts is None or not packet.time_base:
            return
        end = float((packet.pts + (packet.duration or 0)) * packet.time_base)
        start = packet.stream.start_time
        if start is not None and packet.stream.time_base:
            end -= float(start * packet.stream.time_base)
        self._reached_s = max(self._reached_s, end)

    def reached_s(self, decoded_s: float) -> float:
        return max(decoded_s, self._reached_s) if self._judge_by_all_streams else decoded_s

    def _orient(self, frame: Any) -> None:
        import av

        matrix = frame.side_data.get(av.sidedata.sidedata.Type.DISPLAYMATRIX)
        self._steps = steps_from_matrix(bytes(matrix) if matrix is not None else None)
        if swaps_sides(self._steps):
            self.width, self.height = self.height, self.width

    def _full(self, frame: Any) -> np.ndarray:
        return upright(frame.to_ndarray(format="bgr24"), self._steps or UPRIGHT)

    def _small(self, frame: Any) -> np.ndarray:
        """The analysis copy, scaled from the YUV planes before the colour conversion: a
        quarter of the cost of converting the whole frame, then scaling it."""
        steps = self._steps or UPRIGHT
        if swaps_sides(steps):  # `analysis_width` is the width as displayed
            height, width = _analysis_size(frame.height, frame.width, self._analysis_width)
        else:
            width, height = _analysis_size(frame.width, frame.height, self._analysis_width)
        if frame.format.name not in ("yuv420p", "yuvj420p") or (width, height) == (
                frame.width, frame.height):
            return upright(_downscale_to(frame.to_ndarray(format="bgr24"), width, height), steps)
        planes = []
        for plane, scale in zip(frame.planes, (1, 2, 2), strict=True):
            pixels = np.frombuffer(plane, np.uint8).reshape(plane.height, plane.line_size)
            planes.append(cv2.resize(pixels[:, : plane.width], (width // scale, height // scale),
                                     interpolation=cv2.INTER_LINEAR).reshape(-1))
        i420 = np.concatenate(planes).reshape(height * 3 // 2, width)
        return upright(cv2.cvtColor(i420, cv2.COLOR_YUV2BGR_I420), steps)


class DamagedWhileThreaded(VideoReadError):
    """Raised by a multi-threaded decoder at the first damage it meets: the analysis starts
    again with one thread (`decoder_threads=1`)."""


class OpenCvDecoder(VideoDecoder):
    def __init__(self, path: Path, settings: KeyframeSettings) -> None:
        from scenedetect import open_video
        from scenedetect.video_stream import FrameRateUnavailable, VideoOpenFailure

        if settings.decoder_threads:
            os.environ["OPENCV_FFMPEG_THREADS"] = str(settings.decoder_threads)
        try:
            with _opencv_safe_path(path) as safe:
                self._video = open_video(str(safe), backend="opencv")
        except OSError as exc:
            raise VideoReadError(f"cannot open: {exc.strerror or exc}") from exc
        except FrameRateUnavailable as exc:
            raise VideoReadError("no frame rate in the file's metadata") from exc
        except VideoOpenFailure as exc:
            raise VideoReadError(_CANNOT_OPEN) from exc
        except Exception as exc:
            raise VideoReadError(f"cannot open as a video: {first_line(exc)}") from exc
        self._set_rate(float(self._video.frame_rate or 0), settings)
        self.declared_s = float(self._video.duration.seconds or 0.0)
        self.width, self.height = self._video.frame_size
        self._steps = UPRIGHT
        probed = probe(path)
        if probed is not None:
            # OpenCV turns quarter turns itself but ignores mirrors: the same steps as PyAV.
            self._video.capture.set(cv2.CAP_PROP_ORIENTATION_AUTO, 0)
            self._steps, video_s = probed
            if video_s is not None:  # OpenCV's own is the container's, audio included
                self.declared_s = video_s
            width = int(self._video.capture.get(cv2.CAP_PROP_FRAME_WIDTH))
            height = int(self._video.capture.get(cv2.CAP_PROP_FRAME_HEIGHT))
            swap = swaps_sides(self._steps)
            self.width, self.height = (height, width) if swap else (width, height)

    def _frames(self) -> Iterator[DecodedFrame]:
        count = 0
        try:
            while True:
                analyse = count % self.stride == 0
                image = self._video.read(decode=analyse)
                if image is False or image is None:
                    break
                t = float(self._video.position.seconds)
                if analyse:
                    image = upright(image, self._steps)
                    small = _downscale(image, self._analysis_width)
                    yield DecodedFrame(t, count, small, image.view)
                else:
                    yield DecodedFrame(t, count, None, None)
                count += 1
        except Exception as exc:
            raise VideoReadError(f"decoding failed after {count} frames: "
                                 f"{first_line(exc)}") from exc
        self.undecodable = int(self._video.decode_failures)
        self._check_damage(count + self.undecodable)


def _read_ahead(items: Iterator[Any], depth: int) -> Iterator[Any]:
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
    if has_surrogates(str(path)):
        with tempfile.TemporaryDirectory(prefix="screener-") as folder:
            link = Path(folder) / f"video{path.suffix.encode('ascii', 'ignore').decode()}"
            os.symlink(os.fsencode(path.resolve()), os.fsencode(link))
            yield link
    else:
        yield path



def _analysis_size(width: int, height: int, analysis_width: int) -> tuple[int, int]:
    """Even sides (I420 needs them), about `analysis_width` wide; never larger."""
    if width <= analysis_width:
        return width, height
    target = max(2, analysis_width // 2 * 2)
    return target, max(2, round(height * target / width / 2) * 2)


def _downscale_to(image: np.ndarray, width: int, height: int) -> np.ndarray:
    if image.shape[1] == width and image.shape[0] == height:
        return image
    return cv2.resize(image, (width, height), interpolation=cv2.INTER_LINEAR)


def _downscale(image: np.ndarray, width: int) -> np.ndarray:
    if image.shape[1] <= width:
        return image
    height = max(1, round(image.shape[0] * width / image.shape[1]))
    return cv2.resize(image, (width, height), interpolation=cv2.INTER_LINEAR)
