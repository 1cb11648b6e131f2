"""What `screener analyze` prints: per-frame rows (CSV), one JSON document, or a summary."""

from __future__ import annotations

import csv
import io
from typing import Any

from screener.domain import EMOTIONS, Observation, SessionResult

FRAME_COLUMNS = (
    "t_s", "frame_index", "x", "y", "w", "h", "label", "smoothed_label",
    *(f"p_{e}" for e in EMOTIONS),
)


def frame_row(o: Observation) -> dict[str, Any]:
    row: dict[str, Any] = {"t_s": o.t_s, "frame_index": o.frame_index, "label": o.label,
                           "smoothed_label": o.smoothed_label}
    for key in ("x", "y", "w", "h"):
        row[key] = getattr(o.box, key) if o.box else None
    for i, emotion in enumerate(EMOTIONS):
        row[f"p_{emotion}"] = o.probabilities[i] if o.probabilities else None
    return row


def frames_csv(result: SessionResult) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=FRAME_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(frame_row(o) for o in result.observations)
    return buffer.getvalue()


def result_document(result: SessionResult) -> dict[str, Any]:
    a = result.assessment
    return {
        "video": str(result.job.path),
        "student": result.job.student_id,
        "session": result.job.session_id,
        "recorded_at": result.job.recorded_at.isoformat(),
        "video_info": vars(result.info),
        "model": result.model_version,
        "level": a.level,
        "rule": a.rule,
        "explanation": a.explanation,
        "evidence": a.evidence,
        "rules_version": a.rules_version,
        "metrics": result.metrics,
        "frames": [observation_document(o) for o in result.observations],
    }


def observation_document(o: Observation) -> dict[str, Any]:
    """One analysed face (or a key frame without one) as JSON, the same for `analyze --json`
    and the frame lines of `live --json`."""
    return {
        "t_s": o.t_s,
        "frame_index": o.frame_index,
        "box": vars(o.box) if o.box else None,
        "probabilities": dict(zip(EMOTIONS, o.probabilities, strict=True))
        if o.probabilities else None,
        "label": o.label,
        "smoothed_label": o.smoothed_label,
    }


def summary_text(result: SessionResult) -> str:
    m, a = result.metrics, result.assessment
    shares = ", ".join(f"{e} {m[f'share_{e}']:.0%}" for e in EMOTIONS if m[f"share_{e}"])
    return "\n".join([
        f"{result.job.path}: level {a.level.upper()} (rule {a.rule})",
        f"  {a.explanation}",
        f"  {m['frames_analysed']} key frames over {result.info.duration_s:.1f} s, "
        f"{m['face_frames']} with a face ({m['face_coverage']:.0%}), {result.info.scenes} scene(s)",
        f"  negative share {m['negative_share']:.0%}{_estimate(m)}; emotions: {shares or 'none'}",
        *(f"  data quality: {note}" for note in m.get("data_quality", ())),
        "  a screening aid, not a diagnosis",
    ])


def _estimate(m: dict[str, Any]) -> str:
    if m.get("negative_share_est") is None:
        return ""
    from screener.reports.wording import share_text

    shown = share_text(m["negative_share_est"], m["negative_share_low"], m["negative_share_high"])
    return f" (corrected for the model's errors: {shown})"
