"""The HTML reports: safe file names, escaping, no network references, order and content."""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from screener.domain import (
    EMOTIONS,
    Assessment,
    Box,
    Observation,
    SessionResult,
    VideoInfo,
    VideoJob,
)
from screener.emotions.model import ModelCard
from screener.reports.report import (
    DISCLAIMER_TITLE,
    MANIFEST,
    refresh_reports,
    render_reports,
    student_slug,
)
from screener.session.aggregate import session_metrics, with_smoothing
from screener.storage.store import Store

MODEL = ModelCard(name="mini-xception-test", val_accuracy=0.66)
HOSTILE = "<script>alert(1)</script>"
EXTERNAL = re.compile(r"""(?:src|href)\s*=\s*["']?\s*(?:https?:|//)""", re.IGNORECASE)
_counter = iter(range(1_000_000))


def make_result(
    student: str,
    day: int,
    labels: list[str | None],
    *,
    level: str = "low",
    rule: str = "otherwise",
    session_id: str | None = None,
    path: str | None = None,
    step_s: float = 1.0,
) -> SessionResult:
    """A session with real metrics from per-frame labels (None: no face in that frame)."""
    observations = []
    for i, label in enumerate(labels):
        if label is None:
            observations.append(Observation(i * step_s, i, None, None, None))
            continue
        probs = [0.3 / (len(EMOTIONS) - 1)] * len(EMOTIONS)
        probs[EMOTIONS.index(label)] = 0.7
        observations.append(Observation(i * step_s, i, Box(10, 10, 50, 50), tuple(probs), label))
    observations = with_smoothing(observations, 10)
    duration = len(labels) * step_s
    metrics = session_metrics(observations, ("angry", "sad", "fear"), 5, step_s, duration)
    recorded = datetime(2026, 3, 1) + timedelta(days=day)
    session_id = session_id or f"{student}-{recorded:%Y-%m-%d}"
    job = VideoJob(
        path=Path(path or f"/videos/{student}/{session_id}.mp4"),
        student_id=student,
        session_id=session_id,
        recorded_at=recorded,
        sha256=hashlib.sha256(f"video-{next(_counter)}".encode()).hexdigest(),
    )
    info = VideoInfo(fps=25.0, frame_count=int(duration * 25), duration_s=duration,
                     width=640, height=480, scenes=1)
    evidence = {"negative_share": float(metrics["negative_share"])}  # type: ignore[arg-type]
    assessment = Assessment(level, rule, f"Because of {rule}.", evidence, "default@abc123")
    return SessionResult(job, info, observations, metrics, assessment, "model@1")


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(f"sqlite:///{tmp_path}/t.db")


def read(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def test_report_names_and_links_are_the_same_in_every_process(store: Store,
                                                              tmp_path: Path) -> None:
    """A counsellor bookmarks `alex-smith-….html` and the index links to it: rendering in
    another process (another hash seed, as every cron run is) must give the same names."""
    for student in ("Alex Smith", "Zoë", HOSTILE):
        store.save(make_result(student, 1, ["sad"] * 12))

    def render(seed: str) -> tuple[list[str], list[str]]:
        out = tmp_path / f"seed{seed}"
        result = subprocess.run(
            [sys.executable, "-m", "screener", "report", "--out", str(out), "--db", store.url],
            env={**os.environ, "PYTHONHASHSEED": seed}, capture_output=True, text=True,
            timeout=120,
        )
        assert result.returncode == 0, result.stderr
        links = re.findall(r'href="([^"#]+\.html)"', read(out / "index.html"))
        return sorted(p.name for p in out.glob("*.html")), sorted(links)

    names, links = render("1")
    assert render("2") == (names, links)
    assert len(names) == 4 and set(links) == set(names) - {"index.html"}
    assert re.fullmatch(r"alex-smith-[0-9a-f]{8}\.html", names[0])


@pytest.mark.parametrize(
    "student_id", ["../x", "a/b", HOSTILE, "Zoë Ångström", "学生", "", "..", "con", "a\\b",
                   "x" * 200, "bad\udcff"],
)
def test_slug_is_safe(student_id: str) -> None:
    slug = student_slug(student_id)
    assert re.fullmatch(r"[a-z0-9][a-z0-9-]*-[0-9a-f]{8}", slug)
    assert "/" not in slug and ".." not in slug
    assert len(slug) <= 40 + 9
    if not re.search(r"[A-Za-z0-9]", student_id):
        assert slug.startswith("student-")


def test_slug_separates_ids_differing_in_case_or_punctuation() -> None:
    ids = ["alex", "Alex", "ALEX", "a-lex", "a_lex", "a.lex", "alex ", "Zoë", "Zoe", ""]
    assert len({student_slug(i) for i in ids}) == len(ids)


def test_hostile_ids_and_paths_are_escaped(store: Store, tmp_path: Path) -> None:
    store.save(make_result(HOSTILE, 1, ["sad"] * 20, session_id=f"s{HOSTILE}",
                           path=f"/videos/{HOSTILE}.mp4", rule=HOSTILE))
    out = tmp_path / "out"
    written = render_reports(store, out, ModelCard(name=HOSTILE, val_accuracy=None))
    assert {p.name for p in written} == {f"{student_slug(HOSTILE)}.html", "index.html"}
    for path in written:
        html = read(path)
        assert "<script" not in html.lower()
        assert "&lt;script&gt;" in html
        assert HOSTILE not in html
    assert "s&lt;script&gt;alert(1)&lt;/script&gt;" in read(written[0])


def test_no_external_references(store: Store, tmp_path: Path) -> None:
    store.save(make_result("alex", 1, ["sad", None, "happy"] * 10))
    store.save(make_result("alex", 8, ["angry"] * 30, level="high", rule="sustained-negative"))
    for path in render_reports(store, tmp_path / "out", MODEL):
        html = read(path)
        assert not EXTERNAL.search(html), path.name
        assert "http://" not in html and "https://" not in html
        assert "@import" not in html and "url(" not in html


def test_index_orders_by_concern(store: Store, tmp_path: Path) -> None:
    store.save(make_result("a-low", 1, ["happy"] * 20, level="low"))
    store.save(make_result("b-insufficient", 1, ["sad"] * 3, level="insufficient"))
    store.save(make_result("c-high", 1, ["sad"] * 20, level="high"))
    store.save(make_result("d-moderate", 1, ["sad", "happy"] * 10, level="moderate"))
    # An earlier high does not count: only the latest session orders the index.
    store.save(make_result("e-was-high", 1, ["sad"] * 20, level="high"))
    store.save(make_result("e-was-high", 5, ["happy"] * 20, level="low"))
    render_reports(store, tmp_path, MODEL)
    html = read(tmp_path / "index.html")
    order = re.findall(r'<a href="[a-z0-9-]+\.html"><bdi>([^<]+)</bdi></a>', html)
    assert order == ["c-high", "d-moderate", "a-low", "e-was-high", "b-insufficient"]
    assert "100 points lower" in html  # e-was-high fell from 100% to 0%


def test_within_one_level_the_highest_negative_share_comes_first(store: Store,
                                                                   tmp_path: Path) -> None:
    """As the index says: "then by its negative share" (names in the other order)."""
    for student, sad in (("ann", 4), ("bea", 16), ("cy", 10)):
        labels = ["sad"] * sad + ["happy"] * (20 - sad)
        store.save(make_result(student, 1, labels, level="moderate"))
    render_reports(store, tmp_path, MODEL)
    html = read(tmp_path / "index.html")
    assert "then by its negative share" in html
    order = re.findall(r'<a href="[a-z0-9-]+\.html"><bdi>([^<]+)</bdi></a>', html)
    assert order == ["bea", "cy", "ann"]


def content_security_policies(html: str) -> list[tuple[dict[str, list[str]], bool]]:
    """Each CSP meta tag of a page, parsed into directives, and whether it comes before every
    element that loads or styles something (a meta policy covers only what follows it)."""
    from html.parser import HTMLParser

    found: list[tuple[dict[str, list[str]], bool]] = []
    loaders_seen = []

    class Parser(HTMLParser):
        def handle_starttag(self, tag: str, attrs: list) -> None:
            named = dict(attrs)
            if tag == "meta" and (named.get("http-equiv") or "").lower() == \
                    "content-security-policy":
                directives = {}
                for part in (named.get("content") or "").split(";"):
                    if part.strip():
                        name, *values = part.split()
                        directives[name.lower()] = values
                found.append((directives, not loaders_seen))
            elif tag in ("style", "script", "img", "link", "iframe", "object", "svg", "body"):
                loaders_seen.append(tag)

    Parser().feed(html)
    return found


def test_every_page_forbids_scripts_and_any_load_but_inline_styles_and_data_images(
        store: Store, tmp_path: Path) -> None:
    """The policy a browser enforces, checked without a browser: reports may be opened from a
    shared drive, and nothing in them may run or reach the network."""
    store.save(make_result("alex", 1, ["sad", "happy"] * 10))
    for page in render_reports(store, tmp_path, MODEL):
        [(policy, first)] = content_security_policies(read(page))
        assert first, page.name
        assert policy == {"default-src": ["'none'"], "style-src": ["'unsafe-inline'"],
                          "img-src": ["data:"]}, page.name


def test_student_page_content(store: Store, tmp_path: Path) -> None:
    days = [10, 3, 20]  # saved out of order: the page must sort by recording date
    for day, level in zip(days, ["moderate", "low", "high"], strict=True):
        store.save(make_result("maria", day, ["fear", "neutral"] * 15, level=level,
                               rule=f"rule-{level}"))
    render_reports(store, tmp_path, MODEL)
    html = read(tmp_path / f"{student_slug('maria')}.html")
    assert DISCLAIMER_TITLE in html and "not a clinical assessment" in html
    latest = html[html.index('id="latest"'):html.index('id="distribution"')]
    assert ">high<" in latest and "rule-high" in latest
    assert "66%" in html and "one time in 3" in html
    rows = re.findall(r'<tr class="session[^"]*">\s*<td[^>]*>([^<]+)</td>', html)
    assert rows == ["2026-03-04", "2026-03-11", "2026-03-21"]
    assert "3 sessions" in html
    assert 'href="index.html"' in html


def test_trend_summary_and_unknown_accuracy(store: Store, tmp_path: Path) -> None:
    store.save(make_result("kim", 1, ["sad"] + ["happy"] * 9))
    store.save(make_result("kim", 2, ["sad"] * 5 + ["happy"] * 5))
    render_reports(store, tmp_path, ModelCard(name="m", val_accuracy=None))
    html = read(tmp_path / f"{student_slug('kim')}.html")
    assert "negative share rose from 10% to 50% over 2 sessions" in html
    assert "accuracy of the emotion model (m) is unknown" in html


def test_session_without_frames_and_low_coverage(store: Store, tmp_path: Path) -> None:
    store.save(make_result("empty", 1, [], level="insufficient", rule="too-few-faces"))
    store.save(make_result("hidden", 1, [None] * 8 + ["sad"] * 2, level="insufficient"))
    render_reports(store, tmp_path, MODEL)
    empty = read(tmp_path / f"{student_slug('empty')}.html")
    assert "No frames analysed" in empty and "No frames could be analysed" in empty
    hidden = read(tmp_path / f"{student_slug('hidden')}.html")
    assert "a face was found in only 20%" in hidden.lower()
    assert "no face" in hidden


@pytest.mark.skipif(os.name != "posix", reason="POSIX file modes")
def test_files_are_private_and_no_temp_files_remain(store: Store, tmp_path: Path) -> None:
    store.save(make_result("alex", 1, ["sad"] * 20))
    store.save(make_result("maria", 1, ["happy"] * 20))
    out = tmp_path / "reports" / "nested"
    written = render_reports(store, out, MODEL)
    assert len(written) == 3
    for path in written:
        assert path.parent == out
        assert path.stat().st_mode & 0o777 == 0o600
    expected = sorted([MANIFEST, *(p.name for p in written)])
    assert sorted(p.name for p in out.iterdir()) == expected
    assert (out / MANIFEST).stat().st_mode & 0o777 == 0o600
    render_reports(store, out, MODEL)  # replacing existing files leaves nothing behind either
    assert sorted(p.name for p in out.iterdir()) == expected


def test_refresh_writes_what_is_missing_or_outdated_and_nothing_else(store: Store,
                                                                     tmp_path: Path) -> None:
    store.save(make_result("alex", 1, ["sad"] * 20))
    store.save(make_result("maria", 1, ["happy"] * 20))
    out = tmp_path / "reports"
    alex, maria = (out / f"{student_slug(s)}.html" for s in ("alex", "maria"))
    assert len(refresh_reports(store, out, MODEL)) == 3  # a new folder: everything
    assert refresh_reports(store, out, MODEL) == []  # up to date: nothing rewritten
    maria.unlink()
    assert refresh_reports(store, out, MODEL) == [maria, out / "index.html"]
    store.save(make_result("alex", 2, ["happy"] * 20))  # a new session
    assert refresh_reports(store, out, MODEL) == [alex, out / "index.html"]
    assert refresh_reports(store, out, ModelCard("another", 0.5)) != []  # templates/model changed


def test_refresh_removes_dead_temporary_files_and_pages_of_students_gone(store: Store,
                                                                          tmp_path: Path) -> None:
    result = make_result("alex", 1, ["sad"] * 20)
    store.save(result)
    store.save(make_result("maria", 1, ["happy"] * 20))
    out = tmp_path / "reports"
    refresh_reports(store, out, MODEL)
    dead, live = out / ".report-abc.tmp", out / ".report-def.tmp"
    dead.write_text("half a page")
    live.write_text("a page being written right now")
    os.utime(dead, (0, 0))
    store.relocate(replace(result.job, student_id="maria"))  # alex's only session moves
    refresh_reports(store, out, MODEL)
    assert not dead.exists() and live.exists()
    assert not (out / f"{student_slug('alex')}.html").exists()
    assert "alex" not in read(out / "index.html")


def test_selected_students_only(store: Store, tmp_path: Path) -> None:
    store.save(make_result("alex", 1, ["sad"] * 20))
    store.save(make_result("maria", 1, ["happy"] * 20))
    written = render_reports(store, tmp_path, MODEL, student_ids=["maria"])
    assert [p.name for p in written] == [f"{student_slug('maria')}.html", "index.html"]
    assert {p.name for p in tmp_path.iterdir() if p.suffix == ".html"} == {
        f"{student_slug('maria')}.html", "index.html"}
    index = read(tmp_path / "index.html")
    assert ">alex<" in index and ">maria<" in index


def test_unknown_student_is_an_error_before_writing(store: Store, tmp_path: Path) -> None:
    store.save(make_result("alex", 1, ["sad"] * 20))
    with pytest.raises(LookupError, match="nobody"):
        render_reports(store, tmp_path / "out", MODEL, student_ids=["nobody"])
    assert not (tmp_path / "out").exists()


def test_empty_store_writes_an_index(store: Store, tmp_path: Path) -> None:
    written = render_reports(store, tmp_path / "out", MODEL)
    assert [p.name for p in written] == ["index.html"]
    html = read(written[0])
    assert "No sessions yet" in html
    assert DISCLAIMER_TITLE in html


def test_a_page_states_the_accuracy_of_the_model_that_analysed_the_session(
    store: Store, tmp_path: Path
) -> None:
    older = make_result("lee", 1, ["sad"] * 10)
    older.model_version, older.model_accuracy = "old-model@1", 0.5
    store.save(older)
    store.save(make_result("kim", 1, ["sad"] * 10))  # stored before schema 2: no accuracy
    render_reports(store, tmp_path, MODEL)
    lee = read(tmp_path / f"{student_slug('lee')}.html")
    assert "(old-model@1) labels 50%" in lee and "one time in 2" in lee and "66%" not in lee
    kim = read(tmp_path / f"{student_slug('kim')}.html")
    assert "(mini-xception-test) labels 66%" in kim
    assert "(mini-xception-test) labels 66%" in read(tmp_path / "index.html")


def with_estimate(result: SessionResult, est: float, low: float, high: float,
                  vs_baseline: float | None = None) -> SessionResult:
    result.metrics = {**result.metrics, "negative_share_est": est, "negative_share_low": low,
                      "negative_share_high": high}
    if vs_baseline is not None:
        result.metrics["negative_share_vs_baseline"] = vs_baseline
    return result


def latest_card(html: str) -> str:
    return html[html.index('id="latest"'):html.index('id="distribution"')]


def test_a_session_with_an_estimate_shows_it_its_interval_and_the_raw_share(
    store: Store, tmp_path: Path
) -> None:
    store.save(with_estimate(make_result("ana", 1, ["sad"] * 9 + ["happy"] * 11, level="high"),
                             0.62, 0.48, 0.74, 12.4))
    render_reports(store, tmp_path, MODEL)
    card = latest_card(read(tmp_path / f"{student_slug('ana')}.html"))
    assert "<strong class=\"estimate\">62%</strong> negative" in card
    assert "(likely 48% to 74%)" in card
    assert "Negative share, raw</dt><dd>45%" in card
    assert "12 points higher" in card and "usual" in card
    assert "High: the model saw negative expressions" in card
    assert "likely between 48% and 74%" in card and "level is uncertain" not in card
    index = read(tmp_path / "index.html")
    assert "62%" in index and "(likely 48% to 74%)" in index and "raw 45%" in index
    assert "vs usual" in index


def test_a_wide_interval_says_the_level_is_uncertain(store: Store, tmp_path: Path) -> None:
    store.save(with_estimate(make_result("ana", 1, ["sad"] * 10), 0.5, 0.2, 0.8))
    render_reports(store, tmp_path, MODEL)
    assert "this level is uncertain" in latest_card(read(tmp_path / f"{student_slug('ana')}.html"))


def test_without_an_estimate_the_raw_share_is_shown_with_its_bias(
    store: Store, tmp_path: Path
) -> None:
    stored_before_estimates = make_result("ana", 1, ["sad"] * 3 + ["happy"] * 7)
    for name in ("negative_share_est", "negative_share_low", "negative_share_high"):
        del stored_before_estimates.metrics[name]
    store.save(stored_before_estimates)
    render_reports(store, tmp_path, MODEL)
    card = latest_card(read(tmp_path / f"{student_slug('ana')}.html"))
    assert "<strong class=\"estimate\">30%</strong> negative" in card
    assert "interval" not in card and "estimated" not in card
    assert "pulled towards the model&#39;s own average" in card
    assert "vs last" not in read(tmp_path / "index.html")  # one session: no change at all


def test_the_trend_is_on_the_index_and_the_page_with_the_sessions_behind_it(
    store: Store, tmp_path: Path
) -> None:
    for day, (est, low, high) in enumerate([(0.1, 0.05, 0.15), (0.12, 0.07, 0.17),
                                            (0.5, 0.4, 0.6), (0.6, 0.5, 0.7)]):
        store.save(with_estimate(make_result("ana", day * 7, ["sad"] * 10), est, low, high))
    store.save(with_estimate(make_result("bo", 1, ["sad"] * 10), 0.3, 0.2, 0.4))
    render_reports(store, tmp_path, MODEL)
    page = read(tmp_path / f"{student_slug('ana')}.html")
    assert page.count('<span class="tag direction">rising</span>') == 2
    behind = re.search(r"Sessions behind it: (.*?)</span></p>", page, re.S)
    assert behind and re.sub(r"<[^>]+>", "", behind.group(1)) == (
        "2026-03-01, 2026-03-08, 2026-03-15, 2026-03-22.")
    index = read(tmp_path / "index.html")
    assert re.search(r'class="direction flag"[^>]*>rising<', index)
    assert re.search(r'class="direction"[^>]*>not enough sessions<', index)


def test_calibration_error_is_stated_when_the_model_card_has_one(
    store: Store, tmp_path: Path
) -> None:
    store.save(make_result("ana", 1, ["sad"] * 10))
    render_reports(store, tmp_path, ModelCard(name="m", val_accuracy=0.66, ece=0.0159))
    for page in (f"{student_slug('ana')}.html", "index.html"):
        assert "off by 1.6 points on average" in read(tmp_path / page)
        assert "calibration error is 0.016" in read(tmp_path / page)
    render_reports(store, tmp_path, MODEL)
    assert "calibration" not in read(tmp_path / "index.html")


def test_the_decoders_data_quality_notes_are_shown_on_the_page(store: Store,
                                                               tmp_path: Path) -> None:
    result = make_result("ana", 1, ["sad"] * 10)
    result.metrics = {**result.metrics, "undecodable_frames": 12,
                      "data_quality": ["12 frames could not be decoded (damaged file)"]}
    store.save(result)
    store.save(make_result("bo", 1, ["sad"] * 10))
    render_reports(store, tmp_path, MODEL)
    card = latest_card(read(tmp_path / f"{student_slug('ana')}.html"))
    assert "12 frames could not be decoded (damaged file)." in card
    assert "could not be decoded" not in read(tmp_path / f"{student_slug('bo')}.html")


def test_evidence_frames_are_shown_inline_only_when_stored(store: Store, tmp_path: Path) -> None:
    from screener.domain import EvidenceFrame

    with_frames = make_result("ana", 1, ["sad"] * 10)
    jpeg = b"\xff\xd8\xff\xe0fake-jpeg"
    with_frames.evidence_frames = [EvidenceFrame(4.0, 4, "sad", 0.91, "most negative face", jpeg)]
    store.save(with_frames)
    store.save(make_result("bo", 1, ["sad"] * 10))
    render_reports(store, tmp_path, MODEL)
    ana = read(tmp_path / f"{student_slug('ana')}.html")
    assert ana.count("data:image/jpeg;base64,/9j/4GZha2UtanBlZw==") == 1
    assert "0:04" in ana and "91% negative" in ana and "among the most negative" in ana
    assert "evidence frame</title>" in ana  # marked on the timeline
    bo = read(tmp_path / f"{student_slug('bo')}.html")
    assert "<img" not in bo and 'id="evidence-frames"' not in bo
    assert "<img" not in read(tmp_path / "index.html")


def test_a_level_from_too_few_expressions_is_a_hint_listed_after_every_finding(
        store: Store, tmp_path: Path) -> None:
    varied = ["sad", "happy", "neutral", "angry", "surprise", "fear"] * 6  # 36 expressions
    store.save(make_result("a-low", 1, ["happy", "neutral"] * 20, level="low"))  # 40
    store.save(make_result("b-high-short", 1, ["sad"] * 20, level="high"))
    store.save(make_result("c-low-varied", 1, varied, level="low"))
    render_reports(store, tmp_path, MODEL)
    html = read(tmp_path / "index.html")
    order = re.findall(r'<a href="[a-z0-9-]+\.html"><bdi>([^<]+)</bdi></a>', html)
    assert order == ["c-low-varied", "a-low", "b-high-short"]  # findings by share first
    assert "1 too short to judge" in html and "2 low" in html
    page = read(tmp_path / f"{student_slug('b-high-short')}.html")
    assert "high (hint)" in page
    assert "Too short to judge reliably: 1 distinct expression seen." in page
    assert "(hint)" not in read(tmp_path / f"{student_slug('c-low-varied')}.html")
