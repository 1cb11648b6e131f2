"""Engines for the two supported backends, and the write conflicts worth retrying.

The store's queries are the same on SQLite and PostgreSQL; what differs is how writers meet.
SQLite serialises them on a file lock (taken up front, so a transaction never fails half-way
on "database is locked"); PostgreSQL lets them run side by side, so two clients saving the
same video or creating the same student can collide on a unique key and one must try again.
"""

from __future__ import annotations

import errno
import logging
import random
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

log = logging.getLogger(__name__)

T = TypeVar("T")

_CONFLICT_SQLSTATES = {
    "23505",  # unique_violation: another client inserted the same video or student first
    "23503",  # foreign_key_violation: a student deleted while another client filed a session
    "40001",  # serialization_failure
    "40P01",  # deadlock_detected
}
_SQLITE_CONFLICTS = ("SQLITE_BUSY", "SQLITE_LOCKED", "SQLITE_CONSTRAINT_UNIQUE",
                     "SQLITE_CONSTRAINT_FOREIGNKEY")
_WRITE = "screener_write"


def normalize_url(url: str) -> str:
    """Let users write `postgresql://` (or `postgres://`) without knowing about drivers."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url.removeprefix(prefix)
    return url


def sqlite_file(url: str) -> Path | None:
    """The file of a SQLite URL; None for a server or an in-memory database."""
    try:
        parsed = sa.engine.make_url(url)
    except (sa.exc.ArgumentError, ValueError):
        return None  # create_engine says what is wrong with it
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    if parsed.database.startswith("file:"):  # a URI filename: the path ends at its query
        return Path(parsed.database.removeprefix("file:").split("?")[0]).expanduser()
    return Path(parsed.database).expanduser()


def create_engine(url: str, read_only: bool = False) -> Engine:
    server = sa.engine.make_url(url).get_backend_name() == "postgresql"
    try:
        # A long scan outlives a server restart: test a pooled connection before each use.
        engine = sa.create_engine(url, pool_pre_ping=server)
    except ModuleNotFoundError as exc:
        if server:
            raise ModuleNotFoundError(
                f"PostgreSQL support is not installed ({exc}): pip install 'screener[postgres]'"
            ) from exc
        raise
    if engine.dialect.name == "sqlite":
        sa.event.listen(engine, "connect", _sqlite_read_pragmas if read_only else _sqlite_pragmas)
        sa.event.listen(engine, "begin", _sqlite_begin)
    return engine


@contextmanager
def write_transaction(engine: Engine) -> Iterator[Connection]:
    """A transaction that may write: on SQLite it takes the write lock at BEGIN, waiting for
    other writers there instead of failing when it first writes."""
    with engine.connect() as conn:
        conn.execution_options(**{_WRITE: True})
        with conn.begin():
            yield conn


def retry_conflicts(transaction: Callable[[], T], tries: int = 8) -> T:
    """Run `transaction` again, after a short random pause, when it lost a race with another
    client; the end state is then as if the clients had taken turns."""
    for attempt in range(1, tries):
        try:
            return transaction()
        except sa.exc.DBAPIError as exc:
            if not is_conflict(exc):
                raise
            log.debug("write conflict (attempt %d of %d): %s", attempt, tries, exc.orig)
            time.sleep(random.uniform(0, 0.02 * 2**attempt))
    return transaction()


def is_conflict(exc: sa.exc.DBAPIError) -> bool:
    sqlstate = getattr(exc.orig, "sqlstate", None)
    if sqlstate is not None:
        return sqlstate in _CONFLICT_SQLSTATES
    return str(getattr(exc.orig, "sqlite_errorname", "")).startswith(_SQLITE_CONFLICTS)


def is_disk_full(exc: BaseException) -> bool:
    """The disk under the database is full (SQLite's "database or disk is full", PostgreSQL's
    disk_full, ENOSPC): every later write would fail the same way."""
    orig = getattr(exc, "orig", None) or exc
    if isinstance(orig, OSError) and orig.errno == errno.ENOSPC:
        return True
    if getattr(orig, "sqlstate", None) == "53100" or str(
            getattr(orig, "sqlite_errorname", "")) == "SQLITE_FULL":
        return True
    return "database or disk is full" in str(orig)


def lock_schema(conn: Connection) -> None:
    """Make concurrent first opens of one PostgreSQL database take turns creating the schema
    (SQLite's write transaction already does)."""
    if conn.dialect.name == "postgresql":
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _SCHEMA_LOCK_KEY})


_SCHEMA_LOCK_KEY = 0x5C12EE4E  # any constant; advisory locks are per database


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # The driver would otherwise open transactions only before INSERT/UPDATE/DELETE, leaving
    # a migration's ALTER TABLE outside it; _sqlite_begin opens every transaction instead.
    # busy_timeout comes first: switching to WAL needs a lock another client may hold.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute(_SECURE_DELETE)
    cursor.close()


def _sqlite_read_pragmas(dbapi_connection: Any, _record: Any) -> None:
    """A read-only connection cannot switch the journal mode: it reads the file as it is."""
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute(_SECURE_DELETE)
    cursor.close()


_SECURE_DELETE = "PRAGMA secure_delete=ON"
"""Deleted rows are overwritten, not left in free pages: a face thumbnail or a session that a
rescan replaces must not stay readable in the file."""


def sqlite_tables(path: Path) -> set[str] | None:
    """The tables of a SQLite file, read without changing a byte of it (no journal switch, no
    lock left behind); None when it cannot be read as a database at all."""
    uri = f"file:{quote(str(path.absolute()))}?mode=ro"
    try:
        conn = sqlite3.connect(uri, uri=True, timeout=30)
    except sqlite3.Error:
        return None
    try:
        rows = conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
    except sqlite3.Error:
        return None
    finally:
        conn.close()
    return {name for (name,) in rows}


def _sqlite_begin(conn: Connection) -> None:
    immediate = conn.get_execution_options().get(_WRITE, False)
    conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")
