"""What the report pages say in words: what a level means, how far its numbers can be trusted,
and what is wrong with the data, for a reader who is not a statistician.

Kept apart from the rendering (`report.py`) so the wording can be read, reviewed and tested as
text.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from screener.emotions.model import ModelCard
from screener.session.estimate import interval_text
from screener.session.rules import metric_value, metric_words, too_short, too_short_sentence
from screener.storage.store import StoredSession

COVERAGE_WARNING = 0.5
"""Below this face coverage the page warns that the level rests on a thin part of the video."""
DISCLAIMER_TITLE = "This is a screening aid, not a diagnosis."
DISCLAIMER = (
    " A level says how much negative facial expression an automatic model saw in the recording;"
    " it is not a clinical assessment. Review the recording and talk with the student before"
    " drawing any conclusion."
)
MODEL_CAVEAT = (
    "Faces in classroom recordings (lighting, angle, glasses, partly hidden faces) are harder"
    " than the validation faces, so the model is likely wrong more often here. In blurred,"
    " small or heavily compressed faces it misses more negative expressions than in clear ones"
    " (models/README.md)."
)
WIDE_INTERVAL = 0.30
"""An interval wider than this (in share) makes the page say the level is uncertain."""
LEVEL_MEANINGS = {
    "high": "High: the model saw negative expressions (anger, sadness, fear) for much of the"
            " time the face was visible, including a sustained stretch.",
    "moderate": "Moderate: negative expressions were frequent or kept coming back, but not"
                " enough for High.",
    "low": "Low: negative expressions were neither frequent nor sustained.",
    "insufficient": "Insufficient data: too little of the face was visible to judge; this level"
                    " says nothing about the student's mood.",
}
INTERVAL_MEANING = (
    "\u201cLikely\u201d gives a 90% range: it allows for how the model errs on faces unlike"
    " the ones it learnt from (other cameras, light and people), for people who see fewer"
    " negative expressions than those who labelled its test faces, and for how few distinct"
    " expressions a short recording shows. In testing on simulated sessions of faces from"
    " several sources, such ranges held the true share in at least 85 of 100."
)
RAW_SHARE_CAVEAT = (
    "This is the raw share of faces the model labelled negative. Because the model is often"
    " wrong, such a share is pulled towards the model's own average: very negative sessions read"
    " lower than they are, calm ones higher."
)


@dataclass(frozen=True)
class ShareFigures:
    """A session's negative share as the page states it: the corrected estimate and its 90%
    interval when the analysis made them, and always the raw share of labels."""

    raw: float
    est: float | None = None
    low: float | None = None
    high: float | None = None
    vs_baseline_pp: float | None = None

    @property
    def best(self) -> float:
        return self.raw if self.est is None else self.est

    @property
    def has_interval(self) -> bool:
        return self.low is not None and self.high is not None


def share_text(share: float, low: float | None, high: float | None) -> str:
    """'38% (likely 25% to 52%)', or '38%' without an interval."""
    if low is None or high is None:
        return f"{share:.0%}"
    return f"{share:.0%} ({interval_text(low, high)})"


def share_figures(session: StoredSession) -> ShareFigures:
    m = session.metrics

    def number(name: str) -> float | None:
        value = m.get(name)
        return float(value) if isinstance(value, int | float) and not isinstance(value, bool) \
            else None

    return ShareFigures(session.negative_share, number("negative_share_est"),
                         number("negative_share_low"), number("negative_share_high"),
                         number("negative_share_vs_baseline"))


def level_meaning(level: str) -> str:
    return LEVEL_MEANINGS.get(level, f"Level {level!r} comes from a custom rule set.")


def uncertainty_sentence(estimate: ShareFigures) -> str:
    """How far the share can be trusted, in words: the interval, or why there is none."""
    if estimate.est is None or not estimate.has_interval:
        return RAW_SHARE_CAVEAT
    low, high = estimate.low or 0.0, estimate.high or 0.0
    sentence = (
        f"Corrected for the model's known errors, negative expressions showed about "
        f"{estimate.est:.0%} of the time the face was visible; the true share is likely "
        f"between {low:.0%} and {high:.0%}. The raw share of faces labelled negative was "
        f"{estimate.raw:.0%}."
    )
    if high - low > WIDE_INTERVAL:
        sentence += (" The interval is wide, so this level is uncertain: look at the evidence"
                     " before acting on it.")
    return sentence


def calibration_sentence(model: ModelCard) -> str:
    if model.ece is None:
        return ""
    return (f"How sure it says it is matches how often it is right: on validation faces, when"
            f" it says it is 80% sure it is right close to 80% of the time, off by "
            f"{model.ece * 100:.1f} points on average (its expected calibration error is "
            f"{model.ece:.3f}).")


def model_reliability(model: ModelCard) -> str:
    """Accuracy in words a non-statistician can weigh: how often the model is simply wrong."""
    accuracy = model.val_accuracy
    if accuracy is None:
        return (f"The accuracy of the emotion model ({model.name}) is unknown: no validation "
                "result was recorded with it, so treat its labels with extra caution.")
    if accuracy > 1:  # a percentage written into the model's metadata
        accuracy /= 100
    accuracy = min(max(accuracy, 0.0), 1.0)
    sentence = (f"The emotion model ({model.name}) labels {accuracy:.0%} of FER2013 validation "
                "faces correctly")
    if accuracy >= 1:
        return sentence + "."
    return sentence + f"; it is wrong about one time in {max(1, round(1 / (1 - accuracy)))}."


def trend_summary(sessions: Sequence[StoredSession]) -> str | None:
    if len(sessions) < 2:
        return None
    first = round(share_figures(sessions[0]).best * 100)
    last = round(share_figures(sessions[-1]).best * 100)
    if first == last:
        return f"negative share stayed at {first}% over {len(sessions)} sessions"
    verb = "rose" if last > first else "fell"
    return f"negative share {verb} from {first}% to {last}% over {len(sessions)} sessions"


def quality_warnings(session: StoredSession) -> list[str]:
    warnings = []
    if session.frames_analysed == 0:
        warnings.append("No frames could be analysed in this recording.")
    elif session.face_coverage < COVERAGE_WARNING:
        warnings.append(
            f"A face was found in only {session.face_coverage:.0%} of the analysed frames: the "
            "result rests on a small part of the recording."
        )
    if session.level == "insufficient":
        warnings.append("Too little of the face was visible to judge this session; the level "
                        "says nothing about the student's mood.")
    warnings += [f"{note[:1].upper()}{note[1:]}." for note in session.data_quality]
    return warnings


def format_metric(value: Any, name: str) -> str:
    """Evidence values in the unit a reader expects from the metric's name."""
    return metric_value(value, name)


def metric_name(name: str) -> str:
    """Evidence names in plain words ('longest negative stretch', not
    'longest_negative_run_s')."""
    words = metric_words(name)
    return words[:1].upper() + words[1:]


def too_short_hint(session: StoredSession) -> str | None:
    """'Too short to judge reliably: 6 distinct expressions seen. ...' for a session whose
    level is only a hint, else None."""
    seen = too_short(session.metrics)
    if seen is None or session.level == "insufficient":
        return None
    return too_short_sentence(seen)
