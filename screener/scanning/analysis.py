"""One video in, one `SessionResult` out: key frames -> faces -> emotions -> metrics -> level.

This touches no database and no report, so it can run in worker processes (or on a
cluster) while a single writer stores the results.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field, replace

import numpy as np

from screener.domain import EMOTIONS, Box, Face, Frame, Observation, SessionResult, VideoJob
from screener.emotions.joined import load_emotion_model
from screener.emotions.model import EmotionModel
from screener.faces import FaceDetector, FaceTracker, faces_version, make_detector
from screener.session.aggregate import session_metrics, with_smoothing
from screener.session.error_profile import ErrorProfile
from screener.session.estimate import ESTIMATOR_VERSION
from screener.session.evidence import FaceKey, face_thumbnail, select_evidence
from screener.session.rules import RuleSet, load_rules
from screener.settings import KeyframeSettings, Settings
from screener.video.frames import DamagedWhileThreaded
from screener.video.keyframes import KeyframeReader

log = logging.getLogger(__name__)

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
    error_profile: ErrorProfile | None = None
    """The model's measured errors, which the session estimates correct for (None: none)."""

    @classmethod
    def from_settings(cls, settings: Settings, threads: int | None = None) -> Analyzer:
        """`threads` caps the model's threads when several worker processes share the CPU. Raises
        ModelError, DetectorError or RulesError when a file cannot be loaded."""
        model = load_emotion_model(settings.model_path, settings.emotions.batch_size, threads,
                                   settings.emotions.flip_margin)
        if model.reads_aligned:
            settings = settings.replace(faces=replace(settings.faces, aligned_crop=True))
        return cls(
            settings=settings,
            detector=make_detector(settings.faces),
            model=model,
            rules=load_rules(settings.rules),
            error_profile=ErrorProfile.for_model(settings.model_path),
        )

    @classmethod
    def single_threaded(cls, settings: Settings) -> Analyzer:
        """For one of several worker processes (local or Dask): one thread each for OpenCV,
        its video decoder and the model, so that the workers do not fight over the cores
        (the decoder's own threads cost ~15% more CPU per frame; docs/benchmarks.md)."""
        import cv2

        cv2.setNumThreads(1)
        keyframes = replace(settings.keyframes, decoder_threads=1)
        return cls.from_settings(settings.replace(keyframes=keyframes), threads=1)

    @property
    def model_version(self) -> str:
        """The emotion model's version, how faces reach it (detector, framing) and the error
        profile its session estimates correct for: a change to any of them changes what is
        stored, so stored sessions are analysed again."""
        corrected = (f"+est{ESTIMATOR_VERSION}.{self.error_profile.digest}"
                     if self.error_profile else "")
        return f"{self.model.name}+{faces_version(self.settings.faces)}{corrected}"

    @property
    def versions(self) -> tuple[str, str]:
        """(model version, rules version) as stored with each session it analyses."""
        return self.model_version, self.rules.tag

    def analyze(self, job: VideoJob, progress: FrameProgress | None = None) -> SessionResult:
        try:
            return self._analyze(job, self.settings.keyframes, progress)
        except DamagedWhileThreaded:
            log.info("%s is damaged: analysing it again with one decoding thread", job.path)
            one_thread = replace(self.settings.keyframes, decoder_threads=1)
            return self._analyze(job, one_thread, progress)

    def _analyze(self, job: VideoJob, keyframes: KeyframeSettings,
                 progress: FrameProgress | None) -> SessionResult:
        clock = StageClock()
        reader = KeyframeReader(job.path, keyframes)
        classifier = BatchedClassifier(self.model, self.settings.emotions.batch_size, clock)
        thumbnails: dict[FaceKey, bytes] = {}
        frames = self._key_frames_and_faces(reader, classifier, clock, progress, thumbnails)
        located, probabilities = classifier.finish()
        with clock("aggregate"):
            observations = self._observations(frames, located, probabilities)
            evidence = select_evidence(observations, thumbnails, self.settings.evidence_frames,
                                       self.rules.negative)
            thumbnails.clear()
            metrics = session_metrics(
                observations,
                negative=self.rules.negative,
                min_run=self.rules.min_run,
                step_s=self.settings.keyframes.every_s,
                duration_s=reader.info.duration_s,
                scenes=reader.info.scenes,
                undecodable_frames=reader.info.undecodable_frames,
                error_profile=self.error_profile,
            )
            metrics["data_quality"] = list(reader.info.notes)
            assessment = self.rules.assess(metrics)
        return SessionResult(
            job=job,
            info=reader.info,
            observations=observations,
            metrics=metrics,
            assessment=assessment,
            model_version=self.model_version,
            model_accuracy=self.model.card.val_accuracy,
            stage_seconds=clock.seconds,
            evidence_frames=evidence,
        )

    def _key_frames_and_faces(
        self,
        reader: KeyframeReader,
        classifier: BatchedClassifier,
        clock: StageClock,
        progress: FrameProgress | None,
        thumbnails: dict[FaceKey, bytes],
    ) -> list[tuple[float, int]]:
        """Face detection runs in a thread beside decoding (both release the GIL); a short
        queue keeps at most a few full-size key frames in memory. With evidence frames asked
        for, each face's thumbnail is cut there too, while its frame is still at hand."""
        frames: list[tuple[float, int]] = []
        tracker = FaceTracker(self.detector, self.settings.faces)
        keep_thumbnails = self.settings.evidence_frames > 0
        thumbnail_scale = self.settings.faces.crop_scale

        def detect(frame: Frame) -> list[Face]:
            with clock("faces"):
                faces = tracker.faces(frame)
                if keep_thumbnails:
                    for face in faces:
                        thumbnails[(face.frame_index, face.box)] = face_thumbnail(
                            frame.image, face.box, thumbnail_scale)
                return faces

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
                    classifier.add(pending.popleft().result())
                    if progress:
                        progress(len(frames) - len(pending))
            for future in pending:
                classifier.add(future.result())
        if progress:
            progress(len(frames))
        return frames

    def _observations(
        self, frames: list[tuple[float, int]], located: list[Located], probabilities: np.ndarray
    ) -> list[Observation]:
        """One observation per face, and an empty one for each key frame without a face."""
        by_frame: dict[int, list[Observation]] = {}
        for (t_s, index, box), probs in zip(located, probabilities, strict=True):
            by_frame.setdefault(index, []).append(
                Observation(
                    t_s=round(t_s, 3),
                    frame_index=index,
                    box=box,
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


Located = tuple[float, int, Box]
"""Where a face was: its frame's time and index, and its box."""


class BatchedClassifier:
    """Classifies faces as they are found, a model batch at a time, keeping only where each
    face was and its probabilities: holding every crop until the end made a long video's
    peak memory grow with its length (the crops, then their float copies)."""

    def __init__(self, model: EmotionModel, batch_size: int, clock: StageClock):
        self._model, self._batch_size, self._clock = model, batch_size, clock
        self._crops: list[np.ndarray] = []
        self._aligned: list[np.ndarray | None] = []
        self._located: list[Located] = []
        self._probabilities: list[np.ndarray] = []

    def add(self, faces: list[Face]) -> None:
        for face in faces:
            self._located.append((face.t_s, face.frame_index, face.box))
            self._crops.append(face.crop)
            self._aligned.append(face.aligned)
        while len(self._crops) >= self._batch_size:
            self._classify(self._batch_size)

    def finish(self) -> tuple[list[Located], np.ndarray]:
        self._classify(len(self._crops))
        if not self._probabilities:
            return self._located, np.zeros((0, len(EMOTIONS)), dtype=np.float32)
        return self._located, np.concatenate(self._probabilities)

    def _classify(self, count: int) -> None:
        with self._clock("emotions"):
            if count:
                self._probabilities.append(
                    self._model.predict(self._crops[:count], self._aligned[:count]))
            del self._crops[:count]
            del self._aligned[:count]
