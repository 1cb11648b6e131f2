"""The annotated video of a live session, written as H.264 through PyAV (FFmpeg's libx264).

Encoding runs in a thread of its own beside the analysis (FFmpeg releases the GIL). Each frame
keeps its time in the session, so frames dropped live (or left out while the encoder is behind)
leave the recording's clock right: it plays at the speed the session ran, only less smoothly.
"""

from __future__ import annotations

import queue
import threading
from fractions import Fraction
from pathlib import Path

import numpy as np

from screener.errors import first_line
from screener.privacy import create_private


class RecordingError(RuntimeError):
    """The recording cannot be written (a bad path, a full disk, no H.264 encoder)."""


_TIME_BASE = Fraction(1, 1000)
_STOP = None


class VideoRecorder:
    """Opened on construction; `write` each annotated frame, then `close`."""

    def __init__(self, path: Path, width: int, height: int, fps: float,
                 preset: str = "ultrafast") -> None:
        import av

        self.path = path
        # yuv420p needs even sides: an odd last row or column is left out.
        self.width, self.height = width - width % 2, height - height % 2
        try:
            create_private(path)  # FFmpeg would create it readable by everyone
            self._container = av.open(str(path), "w")
        except (OSError, av.FFmpegError) as exc:
            raise RecordingError(f"cannot write {path}: {first_line(exc)}") from exc
        try:
            stream = self._container.add_stream("libx264", rate=Fraction(round(fps * 1000), 1000))
            stream.width, stream.height, stream.pix_fmt = self.width, self.height, "yuv420p"
            stream.time_base = _TIME_BASE
            stream.options = {"preset": preset, "crf": "23"}
        except Exception as exc:
            self._container.close()
            raise RecordingError(f"cannot encode H.264 to {path}: {first_line(exc)}") from exc
        self._stream = stream
        self._last_pts = -1
        self._queue: queue.Queue[tuple[np.ndarray, float] | None] = queue.Queue(maxsize=8)
        self.error: str | None = None
        self.frames = 0
        self.skipped = 0
        self._thread = threading.Thread(target=self._encode_all, name="screener-recorder",
                                        daemon=True)
        self._thread.start()

    def write(self, image: np.ndarray, t_s: float, wait: bool = True) -> bool:
        """Queues a BGR frame shown at `t_s` seconds. While the encoder is behind, waits for it,
        or with `wait=False` leaves the frame out (counted in `skipped`) and returns False."""
        if self.error is not None:
            return False
        try:
            self._queue.put((image, t_s), block=wait)
        except queue.Full:
            self.skipped += 1
            return False
        return True

    def close(self) -> None:
        """Finishes the file; raises `RecordingError` if writing failed on the way."""
        self._queue.put(_STOP)
        self._thread.join()
        if self.error is not None:
            raise RecordingError(f"recording {self.path} failed: {self.error}")

    def _encode_all(self) -> None:
        import av

        try:
            while (item := self._queue.get()) is not _STOP:
                self._encode(av, *item)
            for packet in self._stream.encode():
                self._container.mux(packet)
        except Exception as exc:  # reported by close(), never lost in the thread
            self.error = first_line(exc)
            while self._queue.get() is not _STOP:  # let write() and close() return
                pass
        finally:
            self._container.close()

    def _encode(self, av, image: np.ndarray, t_s: float) -> None:  # noqa: ANN001
        pts = round(t_s * 1000)
        if pts <= self._last_pts:
            return
        self._last_pts = pts
        frame = av.VideoFrame.from_ndarray(
            np.ascontiguousarray(image[: self.height, : self.width]), format="bgr24"
        )
        frame.pts, frame.time_base = pts, _TIME_BASE
        for packet in self._stream.encode(frame):
            self._container.mux(packet)
        self.frames += 1
