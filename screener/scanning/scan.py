"""The `scan` job: discover videos, analyse the new ones, store each, re-render the reports.

A broken video is reported with its reason and skipped; every other video is still analysed and
stored. Analysis may run in worker processes; this process is the only database writer. With a
retention period (`[storage] retention_days`), videos recorded before it are left alone and the
sessions recorded before it are erased at the end, as `screener forget --older-than` does.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from screener.domain import SessionResult, VideoJob
from screener.errors import first_line
from screener.scanning.analysis import Analyzer
from screener.storage.database import is_disk_full
from screener.storage.erase import Erased, erase
from screener.storage.store import DATABASE_LOST, Store, StoredCopy, stored_path
from screener.terminal import log_to_stderr
from screener.trends.baseline import refresh_baselines, save_with_baseline
from screener.video.discover import (
    PathPattern,
    find_videos,
    still_being_written,
    unreadable_reason,
    with_hash,
)
from screener.video.keyframes import VideoReadError

log = logging.getLogger("screener.scanning.scan")


@dataclass(frozen=True)
class VideoOutcome:
    job: VideoJob
    status: str
    """`analysed`; `unchanged` (already stored with this model and rules); `moved` (stored,
    found at a new path, and filed under it now); `duplicate` (the same recording as another
    path, which keeps the session: see `reason`); `skipped` (may still be written: left for
    the next scan); `expired` (recorded before the retention period: neither analysed nor
    stored); or `failed` (a video, or a folder that could not be entered)."""
    level: str | None = None
    reason: str = ""


@dataclass
class ScanSummary:
    outcomes: list[VideoOutcome] = field(default_factory=list)
    reports: list[Path] = field(default_factory=list)
    retained_since: datetime | None = None
    """The retention period's cut-off: what was recorded before it is not kept."""
    erased: Erased | None = None
    """The sessions recorded before `retained_since`, erased at the end of the scan."""

    def count(self, status: str) -> int:
        return sum(1 for o in self.outcomes if o.status == status)

    @property
    def failed(self) -> list[VideoOutcome]:
        return [o for o in self.outcomes if o.status == "failed"]


class DatabaseLost(RuntimeError):
    """The database failed mid-scan; carries what was done, every stored session being whole.
    Its cause is the database's error."""

    def __init__(self, summary: ScanSummary) -> None:
        super().__init__("the database failed mid-scan")
        self.summary = summary


class ScanInterrupted(KeyboardInterrupt):
    """Ctrl-C (or SIGTERM: `terminated`) during a scan; carries what was done, every stored
    session being whole."""

    def __init__(self, summary: ScanSummary, terminated: bool = False) -> None:
        super().__init__()
        self.summary, self.terminated = summary, terminated


class Terminated(KeyboardInterrupt):
    """SIGTERM (kill, a cron or systemd timeout), raised by `sigterm_as_interrupt`: the scan
    stops as on Ctrl-C, its workers with it, instead of dying where it stands."""


class StorageFull(RuntimeError):
    """The database's disk is full: analysing on would only throw the results away. Carries
    what was done, every stored session being whole."""

    def __init__(self, summary: ScanSummary, reason: str) -> None:
        super().__init__(reason)
        self.summary = summary


ProgressFactory = Callable[[int], "Progress"]


class Progress:
    """What the scan reports as it goes; the CLI plugs in a tqdm bar."""

    def advance(self, outcome: VideoOutcome) -> None: ...

    def note(self, message: str) -> None:
        """A line on what the scan is doing while the bar cannot move (workers starting)."""

    def close(self) -> None: ...


def scan(
    paths: Iterable[Path],
    analyzer: Analyzer,
    store: Store,
    pattern: PathPattern | None = None,
    progress: ProgressFactory | None = None,
    analyse: AnalyseAll | None = None,
) -> ScanSummary:
    """Analyse and store every video under `paths` that is new or whose analysis is outdated.

    `analyse` is where the analyses run (default: here, or in `--workers` processes); whatever
    runs them, results come back to this loop, the only writer of the database. A database
    that fails on the way raises `DatabaseLost`."""
    summary = ScanSummary()
    try:
        return _scan(summary, paths, analyzer, store, pattern, progress, analyse)
    except DATABASE_LOST as exc:
        raise DatabaseLost(summary) from exc


def _scan(
    summary: ScanSummary,
    paths: Iterable[Path],
    analyzer: Analyzer,
    store: Store,
    pattern: PathPattern | None,
    progress: ProgressFactory | None,
    analyse: AnalyseAll | None,
) -> ScanSummary:
    days = analyzer.settings.storage.retention_days
    cutoff = summary.retained_since = datetime.now() - timedelta(days=days) if days else None
    found = find_videos(paths, pattern)
    for folder, reason in found.unreadable:  # its videos would otherwise go unmentioned
        summary.outcomes.append(_failed(VideoJob(folder, "", "", datetime.min), reason))
    hashed: list[VideoJob] = []
    for job in found.jobs:
        if cutoff is not None and job.recorded_at < cutoff:  # the end of the scan erases it
            summary.outcomes.append(VideoOutcome(
                job, "expired", reason=f"recorded {job.recorded_at:%Y-%m-%d}, before the "
                f"retention period of {days} days: not stored"))
            continue
        reason = unreadable_reason(job.path)
        if reason is None:
            try:
                hashed.append(with_hash(job))
                continue
            except OSError as exc:
                reason = f"cannot read: {exc.strerror or exc}"
        summary.outcomes.append(_failed(job, reason))
    pending: list[VideoJob] = []
    copies: dict[str, list[VideoJob]] = {}
    for job in hashed:
        copies.setdefault(job.sha256, []).append(job)
    current, force = analyzer.versions, analyzer.settings.force
    for sha256, group in copies.items():
        stored = store.stored_copy(sha256)
        keeper = _keeper(group, stored)
        original = keeper.path if keeper is not None else stored.video_path  # type: ignore[union-attr]
        summary.outcomes.extend(VideoOutcome(job, "duplicate", reason=f"duplicate of {original}")
                                for job in group if job is not keeper)
        if keeper is None:
            continue
        if stored is None or force or stored.versions != current:
            growing = still_being_written(keeper.path)
            if growing:
                summary.outcomes.append(VideoOutcome(keeper, "skipped", reason=growing))
            else:
                pending.append(keeper)
        elif stored.video_path != stored_path(keeper.path):
            store.relocate(keeper)
            summary.outcomes.append(VideoOutcome(keeper, "moved",
                                                 reason=f"moved from {stored.video_path}"))
        else:
            summary.outcomes.append(VideoOutcome(keeper, "unchanged"))
    bar = progress(len(pending)) if progress else Progress()
    starting = _starting(pending, analyzer, analyse)
    if starting:
        bar.note(starting)
    results = (analyse or _analyse_all)(pending, analyzer)
    try:
        for job, result, error in results:
            with ctrl_c_deferred():  # stored and counted, or neither
                if result is not None:
                    try:
                        _, result = save_with_baseline(store, result, analyzer.rules)
                        outcome = VideoOutcome(job, "analysed", result.level)
                    except Exception as exc:  # a database fault must not lose the other videos
                        if is_disk_full(exc):  # ... unless it is one that would lose them all
                            reason = first_line(getattr(exc, "orig", exc))
                            raise StorageFull(summary, reason) from exc
                        if isinstance(exc, DATABASE_LOST):  # so would every later video
                            raise
                        outcome = _failed(job, f"could not store: {first_line(exc)}")
                else:
                    outcome = _failed(job, error)
                summary.outcomes.append(outcome)
            for note in result.metrics.get("data_quality", ()) if result is not None else ():
                log.warning("%s: %s", job.path, note)
            bar.advance(outcome)
    except KeyboardInterrupt as exc:
        raise ScanInterrupted(summary, isinstance(exc, Terminated)) from None
    finally:
        bar.close()
        if hasattr(results, "close"):  # stops the workers now, whatever ended the loop
            results.close()
    if cutoff is not None:
        try:
            summary.erased = _erase_expired(store, analyzer, cutoff)
        except KeyboardInterrupt as exc:
            raise ScanInterrupted(summary, isinstance(exc, Terminated)) from None
    return summary


def _erase_expired(store: Store, analyzer: Analyzer, cutoff: datetime) -> Erased:
    """Erase every session recorded before `cutoff`, as `screener forget --older-than` does
    (on SQLite: overwritten, then the file rebuilt); the baselines of the students who keep
    sessions are brought up to date with the ones left. The reports come next."""
    with ctrl_c_deferred():  # Ctrl-C waits until the baselines rest on what is left
        erased = erase(store, recorded_before=cutoff)
        for student in sorted(set(erased.students) - set(erased.gone)):
            refresh_baselines(store, student, analyzer.rules)
    return erased


@contextmanager
def ctrl_c_deferred() -> Iterator[None]:
    """Holds Ctrl-C (SIGINT) and SIGTERM back until the block ends, then delivers them to the
    handlers they had. Storing a session commits it and then brings the student's baselines
    up to date; a stop in between would leave a stored session out of the "N sessions stored"
    line. Only the main thread can set a handler; elsewhere the block runs as it is."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    held: list[int] = []
    previous = {number: signal.signal(number, lambda number, _frame: held.append(number))
                for number in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler if handler is not None else signal.SIG_DFL)
    if held:
        signal.raise_signal(held[0])


@contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM raises `Terminated` in the block, so that a scan cleans up (workers stopped,
    one line said) as on Ctrl-C; outside the main thread the block runs as it is."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(_number: int, _frame: object) -> None:
        raise Terminated

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous if previous is not None else signal.SIG_DFL)


def _keeper(group: list[VideoJob], stored: StoredCopy | None) -> VideoJob | None:
    """Which of several paths with the same content keeps the session: the one it is stored
    under; none when that file is still there outside this scan (the others are copies of it);
    else the first in sorted order, so the outcome never depends on timing."""
    if stored is not None:
        where = stored_path(Path(stored.video_path))  # older sessions: as given, maybe relative
        for job in group:
            if stored_path(job.path) == where:
                return job
        if _same_size(Path(where), group[0].path):
            return None
    return min(group, key=lambda job: stored_path(job.path))


def _same_size(stored: Path, found: Path) -> bool:
    try:
        return stored.is_file() and stored.stat().st_size == found.stat().st_size
    except OSError:
        return False


def _failed(job: VideoJob, reason: str) -> VideoOutcome:
    log.debug("failed %s: %s", job.path, reason)  # the CLI prints each failure once
    return VideoOutcome(job, "failed", reason=reason)


Analysed = tuple[VideoJob, SessionResult | None, str]
"""A video and its result, or None and the one-line reason it failed."""


def _starting(pending: list[VideoJob], analyzer: Analyzer, analyse: AnalyseAll | None) -> str:
    """What the first seconds of the analysis are spent on, before any video is done."""
    if analyse is not None:  # a cluster's workers are already running
        return ""
    workers = min(analyzer.settings.worker_count, len(pending))
    return f"starting {workers} workers…" if workers > 1 else ""


AnalyseAll = Callable[[list[VideoJob], Analyzer], Iterator[Analysed]]
"""A backend: analyses the videos somewhere and yields each as it completes, in any order."""


def _analyse_all(jobs: list[VideoJob], analyzer: Analyzer) -> Iterator[Analysed]:
    workers = analyzer.settings.worker_count
    if workers == 1 or len(jobs) <= 1:
        for job in jobs:
            yield analyse_one(analyzer, job)
        return
    with ProcessPoolExecutor(
        max_workers=min(workers, len(jobs)),
        mp_context=multiprocessing.get_context("spawn"),
        initializer=_init_worker,
        initargs=(analyzer.settings, logging.getLogger("screener").getEffectiveLevel(),
                  os.getpid()),
    ) as pool:
        futures = {pool.submit(_analyse_in_worker, job): job for job in jobs}
        try:
            for future in as_completed(futures):
                try:
                    yield future.result()
                except Exception as exc:  # the worker process itself died
                    yield futures[future], None, f"worker failed: {first_line(exc)}"
        except BaseException:  # Ctrl-C: leaving the pool would wait for every video under way
            pool.shutdown(wait=False, cancel_futures=True)
            for process in multiprocessing.active_children():
                process.terminate()
            raise


def analyse_one(analyzer: Analyzer, job: VideoJob) -> Analysed:
    try:
        return job, analyzer.analyze(job), ""
    except VideoReadError as exc:
        return job, None, str(exc)
    except MemoryError:
        return job, None, "out of memory while analysing"
    except Exception as exc:
        log.debug("analysis of %s failed", job.path, exc_info=True)
        return job, None, f"analysis failed: {type(exc).__name__}: {first_line(exc)}"


_worker_analyzer: Analyzer | None = None


def _init_worker(settings, log_level: int, scan_pid: int) -> None:  # type: ignore[no-untyped-def]
    global _worker_analyzer
    if os.getpid() != scan_pid:  # not the scan itself (the tests' in-process pool)
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the scan's to handle
        threading.Thread(target=_exit_with_the_scan, args=(scan_pid,), daemon=True,
                         name="screener-orphan-watch").start()
    # A spawned process starts with no logging set up: --debug tracebacks would be lost.
    log_to_stderr()
    logging.getLogger("screener").setLevel(log_level)
    _worker_analyzer = Analyzer.single_threaded(settings.replace(workers=1))


def _exit_with_the_scan(scan_pid: int, every_s: float = 0.5) -> None:
    """A worker whose scan was killed (SIGKILL, the OOM killer, a cron timeout) would otherwise
    wait for work forever: the other workers keep its job queue open."""
    while os.getppid() == scan_pid:
        time.sleep(every_s)
    os._exit(1)


def _analyse_in_worker(job: VideoJob) -> Analysed:
    assert _worker_analyzer is not None
    return analyse_one(_worker_analyzer, job)
