"""Every analysed session, kept in a real database (SQLAlchemy Core; SQLite by default,
PostgreSQL for several machines).

One transaction per video, so an interrupted scan leaves whole sessions or none. A video is
known by its content hash: re-scanning an unchanged video with the same model and rules is a
no-op, and a changed model or rule set replaces the old session. Clients writing at once are
made to take turns (`database.py`), so each video and student is stored exactly once.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from screener.domain import (
    Assessment,
    EvidenceFrame,
    Observation,
    SessionResult,
    VideoJob,
)
from screener.errors import first_line
from screener.privacy import (
    MASK,
    PRIVATE_FILE_MODE,
    PRIVATE_FOLDER_MODE,
    mask_urls,
    url_secrets,
)
from screener.storage.database import (
    create_engine,
    lock_schema,
    normalize_url,
    retry_conflicts,
    sqlite_file,
    sqlite_tables,
    write_transaction,
)
from screener.storage.rows import (
    StoredSession,
    delete_if_empty,
    delete_session,
    observation,
    observation_row,
    stored_session,
)
from screener.storage.schema import (
    StoreError,
    bring_forward,
    check_readable,
    evidence_frames,
    observations,
    sessions,
    students,
)
from screener.video.discover import displayable

DATABASE_LOST = (sa.exc.OperationalError, sa.exc.InterfaceError)
"""What a database gone away mid-command raises (a server restarted, a network down, a disk
full): no later query will do better, so the command stops with one line."""


@dataclass(frozen=True)
class StoredCopy:
    video_path: str
    student_id: str
    versions: tuple[str, str]
    """(model_version, rules_version) of its analysis."""


def stored_path(path: Path) -> str:
    """Absolute, so a session names its file whatever folder the scan was started from."""
    return displayable(os.path.abspath(path))


class Store:
    def __init__(self, url: str, create: bool = True, make_folder: bool = False,
                 read_only: bool = False) -> None:
        """`create=False` opens only an existing database (history, report: a mistyped path
        must not leave an empty database behind). A new SQLite file is made readable by its
        owner only (SQLite gives its -wal and -shm files the same mode); its folder must exist
        unless `make_folder` (the default data folder, created 0700). `read_only` opens a
        SQLite file for reading only, so that a database this user may not write can still be
        read; nothing is then created or migrated."""
        self.url = url = normalize_url(url)
        path = sqlite_file(url)
        if path is not None:
            _prepare_sqlite_file(path, self.safe_url, create and not read_only, make_folder)
            if not read_only:
                _refuse_foreign_sqlite_file(path, self.safe_url)
        try:
            if path is not None and read_only:
                self._open_read_only(path)
                return
            self.engine: Engine = create_engine(url)
            retry_conflicts(lambda: self._prepare(create))
        except StoreError:
            raise
        except Exception as exc:
            raise StoreError(f"cannot open database {self.safe_url}: "
                             f"{mask_urls(first_line(exc))}") from exc

    @property
    def safe_url(self) -> str:
        """The URL as shown: without its password or any credential in its query."""
        return mask_urls(self.url)

    def problem(self, exc: BaseException) -> str:
        """One line for a database that failed under a command, its password masked even
        where the driver's message repeats it."""
        cause = mask_urls(first_line(getattr(exc, "orig", None) or exc))
        for secret in url_secrets(self.url):
            cause = cause.replace(secret, MASK)
        return f"database {self.safe_url} failed: {cause}"

    def _prepare(self, create: bool) -> None:
        """In one transaction, so a failed migration leaves the database at its old version."""
        with write_transaction(self.engine) as conn:
            lock_schema(conn)
            bring_forward(conn, create, self.safe_url)

    def _open_read_only(self, path: Path) -> None:
        path = path.absolute()
        uri = f"sqlite:///file:{quote(str(path))}?uri=true&mode=ro"
        self.engine = create_engine(uri, read_only=True)
        try:
            self._check_readable()
        except sa.exc.OperationalError as exc:
            # A WAL database in a folder this user cannot write: SQLite cannot create the
            # shared-memory file a reader needs. With no write-ahead log beside it, no writer
            # is at work and the file can be read as it is.
            wal = path.with_name(path.name + "-wal")
            if "readonly" not in str(exc) or wal.exists():
                raise
            self.engine.dispose()
            self.engine = create_engine(uri + "&immutable=1", read_only=True)
            self._check_readable()

    def _check_readable(self) -> None:
        with self.engine.connect() as conn:
            check_readable(conn, self.safe_url)

    def stored_copy(self, sha256: str) -> StoredCopy | None:
        """Where and how this video's session was stored, if it was."""
        query = (
            sa.select(sessions.c.video_path, students.c.student_id, sessions.c.model_version,
                      sessions.c.rules_version)
            .join(students, students.c.id == sessions.c.student_pk)
            .where(sessions.c.video_sha256 == sha256)
        )
        with self.engine.connect() as conn:
            row = conn.execute(query).first()
        return StoredCopy(row.video_path, row.student_id, (row.model_version,
                                                           row.rules_version)) if row else None

    def relocate(self, job: VideoJob) -> None:
        """A stored video found at another path (moved or renamed) follows its file: student,
        session, date and path become what the new path says; a student left with no session
        is removed."""
        def transaction() -> None:
            with write_transaction(self.engine) as conn:
                student_pk = self._student_pk(conn, job.student_id)
                old = conn.execute(sa.select(sessions.c.id, sessions.c.student_pk).where(
                    sessions.c.video_sha256 == job.sha256)).first()
                if old is None:
                    return
                conn.execute(sessions.update().where(sessions.c.id == old.id).values(
                    student_pk=student_pk, session_id=job.session_id,
                    video_path=stored_path(job.path), recorded_at=job.recorded_at))
                if old.student_pk != student_pk:
                    delete_if_empty(conn, old.student_pk)

        retry_conflicts(transaction)

    def report_states(self) -> dict[str, str]:
        """A digest per student of everything its report shows from the sessions table, so
        reports can be brought up to date without re-rendering the pages that are."""
        query = (
            sa.select(students.c.student_id, sessions.c.id, sessions.c.processed_at,
                      sessions.c.session_id, sessions.c.video_path, sessions.c.recorded_at,
                      sessions.c.level)
            .join(students, students.c.id == sessions.c.student_pk)
            .order_by(sessions.c.id)
        )
        digests: dict[str, Any] = {}
        with self.engine.connect() as conn:
            for row in conn.execute(query):
                digest = digests.setdefault(row.student_id, hashlib.sha256())
                digest.update(repr(tuple(row[1:])).encode("utf-8", "backslashreplace"))
        return {sid: digest.hexdigest()[:16] for sid, digest in digests.items()}

    def save(self, result: SessionResult) -> int:
        """Store one session and its observations atomically, replacing an older analysis.

        Another client saving the same video or a session of the same new student at the same
        time makes one transaction fail on a unique key; it is run again and then sees the
        other's rows, so the video and the student end up stored once."""
        return retry_conflicts(lambda: self._save(result))

    def _save(self, result: SessionResult) -> int:
        """A path holds one session: new content there (a file replaced, a half-copied file
        copied again) replaces what was stored for it, or the old one would stay a ghost in
        the baseline and the trend."""
        job, metrics = result.job, result.metrics
        with write_transaction(self.engine) as conn:
            student_pk = self._student_pk(conn, job.student_id)
            video_path = (mask_urls(displayable(job.source)) if job.source
                          else stored_path(job.path))
            # The older analysis of this video, and (files only: live sessions share their
            # source's name) what was stored for the content this path held before.
            replaced = sessions.c.video_sha256 == job.sha256
            if not job.source:
                replaced = sa.or_(replaced, sessions.c.video_path == video_path)
            for old in conn.execute(sa.select(sessions.c.id, sessions.c.student_pk)
                                    .where(replaced)).all():
                delete_session(conn, old.id)
                if old.student_pk != student_pk:  # the same video now filed under another name
                    delete_if_empty(conn, old.student_pk)
            pk = conn.execute(
                sessions.insert().values(
                    student_pk=student_pk,
                    session_id=job.session_id,
                    video_path=video_path,
                    video_sha256=job.sha256,
                    recorded_at=job.recorded_at,
                    duration_s=result.info.duration_s,
                    fps=result.info.fps,
                    frames_analysed=int(metrics["frames_analysed"]),
                    faces_found=int(metrics["faces_found"]),
                    face_coverage=float(metrics["face_coverage"]),
                    negative_share=float(metrics["negative_share"]),
                    level=result.assessment.level,
                    fired_rule=result.assessment.rule,
                    explanation=result.assessment.explanation,
                    evidence_json=json.dumps(result.assessment.evidence),
                    metrics_json=json.dumps(metrics),
                    model_version=result.model_version,
                    model_accuracy=result.model_accuracy,
                    rules_version=result.assessment.rules_version,
                    processed_at=datetime.now(UTC).replace(tzinfo=None, microsecond=0),
                )
            ).inserted_primary_key[0]
            rows = [observation_row(pk, o) for o in result.observations]
            if rows:
                conn.execute(observations.insert(), rows)
            if result.evidence_frames:
                conn.execute(evidence_frames.insert(), [
                    {"session_pk": pk, "t_s": f.t_s, "frame_index": f.frame_index,
                     "label": f.label, "negative_probability": f.negative_probability,
                     "reason": f.reason, "jpeg": f.jpeg}
                    for f in result.evidence_frames
                ])
        return int(pk)

    def update_metrics(self, session_pk: int, metrics: dict[str, Any],
                       assessment: Assessment | None = None) -> None:
        """Replace a stored session's metrics, and its level with `assessment` when given
        (a session's personal baseline changes when an earlier session is stored)."""
        values: dict[str, Any] = {"metrics_json": json.dumps(metrics)}
        if assessment is not None:
            values |= {
                "level": assessment.level, "fired_rule": assessment.rule,
                "explanation": assessment.explanation,
                "evidence_json": json.dumps(assessment.evidence),
            }
        with write_transaction(self.engine) as conn:
            conn.execute(sessions.update().where(sessions.c.id == session_pk).values(**values))

    @staticmethod
    def _student_pk(conn: Connection, student_id: str) -> int:
        found = conn.execute(
            sa.select(students.c.id).where(students.c.student_id == student_id)
        ).scalar()
        if found is not None:
            return int(found)
        return int(
            conn.execute(
                students.insert().values(student_id=student_id, created_at=datetime.now())
            ).inserted_primary_key[0]
        )

    def student_ids(self) -> list[str]:
        # Sorted here, not by the server: PostgreSQL's order follows its locale, SQLite's
        # and Python's the code points.
        with self.engine.connect() as conn:
            return sorted(conn.execute(sa.select(students.c.student_id)).scalars())

    def sessions_of(self, student_id: str) -> list[StoredSession]:
        """The student's sessions, oldest recording first (ties in code-point order of the
        session id, whatever the server's locale)."""
        query = (
            sa.select(sessions, students.c.student_id)
            .join(students, students.c.id == sessions.c.student_pk)
            .where(students.c.student_id == student_id)
        )
        with self.engine.connect() as conn:
            found = [stored_session(row) for row in conn.execute(query)]
        return sorted(found, key=lambda s: (s.recorded_at, s.session_id, s.pk))

    def observations_of(self, session_pk: int) -> list[Observation]:
        query = (
            sa.select(observations)
            .where(observations.c.session_pk == session_pk)
            .order_by(observations.c.t_s)
        )
        with self.engine.connect() as conn:
            return [observation(row) for row in conn.execute(query)]

    def evidence_frames_of(self, session_pk: int) -> list[EvidenceFrame]:
        query = (
            sa.select(evidence_frames)
            .where(evidence_frames.c.session_pk == session_pk)
            .order_by(evidence_frames.c.t_s, evidence_frames.c.frame_index)
        )
        with self.engine.connect() as conn:
            return [
                EvidenceFrame(row.t_s, row.frame_index, row.label, row.negative_probability,
                              row.reason, bytes(row.jpeg))
                for row in conn.execute(query)
            ]


def _prepare_sqlite_file(path: Path, shown: str, create: bool, make_folder: bool) -> None:
    if path.exists():
        return
    if not create:
        raise StoreError(f"no database at {path}")
    if not path.parent.is_dir():
        if not make_folder:
            raise StoreError(f"cannot create database {shown}: no folder {path.parent}")
        path.parent.mkdir(mode=PRIVATE_FOLDER_MODE, parents=True, exist_ok=True)
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE_MODE))
    except FileExistsError:
        pass  # another scan created it first
    except OSError as exc:
        raise StoreError(f"cannot create database {shown}: {exc.strerror or exc}") from None


def _refuse_foreign_sqlite_file(path: Path, shown: str) -> None:
    """Another program's SQLite file is refused before the first connection, which would
    switch it to WAL (rewriting its header) and could create screener's tables in it."""
    tables = sqlite_tables(path)
    if tables and "screener_meta" not in tables:
        raise StoreError(f"{shown} is not a screener database")
