"""Erasing students and old sessions: nothing of them left, in the tables or in the file."""

from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path

import sqlalchemy as sa

from screener.domain import EvidenceFrame
from screener.storage.erase import erase, to_erase
from screener.storage.store import Store
from tests.storage.test_store import make_result

NAME = "Zoe-Quartermaine"
"""Rare enough that its bytes are found nowhere else in the file."""


def stored(store: Store, student: str, day: int, sha: str, recorded_at: datetime | None = None):
    result = make_result(student, day, sha, ["sad", "happy", "sad", None])
    face = EvidenceFrame(1.0, 10, "sad", 0.9, "peak", f"JPEG-of-{student}".encode() * 50)
    result = replace(result, evidence_frames=[face])
    if recorded_at is not None:
        result = replace(result, job=replace(result.job, recorded_at=recorded_at))
    return store.save(result)


def file_bytes(db: Path) -> bytes:
    return b"".join(p.read_bytes() for p in db.parent.glob(db.name + "*") if p.is_file())


def count(store: Store, table: str) -> int:
    with store.engine.connect() as conn:
        return conn.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar_one()


def test_a_forgotten_student_leaves_no_byte_in_the_database_file(tmp_path):
    db = tmp_path / "screener.db"
    store = Store(f"sqlite:///{db}")
    store.engine.dispose()  # as SQLite is built by most (Debian's deletes securely already)
    sa.event.listen(store.engine, "connect",
                    lambda conn, _record: conn.execute("PRAGMA secure_delete=OFF"))
    for day in (1, 2):
        stored(store, NAME, day, f"{day}".ljust(64, "z"))
    stored(store, "bo", 1, "b" * 64)
    assert NAME.encode() in file_bytes(db)
    erased = erase(store, [NAME])
    assert (erased.sessions, erased.students, erased.gone) == (2, [NAME], [NAME])
    assert store.student_ids() == ["bo"]
    assert (count(store, "observations"), count(store, "evidence_frames")) == (4, 1)
    store.engine.dispose()
    data = file_bytes(db)
    assert NAME.encode() not in data and f"JPEG-of-{NAME}".encode() not in data
    assert b"JPEG-of-bo" in data


def test_sessions_past_the_retention_period_are_erased_for_every_student(tmp_path):
    store = Store(f"sqlite:///{tmp_path}/screener.db")
    now = datetime.now().replace(microsecond=0)
    stored(store, "ana", 1, "1" * 64, now - timedelta(days=400))
    stored(store, "ana", 2, "2" * 64, now - timedelta(days=10))
    stored(store, "bo", 1, "3" * 64, now - timedelta(days=500))
    cutoff = now - timedelta(days=365)
    assert to_erase(store, recorded_before=cutoff) == (2, ["ana", "bo"])
    erased = erase(store, recorded_before=cutoff)
    assert (erased.sessions, erased.students, erased.gone) == (2, ["ana", "bo"], ["bo"])
    assert [s.recorded_at for s in store.sessions_of("ana")] == [now - timedelta(days=10)]
    assert store.student_ids() == ["ana"] and count(store, "observations") == 4
