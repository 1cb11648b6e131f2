"""A session's rows: read back as `StoredSession`s, written from a `SessionResult`, and
deleted whole. Kept apart from `store.py`, which decides when each happens."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from screener.domain import EMOTIONS, Box, Observation
from screener.storage.schema import evidence_frames, observations, sessions, students


@dataclass(frozen=True)
class StoredSession:
    """A session as read back for history and reports."""

    pk: int
    student_id: str
    session_id: str
    video_path: str
    video_sha256: str
    recorded_at: datetime
    duration_s: float
    frames_analysed: int
    faces_found: int
    face_coverage: float
    negative_share: float
    level: str
    fired_rule: str
    explanation: str
    evidence: dict[str, float]
    metrics: dict[str, Any]
    model_version: str
    rules_version: str
    processed_at: datetime
    model_accuracy: float | None = None
    """`val` accuracy of the model that analysed the session; None for sessions stored before
    schema 2."""

    @property
    def data_quality(self) -> list[str]:
        """What the decoder met or chose (damaged frames, which video stream), kept in the
        metrics; sessions stored before screener recorded it have none."""
        notes = self.metrics.get("data_quality") or []
        return [str(note) for note in notes] if isinstance(notes, list) else [str(notes)]


def delete_session(conn: Connection, session_pk: int) -> None:
    conn.execute(observations.delete().where(observations.c.session_pk == session_pk))
    conn.execute(evidence_frames.delete().where(evidence_frames.c.session_pk == session_pk))
    conn.execute(sessions.delete().where(sessions.c.id == session_pk))


def delete_if_empty(conn: Connection, student_pk: int) -> None:
    left = conn.execute(
        sa.select(sa.func.count()).where(sessions.c.student_pk == student_pk)
    ).scalar()
    if not left:
        conn.execute(students.delete().where(students.c.id == student_pk))


def observation_row(session_pk: int, o: Observation) -> dict[str, Any]:
    row: dict[str, Any] = {
        "session_pk": session_pk, "t_s": o.t_s, "frame_index": o.frame_index,
        "label": o.label, "smoothed_label": o.smoothed_label,
        "x": o.box.x if o.box else None, "y": o.box.y if o.box else None,
        "w": o.box.w if o.box else None, "h": o.box.h if o.box else None,
    }
    for i, emotion in enumerate(EMOTIONS):
        row[f"p_{emotion}"] = o.probabilities[i] if o.probabilities else None
    return row


def observation(row: Any) -> Observation:
    has_face = row.label is not None
    return Observation(
        t_s=row.t_s,
        frame_index=row.frame_index,
        box=Box(row.x, row.y, row.w, row.h) if row.x is not None else None,
        probabilities=tuple(getattr(row, f"p_{e}") for e in EMOTIONS) if has_face else None,
        label=row.label,
        smoothed_label=row.smoothed_label,
    )


def stored_session(row: Any) -> StoredSession:
    return StoredSession(
        pk=row.id, student_id=row.student_id, session_id=row.session_id,
        video_path=row.video_path, video_sha256=row.video_sha256,
        recorded_at=row.recorded_at, duration_s=row.duration_s,
        frames_analysed=row.frames_analysed, faces_found=row.faces_found,
        face_coverage=row.face_coverage, negative_share=row.negative_share,
        level=row.level, fired_rule=row.fired_rule, explanation=row.explanation,
        evidence=json.loads(row.evidence_json), metrics=json.loads(row.metrics_json),
        model_version=row.model_version, rules_version=row.rules_version,
        processed_at=row.processed_at, model_accuracy=row.model_accuracy,
    )
