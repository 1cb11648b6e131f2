"""Is a student's negative affect growing? A comparison with their own earlier sessions.

One session's estimate moves by chance (its interval says how much), so a trend is called only
when the recent sessions' whole intervals leave the band of the student's usual sessions:
"rising" when the recent sessions' interval lows all lie above the baseline's usual interval
high, "falling" for the mirror image, "steady" otherwise. Sessions without an estimate (too
few faces, or stored before estimates existed) are left out.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass

from screener.session.estimate import interval_text
from screener.storage.store import StoredSession
from screener.trends.baseline import BASELINE_SESSIONS, session_estimate

RECENT_SESSIONS = 2
"""How many of the latest sessions must all lie beyond the baseline band for a trend."""
MIN_SESSIONS = 3

DIRECTIONS = ("rising", "steady", "falling", "not enough sessions")


@dataclass(frozen=True)
class Trend:
    direction: str
    """One of `DIRECTIONS`."""
    explanation: str
    """One sentence a counsellor can read."""
    recent: tuple[StoredSession, ...] = ()
    """The latest sessions the trend is about, oldest first."""
    baseline: tuple[StoredSession, ...] = ()
    """The earlier sessions they were compared with, oldest first."""
    baseline_share: float | None = None
    """Median estimated negative share of the baseline sessions."""

    @property
    def sessions(self) -> tuple[StoredSession, ...]:
        """Every session behind the trend, oldest first."""
        return self.baseline + self.recent


def student_trend(sessions: Sequence[StoredSession]) -> Trend:
    """The trend of one student's sessions (any order; sorted by recording date here)."""
    ordered = sorted(sessions, key=lambda s: (s.recorded_at, s.session_id, s.pk))
    usable = [s for s in ordered if session_estimate(s) is not None]
    if len(usable) < MIN_SESSIONS:
        return Trend(
            "not enough sessions",
            f"A trend needs at least {MIN_SESSIONS} sessions with enough faces; "
            f"this student has {len(usable)}.",
            recent=tuple(usable),
        )
    count = RECENT_SESSIONS if len(usable) > RECENT_SESSIONS + 1 else 1
    recent = tuple(usable[-count:])
    baseline = tuple(usable[:-count][-BASELINE_SESSIONS:])
    estimates = [session_estimate(s) for s in baseline]
    centre = statistics.median(e[0] for e in estimates)  # type: ignore[index]
    band_low = statistics.median(e[1] for e in estimates)  # type: ignore[index]
    band_high = statistics.median(e[2] for e in estimates)  # type: ignore[index]
    lows = [session_estimate(s)[1] for s in recent]  # type: ignore[index]
    highs = [session_estimate(s)[2] for s in recent]  # type: ignore[index]
    which = "the latest session lies" if count == 1 else f"the latest {count} sessions lie"
    overlap = "overlaps" if count == 1 else "overlap"
    # At least MIN_SESSIONS usable sessions, at most RECENT_SESSIONS of them recent: the
    # baseline always has two or more.
    usual = (f"the student's usual {centre:.0%} (median of {len(baseline)} earlier "
             f"sessions; usual range {interval_text(band_low, band_high)})")
    if min(lows) > band_high:
        direction = "rising"
        text = f"Negative affect is rising: {which} above {usual}, beyond chance."
    elif max(highs) < band_low:
        direction = "falling"
        text = f"Negative affect is falling: {which} below {usual}, beyond chance."
    else:
        direction = "steady"
        text = f"No clear change: {which.rsplit(' ', 1)[0]} {overlap} {usual}."
    return Trend(direction, text, recent, baseline, centre)
