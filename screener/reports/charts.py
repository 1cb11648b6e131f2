"""Geometry for the report's inline SVG charts: numbers only, never markup.

The templates draw every shape from the plain numbers computed here, so no user-derived text ever
reaches an SVG attribute unescaped, and the charts stay testable without parsing HTML. Text that
does appear in a chart (tick labels, tooltips) is handed to the template as data and autoescaped.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from statistics import median

from screener.domain import EMOTIONS, NEGATIVE_EMOTIONS, Observation

EMOTION_COLOURS: dict[str, str] = {
    "angry": "#c0392b",
    "disgust": "#8d6e3f",
    "fear": "#7d3c98",
    "happy": "#e0a800",
    "sad": "#2f6db5",
    "surprise": "#1a9c8f",
    "neutral": "#9cc3a4",
}
LEVEL_COLOURS: dict[str, str] = {
    "high": "#c62828",
    "moderate": "#d98b00",
    "low": "#2e7d32",
    "insufficient": "#7b8187",
}
UNKNOWN_COLOUR = "#7b8187"
_NEGATIVE_INDEXES = tuple(EMOTIONS.index(e) for e in EMOTIONS if e in NEGATIVE_EMOTIONS)


@dataclass(frozen=True)
class Span:
    """A run of consecutive observations drawn as one rectangle (keeps long videos small)."""

    x: float
    width: float
    colour: str
    label: str


@dataclass(frozen=True)
class Tick:
    pos: float
    text: str


@dataclass
class Timeline:
    width: int
    height: int
    plot_left: float
    plot_right: float
    strip_y: float
    strip_h: float
    line_top: float
    line_bottom: float
    noface_y: float
    noface_h: float
    axis_y: float
    duration_s: float = 1.0
    """The time at the plot's right edge."""
    spans: list[Span] = field(default_factory=list)
    noface: list[Span] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)
    """`points` attributes of polylines of the negative probability, split at gaps."""
    dots: list[tuple[float, float]] = field(default_factory=list)
    """Isolated points that a polyline cannot show."""
    x_ticks: list[Tick] = field(default_factory=list)
    y_ticks: list[Tick] = field(default_factory=list)


def negative_probability(probabilities: Sequence[float]) -> float:
    return float(sum(probabilities[i] for i in _NEGATIVE_INDEXES))


def clock(seconds: float) -> str:
    """m:ss or h:mm:ss, the way people read video positions."""
    total = max(0, int(round(seconds)))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def nice_step(span: float, target: int = 8) -> float:
    """A 1-2-5 step (or a clock-friendly one past a minute) giving about `target` ticks."""
    if span <= 0:
        return 1.0
    raw = span / target
    for step in (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200):
        if step >= raw:
            return float(step)
    return float(3600 * math.ceil(raw / 3600))


def timeline(
    observations: Sequence[Observation], duration_s: float, width: int = 900
) -> Timeline:
    """Label strip, negative-probability line and no-face band over 0..duration_s."""
    obs = sorted(observations, key=lambda o: o.t_s)
    end = max([duration_s, *(o.t_s for o in obs)], default=0.0) or 1.0
    chart = Timeline(
        width=width, height=226, plot_left=72.0, plot_right=width - 24.0,
        strip_y=8.0, strip_h=26.0, line_top=58.0, line_bottom=172.0,
        noface_y=180.0, noface_h=12.0, axis_y=212.0, duration_s=end,
    )
    scale = (chart.plot_right - chart.plot_left) / end

    def x_of(t: float) -> float:
        return round(chart.plot_left + min(max(t, 0.0), end) * scale, 2)

    gaps = [b.t_s - a.t_s for a, b in zip(obs, obs[1:], strict=False) if b.t_s > a.t_s]
    step = median(gaps) if gaps else min(end, 1.0)
    runs: list[tuple[str | None, float, float]] = []
    for o in obs:
        key = o.label if o.has_face and o.label else None
        if runs and runs[-1][0] == key and o.t_s - runs[-1][2] <= 1.5 * step:
            runs[-1] = (key, runs[-1][1], o.t_s)
        else:
            runs.append((key, o.t_s, o.t_s))
    for label, first, last in runs:
        x0, x1 = x_of(first - step / 2), x_of(last + step / 2)
        span_width = round(max(x1 - x0, 1.0), 2)
        if label is None:
            chart.noface.append(Span(x0, span_width, UNKNOWN_COLOUR, "no face"))
        else:
            colour = EMOTION_COLOURS.get(label, UNKNOWN_COLOUR)
            chart.spans.append(Span(x0, span_width, colour, label))

    height = chart.line_bottom - chart.line_top
    segment: list[tuple[float, float]] = []
    previous_t: float | None = None
    for o in [*obs, None]:
        broken = o is None or not o.probabilities or (
            previous_t is not None and o.t_s - previous_t > 3 * step
        )
        if broken and segment:
            if len(segment) == 1:
                chart.dots.append(segment[0])
            else:
                chart.lines.append(" ".join(f"{x:g},{y:g}" for x, y in segment))
            segment = []
        if o is not None and o.probabilities:
            p = min(max(negative_probability(o.probabilities), 0.0), 1.0)
            segment.append((x_of(o.t_s), round(chart.line_bottom - p * height, 2)))
            previous_t = o.t_s
    tick = nice_step(end)
    chart.x_ticks = [
        Tick(x_of(i * tick), clock(i * tick)) for i in range(int(end // tick) + 1)
    ]
    chart.y_ticks = [
        Tick(round(chart.line_bottom - f * height, 2), f"{f:.0%}") for f in (0.0, 0.5, 1.0)
    ]
    return chart


@dataclass(frozen=True)
class TrendPoint:
    x: float
    y: float
    colour: str
    level: str
    share: float
    when: datetime
    session_id: str
    y_low: float | None = None
    """The bottom and top of the 90% interval, when the session has one."""
    y_high: float | None = None


@dataclass
class Trend:
    width: int
    height: int
    plot_left: float
    plot_right: float
    plot_top: float
    plot_bottom: float
    points: list[TrendPoint] = field(default_factory=list)
    line: str = ""
    x_ticks: list[Tick] = field(default_factory=list)
    y_ticks: list[Tick] = field(default_factory=list)


def trend(
    sessions: Sequence[tuple[datetime, float, str, str]],
    width: int = 900,
    intervals: Sequence[tuple[float | None, float | None] | None] | None = None,
) -> Trend:
    """Negative share per session over time: (recorded_at, share, level, session_id) each,
    and optionally each share's interval (low, high), drawn as a whisker.

    x is proportional to the recording date so that gaps between sessions are visible; with a
    single date every point sits in the middle.
    """
    chart = Trend(width=width, height=220, plot_left=56.0, plot_right=width - 40.0,
                  plot_top=14.0, plot_bottom=176.0)
    if not sessions:
        return chart
    stamps = [s[0].timestamp() for s in sessions]
    first, span = min(stamps), max(stamps) - min(stamps)
    plot_w = chart.plot_right - chart.plot_left
    plot_h = chart.plot_bottom - chart.plot_top
    for index, (stamp, (when, share, level, session_id)) in enumerate(
        zip(stamps, sessions, strict=True)
    ):
        if span:
            x = chart.plot_left + (stamp - first) / span * plot_w
        elif len(sessions) > 1:
            x = chart.plot_left + index / (len(sessions) - 1) * plot_w
        else:
            x = chart.plot_left + plot_w / 2
        def y_of(value: float) -> float:
            return round(chart.plot_bottom - min(max(value, 0.0), 1.0) * plot_h, 2)

        interval = intervals[index] if intervals else None
        low, high = interval if interval else (None, None)
        chart.points.append(TrendPoint(
            round(x, 2), y_of(share), LEVEL_COLOURS.get(level, UNKNOWN_COLOUR), level,
            share, when, session_id,
            y_of(low) if low is not None and high is not None else None,
            y_of(high) if low is not None and high is not None else None,
        ))
    chart.line = " ".join(f"{p.x:g},{p.y:g}" for p in chart.points)
    chart.x_ticks = _spaced_labels(chart.points, min_gap=84.0)
    chart.y_ticks = [
        Tick(round(chart.plot_bottom - f * plot_h, 2), f"{f:.0%}")
        for f in (0.0, 0.25, 0.5, 0.75, 1.0)
    ]
    return chart


def _spaced_labels(points: Sequence[TrendPoint], min_gap: float) -> list[Tick]:
    """Date labels under the points, skipping any that would overlap; the last date shows."""
    ticks: list[Tick] = []
    for p in points:
        text = p.when.strftime("%Y-%m-%d")
        if not ticks or (p.x - ticks[-1].pos >= min_gap and text != ticks[-1].text):
            ticks.append(Tick(p.x, text))
    last = Tick(points[-1].x, points[-1].when.strftime("%Y-%m-%d"))
    if len(ticks) > 1 and ticks[-1].text != last.text:
        ticks[-1] = last
    return ticks


def marks(chart: Timeline, times: Sequence[float]) -> list[float]:
    """x positions on a timeline of the given times (evidence frames), within the plot."""
    end = max(chart.duration_s, 1e-9)
    scale = (chart.plot_right - chart.plot_left) / end
    return [round(chart.plot_left + min(max(t, 0.0), end) * scale, 2) for t in times]


@dataclass(frozen=True)
class Bar:
    emotion: str
    share: float
    y: float
    width: float
    colour: str
    negative: bool


def bars(shares: dict[str, float], width: int = 560) -> tuple[list[Bar], float, int]:
    """Horizontal bars of each emotion's share: (bars, bar area width, chart height)."""
    area = width - 160.0
    rows = [
        Bar(emotion, share, 6.0 + i * 26.0, round(area * min(max(share, 0.0), 1.0), 2),
            EMOTION_COLOURS[emotion], emotion in NEGATIVE_EMOTIONS)
        for i, (emotion, share) in enumerate((e, shares.get(e, 0.0)) for e in EMOTIONS)
    ]
    return rows, area, int(12 + 26 * len(EMOTIONS))
