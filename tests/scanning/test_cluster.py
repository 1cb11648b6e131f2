"""Scans on a Dask cluster: the same sessions and reports as local scans, and the faults a
cluster adds (a worker killed mid-video, an unreachable scheduler, Dask missing)."""

from __future__ import annotations

import dataclasses
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from screener.cli import app
from screener.scanning.analysis import Analyzer
from screener.scanning.cluster import ClusterError, DaskAnalysis, analyse_on_worker
from screener.scanning.scan import Analysed, analyse_one, scan
from screener.settings import Settings, SettingsError, load_settings
from screener.storage.store import Store
from screener.video.discover import job_for
from tests.conftest import face_frames, plain_frames, write_video

runner = CliRunner()


def run(*args: object):
    return runner.invoke(app, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture(scope="module")
def cluster():
    """Two single-thread worker processes, shared by the tests below. A video is given up after
    its second worker death (Dask's default allows four), to keep the tests short."""
    import dask
    from distributed import LocalCluster

    with dask.config.set({"distributed.scheduler.allowed-failures": 1}):
        local = LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                             dashboard_address=":0", silence_logs=logging.ERROR)
    yield local
    local.close()


@pytest.fixture(scope="module")
def analyzer() -> Analyzer:
    return Analyzer.from_settings(Settings())


def _videos(folder: Path, astronaut, names: list[str], frames: int = 30) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    return [write_video(folder / name, face_frames(astronaut, frames, seed=i))
            for i, name in enumerate(names)]


def _within(seconds: float, function: Callable[..., Any], *args: Any) -> Any:
    """`function(*args)`, failing the test (not hanging it) when it takes longer."""
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = function(*args)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the test's thread
            box["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"still running after {seconds} s: the scan hangs"
    if "error" in box:
        raise box["error"]
    return box["value"]


def _stored(db_url: str) -> dict[str, tuple[dict, list]]:
    """Every session (without its row id and processing time) and its observations."""
    store = Store(db_url)
    stored = {}
    for student in store.student_ids():
        for session in store.sessions_of(student):
            fields = dataclasses.asdict(session)
            del fields["pk"], fields["processed_at"]
            stored[session.session_id] = (fields, store.observations_of(session.pk))
    return stored


def _reports(folder: Path) -> dict[str, str]:
    return {page.name: re.sub(r"Generated .*? by screener", "Generated (masked) by screener",
                              page.read_text(encoding="utf-8"))
            for page in sorted(folder.glob("*.html"))}


@pytest.mark.slow
def test_local_process_pool_and_dask_cluster_scans_store_and_report_the_same(tmp_path,
                                                                            astronaut):
    from tests.cli.test_cli import _run_on_a_terminal

    folder = tmp_path / "videos"
    folder.mkdir()
    scenes = [face_frames(astronaut, 40, seed=1),
              face_frames(astronaut, 20, seed=2) + plain_frames(20, (0, 0, 200)),
              plain_frames(10, (40, 120, 40)) + face_frames(astronaut, 30, seed=3),
              face_frames(astronaut, 25, size=(400, 300), seed=4)]
    names = ["kim_2026-02-01.mp4", "kim_2026-02-08.mp4", "lee/monday.mp4", "lee/tuesday.mp4"]
    for name, frames in zip(names, scenes, strict=True):
        (folder / name).parent.mkdir(exist_ok=True)
        write_video(folder / name, frames)

    timings = {}
    for mode, extra in [("local", []), ("pool", ["--workers", "2"])]:
        start = time.monotonic()
        result = run("scan", folder, "--out", tmp_path / mode, "--db",
                     f"sqlite:///{tmp_path}/{mode}.db", "--quiet", *extra)
        timings[mode] = time.monotonic() - start
        assert result.exit_code == 0, result.output
    start = time.monotonic()
    code, output = _run_on_a_terminal("scan", str(folder), "--out", str(tmp_path / "dask"),
                                      "--db", f"sqlite:///{tmp_path}/dask.db", "--cluster",
                                      "local")
    timings["dask"] = time.monotonic() - start
    print("scan times (s):", {mode: round(t, 1) for mode, t in timings.items()})
    assert code == 0, output
    assert "4 analysed, 0 unchanged, 0 failed" in output
    assert "4/4" in output and "video" in output  # the progress bar, on a terminal
    assert "Traceback" not in output

    local = _stored(f"sqlite:///{tmp_path}/local.db")
    assert len(local) == 4 and sum(len(obs) for _, obs in local.values()) > 10
    assert {fields["level"] for fields, _ in local.values()} <= {"insufficient", "low",
                                                                 "moderate", "high"}
    assert _stored(f"sqlite:///{tmp_path}/pool.db") == local
    assert _stored(f"sqlite:///{tmp_path}/dask.db") == local
    reports = _reports(tmp_path / "local")
    assert len(reports) == 3 and "index.html" in reports  # and one page per student
    assert _reports(tmp_path / "pool") == reports
    assert _reports(tmp_path / "dask") == reports


@pytest.mark.slow
def test_a_broken_video_fails_on_its_worker_and_the_others_are_stored(cluster, tmp_path,
                                                                      astronaut, analyzer,
                                                                      monkeypatch):
    monkeypatch.chdir(tmp_path)  # a relative path here is not where the workers run
    folder = Path("videos")
    _videos(folder, astronaut, ["ona_2026-01-01.mp4", "ona_2026-01-03.mp4"], frames=20)
    broken = folder / "ona_2026-01-02.mp4"
    broken.write_text("not a video")
    _, _, local_reason = analyse_one(analyzer, job_for(broken, folder))
    assert local_reason

    db = f"sqlite:///{tmp_path}/screener.db"
    result = run("scan", folder, "--out", tmp_path / "r", "--db", db, "--quiet",
                 "--cluster", cluster.scheduler_address)
    assert result.exit_code == 1, result.output
    assert f"FAILED {broken}: {local_reason}" in result.output  # worded as a local failure
    assert "2 analysed, 0 unchanged, 1 failed" in result.output
    stored = _stored(db)
    assert sorted(stored) == ["ona_2026-01-01", "ona_2026-01-03"]
    assert stored["ona_2026-01-01"][0]["video_path"] == str(tmp_path / "videos" /
                                                            "ona_2026-01-01.mp4")
    assert len(list((tmp_path / "r").glob("ona*.html"))) == 1


def test_a_damaged_video_scanned_on_the_cluster_is_stored_as_locally_and_says_so(
        cluster, tmp_path, astronaut, caplog):
    """Dask workers decode as process workers do: the damaged file gives the same session as a
    local scan, and the scan still says, as it goes, how much of it could not be decoded."""
    from tests.video.test_decoders import with_packet_zeroed

    folder = tmp_path / "videos"
    folder.mkdir()
    clean = write_video(tmp_path / "clean.mp4", face_frames(astronaut, 60))
    with_packet_zeroed(clean, 30, folder / "damaged_2026-01-02.mp4")
    for mode, extra in [("local", []), ("dask", ["--cluster", cluster.scheduler_address])]:
        caplog.clear()
        result = run("scan", folder, "--out", tmp_path / mode, "--db",
                     f"sqlite:///{tmp_path}/{mode}.db", *extra)
        assert result.exit_code == 0 and "Traceback" not in result.output, result.output
        assert "1 analysed, 0 unchanged, 0 failed" in result.output
        warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
        assert any("damaged_2026-01-02.mp4: " in w and "could not be decoded" in w
                   for w in warnings), (mode, warnings)
    local = _stored(f"sqlite:///{tmp_path}/local.db")
    assert _stored(f"sqlite:///{tmp_path}/dask.db") == local
    [(fields, _)] = local.values()
    assert "could not be decoded" in fields["metrics"]["data_quality"][0]


def dying_analysis(settings: Settings, job) -> Analysed:
    """A worker task that kills its own process, as the OOM killer or a crashing codec would,
    for videos named `*crash-once*` (first attempt only) and `*crash-always*`. Each attempt's
    worker pid goes to `attempts/<video name>` beside the videos' folder."""
    log = job.path.parent.parent / "attempts" / job.path.name
    log.parent.mkdir(exist_ok=True)
    with log.open("a") as handle:
        handle.write(f"{os.getpid()}\n")
    first = len(log.read_text().split()) == 1
    if "crash-always" in job.path.name or ("crash-once" in job.path.name and first):
        time.sleep(0.5)  # mid-task, once the worker has reported what it finished before
        os.kill(os.getpid(), signal.SIGKILL)
    return analyse_on_worker(settings, job)


def _attempts(tmp_path: Path, name: str) -> list[str]:
    return (tmp_path / "attempts" / name).read_text().split()


@pytest.mark.slow
def test_a_video_whose_worker_is_killed_is_retried_on_another_worker(cluster, tmp_path,
                                                                     astronaut, analyzer):
    folder = tmp_path / "videos"
    _videos(folder, astronaut, ["pia_2026-01-01.mp4", "pia_2026-01-02_crash-once.mp4"])
    store = Store(f"sqlite:///{tmp_path}/screener.db")
    with DaskAnalysis(cluster.scheduler_address, task=dying_analysis) as analyse:
        summary = _within(180, scan, [folder], analyzer, store, None, None, analyse)
    assert {o.job.path.name: o.status for o in summary.outcomes} == {
        "pia_2026-01-01.mp4": "analysed", "pia_2026-01-02_crash-once.mp4": "analysed"}
    pids = _attempts(tmp_path, "pia_2026-01-02_crash-once.mp4")
    assert len(pids) == 2 and pids[0] != pids[1]  # the second try ran in another process
    assert len(store.sessions_of("pia")) == 2


@pytest.mark.slow
def test_a_video_that_keeps_killing_its_workers_is_reported_and_the_scan_ends(cluster,
                                                                             tmp_path,
                                                                             astronaut,
                                                                             analyzer):
    folder = tmp_path / "videos"
    _videos(folder, astronaut, ["ray_2026-01-01.mp4", "ray_2026-01-02_crash-always.mp4"])
    store = Store(f"sqlite:///{tmp_path}/screener.db")
    start = time.monotonic()
    with DaskAnalysis(cluster.scheduler_address, task=dying_analysis) as analyse:
        summary = _within(180, scan, [folder], analyzer, store, None, None, analyse)
    print(f"scan with two worker deaths: {time.monotonic() - start:.1f} s")
    outcomes = {o.job.path.name: o for o in summary.outcomes}
    assert outcomes["ray_2026-01-01.mp4"].status == "analysed"
    failed = outcomes["ray_2026-01-02_crash-always.mp4"]
    assert failed.status == "failed"
    assert "worker died 2 times" in failed.reason
    pids = _attempts(tmp_path, "ray_2026-01-02_crash-always.mp4")
    assert len(pids) == 2 and pids[0] != pids[1]
    assert [s.session_id for s in store.sessions_of("ray")] == ["ray_2026-01-01"]


def test_a_worker_that_cannot_see_the_video_says_so(cluster, tmp_path, astronaut):
    from distributed import Client

    (video,) = _videos(tmp_path, astronaut, ["sam_2026-01-01.mp4"], frames=12)
    job = job_for(video, tmp_path)
    missing = dataclasses.replace(job, path=tmp_path / "elsewhere" / video.name)
    with Client(cluster) as client:
        found = client.submit(analyse_on_worker, Settings(), job, pure=False).result()
        lost = client.submit(analyse_on_worker, Settings(), missing, pure=False).result()
    assert found[1] is not None and found[2] == ""
    assert lost[1] is None
    assert lost[2].startswith("not found on Dask worker") and "same path" in lost[2]


def relabelled_analysis(settings: Settings, job) -> Analysed:
    """A worker with another model than the scanning machine's."""
    job, result, reason = analyse_on_worker(settings, job)
    return job, dataclasses.replace(result, model_version="other-model@123"), reason


def test_a_worker_with_another_model_is_not_stored(cluster, tmp_path, astronaut, analyzer):
    folder = tmp_path / "videos"
    _videos(folder, astronaut, ["tia_2026-01-01.mp4"], frames=12)
    store = Store(f"sqlite:///{tmp_path}/screener.db")
    with DaskAnalysis(cluster.scheduler_address, task=relabelled_analysis) as analyse:
        (outcome,) = scan([folder], analyzer, store, analyse=analyse).outcomes
    assert outcome.status == "failed"
    assert "other-model@123" in outcome.reason and analyzer.model.name in outcome.reason
    assert store.student_ids() == []


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.slow
def test_an_unreachable_scheduler_is_a_clear_error_and_stores_nothing(tmp_path, astronaut):
    import dask

    _videos(tmp_path / "v", astronaut, ["uma_2026-01-01.mp4"], frames=12)
    address = f"tcp://127.0.0.1:{_closed_port()}"
    db = f"sqlite:///{tmp_path}/screener.db"
    start = time.monotonic()
    with dask.config.set({"distributed.comm.timeouts.connect": "2s"}):
        result = run("scan", tmp_path / "v", "--out", tmp_path / "r", "--db", db,
                     "--cluster", address)
    assert time.monotonic() - start < 20
    assert result.exit_code == 2, result.output
    assert f"cannot reach the Dask scheduler at {address}" in result.output
    assert "Traceback" not in result.output
    assert Store(db).student_ids() == []


def test_a_scheduler_without_workers_is_a_clear_error(tmp_path, astronaut, analyzer):
    from distributed import LocalCluster

    _videos(tmp_path / "v", astronaut, ["val_2026-01-01.mp4"], frames=12)
    with LocalCluster(n_workers=0, processes=True, dashboard_address=":0",
                      silence_logs=logging.ERROR) as empty, \
            DaskAnalysis(empty.scheduler_address, no_worker_timeout_s=1) as analyse, \
            pytest.raises(ClusterError, match="has no workers after 1 s"):
        scan([tmp_path / "v"], analyzer, Store(f"sqlite:///{tmp_path}/s.db"), analyse=analyse)


def test_without_dask_cluster_says_what_to_install(tmp_path, astronaut, monkeypatch):
    _videos(tmp_path / "v", astronaut, ["wes_2026-01-01.mp4"], frames=12)
    monkeypatch.setitem(sys.modules, "distributed", None)  # `import distributed` fails
    result = run("scan", tmp_path / "v", "--out", tmp_path / "r", "--db",
                 f"sqlite:///{tmp_path}/s.db", "--cluster", "local")
    assert result.exit_code == 2, result.output
    assert 'pip install ".[cluster]"' in result.output and "Traceback" not in result.output


def test_a_plain_scan_never_imports_dask(tmp_path, astronaut):
    _videos(tmp_path / "v", astronaut, ["xia_2026-01-01.mp4"], frames=12)
    code = (
        "import runpy, sys\n"
        f"sys.argv = ['screener', 'scan', {str(tmp_path / 'v')!r}, '--out',"
        f" {str(tmp_path / 'r')!r}, '--db', 'sqlite:///{tmp_path}/s.db', '--quiet']\n"
        "try:\n    runpy.run_module('screener', run_name='__main__')\n"
        "except SystemExit as exit:\n"
        "    print(exit.code, 'dask' in sys.modules, 'distributed' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, cwd=tmp_path)
    assert done.stdout.split() == ["0", "False", "False"], done.stderr


def test_the_cluster_can_be_set_in_the_settings_file(tmp_path):
    config = tmp_path / "screener.toml"
    config.write_text('cluster = "tcp://scheduler:8786"\nworkers = 3\n')
    assert (load_settings(config).cluster, load_settings(config).workers) == (
        "tcp://scheduler:8786", 3)
    assert DaskAnalysis.from_settings(load_settings(config)).workers == 3
    config.write_text("cluster = 8786\n")
    with pytest.raises(SettingsError, match="cluster must be a string"):
        load_settings(config)
    assert Settings().cluster is None


def stalling_analysis(settings: Settings, job) -> Analysed:
    """Says it started, then takes far longer than the test waits."""
    (job.path.parent / "started").write_text(str(os.getpid()))
    time.sleep(120)
    return analyse_on_worker(settings, job)


@pytest.mark.slow
def test_a_scan_whose_workers_all_leave_reports_its_videos_instead_of_waiting(tmp_path,
                                                                             astronaut,
                                                                             analyzer):
    from distributed import LocalCluster

    _videos(tmp_path / "v", astronaut, ["yan_2026-01-01.mp4", "yan_2026-01-02.mp4"], frames=12)
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=":0",
                      silence_logs=logging.CRITICAL) as lone:

        def stop_the_workers_once_busy() -> None:
            deadline = time.monotonic() + 60
            while not (tmp_path / "v" / "started").exists() and time.monotonic() < deadline:
                time.sleep(0.1)
            lone.scale(0)

        threading.Thread(target=stop_the_workers_once_busy, daemon=True).start()
        with DaskAnalysis(lone.scheduler_address, task=stalling_analysis,
                          no_worker_timeout_s=2) as analyse:
            summary = _within(90, scan, [tmp_path / "v"], analyzer,
                              Store(f"sqlite:///{tmp_path}/s.db"), None, None, analyse)
    assert [o.status for o in summary.outcomes] == ["failed", "failed"]
    assert all("no Dask worker left" in o.reason for o in summary.outcomes)


@pytest.mark.slow
def test_a_scan_that_loses_its_scheduler_reports_its_videos_and_exits(tmp_path, astronaut,
                                                                      analyzer):
    from distributed import LocalCluster

    _videos(tmp_path / "v", astronaut, ["zoe_2026-01-01.mp4", "zoe_2026-01-02.mp4"], frames=12)
    lone = LocalCluster(n_workers=1, threads_per_worker=1, processes=True,
                        dashboard_address=":0", silence_logs=logging.CRITICAL)

    def stop_the_cluster_once_busy() -> None:
        deadline = time.monotonic() + 60
        while not (tmp_path / "v" / "started").exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        lone.close()

    threading.Thread(target=stop_the_cluster_once_busy, daemon=True).start()
    with DaskAnalysis(lone.scheduler_address, task=stalling_analysis) as analyse:
        summary = _within(90, scan, [tmp_path / "v"], analyzer,
                          Store(f"sqlite:///{tmp_path}/s.db"), None, None, analyse)
    assert [o.status for o in summary.outcomes] == ["failed", "failed"]
    assert all("lost the connection to the Dask scheduler" in o.reason
               for o in summary.outcomes)
