"""Find the videos under the given paths and work out student, session and date from each path.

Conventions, first match wins:
1. `--pattern REGEX` with named groups `student` (required), `session` and `date` (optional),
   matched against the path relative to the scanned folder (with `/` separators);
2. a file named `<student>_<YYYY-MM-DD>[anything].<ext>`;
3. a file inside a folder: `<student>/<anything>.<ext>` (the folder right above the file);
4. otherwise the file name itself is the student.
The recording date is a `YYYY-MM-DD` in the file name when there is one, else its mtime.
"""

from __future__ import annotations

import errno
import hashlib
import os
import re
import stat
import time
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path

from screener.domain import VideoJob
from screener.video.container import states_no_duration

VIDEO_SUFFIXES = frozenset({".mp4", ".mov", ".avi", ".mkv", ".webm", ".m4v"})
_NAMED_DATE = re.compile(r"^(?P<student>.+?)_(?P<date>\d{4}-\d{2}-\d{2})(?:\D.*)?$")
_ANY_DATE = re.compile(r"(?<!\d)(\d{4}-\d{2}-\d{2})(?!\d)")


class DiscoveryError(ValueError):
    """A path or pattern the user gave cannot be used."""


@dataclass(frozen=True)
class PathPattern:
    """A user regex with named groups; `student` is required."""

    regex: re.Pattern[str]

    @classmethod
    def compile(cls, text: str) -> PathPattern:
        try:
            regex = re.compile(text)
        except re.error as exc:
            raise DiscoveryError(f"--pattern is not a valid regular expression: {exc}") from exc
        if "student" not in regex.groupindex:
            raise DiscoveryError("--pattern needs a named group (?P<student>...)")
        return cls(regex)


@dataclass(frozen=True)
class Found:
    jobs: list[VideoJob]
    """Sorted by student and date."""
    unreadable: list[tuple[Path, str]]
    """Folders that could not be entered, and why: their videos are missing from `jobs`."""


def discover(paths: Iterable[Path], pattern: PathPattern | None = None) -> list[VideoJob]:
    """Every video under `paths` (files or folders, recursively), sorted by student and date."""
    return find_videos(paths, pattern).jobs


def find_videos(paths: Iterable[Path], pattern: PathPattern | None = None) -> Found:
    """`discover`, and the folders it could not enter: a scan must name them, not pass over
    their videos as if there were none."""
    jobs: dict[Path, VideoJob] = {}
    unreadable: list[tuple[Path, str]] = []
    for root in paths:
        if not root.exists():
            raise DiscoveryError(f"no such file or folder: {root}")
        if not root.is_dir():  # a file, or a pipe or device the scan then reports as failed
            jobs.setdefault(_real(root), job_for(root, root.parent, pattern))
            continue
        for video in _walk_videos(root, unreadable):
            jobs.setdefault(_real(video), job_for(video, root, pattern))
    ordered = sorted(jobs.values(), key=lambda j: (j.student_id, j.recorded_at, str(j.path)))
    return Found(ordered, unreadable)


def _real(path: Path) -> Path:
    """The path with links resolved, so a video reached twice counts once; a link that loops
    stays as it is (it is reported when the scan reads it)."""
    try:
        return path.resolve()
    except (OSError, RuntimeError):  # Python < 3.13 raises RuntimeError on a loop
        return path.absolute()


def _walk_videos(root: Path, unreadable: list[tuple[Path, str]]) -> Iterable[Path]:
    """Links to folders are followed (`class2 -> /nas/class2`), each real folder once and
    none above `root`, so a link back up (`up -> ..`) is no loop."""
    above = set(_real(root).parents)
    entered: set[Path] = set()

    def cannot_enter(exc: OSError) -> None:
        unreadable.append((Path(exc.filename or root),
                           f"cannot open folder: {exc.strerror or exc}"))

    for folder, dirnames, filenames in os.walk(root, onerror=cannot_enter, followlinks=True):
        entered.add(_real(Path(folder)))
        dirnames[:] = sorted(name for name in dirnames
                             if _real(Path(folder) / name) not in entered | above)
        for name in sorted(filenames):
            if Path(name).suffix.lower() in VIDEO_SUFFIXES:
                yield Path(folder) / name


def job_for(video: Path, root: Path, pattern: PathPattern | None = None) -> VideoJob:
    """The student, session and date that a video's path says (see the module doc)."""
    stem = video.stem
    student, session, date_text = None, stem, None
    if pattern is not None:
        relative = video.relative_to(root).as_posix() if video != root else video.name
        match = pattern.regex.search(relative)
        if match:
            groups = match.groupdict()
            student = groups.get("student")
            session = groups.get("session") or stem
            date_text = groups.get("date")
    if student is None:
        named = _NAMED_DATE.match(stem)
        if named:
            student = named["student"]
        elif video.parent.resolve() != root.resolve():
            student = video.parent.name
        else:
            student = stem
    if date_text is None:
        found = _ANY_DATE.search(stem)
        date_text = found.group(1) if found else None
    return VideoJob(
        path=video,
        student_id=displayable(student),
        session_id=displayable(session),
        recorded_at=_recorded_at(video, date_text),
    )


def displayable(text: str) -> str:
    """Text from a file name as valid Unicode: bytes that are not UTF-8 (kept by Python as
    surrogate escapes) become U+FFFD, so ids can be stored, printed and rendered."""
    return os.fsencode(text).decode("utf-8", "replace") if has_surrogates(text) else text


def has_surrogates(text: str) -> bool:
    """True for a name with bytes that are not UTF-8 (Python keeps them as surrogates)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _recorded_at(video: Path, date_text: str | None) -> datetime:
    if date_text:
        try:
            return datetime.strptime(date_text, "%Y-%m-%d")
        except ValueError:
            pass
    try:
        mtime = video.stat().st_mtime
    except OSError:  # a broken or looping link: the link's own time; the scan reports it
        mtime = video.lstat().st_mtime
    return datetime.fromtimestamp(mtime).replace(microsecond=0)


def unreadable_reason(path: Path) -> str | None:
    """Why `path` is not a regular file that can be read, or None. Asked before any read:
    opening a named pipe would block the scan forever."""
    try:
        mode = path.stat().st_mode
    except OSError as exc:
        if not path.is_symlink():
            return f"cannot read: {exc.strerror or exc}"
        if exc.errno == errno.ELOOP:
            return "symbolic link loop"
        return "broken symbolic link (its target does not exist)"
    return None if stat.S_ISREG(mode) else "not a regular file (a pipe, socket or device)"


QUIET_S = 60.0
"""A video without a stated duration is taken as complete once it has not changed for this
long: a browser still recording, or a copy under way, writes to it every few seconds."""
_STREAMED_SUFFIXES = frozenset({".webm", ".mkv"})


def still_being_written(path: Path, now: float | None = None) -> str | None:
    """Why a video may still be growing, or None. A webm without a duration could be half a
    recording, and filing it would make a session of it; one that changed in the last
    `QUIET_S` seconds is left for a later run."""
    if path.suffix.lower() not in _STREAMED_SUFFIXES:
        return None
    try:
        age = (time.time() if now is None else now) - path.stat().st_mtime
    except OSError:
        return None
    if not -5.0 < age < QUIET_S or not states_no_duration(path):
        return None
    return (f"states no duration and changed {max(age, 0):.0f} s ago, so it may still be "
            "recorded or copied: left for the next scan")


def file_sha256(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def with_hash(job: VideoJob) -> VideoJob:
    return replace(job, sha256=file_sha256(job.path))
