"""One video in, one `SessionResult` out: key frames -> faces -> emotions -> metrics -> level.

This touches no database and no report, so it can run in worker processes (or on a
cluster) while a single writer stores the results.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np

from screener.aggregate import session_metrics, with_smoothing
from screener.domain import Face, Frame, Observation, SessionResult, VideoJob
from screener.emotions import EMOTIONS, EmotionModel, OnnxEmotionModel
from screener.faces import FaceDetector, FaceTracker, HaarFaceDetector
from screener.keyframes import KeyframeReader
from screener.rules import RuleSet, load_rules
from screener.settings import Settings

_MAX_QUEUED_FRAMES = 4

FrameProgress = Callable[[int], None]
"""Called with the number of key frames analysed so far."""


@dataclass
class StageClock:
    """Seconds spent per pipeline stage, for `--debug` logs and the scan benchmark. Stages
    that overlap (faces run beside key frames) each count their own time."""

    seconds: dict[str, float] = field(default_factory=dict)

    @contextmanager
    def __call__(self, stage: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[stage] = self.seconds.get(stage, 0.0) + time.perf_counter() - started


@dataclass
class Analyzer:
    """The loaded parts of the pipeline, built once per process and reused for every video."""

    settings: Settings
    detector: FaceDetector
    model: EmotionModel
    rules: RuleSet

    @classmethod
    def from_settings(cls, settings: Settings, threads: int | None = None) -> Analyzer:
        """`threads` caps the model's threads when several worker processes share the CPU."""
        return cls(
            settings=settings,
            detector=HaarFaceDetector(settings.faces),
            model=OnnxEmotionModel(
                settings.model_path, settings.emotions.batch_size, threads,
                settings.emotions.flip_average,
            ),
            rules=load_rules(settings.rules),
        )

    @classmethod
    def single_threaded(cls, settings: Settings) -> Analyzer:
        """For one of several worker processes (local or Dask): one thread each for OpenCV
        and the model, so that the workers do not fight over the cores."""
        import cv2

        cv2.setNumThreads(1)
        return cls.from_settings(settings, threads=1)

    @property
    def versions(self) -> tuple[str, str]:
        """(model version, rules version) as stored with each session it analyses."""
        return self.model.name, self.rules.tag

    def analyze(self, job: VideoJob, progress: FrameProgress | None = None) -> SessionResult:
        clock = StageClock()
        reader = KeyframeReader(job.path, self.settings.keyframes)
        frames, faces = self._key_frames_and_faces(reader, clock, progress)
        with clock("emotions"):
            probabilities = self.model.predict([face.crop for face in faces])
        with clock("aggregate"):
            observations = self._observations(frames, faces, probabilities)
            metrics = session_metrics(
                observations,
                negative=self.rules.negative,
                min_run=self.rules.min_run,
                step_s=self.settings.keyframes.every_s,
                duration_s=reader.info.duration_s,
                scenes=reader.info.scenes,
            )
            assessment = self.rules.assess(metrics)
        return SessionResult(
            job=job,
            info=reader.info,
            observations=observations,
            metrics=metrics,
            assessment=assessment,
            model_version=self.model.name,
            model_accuracy=self.model.card.val_accuracy,
            stage_seconds=clock.seconds,
        )

    def _key_frames_and_faces(
        self, reader: KeyframeReader, clock: StageClock, progress: FrameProgress | None
    ) -> tuple[list[tuple[float, int]], list[Face]]:
        """Face detection runs in a thread beside decoding (both release the GIL); a short
        queue keeps at most a few full-size key frames in memory."""
        faces: list[Face] = []
        frames: list[tuple[float, int]] = []
        tracker = FaceTracker(self.detector, self.settings.faces)

        def detect(frame: Frame) -> list[Face]:
            with clock("faces"):
                found = tracker.faces(frame)
            frame.image = None  # type: ignore[assignment]  # the crops are all that is needed
            return found

        key_frames = iter(reader)
        with ThreadPoolExecutor(max_workers=1) as detection:
            pending: deque[Future[list[Face]]] = deque()
            while True:
                with clock("key frames"):
                    frame = next(key_frames, None)
                if frame is None:
                    break
                frames.append((frame.t_s, frame.index))
                pending.append(detection.submit(detect, frame))
                while pending and (len(pending) > _MAX_QUEUED_FRAMES or pending[0].done()):
                    faces.extend(pending.popleft().result())
                    if progress:
                        progress(len(frames) - len(pending))
            for future in pending:
                faces.extend(future.result())
        if progress:
            progress(len(frames))
        return frames, faces

    def _observations(
        self, frames: list[tuple[float, int]], faces: list[Face], probabilities: np.ndarray
    ) -> list[Observation]:
        """One observation per face, and an empty one for each key frame without a face."""
        by_frame: dict[int, list[Observation]] = {}
        for face, probs in zip(faces, probabilities, strict=True):
            by_frame.setdefault(face.frame.index, []).append(
                Observation(
                    t_s=round(face.frame.t_s, 3),
                    frame_index=face.frame.index,
                    box=face.box,
                    probabilities=tuple(round(float(p), 5) for p in probs),
                    label=EMOTIONS[int(probs.argmax())],
                )
            )
        observations: list[Observation] = []
        for t_s, index in frames:
            observations.extend(
                by_frame.get(index) or [Observation(round(t_s, 3), index, None, None, None)]
            )
        return with_smoothing(observations, self.rules.smoothing_window)
