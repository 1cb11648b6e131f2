"""From per-frame observations to per-session metrics that rules can read.

Smoothing keeps the original real-time demo's idea: the displayed emotion is the mode of the last
`window` labels, which damps single-frame flickers before runs ("episodes") are counted. Shares
are taken over the raw labels, so each analysed face counts once.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import replace

import numpy as np

from screener.domain import EMOTIONS, Observation
from screener.session.error_profile import ErrorProfile
from screener.session.estimate import BLOCK_SECONDS, distinct_expressions, estimate_negative_share


def smooth_labels(labels: Sequence[str], window: int) -> list[str]:
    """Mode of the last `window` labels at each step; ties go to the most recent label."""
    smoothed: list[str] = []
    for i in range(len(labels)):
        recent = labels[max(0, i - window + 1) : i + 1]
        counts = Counter(recent)
        top = max(counts.values())
        smoothed.append(next(lb for lb in reversed(recent) if counts[lb] == top))
    return smoothed


def with_smoothing(observations: Sequence[Observation], window: int) -> list[Observation]:
    faces = [o for o in observations if o.label is not None]
    smoothed = iter(smooth_labels([o.label for o in faces], window))  # type: ignore[misc]
    return [
        replace(o, smoothed_label=next(smoothed)) if o.label is not None else o
        for o in observations
    ]


BASELINE_METRICS = frozenset({"negative_share_vs_baseline"})
"""Metrics added where a scan stores the session, from the student's earlier sessions
(screener/trends/baseline.py): analysis alone cannot know them."""


def metric_names(negative: Sequence[str] = ("angry", "sad", "fear")) -> set[str]:
    """Every numeric metric `session_metrics` produces, for validating rules files."""
    names = {
        "frames_analysed", "face_frames", "faces_found", "face_coverage", "duration_s",
        "negative_share", "negative_probability", "positive_share", "valence",
        "negative_episodes", "longest_negative_run_s", "scenes", "undecodable_frames",
        "negative_share_est", "negative_share_low", "negative_share_high",
        "distinct_expressions",
    } | BASELINE_METRICS
    names |= {f"share_{e}" for e in EMOTIONS} | {f"mean_p_{e}" for e in EMOTIONS}
    names |= {f"episodes_{e}" for e in EMOTIONS}
    return names


def session_metrics(
    observations: Sequence[Observation],
    negative: Sequence[str],
    min_run: int,
    step_s: float,
    duration_s: float = 0.0,
    scenes: int = 1,
    undecodable_frames: int = 0,
    error_profile: ErrorProfile | None = None,
) -> dict[str, float | str | None]:
    """Metrics of one session. `observations` are one per analysed face, with smoothed labels.

    `negative_share_est` (with its 90% interval `negative_share_low`/`_high`) corrects the
    raw `negative_share` for the model's known errors (`error_profile`;
    screener/session/estimate.py);
    None when no face was analysed. `distinct_expressions` counts the faces that start a new
    expression (a new top label, or probabilities that moved far): what a level rests on.

    A run is a stretch of consecutive analysed faces whose smoothed label is negative; an
    episode is a run of one negative emotion at least `min_run` faces long. Run lengths in
    seconds count each face as covering `step_s` seconds (the sampling interval).
    """
    faces = [o for o in observations if o.label is not None]
    frame_indexes = {o.frame_index for o in observations}
    face_frames = len({o.frame_index for o in faces})
    n = len(faces)
    metrics: dict[str, float | str | None] = {
        "frames_analysed": len(frame_indexes),
        "face_frames": face_frames,
        "faces_found": n,
        "face_coverage": face_frames / len(frame_indexes) if frame_indexes else 0.0,
        "duration_s": duration_s,
        "scenes": scenes,
        "undecodable_frames": undecodable_frames,
    }
    labels = Counter(o.label for o in faces)
    probabilities = np.array([o.probabilities for o in faces], dtype=np.float64).reshape(
        n, len(EMOTIONS)
    )
    means = probabilities.mean(axis=0) if n else np.zeros(len(EMOTIONS))
    for i, emotion in enumerate(EMOTIONS):
        metrics[f"share_{emotion}"] = labels[emotion] / n if n else 0.0
        metrics[f"mean_p_{emotion}"] = float(means[i])
    negative_set = set(negative)
    negative_share = sum(labels[e] for e in negative_set) / n if n else 0.0
    metrics["negative_share"] = negative_share
    estimate = estimate_negative_share(
        probabilities, sorted(negative_set), error_profile,
        block=max(1, round(BLOCK_SECONDS / step_s)),
    )
    metrics["negative_share_est"] = estimate.share if estimate else None
    metrics["negative_share_low"] = estimate.low if estimate else None
    metrics["negative_share_high"] = estimate.high if estimate else None
    metrics["distinct_expressions"] = distinct_expressions(probabilities)
    # In a fixed order: a set's order changes with each process's hash seed, and so would the
    # float sum, making a video analysed in a worker differ from one analysed here.
    metrics["negative_probability"] = float(
        sum(means[EMOTIONS.index(e)] for e in sorted(negative_set))
    )
    metrics["positive_share"] = metrics["share_happy"]
    metrics["valence"] = float(metrics["share_happy"]) - negative_share  # type: ignore[arg-type]
    episodes, longest = negative_runs(
        [o.smoothed_label or o.label for o in faces], negative_set, min_run
    )
    for emotion in EMOTIONS:
        metrics[f"episodes_{emotion}"] = episodes.get(emotion, 0)
    metrics["negative_episodes"] = sum(episodes.values())
    metrics["longest_negative_run_s"] = longest * step_s
    metrics["dominant_emotion"] = labels.most_common(1)[0][0] if n else None
    return metrics


def negative_runs(
    labels: Sequence[str | None], negative: set[str], min_run: int
) -> tuple[dict, int]:
    """Episodes per negative emotion, and the longest stretch of any negative label."""
    episodes: Counter[str] = Counter()
    longest = current_any = current_same = 0
    previous: str | None = None
    for label in labels:
        if label in negative:
            current_any += 1
            current_same = current_same + 1 if label == previous else 1
            if current_same == min_run:
                episodes[label] += 1  # type: ignore[index]
        else:
            current_any = current_same = 0
        longest = max(longest, current_any)
        previous = label
    return dict(episodes), longest
