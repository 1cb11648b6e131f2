"""A student's sessions over time, as a terminal table, JSON or CSV.

The corrected estimate with its 90% interval leads, as in the reports: it is the share the
default rules read. The raw share (faces whose top label is negative) stays beside it, and
sessions stored before screener estimated anything show the raw share alone."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from datetime import time
from typing import Any

from screener.privacy import mask_urls
from screener.reports.wording import share_figures, share_text
from screener.storage.store import StoredSession

HISTORY_FORMATS = ("table", "json", "csv")
_COLUMNS = (
    "recorded_at", "session_id", "level", "negative_share_est", "negative_share_low",
    "negative_share_high", "negative_share", "face_coverage",
    "frames_analysed", "faces_found", "fired_rule", "video_path", "data_quality",
)


def history_rows(sessions: Sequence[StoredSession]) -> list[dict[str, Any]]:
    return [_row(s) for s in sessions]


def _row(s: StoredSession) -> dict[str, Any]:
    share = share_figures(s)
    return {
        "recorded_at": s.recorded_at.date().isoformat()
        if s.recorded_at.time() == time()
        else s.recorded_at.isoformat(sep=" "),
        "session_id": s.session_id,
        "level": s.level,
        "negative_share_est": _rounded(share.est),
        "negative_share_low": _rounded(share.low),
        "negative_share_high": _rounded(share.high),
        "negative_share": round(s.negative_share, 4),
        "face_coverage": round(s.face_coverage, 4),
        "frames_analysed": s.frames_analysed,
        "faces_found": s.faces_found,
        "fired_rule": s.fired_rule,
        "video_path": mask_urls(s.video_path),
        "data_quality": s.data_quality,
    }


def _rounded(share: float | None) -> float | None:
    return None if share is None else round(share, 4)


def format_history(sessions: Sequence[StoredSession], output_format: str) -> str:
    rows = history_rows(sessions)
    if output_format == "json":
        student = sessions[0].student_id if sessions else None
        return json.dumps({"student": student, "sessions": rows}, indent=2) + "\n"
    if output_format == "csv":
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=_COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows({**r, "data_quality": "; ".join(r["data_quality"])} for r in rows)
        return buffer.getvalue()
    return _table(rows)


def _table(rows: list[dict[str, Any]]) -> str:
    # "face seen": the share of key frames with a face (JSON's face_coverage), not a count
    # of faces (JSON's faces_found).
    headers = ("date", "session", "level", "negative share", "raw", "face seen", "frames",
               "rule")
    cells = [
        (
            r["recorded_at"], r["session_id"], r["level"], _estimate_cell(r),
            f"{r['negative_share']:.0%}",
            f"{r['face_coverage']:.0%}", str(r["frames_analysed"]), r["fired_rule"],
        )
        for r in rows
    ]
    if any(r["data_quality"] for r in rows):  # a column only where there is something to say
        headers += ("data quality",)
        cells = [(*c, "; ".join(r["data_quality"])) for c, r in zip(cells, rows, strict=True)]
    widths = [max([len(h), *(len(c[i]) for c in cells)]) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in cells]
    return "\n".join(line.rstrip() for line in lines) + "\n"


def _estimate_cell(row: dict[str, Any]) -> str:
    """'41% (likely 30% to 55%)', as on the pages; '-' for a session stored before estimates
    existed."""
    if row["negative_share_est"] is None:
        return "-"
    return share_text(row["negative_share_est"], row["negative_share_low"],
                      row["negative_share_high"])
