"""Self-contained HTML reports for the counsellor: one page per student and an index.

Reports hold sensitive data about children, so they are written atomically (a reader never sees
half a page), readable by the owner only, and they load nothing from the network: CSS and SVG are
inline. Every string that came from a path, a database or a rules file goes through Jinja's
autoescaping; the charts are built from numbers in `screener.reports.charts`.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import re
import time
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined

import screener
from screener.domain import EMOTIONS, NEGATIVE_EMOTIONS
from screener.emotions.model import ModelCard
from screener.privacy import mask_urls, write_private
from screener.reports import charts
from screener.reports.wording import (
    COVERAGE_WARNING,
    DISCLAIMER,
    DISCLAIMER_TITLE,
    INTERVAL_MEANING,
    MODEL_CAVEAT,
    ShareFigures,
    calibration_sentence,
    format_metric,
    level_meaning,
    metric_name,
    model_reliability,
    quality_warnings,
    share_figures,
    too_short_hint,
    trend_summary,
    uncertainty_sentence,
)
from screener.resources import resource_path
from screener.session.estimate import interval_text
from screener.session.evidence import STRETCH
from screener.session.rules import LEVELS
from screener.storage.store import Store, StoredSession
from screener.trends.trend import Trend, student_trend

_SLUG_MAX = 40


class ReportError(LookupError):
    """A report was asked for a student who has no stored sessions."""


def student_slug(student_id: str) -> str:
    """Safe, unique file-name stem for a student id.

    The readable part helps a person find a file; the hash keeps ids that differ only in case,
    punctuation or non-ASCII letters apart, and keeps reserved names ("con", "..") impossible.
    """
    ascii_text = unicodedata.normalize("NFKD", student_id).encode("ascii", "ignore").decode()
    readable = re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")
    readable = readable[:_SLUG_MAX].strip("-") or "student"
    return f"{readable}-{_id_hash(student_id)}"


def _id_hash(student_id: str) -> str:
    # Ids from file names may carry surrogate escapes; a lone surrogate outside the escape range
    # cannot round-trip that way, and a slug must exist for any str.
    try:
        raw = student_id.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        raw = student_id.encode("utf-8", "surrogatepass")
    return hashlib.sha256(raw).hexdigest()[:8]


@dataclass(frozen=True)
class StudentRow:
    """One line of the index: a student's latest session against the one before."""

    student_id: str
    slug: str
    sessions: int
    latest: StoredSession
    change_pp: float | None
    change_basis: str
    """"usual" (against the student's baseline) or "previous" (against the last session)."""
    estimate: ShareFigures
    trend: Trend

    @property
    def hint(self) -> str | None:
        """Why the latest level is only a hint (too few distinct expressions), else None."""
        return too_short_hint(self.latest)

    @property
    def concern(self) -> float:
        """How the index ranks the student: by the latest level, except that a level that
        is only a hint is not a finding: after every finding, before insufficient data."""
        if self.hint is not None:
            return 0.5
        return LEVELS.index(self.latest.level) if self.latest.level in LEVELS else -1


MANIFEST = ".screener-reports.json"
"""In the reports folder: the state of each student's sessions when its page was written."""
_STALE_TEMP_S = 60.0
"""A temporary page older than this was left by a killed run (writing one takes milliseconds)."""


def refresh_reports(store: Store, out_dir: Path, model: ModelCard) -> list[Path]:
    """Bring `out_dir` up to date with the store, whatever happened to it since: pages that are
    missing (a killed scan, a deleted folder, a new `--out`) or outdated are written, pages of
    students no longer stored are removed, and the rest are left alone, so a nightly scan costs
    little. Returns the files written (none when everything was up to date)."""
    states = store.report_states()
    written = _read_manifest(out_dir, model)
    _remove_dead_temp_files(out_dir)
    stale = [sid for sid, state in states.items()
             if written.get(sid) != state or not (out_dir / f"{student_slug(sid)}.html").exists()]
    gone = [sid for sid in written if sid not in states]
    if not stale and not gone and (out_dir / "index.html").exists():
        return []
    for sid in gone:
        (out_dir / f"{student_slug(sid)}.html").unlink(missing_ok=True)
    return render_reports(store, out_dir, model, sorted(stale), states)


def _renderer(model: ModelCard) -> str:
    """What else a page depends on: this screener's templates, and the installed model (named
    on the pages of sessions stored before schema 2)."""
    return f"{screener.__version__} {model.name} {model.val_accuracy}"


def _read_manifest(out_dir: Path, model: ModelCard) -> dict[str, str]:
    try:
        manifest = json.loads((out_dir / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(manifest, dict) or manifest.get("renderer") != _renderer(model):
        return {}
    students = manifest.get("students")
    return students if isinstance(students, dict) else {}


def _remove_dead_temp_files(out_dir: Path) -> None:
    if not out_dir.is_dir():
        return
    now = time.time()
    for temp in out_dir.glob(".report-*.tmp"):
        with contextlib.suppress(OSError):
            if now - temp.stat().st_mtime > _STALE_TEMP_S:
                temp.unlink()


def render_reports(
    store: Store,
    out_dir: Path,
    model: ModelCard,
    student_ids: Sequence[str] | None = None,
    states: dict[str, str] | None = None,
) -> list[Path]:
    """Write `<slug>.html` for the given students (all when None), then `index.html` of all.

    Raises `ReportError` before writing anything when a requested student has no sessions, so
    a typo never produces an empty page. The index always covers every student in the store,
    since a partial re-render must not drop others from the counsellor's overview.
    """
    env = _environment()
    all_ids = store.student_ids()
    wanted = list(dict.fromkeys(all_ids if student_ids is None else student_ids))
    histories = {sid: store.sessions_of(sid) for sid in dict.fromkeys([*all_ids, *wanted])}
    missing = [sid for sid in wanted if not histories[sid]]
    if missing:
        raise ReportError(f"no sessions stored for student(s): {', '.join(map(repr, missing))}")
    out_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    common = _common_context(model)
    written: list[Path] = []
    for sid in wanted:
        sessions = histories[sid]
        context = _student_context(store, sid, sessions)
        context = {**common, **context, **_model_context(analysed_by(sessions[-1], model))}
        html = env.get_template("student.html.j2").render(**context)
        written.append(_write_atomic(out_dir / f"{student_slug(sid)}.html", html))
    rows = sorted(
        (_index_row(sid, histories[sid]) for sid in all_ids if histories[sid]),
        key=lambda r: (-r.concern, -r.estimate.best, r.student_id),
    )
    html = env.get_template("index.html.j2").render(
        **common, rows=rows,
        level_counts=_level_counts(r.latest.level for r in rows if r.hint is None),
        hints=sum(r.hint is not None for r in rows),
        session_count=sum(r.sessions for r in rows),
    )
    written.append(_write_atomic(out_dir / "index.html", html))
    states = store.report_states() if states is None else states
    manifest = {sid: state for sid, state in _read_manifest(out_dir, model).items()
                if sid in states}
    manifest.update({sid: states[sid] for sid in wanted})
    _write_atomic(out_dir / MANIFEST, json.dumps(
        {"renderer": _renderer(model), "students": manifest}, indent=0, sort_keys=True))
    return written


def _environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(resource_path("templates")),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(
        pct=_pct, pp=_pp, when=_when, clock=charts.clock, level_class=_level_class,
        metric=format_metric, basename=_basename, isolate=_isolate, interval=_interval,
        metric_name=metric_name, hint=too_short_hint,
    )
    return env


def _isolate(text: str) -> str:
    """A name inside plain text (a page title, an SVG tooltip), where `<bdi>` cannot go:
    first-strong isolate marks keep a right-to-left override from reordering what follows."""
    return f"\u2068{text}\u2069"


def analysed_by(session: StoredSession, installed: ModelCard) -> ModelCard:
    """The model whose reliability a student's page states: the one that analysed the latest
    session, as stored with it; the installed one for sessions stored before schema 2."""
    if session.model_accuracy is None:
        return installed
    same_model = session.model_version.split("@")[0] == installed.name
    return ModelCard(name=session.model_version, val_accuracy=session.model_accuracy,
                     ece=installed.ece if same_model else None)


def _model_context(model: ModelCard) -> dict[str, str]:
    return {
        "model_caveat": MODEL_CAVEAT if model.val_accuracy is not None else "",
        "model_sentence": " ".join(filter(None, [model_reliability(model),
                                                 calibration_sentence(model)])),
    }


def _common_context(model: ModelCard) -> dict[str, Any]:
    return {
        "disclaimer_title": DISCLAIMER_TITLE,
        "disclaimer": DISCLAIMER,
        **_model_context(model),
        "coverage_warning": COVERAGE_WARNING,
        "interval_meaning": INTERVAL_MEANING,
        "version": screener.__version__,
        "generated_at": datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z").strip(),
        "level_colours": charts.LEVEL_COLOURS,
        "levels": tuple(reversed(LEVELS)),
    }


def _student_context(
    store: Store, student_id: str, sessions: list[StoredSession]
) -> dict[str, Any]:
    latest = sessions[-1]
    observations = store.observations_of(latest.pk)
    shares = {e: float(latest.metrics.get(f"share_{e}", 0.0) or 0.0) for e in EMOTIONS}
    bar_rows, bar_area, bar_height = charts.bars(shares)
    estimates = {s.pk: share_figures(s) for s in sessions}
    trend_chart = charts.trend(
        [(s.recorded_at, estimates[s.pk].best, s.level, s.session_id) for s in sessions],
        intervals=[(e.low, e.high) if e.has_interval else None for e in estimates.values()],
    )
    evidence = store.evidence_frames_of(latest.pk)
    timeline = charts.timeline(observations, latest.duration_s) if observations else None
    versions = {(s.model_version, s.rules_version) for s in sessions}
    return {
        "student_id": student_id,
        "sessions": sessions,
        "latest": latest,
        "estimate": estimates[latest.pk],
        "estimates": estimates,
        "level_meaning": level_meaning(latest.level),
        "uncertainty": uncertainty_sentence(estimates[latest.pk]),
        "hint": too_short_hint(latest),
        "observation_count": len(observations),
        "timeline": timeline,
        "evidence_marks": charts.marks(timeline, [f.t_s for f in evidence]) if timeline else [],
        "bars": bar_rows, "bar_area": bar_area, "bar_height": bar_height,
        "trend_chart": trend_chart,
        "trend_summary": trend_summary(sessions),
        "student_trend": student_trend(sessions),
        "evidence_frames": [(f, jpeg_data_uri(f.jpeg)) for f in evidence],
        "stretch_reason": STRETCH,
        "quality_warnings": quality_warnings(latest),
        "mixed_versions": len(versions) > 1,
        "emotions": [(e, charts.EMOTION_COLOURS[e], e in NEGATIVE_EMOTIONS) for e in EMOTIONS],
    }


def _index_row(student_id: str, sessions: list[StoredSession]) -> StudentRow:
    latest = sessions[-1]
    estimate = share_figures(latest)
    change, basis = estimate.vs_baseline_pp, "usual"
    if change is None:
        basis = "previous"
        if len(sessions) > 1:
            change = (estimate.best - share_figures(sessions[-2]).best) * 100
    return StudentRow(student_id, student_slug(student_id), len(sessions), latest, change,
                      basis, estimate, student_trend(sessions))


def jpeg_data_uri(jpeg: bytes) -> str:
    """Inline, so a page with evidence frames still loads nothing and stays one file."""
    return "data:image/jpeg;base64," + base64.b64encode(jpeg).decode("ascii")


def _level_counts(levels: Iterable[str]) -> list[tuple[str, int]]:
    found = list(levels)
    return [(level, found.count(level)) for level in reversed(LEVELS) if level in found]


def _pp(value: float | None) -> str:
    """A change of a share in percentage points, in words: "12 points higher", "no change"."""
    if value is None:
        return "—"
    rounded = round(value)
    if rounded == 0:
        return "no change"
    unit = "point" if abs(rounded) == 1 else "points"
    return f"{abs(rounded)} {unit} {'higher' if rounded > 0 else 'lower'}"


def _pct(value: float | None, digits: int = 0) -> str:
    return "—" if value is None else f"{value * 100:.{digits}f}%"


def _interval(estimate: ShareFigures) -> str:
    """"likely 38% to 61%": the 90% range, or empty when there is none."""
    if not estimate.has_interval:
        return ""
    return interval_text(estimate.low or 0.0, estimate.high or 0.0)


def _when(value: datetime, with_time: bool = True) -> str:
    if with_time and (value.hour or value.minute):
        return value.strftime("%Y-%m-%d %H:%M")
    return value.strftime("%Y-%m-%d")


def _level_class(level: str) -> str:
    """A CSS class from a closed set, whatever the database holds."""
    return f"level-{level}" if level in LEVELS else "level-unknown"


def _basename(path: str) -> str:
    # Stored paths may come from another OS; show neither folder names nor drive letters. A
    # live session's stream URL, stored before screener masked it, shows no credential.
    path = mask_urls(path)
    return re.split(r"[\\/]", path.rstrip("\\/"))[-1] or path


def _write_atomic(path: Path, text: str) -> Path:
    """A page is whole or absent, and readable by its owner only."""
    return write_private(path, text.encode("utf-8", "backslashreplace"), temp_prefix=".report-")
