"""One scan at a time per database, so overlapping cron runs queue instead of racing.

SQLite itself would serialise the writes, but two scans would analyse the same new videos
twice; an advisory lock on a file beside the database makes the second scan wait for the first
(and then find nothing left to do). Databases that are not local files take no lock: a
PostgreSQL server is meant to be shared, so scans from several machines may run into it at
once. Each session is saved in one transaction keyed by the video's hash (retried when it loses
a race, see store.py), so the worst an overlap costs is a video analysed twice, stored once.
"""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from screener.database import PRIVATE_FILE_MODE, sqlite_file


class LockTimeout(RuntimeError):
    """Another scan held the database for longer than we were willing to wait."""


def lock_path_for(db_url: str) -> Path | None:
    database = sqlite_file(db_url)
    return None if database is None else database.with_name(database.name + ".lock")


@contextmanager
def exclusive_scan(
    db_url: str, timeout_s: float, on_wait: Callable[[str], None] = lambda _: None
) -> Iterator[None]:
    path = lock_path_for(db_url)
    if path is None:
        yield
        return
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND, PRIVATE_FILE_MODE)
    with os.fdopen(fd, "a+") as handle:
        if not _try_lock(handle):
            holder = path.read_text().strip() or "another process"
            on_wait(f"another scan ({holder}) is using {db_url}; waiting up to {timeout_s:g} s")
            deadline = time.monotonic() + timeout_s
            while not _try_lock(handle):
                if time.monotonic() >= deadline:
                    raise LockTimeout(
                        f"another scan ({holder}) still holds {db_url} after {timeout_s:g} s"
                    )
                time.sleep(0.2)
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()}")
        handle.flush()
        try:
            yield
        finally:
            handle.seek(0)
            handle.truncate()
            fcntl.flock(handle, fcntl.LOCK_UN)


def _try_lock(handle) -> bool:  # type: ignore[no-untyped-def]
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True
