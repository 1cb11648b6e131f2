"""What a live session announces as it runs.

Two policies, chosen by the rule set: `seed` speaks as the original real-time program did, frame
by frame; any other rule set gives the level of the last `window_s` seconds, announced when it
changes. Both read the same observations that are stored, so what is said live and what a
report later shows come from one pipeline.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Protocol

from screener.domain import Observation
from screener.session.aggregate import session_metrics, with_smoothing
from screener.session.error_profile import ErrorProfile
from screener.session.rules import RuleSet

STRESS_MESSAGES = {
    "angry": "More Stress or Depression Detected",
    "fear": "Moderate Stress or Depression Detected",
    "sad": "Less Stress or Depression Detected",
}
"""The original's conclusion once one negative emotion had been detected `DETECTIONS` times."""

DETECTIONS = 4


@dataclass(frozen=True)
class Alert:
    t_s: float
    kind: str
    """`emotion` ("Sad Emotion Detected"), `stress` (the original's conclusion) or `level`."""
    message: str
    level: str | None = None


class AlertPolicy(Protocol):
    def on_frame(self, observation: Observation) -> list[Alert]:
        """Every analysed frame's observation of the student (smoothed label set)."""
        ...

    def on_key_frame(self, observation: Observation) -> list[Alert]:
        """Each observation kept at the key-frame rate, as stored."""
        ...


class SeedAlerts:
    """The original program's logic: the same negative (smoothed) label on `min_run`
    consecutive frames with a face is a detection ("Sad Emotion Detected"); the
    `DETECTIONS`-th detection of one emotion prints its conclusion, and every count restarts.
    Frames without a face neither extend nor break a run, as in the session metrics."""

    def __init__(self, rules: RuleSet) -> None:
        self.negative, self.min_run = set(rules.negative), rules.min_run
        self._previous: str | None = None
        self._run = 0
        self.detections: dict[str, int] = {}

    def on_frame(self, observation: Observation) -> list[Alert]:
        label = observation.smoothed_label or observation.label
        if label is None:
            return []
        self._run = self._run + 1 if label == self._previous else 1
        self._previous = label
        if label not in self.negative or self._run != self.min_run:
            return []
        t_s = observation.t_s
        alerts = [Alert(t_s, "emotion", f"{label.capitalize()} Emotion Detected")]
        self.detections[label] = self.detections.get(label, 0) + 1
        if self.detections[label] >= DETECTIONS and label in STRESS_MESSAGES:
            alerts.append(Alert(t_s, "stress", STRESS_MESSAGES[label]))
            self.detections.clear()
        return alerts

    def on_key_frame(self, observation: Observation) -> list[Alert]:
        return []


class WindowLevel:
    """The rule set applied to the key-frame observations of the last `window_s` seconds, as
    if they were a session of their own; a change of level is announced, with the seconds
    it covers (fewer than `window_s` until the window has filled)."""

    def __init__(self, rules: RuleSet, window_s: float, step_s: float,
                 error_profile: ErrorProfile | None = None) -> None:
        self.rules, self.window_s, self.step_s = rules, window_s, step_s
        self.error_profile = error_profile
        self._recent: deque[Observation] = deque()
        self._first_t_s: float | None = None
        self.level = "insufficient"

    def on_frame(self, observation: Observation) -> list[Alert]:
        return []

    def on_key_frame(self, observation: Observation) -> list[Alert]:
        self._recent.append(observation)
        if self._first_t_s is None:
            self._first_t_s = observation.t_s
        while self._recent[0].t_s <= observation.t_s - self.window_s:
            self._recent.popleft()
        window = with_smoothing(list(self._recent), self.rules.smoothing_window)
        metrics = session_metrics(
            window, self.rules.negative, self.rules.min_run, self.step_s,
            duration_s=observation.t_s - self._recent[0].t_s + self.step_s,
            error_profile=self.error_profile,
        )
        assessment = self.rules.assess(metrics)
        if assessment.level == self.level:
            return []
        self.level = assessment.level
        # Until the window is full it holds only what has been seen so far: say so.
        span = min(self.window_s, observation.t_s - self._first_t_s)
        message = (f"Level {assessment.level.upper()} over the last {round(span, 1):g} s "
                   f"(rule {assessment.rule})")
        return [Alert(observation.t_s, "level", message, assessment.level)]


def alert_policy(rules: RuleSet, window_s: float, step_s: float,
                 error_profile: ErrorProfile | None = None) -> AlertPolicy:
    """The original program's messages with the seed rules; otherwise the window's level,
    from the same corrected estimate a scan computes (`error_profile`)."""
    if rules.name == "seed":
        return SeedAlerts(rules)
    return WindowLevel(rules, window_s, step_s, error_profile)
