"""The report's charts point the right way: read from the SVG a counsellor sees, more negative
affect is drawn higher (SVG's y grows downwards), and the axis labels agree with the points."""

from __future__ import annotations

from html.parser import HTMLParser
from pathlib import Path

import pytest

from screener.domain import EMOTIONS, Observation
from screener.reports.charts import timeline
from screener.reports.report import render_reports, student_slug
from screener.storage.store import Store
from tests.reports.test_report import MODEL, make_result


class SvgOfSection(HTMLParser):
    """The circles (with their <title> text), polylines and tick labels inside the SVG of one
    `<section id=...>` of a page."""

    def __init__(self, section: str) -> None:
        super().__init__()
        self.section, self.depth = section, 0
        self.circles: list[dict[str, str]] = []
        self.polylines: list[str] = []
        self.texts: list[tuple[float, str]] = []
        self._text_y: float | None = None
        self._in_title = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "section":
            if self.depth or a.get("id") == self.section:
                self.depth += 1
            return
        if not self.depth:
            return
        if tag == "circle":
            self.circles.append({**a, "title": ""})
        elif tag == "title":
            self._in_title = True
        elif tag == "polyline":
            self.polylines.append(a["points"])
        elif tag == "text":
            self._text_y = float(a["y"])

    def handle_endtag(self, tag: str) -> None:
        if tag == "section" and self.depth:
            self.depth -= 1
        elif tag == "title":
            self._in_title = False
        elif tag == "text":
            self._text_y = None

    def handle_data(self, data: str) -> None:
        if self._in_title and self.circles:
            self.circles[-1]["title"] += data
        elif self._text_y is not None and data.strip():
            self.texts.append((self._text_y, data.strip()))


def svg_of(page: Path, section: str) -> SvgOfSection:
    parser = SvgOfSection(section)
    parser.feed(page.read_text(encoding="utf-8"))
    assert parser.depth == 0
    return parser


def test_the_trend_draws_a_higher_negative_share_higher(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path}/t.db")
    shares = {"s-low": 0.2, "s-high": 0.8, "s-mid": 0.5}
    for day, (session, share) in enumerate(shares.items()):
        negative = round(share * 10)
        store.save(make_result("alex", day, ["sad"] * negative + ["happy"] * (10 - negative),
                               session_id=session))
    render_reports(store, tmp_path / "out", MODEL)
    svg = svg_of(tmp_path / "out" / f"{student_slug('alex')}.html", "trend")

    def title(circle: dict[str, str]) -> str:  # names come wrapped in Unicode isolates
        return circle["title"].replace("\u2068", "").replace("\u2069", "")

    height = {s: float(c["cy"]) for c in svg.circles for s in shares if f"· {s} ·" in title(c)}
    assert set(height) == set(shares)
    assert height["s-high"] < height["s-mid"] < height["s-low"]
    ticks = {text: y for y, text in svg.texts if text.endswith("%")}
    assert ticks["100%"] < ticks["50%"] < ticks["0%"]
    # Each point sits at its share on the labelled axis (tick labels are drawn 4 px low).
    zero, full = ticks["0%"] - 4, ticks["100%"] - 4
    for session, share in shares.items():
        assert height[session] == pytest.approx(zero + share * (full - zero), abs=0.05)
    xs = [float(c["cx"]) for c in svg.circles if c["title"]]
    assert xs == sorted(xs)  # oldest session on the left


def test_the_timeline_draws_a_higher_negative_probability_higher() -> None:
    def observation(t: float, label: str) -> Observation:
        probabilities = [0.0] * len(EMOTIONS)
        probabilities[EMOTIONS.index(label)] = 1.0
        return Observation(t, int(t), None, tuple(probabilities), label)

    chart = timeline([observation(0, "happy"), observation(1, "sad"), observation(2, "angry"),
                      observation(3, "neutral")], duration_s=4)
    [line] = chart.lines
    ys = [float(point.split(",")[1]) for point in line.split()]
    assert ys[1] == ys[2] == chart.line_top < ys[0] == ys[3] == chart.line_bottom
    labelled = {tick.text: tick.pos for tick in chart.y_ticks}
    assert labelled["100%"] == chart.line_top and labelled["0%"] == chart.line_bottom
