"""What the model answers for faces of each true emotion: the error profile the session
estimates (`screener.session.estimate`) correct for.

A profile is measured on labelled faces (scripts/record_error_profile.py) and recorded in the
model's .json: one for the faces the calibration was fitted on, and one per other face source
(FER2013 blurred, dark, compressed or small, web photographs of other people), whose
differences the session's interval spans.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from screener.domain import EMOTIONS

_K = len(EMOTIONS)
_TINY = 1e-12

PROFILE_PRIOR_FACES = 20.0
"""A source's profile row for a class it holds few faces of (web photographs hold two or three
fearful faces) is pulled towards the pooled row as if it held this many more faces."""

@dataclass(frozen=True)
class ErrorProfile:
    """What the model answers for faces of each true emotion, measured on labelled faces.

    `confusion[i, j]`: faces of true class i whose top label was j (counts). `mean_probabilities
    [i]`: the mean probability vector faces of true class i received, when recorded. `others`:
    the same measured on other face sources, whose differences the interval spans (empty for
    a model whose .json records one profile)."""

    confusion: np.ndarray
    mean_probabilities: np.ndarray | None = None
    source: str = ""
    others: tuple[ErrorProfile, ...] = ()

    @property
    def priors(self) -> np.ndarray:
        """Class frequencies of the faces the profile (and the calibration) was measured on."""
        counts = self.confusion.sum(axis=1)
        return counts / counts.sum()

    @property
    def digest(self) -> str:
        """Short fingerprint of the numbers: stored sessions' estimates were made with one
        profile, and a new one (re-measured, or on other crops) means estimating them again."""
        hashed = hashlib.sha256()
        for profile in (self, *self.others):
            numbers = [profile.confusion] + ([profile.mean_probabilities]
                                             if profile.mean_probabilities is not None else [])
            for array in numbers:
                hashed.update(np.ascontiguousarray(array, dtype=np.float64).tobytes())
        return hashed.hexdigest()[:8]

    @property
    def label_rates(self) -> np.ndarray:
        """P(top label j | true class i), rows summing to 1."""
        counts = self.confusion.sum(axis=1, keepdims=True)
        return self.confusion / np.maximum(counts, _TINY)

    @property
    def rates(self) -> np.ndarray:
        """What the estimators invert: the mean probabilities when recorded, else label rates."""
        return self.mean_probabilities if self.mean_probabilities is not None \
            else self.label_rates

    @classmethod
    def for_model(cls, model_path: Path) -> ErrorProfile | None:
        """The profile recorded in the model's .json by scripts/record_error_profile.py, else
        the confusion matrix of its recorded `evaluation`, else None. Profiles of other face
        sources (`error_profiles`, by source name) come with it as `others`; a .json written
        before they were recorded gives a profile without."""
        meta_path = model_path.with_suffix(".json")
        if not meta_path.is_file():
            return None
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        recorded = meta.get("error_profile") or {}
        confusion = recorded.get("confusion") or meta.get("evaluation", {}).get("confusion")
        if confusion is None:
            return None
        others = tuple(
            cls._recorded(fields, name)
            for name, fields in sorted((meta.get("error_profiles") or {}).items())
            if isinstance(fields, dict) and fields.get("confusion")
        )
        if others:  # a class a source holds few faces of is read as the pool reads it
            pool = cls.pooled(others)
            others = tuple(profile.shrunk(pool) for profile in others)
        main = cls._recorded({**recorded, "confusion": confusion},
                             str(recorded.get("model", meta_path.name)))
        return replace(main, others=others)

    @classmethod
    def _recorded(cls, fields: dict, source: str) -> ErrorProfile:
        soft = fields.get("mean_probabilities")
        return cls(confusion=np.asarray(fields["confusion"], dtype=np.float64),
                   mean_probabilities=np.asarray(soft, dtype=np.float64) if soft else None,
                   source=source)

    @classmethod
    def measure(
        cls, probabilities: np.ndarray, labels: np.ndarray, source: str = ""
    ) -> ErrorProfile:
        """The profile of a model's `probabilities` on faces of known `labels`."""
        probabilities = np.asarray(probabilities, dtype=np.float64)
        labels = np.asarray(labels, dtype=np.int64)
        confusion = np.zeros((_K, _K))
        np.add.at(confusion, (labels, probabilities.argmax(axis=1)), 1)
        sums = np.zeros((_K, _K))
        np.add.at(sums, labels, probabilities)
        mean = sums / np.maximum(confusion.sum(axis=1, keepdims=True), 1)
        return cls(confusion=confusion, mean_probabilities=mean, source=source)

    def record(self, model: str, measured_on: str, **more: object) -> dict:
        """As a model's .json stores it (`error_profile`, or one of `error_profiles`)."""
        soft = self.mean_probabilities
        return {"model": model, "measured_on": measured_on, **more,
                "confusion": self.confusion.astype(int).tolist(),
                "mean_probabilities": None if soft is None else
                [[round(float(x), 5) for x in row] for row in soft]}

    @classmethod
    def pooled(cls, profiles: Sequence[ErrorProfile], source: str = "pooled") -> ErrorProfile:
        """One profile of all the faces the `profiles` were measured on."""
        confusion = sum(p.confusion for p in profiles)
        counts = [p.confusion.sum(axis=1, keepdims=True) for p in profiles]
        soft = None
        if all(p.mean_probabilities is not None for p in profiles):
            soft = sum(c * p.mean_probabilities for c, p in zip(counts, profiles, strict=True))
            soft = soft / np.maximum(sum(counts), 1)
        return cls(confusion=np.asarray(confusion, np.float64), mean_probabilities=soft,
                   source=source)

    def shrunk(self, toward: ErrorProfile, faces: float = PROFILE_PRIOR_FACES) -> ErrorProfile:
        """This profile with each class's row pulled towards `toward`'s as if `faces` more
        faces of that class, read as `toward` reads them, had been measured: a row measured on
        two faces says little."""
        counts = self.confusion.sum(axis=1, keepdims=True)
        weight = counts / (counts + faces)
        confusion = weight * self.confusion + (1 - weight) * toward.label_rates * counts
        soft = None
        if self.mean_probabilities is not None and toward.mean_probabilities is not None:
            soft = weight * self.mean_probabilities + (1 - weight) * toward.mean_probabilities
        return ErrorProfile(confusion=confusion, mean_probabilities=soft, source=self.source)

    def with_others(self, others: Sequence[ErrorProfile]) -> ErrorProfile:
        return replace(self, others=tuple(others))


OWN_READING = ErrorProfile(confusion=np.eye(_K), mean_probabilities=np.eye(_K),
                           source="the model's own reading")
"""A reader who judges every face as the model does: through it a session's share is the
model's mean probability of the negative emotions, uncorrected. The correction is only as right
as its labellers' way of judging faces: with FER+'s voters left out of the fit, their share fell
outside the range in 42% of simulated ten-minute sessions, and with this reading in the range
in 12% (benchmarks/source_coverage.py)."""
