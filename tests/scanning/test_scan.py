"""The scan orchestrator under faults and overlaps, on SQLite and PostgreSQL: a SIGKILL
mid-scan loses only the video in progress, and scans running at once store each video once."""

import json
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from screener.storage.database import normalize_url
from tests.conftest import face_frames, write_video

VIDEOS = 8


def plain_url(db_url: str) -> str:
    """What a user would type: no driver name."""
    return db_url.replace("postgresql+psycopg://", "postgresql://")


def reader(db_url: str, path: Path | None) -> sa.Engine:
    """An engine that only reads, and never creates the SQLite file before the scan does."""
    if path is not None:
        return sa.create_engine(f"sqlite:///file:{path}?mode=ro&uri=true",
                                connect_args={"timeout": 0.1})
    return sa.create_engine(normalize_url(db_url))


def _stored_sessions(engine: sa.Engine, path: Path | None) -> int:
    if path is not None and not path.exists():
        return 0
    try:
        with engine.connect() as conn:
            return conn.execute(sa.text("SELECT count(*) FROM sessions")).scalar_one()
    except sa.exc.DBAPIError:
        return 0


def screener(*args: object, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "screener", *map(str, args)],
                          capture_output=True, text=True, timeout=timeout)


@pytest.mark.slow
def test_a_killed_scan_leaves_whole_sessions_and_the_next_scan_finishes(tmp_path, astronaut,
                                                                         db_url):
    folder = tmp_path / "videos"
    folder.mkdir()
    for i in range(VIDEOS):
        write_video(folder / f"kim_2026-02-{i + 1:02d}.mp4",
                    face_frames(astronaut, 300, seed=i), fps=10)
    sqlite_path = tmp_path / "screener.db" if db_url.startswith("sqlite") else None
    engine = reader(db_url, sqlite_path)
    out = tmp_path / "reports"
    command = [sys.executable, "-m", "screener", "scan", str(folder), "--out", str(out),
               "--db", plain_url(db_url), "--quiet"]

    scan = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while (_stored_sessions(engine, sqlite_path) < 1 and scan.poll() is None
           and time.monotonic() < deadline):
        time.sleep(0.02)
    scan.send_signal(signal.SIGKILL)
    scan.wait()
    assert scan.returncode == -signal.SIGKILL, "the scan finished before it could be killed"

    with engine.connect() as conn:
        if sqlite_path is not None:
            assert conn.execute(sa.text("PRAGMA integrity_check")).scalar_one() == "ok"
        sessions = conn.execute(sa.text("SELECT id, frames_analysed FROM sessions")).all()
        for session_id, frames in sessions:
            rows = conn.execute(sa.text("SELECT count(*) FROM observations "
                                        "WHERE session_pk = :pk"), {"pk": session_id})
            assert rows.scalar_one() == frames  # a session is stored whole
    assert 1 <= len(sessions) < VIDEOS
    if out.exists():
        assert not list(out.glob(".report-*"))
        for page in out.glob("*.html"):
            assert page.read_text().rstrip().endswith("</html>")

    again = subprocess.run(command[:-1], capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    assert f"{VIDEOS - len(sessions)} analysed, {len(sessions)} unchanged, 0 failed" in again.stdout
    assert _stored_sessions(engine, sqlite_path) == VIDEOS
    for link in re.findall(r'href="([^"#]+\.html)"', (out / "index.html").read_text()):
        assert (out / link).is_file(), link  # every page the index links to was written
    engine.dispose()


@pytest.mark.slow
def test_a_scan_killed_before_its_reports_leaves_them_to_the_next_scan(tmp_path, astronaut):
    """The kill lands after the last session is stored, before any page is written: the next
    scan has nothing to analyse and must still write every page."""
    folder = tmp_path / "videos"
    folder.mkdir()
    for i, name in enumerate(["ana", "bo"]):
        write_video(folder / f"{name}_2026-02-01.mp4", face_frames(astronaut, 12, seed=i))
    db, out = f"sqlite:///{tmp_path}/s.db", tmp_path / "reports"
    code = (
        "import os, sys; import screener.reports.report as r\n"
        "r.render_reports = lambda *a, **k: os.kill(os.getpid(), 9)\n"
        "r.refresh_reports = r.render_reports\n"
        "from screener.cli import main; sys.argv = ['screener'] + sys.argv[1:]; main()\n"
    )
    kill = subprocess.run([sys.executable, "-c", code, "scan", str(folder), "--out", str(out),
                           "--db", db, "--quiet"], capture_output=True, text=True, timeout=300)
    assert kill.returncode == -signal.SIGKILL, kill.stderr
    assert not list(out.glob("*.html"))
    again = screener("scan", folder, "--out", out, "--db", db)
    assert again.returncode == 0, again.stderr
    assert "0 analysed, 2 unchanged, 0 failed" in again.stdout
    links = re.findall(r'href="([^"#]+\.html)"', (out / "index.html").read_text())
    assert len(links) == 2 and all((out / link).is_file() for link in links)


def _children(pid: int) -> set[int]:
    found = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.add(int(stat.parent.name))
    return found


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/stat").is_file(), reason="reads Linux's /proc")
def test_worker_processes_do_not_outlive_a_killed_scan(tmp_path, astronaut):
    folder = tmp_path / "videos"
    folder.mkdir()
    for i in range(4):
        write_video(folder / f"kim_2026-02-{i + 1:02d}.mp4",
                    face_frames(astronaut, 300, seed=i), fps=10)
    scan = subprocess.Popen(
        [sys.executable, "-m", "screener", "scan", str(folder), "--out", str(tmp_path / "out"),
         "--db", f"sqlite:///{tmp_path}/s.db", "--quiet", "--workers", "2"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while len(workers := _children(scan.pid)) < 3 and time.monotonic() < deadline:
        time.sleep(0.05)  # two workers and multiprocessing's resource tracker
    time.sleep(1.0)  # the workers are busy with their first videos
    scan.send_signal(signal.SIGKILL)
    scan.wait()
    assert scan.returncode == -signal.SIGKILL, "the scan finished before it could be killed"
    assert len(workers) >= 3
    deadline = time.monotonic() + 10
    while (alive := {p for p in workers if Path(f"/proc/{p}").exists()}) and (
            time.monotonic() < deadline):
        time.sleep(0.1)
    assert not alive, "worker processes outlived their scan"


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/stat").is_file(), reason="reads Linux's /proc")
def test_sigterm_stops_a_scan_as_ctrl_c_does_with_one_line_and_no_workers_left(tmp_path,
                                                                               astronaut):
    folder = tmp_path / "videos"
    folder.mkdir()
    for i in range(4):
        write_video(folder / f"kim_2026-02-{i + 1:02d}.mp4",
                    face_frames(astronaut, 300, seed=i), fps=10)
    scan = subprocess.Popen(
        [sys.executable, "-m", "screener", "scan", str(folder), "--out", str(tmp_path / "out"),
         "--db", f"sqlite:///{tmp_path}/s.db", "--quiet", "--workers", "2"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while len(workers := _children(scan.pid)) < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(1.0)  # the workers are busy with their first videos
    scan.send_signal(signal.SIGTERM)
    _, errors = scan.communicate(timeout=60)
    assert scan.returncode == 143, errors
    [line] = errors.splitlines()  # no traceback, no leaked-semaphore warning
    assert line.startswith("terminated: ") and "sessions stored" in line
    assert len(workers) >= 3
    deadline = time.monotonic() + 10
    while (alive := {p for p in workers if Path(f"/proc/{p}").exists()}) and (
            time.monotonic() < deadline):
        time.sleep(0.1)
    assert not alive, "worker processes outlived their scan"


@pytest.mark.slow
def test_scans_started_together_store_each_video_once(tmp_path, astronaut, db_url):
    """SQLite: the second scan waits for the first's lock. PostgreSQL: no lock, both may
    analyse a video, and the unique video hash keeps one session of it."""
    folder = tmp_path / "videos"
    folder.mkdir()
    for i, student in enumerate(["ida", "ida", "jon"]):
        write_video(folder / f"{student}_2026-01-{i + 1:02d}.mp4",
                    face_frames(astronaut, 40, seed=i), fps=10)
    url = plain_url(db_url)
    scans = [subprocess.Popen([sys.executable, "-m", "screener", "scan", folder, "--out",
                               tmp_path / f"reports{n}", "--db", url],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for n in range(2)]
    analysed = 0
    for scan in scans:
        stdout, stderr = scan.communicate(timeout=300)
        assert scan.returncode == 0, stderr
        assert "0 failed" in stdout
        analysed += int(stdout.split(" analysed")[0].split()[-1])
    if db_url.startswith("sqlite"):
        assert analysed == 3  # the second scan found everything done
    else:
        assert 3 <= analysed <= 6

    history = {student: json.loads(screener("history", student, "--db", url, "--format",
                                            "json").stdout)["sessions"]
               for student in ("ida", "jon")}
    assert [s["session_id"] for s in history["ida"]] == ["ida_2026-01-01", "ida_2026-01-02"]
    assert [s["recorded_at"] for s in history["jon"]] == ["2026-01-03"]
    report = screener("report", "--db", url, "--out", tmp_path / "again")
    assert report.returncode == 0, report.stderr
    pages = sorted(p.name.split("-")[0] for p in (tmp_path / "again").glob("*.html"))
    assert pages == ["ida", "index.html", "jon"]
    assert screener("history", "nobody", "--db", url).returncode == 2



class _PoolInThisProcess:
    """Stands in for the ProcessPoolExecutor: records how many workers the scan asked for and
    runs each job here, through the same worker initializer and entry point."""

    sizes: list[int] = []

    def __init__(self, max_workers, mp_context, initializer, initargs):  # noqa: ANN001
        self.sizes.append(max_workers)
        initializer(*initargs)

    def __enter__(self):  # noqa: ANN204
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def submit(self, fn, *args):  # noqa: ANN001, ANN201
        from concurrent.futures import Future

        future: Future = Future()
        future.set_result(fn(*args))
        return future


def test_by_default_a_folder_is_analysed_by_one_worker_per_core_a_lone_video_here(
        tmp_path, astronaut, monkeypatch):
    from screener.scanning.analysis import Analyzer
    from screener.scanning.scan import scan
    from screener.settings import Settings
    from screener.storage.store import Store

    monkeypatch.setattr("screener.settings.default_worker_count", lambda: 3)
    monkeypatch.setattr("screener.scanning.scan.ProcessPoolExecutor", _PoolInThisProcess)
    _PoolInThisProcess.sizes = []
    folder = tmp_path / "videos"
    folder.mkdir()
    for i in range(2):
        write_video(folder / f"kim_2026-02-{i + 1:02d}.mp4", face_frames(astronaut, 20, seed=i))
    analyzer = Analyzer.from_settings(Settings())

    def analysed(workers_asked: int | None = None) -> int:
        settings = Settings() if workers_asked is None else Settings(workers=workers_asked)
        store = Store(f"sqlite:///{tmp_path}/{len(_PoolInThisProcess.sizes)}-{workers_asked}.db")
        summary = scan([folder], Analyzer(settings, analyzer.detector, analyzer.model,
                                          analyzer.rules), store)
        return summary.count("analysed")

    assert analysed() == 2
    assert _PoolInThisProcess.sizes == [2]  # 3 cores, but only 2 videos
    assert analysed(1) == 2
    assert _PoolInThisProcess.sizes == [2]  # --workers 1: here, no pool
    (folder / "kim_2026-02-02.mp4").unlink()
    assert analysed() == 1
    assert _PoolInThisProcess.sizes == [2]  # a lone video: here, with its threads


def test_ctrl_c_just_after_a_session_is_stored_still_counts_it(tmp_path, monkeypatch):
    """Ctrl-C between the commit and the count (while baselines are refreshed): the session
    is in the database, so "N sessions stored" must include it."""
    import os
    from types import SimpleNamespace

    import screener.scanning.scan
    from screener.scanning.analysis import Analyzer
    from screener.scanning.scan import ScanInterrupted, scan
    from screener.settings import Settings
    from screener.storage.store import Store
    from tests.trends.test_baseline import RULES, result

    folder = tmp_path / "videos"
    folder.mkdir()
    for name in ("ana_2026-03-01.mp4", "ana_2026-03-02.mp4"):
        (folder / name).write_bytes(name.encode())
    store = Store(f"sqlite:///{tmp_path / 's.db'}")
    stored_then_interrupted = screener.scanning.scan.save_with_baseline

    def save(*args):
        saved = stored_then_interrupted(*args)
        os.kill(os.getpid(), signal.SIGINT)
        return saved

    def analyse(jobs, _analyzer):
        for job in sorted(jobs, key=lambda j: j.path.name):
            yield job, result(job.recorded_at.day, 0.2, sha=job.sha256), ""

    monkeypatch.setattr(screener.scanning.scan, "save_with_baseline", save)
    analyzer = Analyzer(Settings(), None, SimpleNamespace(name="m@1"), RULES)  # type: ignore[arg-type]
    inherited = signal.signal(signal.SIGINT, signal.default_int_handler)  # as in a terminal
    try:
        with pytest.raises(ScanInterrupted) as interrupted:
            scan([folder], analyzer, store, analyse=analyse)
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # put back
    finally:
        signal.signal(signal.SIGINT, inherited)
    assert interrupted.value.summary.count("analysed") == len(store.sessions_of("ana")) == 1


def test_a_video_whose_observations_cannot_be_stored_leaves_nothing_and_is_retried(tmp_path):
    """One transaction per video: the session row is written first, so a failure at the
    observations must take it (and a new student's row) back with it."""
    from dataclasses import replace
    from types import SimpleNamespace

    from screener.scanning.analysis import Analyzer
    from screener.scanning.scan import scan
    from screener.settings import Settings
    from screener.storage.store import Store
    from tests.storage.test_store import make_result
    from tests.trends.test_baseline import RULES

    folder = tmp_path / "videos"
    folder.mkdir()
    (folder / "kim_2026-03-01.mp4").write_bytes(b"a lesson")

    def analyse(jobs, _analyzer):
        for job in jobs:
            yield job, replace(make_result("kim", 1, job.sha256, ["sad", "happy", None]),
                               job=job), ""

    store = Store(f"sqlite:///{tmp_path}/screener.db")
    analyzer = Analyzer(Settings(), None, SimpleNamespace(name="m@1"), RULES)  # type: ignore[arg-type]
    with store.engine.begin() as conn:  # the disk fills up just there
        conn.exec_driver_sql("CREATE TRIGGER full BEFORE INSERT ON observations "
                             "BEGIN SELECT RAISE(ABORT, 'observations refused'); END")
    [failed] = scan([folder], analyzer, store, analyse=analyse).outcomes
    assert failed.status == "failed" and "observations refused" in failed.reason
    with store.engine.connect() as conn:
        for table in ("students", "sessions", "observations"):
            assert conn.exec_driver_sql(f"SELECT count(*) FROM {table}").scalar_one() == 0
    with store.engine.begin() as conn:
        conn.exec_driver_sql("DROP TRIGGER full")
    [retried] = scan([folder], analyzer, store, analyse=analyse).outcomes
    assert retried.status == "analysed"
    [session] = store.sessions_of("kim")
    assert len(store.observations_of(session.pk)) == 3


def test_with_a_retention_period_old_videos_are_not_stored_and_old_sessions_are_erased(
        tmp_path):
    """`[storage] retention_days`: a video recorded before the period is neither analysed nor
    stored (`expired`), and the sessions stored before it are erased at the end of the scan."""
    from dataclasses import replace
    from datetime import datetime, timedelta
    from types import SimpleNamespace

    from screener.scanning.analysis import Analyzer
    from screener.scanning.scan import scan
    from screener.settings import Settings, StorageSettings
    from screener.storage.store import Store
    from tests.storage.test_erase import stored
    from tests.trends.test_baseline import RULES, result

    folder = tmp_path / "videos"
    folder.mkdir()
    today = datetime.now().replace(microsecond=0)
    old, recent = f"ana_{today - timedelta(days=400):%Y-%m-%d}.mp4", f"ana_{today:%Y-%m-%d}.mp4"
    for name in (old, recent):
        (folder / name).write_bytes(name.encode())
    store = Store(f"sqlite:///{tmp_path / 's.db'}")
    stored(store, "ana", 1, "1" * 64, today - timedelta(days=500))  # stored before the period
    stored(store, "bo", 1, "2" * 64, today - timedelta(days=366))   # was set
    analysed: list[str] = []

    def analyse(jobs, _analyzer):
        for job in jobs:
            analysed.append(job.path.name)
            yield job, replace(result(1, 0.2, sha=job.sha256), job=job), ""

    settings = Settings(storage=StorageSettings(retention_days=365))
    analyzer = Analyzer(settings, None, SimpleNamespace(name="m@1"), RULES)  # type: ignore[arg-type]
    summary = scan([folder], analyzer, store, analyse=analyse)
    assert analysed == [recent]
    statuses = {o.job.path.name: o.status for o in summary.outcomes}
    assert statuses == {old: "expired", recent: "analysed"}
    [expired] = [o for o in summary.outcomes if o.status == "expired"]
    assert "retention period of 365 days" in expired.reason
    assert summary.erased is not None and summary.erased.sessions == 2
    assert summary.erased.gone == ["bo"]
    assert store.student_ids() == ["ana"]
    assert [s.video_path for s in store.sessions_of("ana")] == [str(folder / recent)]
