"""One video in, one `SessionResult` out: key frames -> faces -> emotions -> metrics -> level.

This touches no database and no report, so it can run in worker processes (or, later, on a
cluster) while a single writer stores the results.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from screener.aggregate import session_metrics, with_smoothing
from screener.domain import Face, Observation, SessionResult, VideoJob
from screener.emotions import EMOTIONS, EmotionModel, OnnxEmotionModel
from screener.faces import FaceDetector, HaarFaceDetector, faces_in_frame
from screener.keyframes import KeyframeReader
from screener.rules import RuleSet, load_rules
from screener.settings import Settings

FrameProgress = Callable[[int], None]
"""Called with the number of key frames analysed so far."""


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

    def analyze(self, job: VideoJob, progress: FrameProgress | None = None) -> SessionResult:
        reader = KeyframeReader(job.path, self.settings.keyframes)
        faces: list[Face] = []
        frames: list[tuple[float, int]] = []
        for count, frame in enumerate(reader, start=1):
            frames.append((frame.t_s, frame.index))
            faces.extend(faces_in_frame(frame, self.detector, self.settings.faces))
            frame.image = None  # type: ignore[assignment]  # keep memory flat
            if progress:
                progress(count)
        probabilities = self.model.predict([face.crop for face in faces])
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
        observations = with_smoothing(observations, self.rules.smoothing_window)
        metrics = session_metrics(
            observations,
            negative=self.rules.negative,
            min_run=self.rules.min_run,
            step_s=self.settings.keyframes.every_s,
            duration_s=reader.info.duration_s,
            scenes=reader.info.scenes,
        )
        return SessionResult(
            job=job,
            info=reader.info,
            observations=observations,
            metrics=metrics,
            assessment=self.rules.assess(metrics),
            model_version=self.model.name,
            model_accuracy=self.model.card.val_accuracy,
        )
