"""The database's tables, its schema version and the steps that bring an older database
forward: the layout, kept apart from `store.py`, which reads and writes it."""

from __future__ import annotations

from collections.abc import Callable

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from screener.emotions import EMOTIONS

SCHEMA_VERSION = 3
"""1: the first release. 2: sessions.model_accuracy, so a report states the accuracy of the
model that analysed a session, not of whichever model is installed now. 3: evidence_frames."""

metadata = sa.MetaData()

meta_table = sa.Table(
    "screener_meta", metadata,
    sa.Column("key", sa.String(64), primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
)

students = sa.Table(
    "students", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("student_id", sa.Text, nullable=False, unique=True),
    sa.Column("created_at", sa.DateTime, nullable=False),
)

sessions = sa.Table(
    "sessions", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("student_pk", sa.Integer, sa.ForeignKey("students.id"), nullable=False,
              index=True),
    sa.Column("session_id", sa.Text, nullable=False),
    sa.Column("video_path", sa.Text, nullable=False),
    sa.Column("video_sha256", sa.String(64), nullable=False, unique=True),
    sa.Column("recorded_at", sa.DateTime, nullable=False),
    sa.Column("duration_s", sa.Float, nullable=False),
    sa.Column("fps", sa.Float, nullable=False),
    sa.Column("frames_analysed", sa.Integer, nullable=False),
    sa.Column("faces_found", sa.Integer, nullable=False),
    sa.Column("face_coverage", sa.Float, nullable=False),
    sa.Column("negative_share", sa.Float, nullable=False),
    sa.Column("level", sa.String(16), nullable=False),
    sa.Column("fired_rule", sa.Text, nullable=False),
    sa.Column("explanation", sa.Text, nullable=False),
    sa.Column("evidence_json", sa.Text, nullable=False),
    sa.Column("metrics_json", sa.Text, nullable=False),
    sa.Column("model_version", sa.Text, nullable=False),
    sa.Column("model_accuracy", sa.Float),
    sa.Column("rules_version", sa.Text, nullable=False),
    sa.Column("processed_at", sa.DateTime, nullable=False),
)

observations = sa.Table(
    "observations", metadata,
    sa.Column("session_pk", sa.Integer, sa.ForeignKey("sessions.id"), nullable=False,
              index=True),
    sa.Column("t_s", sa.Float, nullable=False),
    sa.Column("frame_index", sa.Integer, nullable=False),
    sa.Column("label", sa.String(16)),
    sa.Column("smoothed_label", sa.String(16)),
    *[sa.Column(f"p_{emotion}", sa.Float) for emotion in EMOTIONS],
    sa.Column("x", sa.Integer), sa.Column("y", sa.Integer),
    sa.Column("w", sa.Integer), sa.Column("h", sa.Integer),
)

evidence_frames = sa.Table(
    "evidence_frames", metadata,
    sa.Column("session_pk", sa.Integer, sa.ForeignKey("sessions.id"), nullable=False,
              index=True),
    sa.Column("t_s", sa.Float, nullable=False),
    sa.Column("frame_index", sa.Integer, nullable=False),
    sa.Column("label", sa.String(16), nullable=False),
    sa.Column("negative_probability", sa.Float, nullable=False),
    sa.Column("reason", sa.String(32), nullable=False),
    sa.Column("jpeg", sa.LargeBinary, nullable=False),
)
"""Face thumbnails kept with `--evidence N` (opt-in: they are images of the student)."""


def _add_model_accuracy(conn: Connection) -> None:
    conn.execute(sa.text("ALTER TABLE sessions ADD COLUMN model_accuracy FLOAT"))


def _add_evidence_frames(conn: Connection) -> None:
    evidence_frames.create(conn)


MIGRATIONS: dict[int, Callable[[Connection], None]] = {
    1: _add_model_accuracy, 2: _add_evidence_frames,
}
"""Schema version -> the step that brings a database from it to the next version."""
