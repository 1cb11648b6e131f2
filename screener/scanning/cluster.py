"""Per-video analysis on the workers of a Dask distributed cluster, for `scan --cluster`.

Only a `VideoJob` (paths, names, dates) and the analysis settings travel to a worker; the
worker reads the video itself, so every worker must see the videos at the same paths as this
process (a shared mount). Results come back here, and this process stays the only writer of
the database and the reports, exactly as with local worker processes.

Dask is imported only when a cluster is used, so a plain scan never needs it installed.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import socket
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import CancelledError
from types import TracebackType
from typing import TYPE_CHECKING

from screener.domain import VideoJob
from screener.errors import first_line
from screener.scanning.analysis import Analyzer
from screener.scanning.scan import Analysed, analyse_one
from screener.settings import Settings

if TYPE_CHECKING:
    from distributed import Client, Future, LocalCluster

log = logging.getLogger("screener.scanning.cluster")

LOCAL = "local"
"""`--cluster local`: start a throwaway cluster of worker processes on this machine."""
MIN_LOCAL_WORKERS = 2
"""A local cluster has at least two workers, so a video whose worker died can move to another."""
NO_WORKER_TIMEOUT_S = 60.0
POLL_S = 1.0
LOST_SCHEDULER = "lost the connection to the Dask scheduler; not analysed"

WorkerTask = Callable[[Settings, VideoJob], Analysed]
"""What runs on a worker for one video; replaceable so tests can run a task that misbehaves."""


class ClusterError(RuntimeError):
    """The cluster cannot be used at all (Dask missing, scheduler unreachable, no workers)."""


def analyse_on_worker(settings: Settings, job: VideoJob) -> Analysed:
    """Runs on a worker: failures come back as reasons, like a local analysis, so one bad video
    never looks like a dead worker (which Dask would retry elsewhere)."""
    if not job.path.is_file():
        return job, None, (
            f"not found on Dask worker {socket.gethostname()}: workers read each video at the "
            "same path as the scanning machine (a shared mount)"
        )
    try:
        analyzer = _worker_analyzer(settings)
    except Exception as exc:
        return job, None, (
            f"Dask worker {socket.gethostname()} cannot load the analysis: {first_line(exc)}"
        )
    return analyse_one(analyzer, job)


@functools.lru_cache(maxsize=2)
def _worker_analyzer(settings: Settings) -> Analyzer:
    """One Analyzer per worker process and settings: the model and cascade load once, not once
    per video. Workers run one task at a time (`--nthreads 1`), hence one thread each."""
    return Analyzer.single_threaded(settings)


def _worker_settings(settings: Settings) -> Settings:
    """Only what the analysis needs: the database URL (and any password in it) stays here, and
    the worker's cache key does not change from one scan to the next."""
    return settings.replace(db_url=None, workers=1, force=False, cluster=None)


class DaskAnalysis:
    """A `scan.AnalyseAll` backend that runs videos on a Dask cluster. Connects on first use,
    so a scan with nothing new to analyse starts no cluster; use it as a context manager so a
    local cluster is always shut down."""

    def __init__(
        self,
        address: str,
        workers: int = MIN_LOCAL_WORKERS,
        task: WorkerTask = analyse_on_worker,
        connect_timeout_s: float | None = None,
        no_worker_timeout_s: float = NO_WORKER_TIMEOUT_S,
    ) -> None:
        """`connect_timeout_s` None means Dask's `distributed.comm.timeouts.connect` (30 s).
        `no_worker_timeout_s` bounds how long a scan waits with no worker to run its videos."""
        self.address = address
        self.workers = max(MIN_LOCAL_WORKERS, workers)
        self.task = task
        self.connect_timeout_s = connect_timeout_s
        self.no_worker_timeout_s = no_worker_timeout_s
        self._cluster: LocalCluster | None = None
        self._client: Client | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> DaskAnalysis:
        assert settings.cluster
        return cls(settings.cluster, settings.worker_count)

    def __enter__(self) -> DaskAnalysis:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        client, cluster, self._client, self._cluster = self._client, self._cluster, None, None
        if client is not None:
            client.close()
        if cluster is not None:
            cluster.close()

    def __call__(self, jobs: list[VideoJob], analyzer: Analyzer) -> Iterator[Analysed]:
        if not jobs:
            return
        client = self._connect()
        from distributed import wait

        settings = _worker_settings(analyzer.settings)
        expected = analyzer.versions
        queue = deque(jobs)
        running: dict[Future, VideoJob] = {}
        starved_since: float | None = None
        try:
            while queue or running:
                # No more videos in flight than worker threads: a video waits here rather than
                # in a worker's queue, where that worker's death would count against it too.
                threads = _threads(client)
                while queue and len(running) < max(1, threads):
                    job = queue.popleft()
                    # Workers have their own working folder: they get the absolute path.
                    remote = dataclasses.replace(job, path=job.path.absolute())
                    running[client.submit(self.task, settings, remote, pure=False)] = job
                try:
                    done = wait(list(running), timeout=POLL_S, return_when="FIRST_COMPLETED").done
                except TimeoutError:
                    done = set()
                except CancelledError:
                    done = {future for future in running if future.done()}
                stop = None
                for future in done:
                    if future.cancelled():  # by Dask, on losing the scheduler: never by us
                        stop = LOST_SCHEDULER
                    yield _outcome(future, running.pop(future), expected)
                    future.release()
                if done or threads:
                    starved_since = None
                elif starved_since is None:
                    starved_since = time.monotonic()
                elif time.monotonic() - starved_since > self.no_worker_timeout_s:
                    stop = (f"no Dask worker left at {self.address} for "
                            f"{self.no_worker_timeout_s:g} s")
                if stop:
                    for job in [*running.values(), *queue]:
                        yield job, None, stop
                    queue.clear()
                    return
        finally:
            if running and client.status == "running":
                client.cancel(list(running))

    def _connect(self) -> Client:
        if self._client is not None:
            return self._client
        try:
            import distributed
        except ImportError:
            raise ClusterError(
                '--cluster needs Dask: pip install ".[cluster]" (or "screener[cluster]")'
            ) from None
        level = max(logging.getLogger("screener").getEffectiveLevel(), logging.INFO)
        logging.getLogger("distributed").setLevel(level)
        if self.address == LOCAL:
            try:
                # On this machine only: no dashboard, nothing listening beyond loopback.
                self._cluster = distributed.LocalCluster(
                    n_workers=self.workers, threads_per_worker=1, processes=True,
                    host="127.0.0.1", dashboard_address=None, silence_logs=level,
                )
            except Exception as exc:
                raise ClusterError(
                    f"cannot start a local Dask cluster: {first_line(exc)}"
                ) from None
        timeout = {} if self.connect_timeout_s is None else {"timeout": self.connect_timeout_s}
        try:
            self._client = distributed.Client(self._cluster or self.address, **timeout)
        except (OSError, TimeoutError, ValueError) as exc:
            self.close()
            raise ClusterError(
                f"cannot reach the Dask scheduler at {self.address}: {first_line(exc)} "
                "(is `dask scheduler` running there, and the address right?)"
            ) from None
        try:
            self._client.wait_for_workers(1, timeout=self.no_worker_timeout_s)
        except TimeoutError:
            self.close()
            raise ClusterError(
                f"the Dask scheduler at {self.address} has no workers after "
                f"{self.no_worker_timeout_s:g} s: start some with `dask worker {self.address}`"
            ) from None
        return self._client


def _threads(client: Client) -> int:
    """Worker threads the scheduler knows of now (0 when it cannot be asked)."""
    try:
        return sum(client.nthreads().values())
    except Exception:
        return 0


def _outcome(future: Future, job: VideoJob, expected: tuple[str, str]) -> Analysed:
    from distributed import KilledWorker

    try:
        analysed: Analysed = future.result()
    except CancelledError:
        return job, None, LOST_SCHEDULER
    except KilledWorker as exc:
        return job, None, (
            f"its Dask worker died {exc.allowed_failures + 1} times while analysing it "
            "(killed, out of memory or crashed); not retried again"
        )
    except ModuleNotFoundError as exc:
        return job, None, (
            f"a Dask worker lacks a module ({first_line(exc)}): install screener on every worker"
        )
    except Exception as exc:
        log.debug("Dask task for %s failed", job.path, exc_info=True)
        return job, None, f"Dask task failed: {type(exc).__name__}: {first_line(exc)}"
    _, result, reason = analysed
    if result is None:
        return job, None, reason
    found = (result.model_version, result.assessment.rules_version)
    if found != expected:
        return job, None, (
            f"a Dask worker analysed it with model {found[0]} and rules {found[1]}, not "
            f"{expected[0]} and {expected[1]}: give the workers the same screener, model "
            "and rules"
        )
    return job, dataclasses.replace(result, job=job), ""
