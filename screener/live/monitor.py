"""`screener live`: the original real-time program on screener's pipeline.

Frames come from a `FrameGrabber` (newest frame only; `live_source.py`). Each frame the loop
takes goes through the scan's own parts: the face detector with its tracker (searching in a
thread of its own, `FaceWatcher`), the emotion model, the smoothing (mode of the last 10
labels, as the original displayed) and the rule set. What is
kept for the session are the observations at the key-frame rate (one every `every_s` seconds),
so a live session's metrics and level mean what a scanned session's do and it can be stored
beside them.
"""

from __future__ import annotations

import hashlib
import logging
import math
import statistics
import threading
import time
import uuid
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Protocol

import numpy as np

from screener.domain import (
    EMOTIONS,
    Detection,
    Face,
    Frame,
    Observation,
    SessionResult,
    VideoInfo,
    VideoJob,
)
from screener.faces import FaceTracker, model_crop, to_grey
from screener.live.alerts import Alert, alert_policy
from screener.live.overlay import draw_annotations
from screener.live.source import CaptureReader, FrameGrabber, FrameReader, LiveFrame, SourceSpec
from screener.scanning.analysis import Analyzer
from screener.session.aggregate import session_metrics, smooth_labels, with_smoothing
from screener.settings import Settings

log = logging.getLogger(__name__)

ALERT_SHOWN_S = 3.0
"""How long an alert stays drawn on the video."""


@dataclass
class AnalysedFrame:
    frame: LiveFrame
    observations: list[Observation]
    """The student's face first (smoothed), then any others (`--all-faces`); one empty
    observation when no face was found."""
    alerts: list[Alert]
    latency_ms: float
    """From the frame's arrival to its label."""
    image: np.ndarray | None = None
    """The frame with its annotations, when something shows or records it."""


class FaceWatcher:
    """The detector and its tracker, on the newest frame they have not seen.

    In the `background` the search runs in a thread of its own while each frame is labelled
    at once with the latest boxes found (at most a detection or two old, ~1/30 s on an idle
    machine): a busy machine then updates the boxes less often instead of dropping frames,
    since cropping and classifying a face cost ~1.5 ms and the search ~10-70 (docs/benchmarks.md).
    Otherwise (`--fast`) every frame is searched before it is labelled."""

    def __init__(self, analyzer: Analyzer, background: bool) -> None:
        self._tracker = FaceTracker(analyzer.detector, analyzer.settings.faces)
        self._cond = threading.Condition()
        self._pending: Frame | None = None
        self._faces: list[Face] = []
        self._searched = -1
        self._stopped = False
        self.searches = 0
        self._thread: threading.Thread | None = None
        if background:
            self._thread = threading.Thread(target=self._run, name="screener-live-faces",
                                            daemon=True)
            self._thread.start()

    def faces(self, frame: Frame) -> tuple[list[Face], int]:
        """The faces to use on `frame`, and the index of the frame they were found in."""
        if self._thread is None:
            self.searches += 1
            return self._tracker.faces(frame), frame.index
        with self._cond:
            self._pending = frame
            self._cond.notify_all()
            if self._searched < 0:  # the first frame waits for its own faces
                self._cond.wait_for(lambda: self._searched >= 0 or self._stopped)
            return list(self._faces), self._searched

    def stop(self) -> None:
        with self._cond:
            self._stopped = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=5.0)

    def _run(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._pending is not None or self._stopped)
                if self._stopped:
                    return
                frame, self._pending = self._pending, None
            try:
                faces = self._tracker.faces(frame)  # type: ignore[arg-type]
            except Exception:  # a failed search finds nothing; the next frame tries again
                log.debug("face search failed", exc_info=True)
                faces = []
            with self._cond:
                self._faces, self._searched = faces, frame.index  # type: ignore[union-attr]
                self.searches += 1
                self._cond.notify_all()


class LiveAnalyzer:
    """Analyses the frames of one live session in order; not thread-safe."""

    def __init__(self, analyzer: Analyzer, window_s: float | None = None,
                 background_faces: bool = True) -> None:
        settings = analyzer.settings
        self.analyzer, self.rules = analyzer, analyzer.rules
        self.faces = FaceWatcher(analyzer, background_faces)
        self._face_settings = settings.faces
        self._recent: deque[str] = deque(maxlen=self.rules.smoothing_window)
        self._every = settings.keyframes.every_s
        self._next_key_t = 0.0
        self.policy = alert_policy(self.rules, window_s or settings.live.window_s, self._every,
                                   analyzer.error_profile)
        self.key_observations: list[Observation] = []
        self.latencies_ms: list[float] = []
        self.box_ages: list[int] = []
        self.alerts: list[Alert] = []
        self.last_t_s = 0.0
        self.frame_size: tuple[int, int] | None = None

    def analyse(self, frame: LiveFrame) -> AnalysedFrame:
        t_s = round(frame.t_s, 3)
        self.frame_size = (frame.image.shape[1], frame.image.shape[0])
        faces, found_in = self.faces.faces(Frame(t_s, frame.index, frame.image, 0, 0.0))
        boxes = [face.box for face in faces]
        observations: list[Observation] = []
        if boxes:
            grey = to_grey(frame.image)
            # Framed as scans frame faces; the boxes may come from a slightly older frame, so
            # its landmarks are not reused to level the eyes. The aligned colour crops (for a
            # joined model) are the search's own, from that frame at most a few frames old.
            crops = [model_crop(grey, Detection(box), self._face_settings) for box in boxes]
            probabilities = self.analyzer.model.predict(crops, [f.aligned for f in faces])
            for box, probs in zip(boxes, probabilities, strict=True):
                observations.append(Observation(
                    t_s, frame.index, box, tuple(round(float(p), 5) for p in probs),
                    EMOTIONS[int(probs.argmax())],
                ))
            student = observations[0]
            self._recent.append(student.label)  # type: ignore[arg-type]
            smoothed = smooth_labels(list(self._recent), len(self._recent))[-1]
            observations[0] = replace(student, smoothed_label=smoothed)
            self.box_ages.append(frame.index - found_in)
        else:
            observations.append(Observation(t_s, frame.index, None, None, None))
        latency_ms = (time.perf_counter() - frame.read_at) * 1000
        self.latencies_ms.append(latency_ms)
        alerts = self.policy.on_frame(observations[0])
        if t_s >= self._next_key_t:
            self.key_observations.extend(observations)
            self._next_key_t = (math.floor(t_s / self._every) + 1) * self._every
            alerts += self.policy.on_key_frame(observations[0])
        self.alerts += alerts
        self.last_t_s = t_s
        return AnalysedFrame(frame, observations, alerts, latency_ms)

    @property
    def analysed_frames(self) -> int:
        return len(self.latencies_ms)

    def close(self) -> None:
        self.faces.stop()


class LiveSink(Protocol):
    """Something that follows the session: a window, a recording, a printer."""

    wants_image: bool
    """Needs the annotated frame (drawing costs a few ms, so only then is it drawn)."""

    def show(self, analysed: AnalysedFrame) -> bool:
        """False asks the session to stop (a key pressed in the window)."""
        ...

    def idle(self) -> bool:
        """Called while no frame is waiting; False asks the session to stop."""
        ...

    def close(self) -> None: ...


@dataclass
class LiveSummary:
    source: str
    frames: int
    """Read from the source: each was analysed or dropped (or arrived as the session ended)."""
    analysed_frames: int
    dropped_frames: int
    wall_s: float
    stopped: str
    """`end` (the file or stream ended), `key` (q or Esc), `interrupted` (Ctrl-C) or `lost`
    (a camera or stream that stopped sending, after the reconnection attempts)."""
    result: SessionResult
    reason: str = ""
    latencies_ms: list[float] = field(default_factory=list, repr=False)
    alerts: list[Alert] = field(default_factory=list)
    face_searches: int = 0
    """Face searches run: as many as frames analysed with `--fast`, fewer live when the
    machine is busy (each frame then uses the latest boxes found)."""
    box_ages: list[int] = field(default_factory=list, repr=False)
    """Per labelled face: how many frames before it its box was found."""

    @property
    def fps(self) -> float:
        """Frames analysed per second of the session."""
        return self.analysed_frames / self.wall_s if self.wall_s > 0 else 0.0

    @property
    def dropped_share(self) -> float:
        return self.dropped_frames / self.frames if self.frames else 0.0

    def latency_ms(self, quantile: float = 0.5) -> float | None:
        if not self.latencies_ms:
            return None
        if quantile == 0.5:
            return statistics.median(self.latencies_ms)
        return float(np.quantile(self.latencies_ms, quantile))

    def document(self) -> dict:
        """The last line of `--json`."""
        a = self.result.assessment
        median, p95 = self.latency_ms(), self.latency_ms(0.95)
        return {
            "type": "summary", "source": self.source, "frames": self.frames,
            "analysed_frames": self.analysed_frames, "dropped_frames": self.dropped_frames,
            "fps": round(self.fps, 2), "wall_s": round(self.wall_s, 3),
            "duration_s": self.result.info.duration_s,
            "latency_ms_median": round(median, 1) if median is not None else None,
            "latency_ms_p95": round(p95, 1) if p95 is not None else None,
            "key_frames": int(self.result.metrics["frames_analysed"]),
            "level": a.level, "rule": a.rule, "explanation": a.explanation,
            "face_searches": self.face_searches,
            "box_age_frames_median": statistics.median(self.box_ages) if self.box_ages else None,
            "alerts": len(self.alerts), "stopped": self.stopped, "reason": self.reason or None,
        }


def open_grabber(spec: SourceSpec, settings: Settings, fast: bool = False) -> FrameGrabber:
    """Opens the source now (a `SourceError` says why it cannot be) and starts reading it. A
    file is timed by its own frame rate and, unless `fast`, played at it; a camera or stream
    that stops is reopened the same way."""
    live = settings.live

    def opener() -> FrameReader:
        return CaptureReader(spec, live.open_timeout_s)

    reader = opener()
    file_fps = (reader.fps or 30.0) if spec.is_file else None
    return FrameGrabber(
        opener, source_fps=file_fps, paced=not fast, wait_for_reader=fast and spec.is_file,
        reconnects=0 if spec.is_file else live.reconnects,
        reconnect_delay_s=live.reconnect_delay_s, first_reader=reader,
    ).start()


def run_live(grabber: FrameGrabber, live: LiveAnalyzer, spec: SourceSpec,
             sinks: Sequence[LiveSink] = (), poll_s: float = 0.05) -> LiveSummary:
    """Analyses the newest frame, again and again, until the source ends, a sink asks to stop
    or Ctrl-C; the reader is stopped and every sink closed however it ends."""
    started_at = datetime.now().replace(microsecond=0)
    started = time.perf_counter()
    draw = any(sink.wants_image for sink in sinks)
    stopped = "end"
    try:
        while stopped == "end":
            frame = grabber.next(poll_s)
            if frame is None:
                if grabber.ended:
                    break
                if not all(sink.idle() for sink in sinks):
                    stopped = "key"
                continue
            analysed = live.analyse(frame)
            if draw:
                analysed.image = draw_annotations(
                    frame.image, analysed.observations, _recent_alerts(live, frame.t_s),
                    f"{live.analysed_frames / max(1e-6, time.perf_counter() - started):.0f} fps"
                    f", {grabber.dropped} dropped",
                )
            if not all([sink.show(analysed) for sink in sinks]):
                stopped = "key"
    except KeyboardInterrupt:
        stopped = "interrupted"
    finally:
        grabber.stop()
        live.close()
        for sink in sinks:
            sink.close()
    if grabber.lost:
        stopped = "lost"
    result = session_result(live, spec, grabber, started_at)
    return LiveSummary(
        source=spec.label, frames=grabber.frames_read, analysed_frames=live.analysed_frames,
        dropped_frames=grabber.dropped, wall_s=time.perf_counter() - started, stopped=stopped,
        result=result, reason=grabber.lost or "", latencies_ms=live.latencies_ms,
        alerts=live.alerts, face_searches=live.faces.searches, box_ages=live.box_ages,
    )


def _recent_alerts(live: LiveAnalyzer, t_s: float) -> list[str]:
    return [a.message for a in live.alerts[-3:] if t_s - a.t_s < ALERT_SHOWN_S]


def session_result(live: LiveAnalyzer, spec: SourceSpec, grabber: FrameGrabber,
                   started_at: datetime) -> SessionResult:
    """The session as a scan would have produced it from a recording: the key-frame
    observations, their metrics and the rule set's level, with where it came from."""
    rules, settings = live.rules, live.analyzer.settings
    observations = with_smoothing(live.key_observations, rules.smoothing_window)
    fps = grabber.source_fps or (grabber.frames_read / grabber.elapsed_s
                                 if grabber.elapsed_s else 0.0)
    duration_s = round(live.last_t_s + (1 / fps if fps else 0.0), 3) if live.analysed_frames \
        else 0.0
    metrics = session_metrics(observations, rules.negative, rules.min_run,
                              settings.keyframes.every_s, duration_s=duration_s, scenes=1,
                              error_profile=live.analyzer.error_profile)
    metrics.update({
        "mode": "live", "source": spec.label, "live_frames_read": grabber.frames_read,
        "live_frames_analysed": live.analysed_frames, "live_frames_dropped": grabber.dropped,
    })
    width, height = live.frame_size or (0, 0)
    unique = f"live\0{spec.label}\0{started_at.isoformat()}\0{uuid.uuid4().hex}"
    job = VideoJob(
        path=Path(spec.label) if spec.is_file else Path("live"),
        student_id="",
        session_id=f"live-{started_at:%Y-%m-%d-%H%M%S}",
        recorded_at=started_at,
        sha256=hashlib.sha256(unique.encode()).hexdigest(),
        source=f"live: {spec.label}",
    )
    return SessionResult(
        job=job,
        info=VideoInfo(fps=round(fps, 3), frame_count=grabber.frames_read,
                       duration_s=duration_s, width=width, height=height, scenes=1),
        observations=observations,
        metrics=metrics,
        assessment=rules.assess(metrics),
        model_version=live.analyzer.model_version,
        model_accuracy=live.analyzer.model.card.val_accuracy,
    )


def for_student(result: SessionResult, student_id: str) -> SessionResult:
    return replace(result, job=replace(result.job, student_id=student_id))
