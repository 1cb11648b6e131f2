"""Each session against the student's own earlier sessions (a personal baseline).

Some faces read sadder than others to the model, and some students are quieter than others:
comparing a session with the same student's usual level says more than the fixed thresholds
alone. The baseline of a session is the median estimated negative share of up to
`BASELINE_SESSIONS` of the student's sessions recorded before it; the metric
`negative_share_vs_baseline` is the session's estimate minus that, in percentage points (absent
for a student's first session).

Analysis runs without a database (in workers, on a cluster), so the baseline is added where a
scan stores the session. Storing a session can change the baseline of the student's later
sessions (an older video analysed late, or re-analysed with a new model), so after each save
every session of the student is brought up to date, and re-assessed when it was assessed with
the same rule set.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from screener.domain import SessionResult
from screener.session.rules import RuleSet
from screener.storage.store import Store, StoredSession, stored_path

BASELINE_SESSIONS = 5
METRIC = "negative_share_vs_baseline"


def session_estimate(session: StoredSession) -> tuple[float, float, float] | None:
    """(estimate, low, high) of a stored session's negative share; None when it has none that
    can be trusted (too few faces, or stored before screener made estimates)."""
    return metrics_estimate(session.metrics, session.level)


def metrics_estimate(metrics: dict[str, Any], level: str) -> tuple[float, float, float] | None:
    if level == "insufficient":
        return None
    values = [metrics.get(k) for k in
              ("negative_share_est", "negative_share_low", "negative_share_high")]
    if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
        return None
    return float(values[0]), float(values[1]), float(values[2])  # type: ignore[arg-type]


def baseline_share(earlier: Sequence[StoredSession]) -> float | None:
    """Median estimated negative share of the last `BASELINE_SESSIONS` usable sessions of
    `earlier` (oldest first); None when none is usable."""
    usable = [e[0] for s in earlier if (e := session_estimate(s)) is not None]
    return statistics.median(usable[-BASELINE_SESSIONS:]) if usable else None


def vs_baseline(metrics: dict[str, Any], earlier: Sequence[StoredSession]) -> float | None:
    """`negative_share_vs_baseline` of a session with these metrics, in percentage points."""
    share, baseline = metrics.get("negative_share_est"), baseline_share(earlier)
    if baseline is None or not isinstance(share, int | float):
        return None
    return round(100.0 * (float(share) - baseline), 2)


def with_baseline(result: SessionResult, stored: Sequence[StoredSession],
                  rules: RuleSet) -> SessionResult:
    """The result with its baseline metric, re-assessed when it was assessed with `rules`:
    `stored` are the student's sessions (this video's older analysis, and what its path held
    before, are ignored: saving replaces them)."""
    job = result.job
    path = None if job.source else stored_path(job.path)  # its old content is replaced
    earlier = [s for s in _ordered(stored) if s.video_sha256 != job.sha256
               and s.video_path != path
               and (s.recorded_at, s.session_id) < (job.recorded_at, job.session_id)]
    metrics = _with_metric(result.metrics, vs_baseline(result.metrics, earlier))
    if metrics == result.metrics:
        return result
    assessment = result.assessment
    if assessment.rules_version == rules.tag:
        assessment = rules.assess(metrics)
    return replace(result, metrics=metrics, assessment=assessment)


def save_with_baseline(store: Store, result: SessionResult,
                       rules: RuleSet) -> tuple[int, SessionResult]:
    """Store a session compared with the student's earlier ones, then bring the student's
    later sessions up to date with it (an older recording stored late moves their baseline).
    Every writer of sessions (scan, live) goes through here. Returns the stored session's key
    and the result as stored (its level may rest on the baseline)."""
    student = result.job.student_id
    result = with_baseline(result, store.sessions_of(student), rules)
    pk = store.save(result)
    refresh_baselines(store, student, rules)
    return pk, result


def refresh_baselines(store: Store, student_id: str, rules: RuleSet) -> int:
    """Bring every stored session of the student up to date with its baseline; sessions
    assessed with `rules` are re-assessed. Returns how many sessions changed."""
    sessions = _ordered(store.sessions_of(student_id))
    changed = 0
    for i, session in enumerate(sessions):
        metrics = _with_metric(session.metrics, vs_baseline(session.metrics, sessions[:i]))
        if metrics == session.metrics:
            continue
        assessment = rules.assess(metrics) if session.rules_version == rules.tag else None
        store.update_metrics(session.pk, metrics, assessment)
        changed += 1
    return changed


def _with_metric(metrics: dict[str, Any], value: float | None) -> dict[str, Any]:
    updated = {k: v for k, v in metrics.items() if k != METRIC}
    if value is not None:
        updated[METRIC] = value
    return updated


def _ordered(sessions: Sequence[StoredSession]) -> list[StoredSession]:
    return sorted(sessions, key=lambda s: (s.recorded_at, s.session_id, s.pk))
