"""Where a live session shows: JSON lines or alert lines on the terminal, a window, a
recording. Each is a `LiveSink` the loop in `live.py` feeds."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import TextIO

from screener.live.alerts import Alert
from screener.live.monitor import AnalysedFrame, LiveSummary
from screener.live.recording import RecordingError, VideoRecorder
from screener.scanning.analysis_output import observation_document

QUIT_KEYS = {ord("q"), ord("Q"), 27}
"""q or Esc, as in the original program."""


def frame_document(analysed: AnalysedFrame) -> list[dict]:
    """One JSON object per face (one per frame unless `--all-faces`), as `analyze --json`."""
    return [
        {"type": "frame", **observation_document(o),
         "latency_ms": round(analysed.latency_ms, 1)}
        for o in analysed.observations
    ]


def alert_document(alert: Alert) -> dict:
    return {"type": "alert", "t_s": alert.t_s, "kind": alert.kind, "message": alert.message,
            "level": alert.level}


def alert_line(alert: Alert) -> str:
    minutes, seconds = divmod(alert.t_s, 60)
    return f"[{int(minutes):02d}:{seconds:04.1f}] {alert.message}"


def summary_lines(summary: LiveSummary) -> list[str]:
    a, m = summary.result.assessment, summary.result.metrics
    median = summary.latency_ms()
    latency = f", median latency {median:.0f} ms" if median is not None else ""
    return [
        f"{summary.source}: {summary.frames} frames read, {summary.analysed_frames} analysed, "
        f"{summary.dropped_frames} dropped ({summary.dropped_share:.1%}), "
        f"{summary.fps:.1f} fps{latency}; stopped: {summary.stopped}"
        + (f" ({summary.reason})" if summary.reason else ""),
        f"session level {a.level.upper()} (rule {a.rule}) from {m['frames_analysed']} key "
        f"frames, {m['face_frames']} with a face; negative share {m['negative_share']:.0%}",
        "a screening aid, not a diagnosis",
    ]


class JsonLines:
    """`--json`: an object per analysed frame (or face) and per alert, as they happen."""

    wants_image = False

    def __init__(self, out: TextIO | None = None) -> None:
        self.out = out or sys.stdout

    def show(self, analysed: AnalysedFrame) -> bool:
        for document in frame_document(analysed):
            self.out.write(json.dumps(document) + "\n")
        for alert in analysed.alerts:
            self.out.write(json.dumps(alert_document(alert)) + "\n")
        self.out.flush()
        return True

    def idle(self) -> bool:
        return True

    def close(self) -> None:
        self.out.flush()


class AlertPrinter:
    """Without `--json`: one line per alert, as the original printed its messages."""

    wants_image = False

    def __init__(self, out: TextIO | None = None) -> None:
        self.out = out or sys.stdout

    def show(self, analysed: AnalysedFrame) -> bool:
        for alert in analysed.alerts:
            self.out.write(alert_line(alert) + "\n")
        if analysed.alerts:
            self.out.flush()
        return True

    def idle(self) -> bool:
        return True

    def close(self) -> None:
        self.out.flush()


class Recording:
    """`--record FILE`: the annotated frames, opened with the first frame's size. Live, a frame
    the encoder has no time for is left out of the recording rather than hold up the analysis;
    `every_frame` (`--fast`) waits for the encoder instead."""

    wants_image = True

    def __init__(self, path: Path, fps: float, every_frame: bool = False) -> None:
        self.path, self.fps, self.every_frame = path, fps, every_frame
        self.recorder: VideoRecorder | None = None
        self.error: str | None = None
        """Why the recording failed; the session itself goes on and is stored."""

    def show(self, analysed: AnalysedFrame) -> bool:
        assert analysed.image is not None
        if self.error is not None:
            return True
        try:
            if self.recorder is None:
                height, width = analysed.image.shape[:2]
                self.recorder = VideoRecorder(self.path, width, height, self.fps)
            self.recorder.write(analysed.image, analysed.frame.t_s, wait=self.every_frame)
        except RecordingError as exc:
            self.error = str(exc)
        return True

    def idle(self) -> bool:
        return True

    @property
    def skipped(self) -> int:
        return self.recorder.skipped if self.recorder is not None else 0

    def close(self) -> None:
        if self.recorder is not None:
            try:
                self.recorder.close()
            except RecordingError as exc:
                self.error = self.error or str(exc)


def display_problem() -> str | None:
    """Why no window can open here, or None. The check runs in a child process: Qt aborts a
    process that cannot reach its display, and that must not be this one."""
    if not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        return "no display (DISPLAY and WAYLAND_DISPLAY are unset)"
    probe = ("import cv2; cv2.namedWindow('screener-probe'); cv2.waitKey(1); "
             "cv2.destroyAllWindows()")
    try:
        done = subprocess.run([sys.executable, "-c", probe], capture_output=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"the window could not be opened ({exc})"
    if done.returncode != 0:
        lines = done.stderr.decode(errors="replace").strip().splitlines()
        # Qt names the cause first ("could not connect to display :1") and ends with a list
        # of plugins, which says nothing about what went wrong.
        cause = next((line for line in lines if "display" in line.lower()),
                     lines[-1] if lines else done.returncode)
        return f"the window could not be opened ({cause})"
    return None


class Window:
    """`cv2.imshow`, as the original; q, Esc or closing the window ends the session."""

    wants_image = True

    def __init__(self, title: str = "screener live") -> None:
        import cv2

        self.cv2, self.title = cv2, title
        cv2.namedWindow(title, cv2.WINDOW_AUTOSIZE)
        self._shown = self._seen = False

    def show(self, analysed: AnalysedFrame) -> bool:
        assert analysed.image is not None
        self.cv2.imshow(self.title, analysed.image)
        self._shown = True
        return self.idle()

    def idle(self) -> bool:
        key = self.cv2.waitKey(1)
        if key != -1 and key & 0xFF in QUIT_KEYS:
            return False
        if not self._shown:
            return True
        # A window is mapped some time after its first imshow (long on a busy machine): only
        # one that has been seen on screen and is gone was closed by the user.
        visible = self.cv2.getWindowProperty(self.title, self.cv2.WND_PROP_VISIBLE) >= 1
        self._seen |= visible
        return visible or not self._seen

    def close(self) -> None:
        self.cv2.destroyWindow(self.title)
        self.cv2.waitKey(1)
