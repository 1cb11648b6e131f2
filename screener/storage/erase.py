"""Erasing students, or sessions past a school's retention period, for good.

A row deleted from SQLite stays readable in the file's free pages (and its write-ahead log)
until they are reused, so erasing deletes with `secure_delete` on, which overwrites the freed
content, then rebuilds the file (VACUUM) and empties the log. Everything of one erase is deleted
in one transaction: a failure leaves all of it stored.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa

from screener.storage.database import retry_conflicts, write_transaction
from screener.storage.rows import delete_if_empty, delete_session
from screener.storage.schema import sessions, students
from screener.storage.store import Store


@dataclass(frozen=True)
class Erased:
    sessions: int
    students: list[str]
    """Students who lost sessions, sorted."""
    gone: list[str]
    """Of those, the ones with no session left: their row is gone too."""
    videos: list[str]
    """The paths the erased sessions were read from (their videos are not touched)."""


def _selected(student_ids: Sequence[str], recorded_before: datetime | None) -> sa.Select:
    which = students.c.student_id.in_(list(student_ids))
    if recorded_before is not None:
        which = sa.or_(which, sessions.c.recorded_at < recorded_before)
    return (sa.select(sessions.c.id, sessions.c.student_pk, sessions.c.video_path,
                      students.c.student_id)
            .join(students, students.c.id == sessions.c.student_pk).where(which))


def to_erase(store: Store, student_ids: Sequence[str] = (),
             recorded_before: datetime | None = None) -> tuple[int, list[str]]:
    """What `erase` would erase: the number of sessions and their students, for the question
    asked before."""
    with store.engine.connect() as conn:
        rows = conn.execute(_selected(student_ids, recorded_before)).all()
    return len(rows), sorted({row.student_id for row in rows})


def erase(store: Store, student_ids: Sequence[str] = (),
          recorded_before: datetime | None = None) -> Erased:
    """Erase every session of `student_ids`, and every session recorded before
    `recorded_before`, with their observations and evidence frames."""
    query = _selected(student_ids, recorded_before)

    def transaction() -> Erased:
        with write_transaction(store.engine) as conn:
            if conn.dialect.name == "sqlite":
                conn.exec_driver_sql("PRAGMA secure_delete=ON")
            rows = conn.execute(query).all()
            for row in rows:
                delete_session(conn, row.id)
            names = {row.student_pk: row.student_id for row in rows}
            for student_pk in names:
                delete_if_empty(conn, student_pk)
            left = set(conn.execute(sa.select(students.c.id)
                                    .where(students.c.id.in_(list(names)))).scalars())
        return Erased(len(rows), sorted(names.values()),
                      sorted(name for pk, name in names.items() if pk not in left),
                      sorted({row.video_path for row in rows}))

    erased = retry_conflicts(transaction)
    if erased.sessions:
        scrub(store)
    return erased


def scrub(store: Store) -> None:
    """On SQLite, leave no deleted byte in the file or its log: VACUUM writes the live rows
    to a new file, and the checkpoint empties the write-ahead log that held the old pages.
    VACUUM cannot run inside a transaction, so it goes to the driver's connection directly."""
    if store.engine.dialect.name != "sqlite":
        return
    raw = store.engine.raw_connection()
    try:
        cursor = raw.cursor()
        cursor.execute("PRAGMA secure_delete=ON")
        cursor.execute("VACUUM")
        cursor.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        cursor.close()
    finally:
        raw.close()
