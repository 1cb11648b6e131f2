"""One scan at a time per database, so overlapping cron runs queue instead of racing.

SQLite itself would serialise the writes, but two scans would analyse the same new videos
twice; an advisory lock on a file beside the database makes the second scan wait for the first
(and then find nothing left to do). Databases that are not local files take no lock: a
PostgreSQL server is meant to be shared, so scans from several machines may run into it at
once. Each session is saved in one transaction keyed by the video's hash (retried when it loses
a race, see store.py), so the worst an overlap costs is a video analysed twice, stored once.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from filelock import FileLock, Timeout

from screener.privacy import PRIVATE_FILE_MODE
from screener.storage.database import sqlite_file


class LockTimeout(RuntimeError):
    """Another scan held the database for longer than we were willing to wait."""


class LockError(RuntimeError):
    """The lock file cannot be created or opened (a folder or file this user cannot write)."""


def lock_path_for(db_url: str) -> Path | None:
    database = sqlite_file(db_url)
    return None if database is None else database.with_name(database.name + ".lock")


@contextmanager
def exclusive_scan(
    db_url: str, timeout_s: float, on_wait: Callable[[str], None] = lambda _: None
) -> Iterator[None]:
    """`filelock` takes the lock: flock on Unix, the same file locked through msvcrt on
    Windows, whose data folder screener also uses."""
    path = lock_path_for(db_url)
    if path is None:
        yield
        return
    if not path.parent.is_dir():  # filelock would create it: the database's folder comes first
        raise LockError(f"cannot use the lock file {path}: no folder {path.parent}")
    try:
        # Read before trying: a waiting FileLock may empty the file when it opens it.
        holder = _holder(path)
        lock = FileLock(path, mode=PRIVATE_FILE_MODE)
        try:
            lock.acquire(timeout=0)
        except Timeout:
            on_wait(f"another scan ({holder}) is using {db_url}; waiting up to {timeout_s:g} s")
            try:
                lock.acquire(timeout=timeout_s, poll_interval=0.2)
            except Timeout:
                raise LockTimeout(
                    f"another scan ({holder}) still holds {db_url} after {timeout_s:g} s"
                ) from None
    except OSError as exc:
        raise LockError(f"cannot use the lock file {path}: {exc.strerror or exc} (the scan "
                        "takes it beside the database; this user must be able to write there)"
                        ) from None
    try:
        with suppress(OSError):  # only what the waiting message says; Windows may refuse it
            path.write_text(f"pid {os.getpid()}")
        yield
    finally:
        with suppress(OSError):
            path.write_text("")
        lock.release()


def _holder(path: Path) -> str:
    try:
        return path.read_text().strip() or "another process"
    except OSError:
        return "another process"
