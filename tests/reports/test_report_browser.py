"""The reports as a person sees them: rendered by headless Chromium at desktop and phone width,
printed to A4. Skipped without Chromium, unless SCREENER_REQUIRE lists chromium (CI), which
makes that a failure."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pytest

from screener.emotions.model import ModelCard
from screener.reports.report import render_reports, student_slug
from screener.session.evidence import MOST_NEGATIVE, STRETCH, face_thumbnail
from screener.storage.store import Store
from tests.conftest import missing
from tests.reports.test_report import make_result

DESKTOP = (1280, 900)
PHONE = (390, 844)
A4_PRINTABLE_PX = 688
"""A4's 210 mm less the pages' 2 x 14 mm margins, in CSS pixels (96 per inch)."""
POLICY = ("""<meta http-equiv="Content-Security-Policy" content="default-src 'none';"""
          """ style-src 'unsafe-inline'; img-src data:">""")
KEEP = os.environ.get("SCREENER_KEEP_SCREENSHOTS")
"""A folder to copy the screenshots and pages into, to look at them."""
MODEL = ModelCard(name="mini-xception-test", val_accuracy=0.66, ece=0.016)
CHROMIUM = next(filter(None, (shutil.which(n) for n in
                              ("chromium", "chromium-browser", "google-chrome"))), None)


@pytest.fixture(scope="module")
def browser() -> str:
    if CHROMIUM is None:
        missing("chromium", "chromium is not installed: browser checks of the reports skipped")
    return CHROMIUM


def with_estimate(result, est: float, low: float, high: float, vs_baseline: float | None):
    metrics = {**result.metrics, "negative_share_est": est, "negative_share_low": low,
               "negative_share_high": high, "distinct_expressions": 45}  # long enough to judge
    if vs_baseline is not None:
        metrics["negative_share_vs_baseline"] = vs_baseline
    result.metrics = metrics
    return result


@pytest.fixture(scope="module")
def reports(tmp_path_factory, astronaut) -> Path:
    """An index and pages like a real deployment's: a student with estimates, a trend and
    evidence frames, one with raw shares only, one with too little face."""
    root = tmp_path_factory.mktemp("browser")
    store = Store(f"sqlite:///{root}/t.db")
    shares = [(0.22, 0.14, 0.31, None), (0.30, 0.21, 0.40, 8.0), (0.50, 0.40, 0.60, 24.0),
              (0.68, 0.55, 0.80, 38.0)]
    for day, (est, low, high, baseline) in enumerate(shares):
        high_session = day == len(shares) - 1
        labels = ["sad"] * 15 + ["neutral"] * 15 if high_session else ["sad", "neutral"] * 15
        result = make_result("maria", day * 7, labels,
                             level="high" if high_session else "moderate",
                             rule="sustained-negative" if high_session else "recurring-negative")
        result = with_estimate(result, est, low, high, baseline)
        if high_session:
            face = astronaut[0:300, 100:400]
            thumbs = [face_thumbnail(face, report_box(i), 1.0) for i in range(5)]
            result.evidence_frames = [
                replace_frame(i, thumbs[i], STRETCH if i < 3 else MOST_NEGATIVE)
                for i in range(5)
            ]
        store.save(result)
    store.save(make_result("alex", 2, ["happy", "neutral", "sad"] * 12))
    store.save(make_result("alex", 9, ["happy", None, "neutral"] * 12))
    store.save(make_result("Zoë Ångström-Papadopoulou", 3, [None] * 20 + ["sad"] * 4,
                           level="insufficient", rule="too-few-faces"))
    out = root / "reports"
    render_reports(store, out, MODEL)
    if KEEP:
        shutil.copytree(out, Path(KEEP) / "reports", dirs_exist_ok=True)
    return out


def report_box(i: int):
    from screener.domain import Box

    return Box(60 + 4 * i, 40 + 2 * i, 180, 200)


def replace_frame(i: int, jpeg: bytes, reason: str):
    from screener.domain import EvidenceFrame

    return EvidenceFrame(3.0 + 5 * i, 30 + 50 * i, "sad", 0.9 - 0.05 * i, reason, jpeg)


def maria(reports: Path) -> Path:
    return reports / f"{student_slug('maria')}.html"


@dataclass
class Rendered:
    dom: str
    log: str
    screenshot: np.ndarray | None


def render(browser: str, page: Path, size: tuple[int, int], tmp: Path, *extra: str) -> Rendered:
    shot = tmp / f"{page.stem}-{size[0]}.png"
    result = subprocess.run(
        [browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
         "--no-first-run", "--disable-extensions", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--enable-logging=stderr", "--v=0",
         f"--user-data-dir={tmp / 'profile'}", f"--window-size={size[0]},{size[1]}",
         "--virtual-time-budget=2000", f"--screenshot={shot}", "--dump-dom", *extra,
         page.as_uri()],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    image = cv2.imread(str(shot)) if shot.exists() else None
    if KEEP and shot.exists():
        shutil.copy(shot, Path(KEEP) / shot.name)
    return Rendered(result.stdout, result.stderr, image)


def visible_text(dom: str) -> str:
    """The page's text as the DOM Chromium built holds it, without markup or styles."""
    dom = re.sub(r"<(style|script)\b.*?</\1>", " ", dom, flags=re.S | re.I)
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", dom)).replace("&amp;", "&")


def console_messages(log: str) -> list[str]:
    """Everything the page logged to its console, CSP refusals included (a load the policy
    blocked appears here)."""
    return [line for line in log.splitlines() if ":CONSOLE" in line]


def not_blank(image: np.ndarray | None, size: tuple[int, int]) -> None:
    assert image is not None, "no screenshot"
    assert image.shape[1] == size[0] and image.shape[0] == size[1]
    grey = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    assert grey.std() > 20, "the page looks blank"
    # Some of it is coloured (level badges, charts), not only text on a background.
    saturation = cv2.cvtColor(image, cv2.COLOR_BGR2HSV)[..., 1]
    assert (saturation > 80).mean() > 0.002


@pytest.mark.slow
@pytest.mark.parametrize("size", [DESKTOP, PHONE], ids=["desktop", "phone"])
def test_student_page_shows_level_estimate_and_interval(browser, reports, size, tmp_path):
    page = render(browser, maria(reports), size, tmp_path)
    assert console_messages(page.log) == []
    not_blank(page.screenshot, size)
    text = visible_text(page.dom)
    assert re.search(r'class="badge big level-high" id="level">high<', page.dom)
    assert "68% negative (likely 55% to 80%)" in text
    assert "Negative share, raw 50%" in text
    assert "Against this student's usual: 38 points higher" in text
    assert "Trend: rising Negative affect is rising" in text
    assert "off by 1.6 points" in text and "labels 66%" in text
    assert len(re.findall(r'<img src="data:image/jpeg;base64,', page.dom)) == 5
    # The badge is on the first screen, where a reader looks first: a red area.
    top = page.screenshot
    red = (top[..., 2] > 170) & (top[..., 1] < 70) & (top[..., 0] < 70)
    assert red.sum() > 300, "no level badge on the first screen"


@pytest.mark.slow
@pytest.mark.parametrize("size", [DESKTOP, PHONE], ids=["desktop", "phone"])
def test_index_shows_every_student_with_level_and_interval(browser, reports, size, tmp_path):
    page = render(browser, reports / "index.html", size, tmp_path)
    assert console_messages(page.log) == []
    not_blank(page.screenshot, size)
    text = visible_text(page.dom)
    for name in ("maria", "alex", "Zoë Ångström-Papadopoulou"):
        assert name in text
    assert "68% (likely 55% to 80%)" in text and "raw 50%" in text
    assert "38 points higher vs usual" in text and "rising" in text
    assert len(re.findall(r'class="badge level-(?:high|low|insufficient)(?: hint)?"',
                          page.dom)) == 3
    assert "Too short to judge reliably" in text  # alex's sessions are short: a hint


def test_pages_load_nothing_from_the_network(reports):
    for page in reports.glob("*.html"):
        html = page.read_text(encoding="utf-8")
        assert POLICY in html, page.name
        assert not re.search(r"https?:|//[a-z0-9.-]+\.[a-z]{2,}/|url\(|@import", html, re.I), \
            page.name


@pytest.mark.slow
def test_the_policy_would_block_a_network_load(browser, reports, tmp_path):
    """The console check above can fail: a page that tries to load something is refused by its
    own policy, and Chromium logs the refusal."""
    html = maria(reports).read_text(encoding="utf-8").replace(
        "</main>", '<img src="http://198.51.100.1/x.png" alt=""></main>')
    page = tmp_path / "leaky.html"
    page.write_text(html, encoding="utf-8")
    messages = console_messages(render(browser, page, DESKTOP, tmp_path).log)
    assert any("Content Security Policy" in m for m in messages)


MEASURE = """<script>
addEventListener("load", () => {
  const width = document.documentElement.clientWidth;
  const scrolls = (e) => {  // inside a box that clips or scrolls sideways and itself fits
    for (let a = e.parentElement; a && a !== document.body; a = a.parentElement) {
      if (getComputedStyle(a).overflowX !== "visible"
          && a.getBoundingClientRect().right <= width + 1) {
        return true;
      }
    }
    return false;
  };
  const wide = [...document.querySelectorAll("body *")].filter(
    (e) => e.getBoundingClientRect().right > width + 1 && getComputedStyle(e).display !== "none"
      && !scrolls(e));
  document.body.dataset.overflow = wide.map((e) => e.parentElement.tagName + ">" + e.tagName
    + "." + (e.getAttribute("class") || "") + "@" + Math.round(e.getBoundingClientRect().right)
  ).join(" ") || "none";
  document.body.dataset.scrollWidth = document.documentElement.scrollWidth - width;
});
</script>"""


def measured(browser: str, page: Path, width: int, tmp: Path, printed: bool = False
             ) -> tuple[str, int]:
    """What sticks out past the right edge at this width: the page, with a measuring script
    its policy would otherwise refuse; `printed` applies its print styles on screen too."""
    html = page.read_text(encoding="utf-8").replace(
        "default-src 'none';", "default-src 'none'; script-src 'unsafe-inline';")
    if printed:
        assert "@media print" in html
        html = html.replace("@media print", "@media screen, print")
    copy = tmp / f"measured-{page.name}"
    copy.write_text(html.replace("</body>", MEASURE + "</body>"), encoding="utf-8")
    dom = render(browser, copy, (width, 900), tmp).dom
    found = re.search(r'data-overflow="([^"]*)" data-scroll-width="(-?\d+)"', dom)
    assert found, "the measuring script did not run"
    return found.group(1), int(found.group(2))


@pytest.mark.slow
@pytest.mark.parametrize(("width", "printed"), [(PHONE[0], False), (A4_PRINTABLE_PX, True)],
                         ids=["phone", "a4-print-styles"])
def test_nothing_sticks_out_sideways(browser, reports, width, printed, tmp_path):
    """On a phone, and on an A4 page (its printable width, with the print styles): charts,
    tables and thumbnails all fit, so a printout cuts nothing off."""
    for page in (maria(reports), reports / "index.html"):
        overflow, scroll = measured(browser, page, width, tmp_path, printed)
        assert (overflow, scroll) == ("none", 0), f"{page.name}: {overflow}"


@pytest.mark.slow
def test_student_page_prints_to_a_clean_a4_pdf(browser, reports, tmp_path):
    pdf = tmp_path / "maria.pdf"
    result = subprocess.run(
        [browser, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
         f"--user-data-dir={tmp_path / 'profile'}", "--no-pdf-header-footer",
         "--virtual-time-budget=2000", f"--print-to-pdf={pdf}", maria(reports).as_uri()],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0 and pdf.exists(), result.stderr[-2000:]
    data = pdf.read_bytes()
    pages = len(re.findall(rb"/Type\s*/Page(?![s\w])", data))
    assert 1 <= pages <= 5, f"{pages} pages"  # 4 with Debian 12's fonts: a few sessions fit
    boxes = {tuple(round(float(v)) for v in box.split())
             for box in re.findall(rb"/MediaBox\s*\[\s*([\d.\s]+?)\s*\]", data)}
    assert len(boxes) == 1 and all(  # A4 in points, 595.3 x 841.9 give or take a point
        abs(a - b) <= 1 for a, b in zip(boxes.pop(), (0, 0, 595, 842), strict=True))
    assert b"file://" not in data and b"index.html" not in data  # no header, footer or links
