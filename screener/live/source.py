"""Where a live session's frames come from: a camera, a device, a stream URL or a video file,
read in a thread of its own that keeps only the newest frame.

A live analysis must show what is in front of the camera now: when it falls behind, the frames
it had no time for are dropped and counted, never queued (a queue would let the picture lag
further and further). A file plays at its own frame rate, as if it were a camera, unless it is
read `fast`: then nothing is dropped and the reader waits for the analysis instead.
"""

from __future__ import annotations

import logging
import math
import os
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np

from screener.errors import first_line
from screener.privacy import mask_urls

log = logging.getLogger(__name__)

_URL = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*://")


class SourceError(RuntimeError):
    """The source cannot be opened (absent, busy, unreachable): one line saying why."""


class FrameReader(Protocol):
    """An opened source. `read` returns the next BGR frame, None at the end of a file, and
    raises (any exception) when a live source stops sending."""

    fps: float | None
    """The rate the source declares, if any."""

    def read(self) -> np.ndarray | None: ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class SourceSpec:
    """What the user named, worked out: `kind` is camera, device, stream or file."""

    kind: str
    target: str | int
    label: str
    """How the source is shown and stored: a stream URL without its credentials."""

    @property
    def is_file(self) -> bool:
        return self.kind == "file"


def parse_source(text: str) -> SourceSpec:
    """A camera index ("0"), a device path (/dev/video0), a URL (rtsp://, http://, ...) or a
    video file; a path that does not exist is a `SourceError`."""
    text = text.strip()
    if text.isdigit():
        return SourceSpec("camera", int(text), f"camera {int(text)}")
    if _URL.match(text):
        return SourceSpec("stream", text, mask_urls(text))
    path = Path(text).expanduser()
    if path.is_char_device():
        return SourceSpec("device", str(path), str(path))
    if path.is_file():
        return SourceSpec("file", str(path), str(path))
    if path.exists():
        raise SourceError(f"{text}: not a video file, camera device or stream URL")
    raise SourceError(f"{text}: no such file or camera device")


class CaptureReader:
    """OpenCV's `VideoCapture`: FFmpeg for files and streams, the system's camera API for an
    index or device."""

    def __init__(self, spec: SourceSpec, open_timeout_s: float = 5.0) -> None:
        self.spec = spec
        _quiet_backends()
        timeout_ms = int(open_timeout_s * 1000)
        if spec.kind == "camera":
            capture = cv2.VideoCapture(int(spec.target))
        elif spec.kind == "device":
            capture = cv2.VideoCapture(str(spec.target), cv2.CAP_V4L2)
        else:
            params = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, timeout_ms,
                      cv2.CAP_PROP_READ_TIMEOUT_MSEC, timeout_ms]
            capture = cv2.VideoCapture(str(spec.target), cv2.CAP_FFMPEG, params)
        if not capture.isOpened():
            capture.release()
            raise SourceError(_cannot_open(spec))
        self._capture = capture
        fps = capture.get(cv2.CAP_PROP_FPS)
        self.fps = fps if math.isfinite(fps) and 0 < fps <= 1000 else None

    def read(self) -> np.ndarray | None:
        ok, image = self._capture.read()
        if ok:
            return image
        if self.spec.is_file:
            return None
        raise SourceError(f"{self.spec.label} stopped sending frames")

    def close(self) -> None:
        self._capture.release()


def _quiet_backends() -> None:
    """OpenCV and FFmpeg print their own warnings (and a stream's URL, password included) when
    a source fails; screener says it in one line instead, unless debugging."""
    if log.isEnabledFor(logging.DEBUG):
        return
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)


def _cannot_open(spec: SourceSpec) -> str:
    if spec.kind == "camera":
        return f"cannot open camera {spec.target}: absent, busy, or not permitted"
    if spec.kind == "device":
        return f"cannot open {spec.label}: not a camera, busy, or not permitted"
    if spec.kind == "stream":
        return f"cannot open stream {spec.label}: no answer, or not a video stream"
    return f"cannot read {spec.label} as a video"


Opener = Callable[[], FrameReader]


@dataclass
class LiveFrame:
    index: int
    """Its number among the frames read from the source (reconnections continue it)."""
    t_s: float
    """Seconds since the session started, on the source's clock for a file."""
    image: np.ndarray
    read_at: float
    """`time.perf_counter()` when the frame arrived: latency is measured from here."""


class FrameGrabber:
    """Reads the source in a thread and hands the caller the newest frame.

    `source_fps`: the file's rate, which times its frames (a live source's frames are timed
    by the clock); `paced`: deliver them at that rate, as a camera would (a file played live).
    `wait_for_reader`: never drop; the reader waits until each frame is taken (`--fast`).
    A live source that stops is reopened `reconnects` times before the grabber ends with
    `lost` set to the reason."""

    def __init__(
        self,
        opener: Opener,
        source_fps: float | None = None,
        paced: bool = False,
        wait_for_reader: bool = False,
        reconnects: int = 0,
        reconnect_delay_s: float = 1.0,
        first_reader: FrameReader | None = None,
    ) -> None:
        self._open, self._fps, self._paced = opener, source_fps, paced and bool(source_fps)
        self.source_fps = source_fps
        self._wait, self._reconnects, self._delay = wait_for_reader, reconnects, reconnect_delay_s
        self._reader = first_reader
        self._slot: LiveFrame | None = None
        self._done = False
        self._stop = threading.Event()
        self._cond = threading.Condition()
        self.frames_read = 0
        self.dropped = 0
        self.lost: str | None = None
        self.reconnections = 0
        self._started = 0.0
        self._thread = threading.Thread(target=self._run, name="screener-live-reader", daemon=True)

    def start(self) -> FrameGrabber:
        if self._reader is None:
            self._reader = self._open()
        self._started = time.perf_counter()
        self._thread.start()
        return self

    def next(self, timeout_s: float | None = None) -> LiveFrame | None:
        """The newest frame not yet taken; None when the source has ended (or on timeout)."""
        with self._cond:
            self._cond.wait_for(lambda: self._slot is not None or self._done, timeout_s)
            frame, self._slot = self._slot, None
            self._cond.notify_all()
            return frame

    def stop(self) -> None:
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        self._thread.join(timeout=5.0)

    @property
    def ended(self) -> bool:
        """The source has ended (or was lost) and its last frame has been taken."""
        with self._cond:
            return self._done and self._slot is None

    @property
    def elapsed_s(self) -> float:
        return time.perf_counter() - self._started if self._started else 0.0

    def _run(self) -> None:
        try:
            self._read_all()
        except Exception as exc:  # the grabber must always end, with its reason
            self.lost = f"reading failed: {first_line(exc)}"
            log.debug("live reader failed", exc_info=True)
        finally:
            if self._reader is not None:
                self._reader.close()
            with self._cond:
                self._done = True
                self._cond.notify_all()

    def _read_all(self) -> None:
        while not self._stop.is_set():
            try:
                image = self._reader.read()  # type: ignore[union-attr]
            except Exception as exc:
                if not self._reconnect(first_line(exc)):
                    return
                continue
            if image is None:
                return
            self._publish(image)

    def _publish(self, image: np.ndarray) -> None:
        index = self.frames_read
        if self._paced:
            delay = self._started + index / self._fps - time.perf_counter()  # type: ignore[operator]
            if delay > 0 and self._stop.wait(delay):
                return
        t_s = index / self._fps if self._fps else time.perf_counter() - self._started
        frame = LiveFrame(index, t_s, image, time.perf_counter())
        with self._cond:
            if self._wait:
                self._cond.wait_for(lambda: self._slot is None or self._stop.is_set())
            if self._slot is not None:
                self.dropped += 1
            self._slot = frame
            self.frames_read += 1
            self._cond.notify_all()

    def _reconnect(self, reason: str) -> bool:
        if self._reader is not None:
            self._reader.close()
            self._reader = None
        for attempt in range(1, self._reconnects + 1):
            log.warning("%s; reconnecting (%d of %d)", reason, attempt, self._reconnects)
            if self._stop.wait(self._delay):
                return False
            try:
                self._reader = self._open()
            except Exception as exc:
                reason = first_line(exc)
                continue
            self.reconnections += 1
            return True
        self.lost = reason if not self._reconnects else (
            f"{reason} (after {self._reconnects} reconnection attempts)")
        return False
