"""The database's tables, its schema version and the steps that bring an older database
forward: the layout, kept apart from `store.py`, which reads and writes it."""

from __future__ import annotations

import logging
from collections.abc import Callable

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from screener.domain import EMOTIONS

log = logging.getLogger(__name__)

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


class StoreError(RuntimeError):
    """The database cannot be opened or is not a screener database of a known version."""


def schema_version(conn: Connection) -> int | None:
    """None when the database holds no screener tables yet."""
    if "screener_meta" not in sa.inspect(conn).get_table_names():
        return None
    row = conn.execute(
        sa.select(meta_table.c.value).where(meta_table.c.key == "schema_version")
    ).first()
    if row is None:
        return None
    try:
        return int(row.value)
    except ValueError:
        raise StoreError(f"unreadable schema version {row.value!r}") from None


def bring_forward(conn: Connection, create: bool, shown: str) -> None:
    """Create the tables in an empty database (when `create`), or migrate an older one to
    `SCHEMA_VERSION`; refuse another program's database or a newer screener's. Run inside the
    caller's transaction, so a failed step leaves the database as it was."""
    tables = set(sa.inspect(conn).get_table_names())
    if tables and "screener_meta" not in tables:
        raise StoreError(f"{shown} is not a screener database")
    version = schema_version(conn)
    if version is None:
        if not create:
            raise StoreError(f"no screener database at {shown}")
        metadata.create_all(conn)
        conn.execute(meta_table.insert().values(key="schema_version",
                                                value=str(SCHEMA_VERSION)))
        return
    if version > SCHEMA_VERSION:
        raise _newer_schema(shown, version)
    for step in range(version, SCHEMA_VERSION):
        MIGRATIONS[step](conn)
        log.info("migrated %s from schema %d to %d", shown, step, step + 1)
    conn.execute(meta_table.update().where(meta_table.c.key == "schema_version")
                 .values(value=str(SCHEMA_VERSION)))


def check_readable(conn: Connection, shown: str) -> None:
    """For a database opened read-only, which cannot be migrated: only the current schema."""
    version = schema_version(conn)
    if version is None:
        raise StoreError(f"{shown} is not a screener database")
    if version > SCHEMA_VERSION:
        raise _newer_schema(shown, version)
    if version < SCHEMA_VERSION:
        raise StoreError(f"{shown} has schema version {version}, older than this screener "
                         f"reads ({SCHEMA_VERSION}); a scan brings it forward")


def _newer_schema(shown: str, version: int) -> StoreError:
    return StoreError(f"{shown} has schema version {version}, newer than this screener "
                      f"understands ({SCHEMA_VERSION}); upgrade screener")
