"""The store on both backends: SQLite, and PostgreSQL when the test run could start one."""

import multiprocessing
import random
import sqlite3
import stat
import sys
from dataclasses import replace
from datetime import datetime
from pathlib import Path

import pytest
import sqlalchemy as sa

from screener.domain import (
    Assessment,
    Box,
    EvidenceFrame,
    Observation,
    SessionResult,
    VideoInfo,
    VideoJob,
)
from screener.session.aggregate import session_metrics, with_smoothing
from screener.storage import schema
from screener.storage import store as store_module
from screener.storage.database import normalize_url
from screener.storage.schema import SCHEMA_VERSION, schema_version
from screener.storage.store import Store, StoreError


def make_result(student: str, day: int, sha: str, labels: list[str | None],
                level: str = "low", model: str = "m@1", rules: str = "default@1") -> SessionResult:
    observations = []
    for i, label in enumerate(labels):
        if label is None:
            observations.append(Observation(float(i), i * 10, None, None, None))
        else:
            probs = tuple(0.94 if e == label else 0.01 for e in
                          ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"))
            observations.append(Observation(float(i), i * 10, Box(1, 2, 30, 40), probs, label))
    observations = with_smoothing(observations, 3)
    metrics = session_metrics(observations, ("angry", "sad", "fear"), 2, 1.0, len(labels))
    job = VideoJob(Path(f"/videos/{student}_{day}.mp4"), student, f"{student}-{day}",
                   datetime(2026, 3, day), sha)
    info = VideoInfo(fps=25.0, frame_count=len(labels) * 25, duration_s=float(len(labels)),
                     width=640, height=480, scenes=1)
    assessment = Assessment(level, "rule-x", "because", {"negative_share": 0.5}, rules)
    return SessionResult(job, info, observations, metrics, assessment, model)


@pytest.fixture
def store(db_url: str) -> Store:
    return Store(db_url)


def execute(url: str, *statements: str) -> None:
    """Change a database behind the store's back, as an older screener or another program
    would have left it."""
    engine = sa.create_engine(normalize_url(url))
    with engine.begin() as conn:
        for statement in statements:
            conn.execute(sa.text(statement))
    engine.dispose()


def columns(url: str) -> set[str]:
    engine = sa.create_engine(normalize_url(url))
    try:
        return {column["name"] for column in sa.inspect(engine).get_columns("sessions")}
    finally:
        engine.dispose()


def stored_version(url: str) -> str:
    engine = sa.create_engine(normalize_url(url))
    with engine.connect() as conn:
        version = conn.execute(sa.text("SELECT value FROM screener_meta")).scalar_one()
    engine.dispose()
    return version


def test_a_session_round_trips_with_its_observations(store):
    result = make_result("ana", 3, "a" * 64, ["sad", "sad", None, "happy"], level="moderate")
    pk = store.save(result)
    [stored] = store.sessions_of("ana")
    assert stored.pk == pk
    assert stored.level == "moderate" and stored.fired_rule == "rule-x"
    assert stored.frames_analysed == 4 and stored.faces_found == 3
    assert stored.negative_share == pytest.approx(2 / 3)
    assert stored.evidence == {"negative_share": 0.5}
    assert stored.metrics["share_happy"] == pytest.approx(1 / 3)
    observations = store.observations_of(pk)
    assert [o.label for o in observations] == ["sad", "sad", None, "happy"]
    assert observations[0].box == Box(1, 2, 30, 40)
    assert observations[2].box is None and observations[2].probabilities is None
    assert observations[0].probabilities[4] == pytest.approx(0.94)


def test_sessions_come_back_oldest_first_per_student(store):
    for day, sha in ((20, "c"), (5, "a"), (12, "b")):
        store.save(make_result("ben", day, sha * 64, ["happy"]))
    store.save(make_result("cleo", 1, "d" * 64, ["happy"]))
    assert [s.recorded_at.day for s in store.sessions_of("ben")] == [5, 12, 20]
    assert store.student_ids() == ["ben", "cleo"]
    assert store.sessions_of("nobody") == []


def test_same_video_is_replaced_not_duplicated(store):
    store.save(make_result("ana", 3, "a" * 64, ["sad"], model="m@1"))
    assert store.stored_copy("a" * 64).versions == ("m@1", "default@1")
    store.save(make_result("ana", 3, "a" * 64, ["happy", "happy"], model="m@2"))
    [stored] = store.sessions_of("ana")
    assert stored.model_version == "m@2"
    assert len(store.observations_of(stored.pk)) == 2
    assert store.stored_copy("f" * 64) is None


def test_history_survives_reopening(tmp_path: Path):
    url = f"sqlite:///{tmp_path}/db/nested/screener.db"
    Store(url, make_folder=True).save(make_result("ana", 3, "a" * 64, ["sad"]))
    assert len(Store(url).sessions_of("ana")) == 1


def test_a_new_database_and_its_folder_are_private(tmp_path: Path):
    folder = tmp_path / "data" / "screener"
    Store(f"sqlite:///{folder}/screener.db", make_folder=True).save(
        make_result("ana", 3, "a" * 64, ["sad"]))
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    for name in ("screener.db", "screener.db-wal", "screener.db-shm"):
        if (folder / name).exists():
            assert stat.S_IMODE((folder / name).stat().st_mode) == 0o600, name


def test_a_database_is_never_created_where_not_asked(tmp_path: Path):
    with pytest.raises(StoreError, match="no database at"):
        Store(f"sqlite:///{tmp_path}/typo.db", create=False)
    with pytest.raises(StoreError, match="no folder"):
        Store(f"sqlite:///{tmp_path}/missing/screener.db")
    assert list(tmp_path.iterdir()) == []


def test_history_survives_reopening_and_keeps_exact_values(db_url: str):
    result = make_result("ana", 3, "a" * 64, ["sad", "happy", "sad"])
    result.job = replace(result.job, recorded_at=datetime(2026, 3, 3, 14, 30, 15, 250))
    result.model_accuracy = 0.1 + 0.2  # not exactly representable: any rounding would show
    Store(db_url).save(result)
    [again] = Store(db_url).sessions_of("ana")
    assert again.recorded_at == datetime(2026, 3, 3, 14, 30, 15, 250)
    assert again.recorded_at.tzinfo is None and again.processed_at.tzinfo is None
    assert again.model_accuracy == 0.1 + 0.2
    assert again.negative_share == 2 / 3
    assert again.duration_s == 3.0 and isinstance(again.frames_analysed, int)


def test_plain_postgresql_urls_get_the_installed_driver():
    assert normalize_url("postgresql://u:pw@db:5433/screener") == \
        "postgresql+psycopg://u:pw@db:5433/screener"
    assert normalize_url("postgres://u@db/screener") == "postgresql+psycopg://u@db/screener"
    assert normalize_url("postgresql+psycopg2://u@db/x") == "postgresql+psycopg2://u@db/x"
    assert normalize_url("sqlite:////srv/a.db") == "sqlite:////srv/a.db"


def test_an_unparseable_url_is_a_clear_error_that_hides_the_password():
    with pytest.raises(StoreError, match="cannot open database") as error:
        Store("postgresql://kim:s3cret@db:notaport/screener")
    assert "s3cret" not in str(error.value) and "***@db" in str(error.value)


def test_student_ids_are_in_code_point_order_on_every_backend(store):
    for i, student in enumerate(["émile", "bo", "Zoe", "ana", "Ana"]):
        store.save(make_result(student, i + 1, f"{i:064x}", ["happy"]))
    assert store.student_ids() == ["Ana", "Zoe", "ana", "bo", "émile"]


def test_a_newer_schema_is_refused(db_url: str):
    Store(db_url)
    execute(db_url, f"UPDATE screener_meta SET value = '{SCHEMA_VERSION + 1}' "
                    "WHERE key = 'schema_version'")
    with pytest.raises(StoreError, match="newer"):
        Store(db_url)


def downgrade_to_v1(url: str) -> None:
    """Turn a current database into what schema 1 wrote: no sessions.model_accuracy, no
    evidence_frames."""
    execute(url, "DROP TABLE evidence_frames", "ALTER TABLE sessions DROP COLUMN model_accuracy",
            "UPDATE screener_meta SET value = '1' WHERE key = 'schema_version'")


def tables(url: str) -> set[str]:
    engine = sa.create_engine(normalize_url(url))
    try:
        return set(sa.inspect(engine).get_table_names())
    finally:
        engine.dispose()


def test_a_version_1_database_migrates_forward_and_keeps_its_sessions(db_url: str):
    Store(db_url).save(make_result("ana", 3, "a" * 64, ["sad", "happy"]))
    downgrade_to_v1(db_url)
    assert "model_accuracy" not in columns(db_url)

    store = Store(db_url)
    assert "model_accuracy" in columns(db_url)
    with store.engine.connect() as conn:
        assert schema_version(conn) == SCHEMA_VERSION == 3
    assert "evidence_frames" in tables(db_url)
    [old] = store.sessions_of("ana")
    assert old.model_accuracy is None and old.level == "low"
    assert len(store.observations_of(old.pk)) == 2
    new = make_result("ana", 4, "b" * 64, ["sad"])
    new.model_accuracy = 0.61
    store.save(new)
    assert [s.model_accuracy for s in store.sessions_of("ana")] == [None, 0.61]


def test_a_failed_migration_leaves_the_database_at_its_old_version(db_url: str, monkeypatch):
    Store(db_url).save(make_result("ana", 3, "a" * 64, ["sad"]))
    downgrade_to_v1(db_url)

    def half_done(conn):
        schema._add_model_accuracy(conn)
        assert "model_accuracy" in {c["name"] for c in sa.inspect(conn).get_columns("sessions")}
        raise RuntimeError("power cut")

    monkeypatch.setitem(schema.MIGRATIONS, 1, half_done)
    with pytest.raises(StoreError, match="power cut"):
        Store(db_url)
    assert "model_accuracy" not in columns(db_url)
    assert stored_version(db_url) == "1"
    monkeypatch.undo()
    assert Store(db_url).sessions_of("ana")[0].session_id == "ana-3"


def test_a_replaced_sessions_face_thumbnails_leave_no_trace_in_the_file(tmp_path: Path,
                                                                       monkeypatch):
    # SQLite's own default, which Python's builds for Windows and macOS keep (Debian's turns
    # secure delete on): freed pages keep what was deleted.
    connect = sqlite3.dbapi2.connect

    def connect_like_upstream(*args, **kwargs):
        conn = connect(*args, **kwargs)
        conn.execute("PRAGMA secure_delete=OFF")
        return conn

    monkeypatch.setattr(sqlite3.dbapi2, "connect", connect_like_upstream)
    path = tmp_path / "screener.db"
    store = Store(f"sqlite:///{path}")
    face = b"\xff\xd8 a face of a child " + bytes(range(256)) * 4
    first = make_result("ana", 1, "a" * 64, ["sad", "happy"])
    store.save(replace(first, evidence_frames=[EvidenceFrame(0.0, 0, "sad", 0.9, "stretch",
                                                             face)]))
    store.save(first)  # scan --force, now without --evidence: the thumbnail is erased
    store.engine.dispose()  # the last connection checkpoints the write-ahead log
    assert store.evidence_frames_of(store.sessions_of("ana")[0].pk) == []
    store.engine.dispose()
    kept = b"".join(p.read_bytes() for p in tmp_path.glob("screener.db*"))
    assert face[:40] not in kept


def test_a_foreign_database_is_a_clear_error(db_url: str):
    execute(db_url, "CREATE TABLE invoices (id INTEGER)")
    with pytest.raises(StoreError, match="not a screener database"):
        Store(db_url)


def test_an_unreachable_server_is_a_clear_error_without_the_password():
    with pytest.raises(StoreError, match="cannot open database") as caught:
        Store("postgresql://screener:s3cret@127.0.0.1:1/screener?connect_timeout=2")
    assert "s3cret" not in str(caught.value) and "***" in str(caught.value)


def test_a_missing_driver_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "psycopg", None)
    with pytest.raises(StoreError, match=r"pip install 'screener\[postgres\]'"):
        Store("postgresql://u@127.0.0.1/screener")


def test_a_corrupt_sqlite_file_is_a_clear_error(tmp_path: Path):
    corrupt = tmp_path / "corrupt.db"
    corrupt.write_bytes(b"garbage" * 1000)
    with pytest.raises(StoreError, match="cannot open"):
        Store(f"sqlite:///{corrupt}")


def test_a_video_renamed_to_another_student_moves_and_leaves_no_empty_student(store):
    store.save(make_result("ana", 3, "a" * 64, ["sad"]))
    store.save(make_result("bo", 3, "a" * 64, ["sad"]))
    assert store.student_ids() == ["bo"]
    assert len(store.sessions_of("bo")) == 1


def test_renaming_one_of_a_students_videos_keeps_the_student(store):
    store.save(make_result("ana", 3, "a" * 64, ["sad"]))
    store.save(make_result("ana", 4, "b" * 64, ["happy"]))
    store.save(make_result("bo", 3, "a" * 64, ["sad"]))
    assert store.student_ids() == ["ana", "bo"]
    assert [s.video_sha256 for s in store.sessions_of("ana")] == ["b" * 64]


def test_every_field_of_a_session_and_its_observations_reads_back(store):
    result = make_result("ana", 3, "a" * 64, ["sad", "happy", None, "sad", "sad"])
    store.save(result)
    [stored] = store.sessions_of("ana")
    job = result.job
    assert (stored.student_id, stored.session_id, stored.video_path, stored.video_sha256,
            stored.recorded_at, stored.explanation, stored.model_version,
            stored.rules_version) == (job.student_id, job.session_id, str(job.path), job.sha256,
                                      job.recorded_at, "because", "m@1", "default@1")
    assert store.observations_of(stored.pk) == result.observations


VIDEOS, CLIENTS = 6, 4


def save_all(url: str, worker: int, barrier) -> None:  # noqa: ANN001
    """One of several clients: open the (maybe not yet created) database at the same moment
    as the others, then save the same videos in its own order, twice."""
    barrier.wait(timeout=120)
    store = Store(url)
    videos = list(range(VIDEOS)) * 2
    random.Random(worker).shuffle(videos)
    for k in videos:
        store.save(make_result(f"s{k // 2}", k + 1, f"{k:064x}", ["sad", None, "happy"] * 5,
                               model=f"m@{worker}"))


def test_clients_saving_at_once_store_each_video_and_student_once(db_url: str):
    spawn = multiprocessing.get_context("spawn")
    barrier = spawn.Barrier(CLIENTS)
    clients = [spawn.Process(target=save_all, args=(db_url, worker, barrier))
               for worker in range(CLIENTS)]
    for client in clients:
        client.start()
    for client in clients:
        client.join(timeout=300)
    assert [client.exitcode for client in clients] == [0] * CLIENTS

    store = Store(db_url)
    assert store.student_ids() == [f"s{i}" for i in range(VIDEOS // 2)]
    hashes = []
    for student in store.student_ids():
        sessions = store.sessions_of(student)
        assert [s.session_id for s in sessions] == [f"{student}-{k + 1}" for k in range(VIDEOS)
                                                    if k // 2 == int(student[1:])]
        for session in sessions:
            assert len(store.observations_of(session.pk)) == session.frames_analysed == 15
            hashes.append(session.video_sha256)
    assert sorted(hashes) == [f"{k:064x}" for k in range(VIDEOS)]
    with store.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(
            schema.observations)).scalar() == VIDEOS * 15


def test_a_relocated_session_follows_its_file_and_leaves_no_empty_student(store):
    result = make_result("ana", 3, "a" * 64, ["sad"])
    store.save(result)
    store.save(make_result("bo", 4, "b" * 64, ["happy"]))
    before = store.report_states()
    assert store.stored_copy("a" * 64) == store_module.StoredCopy(
        "/videos/ana_3.mp4", "ana", ("m@1", "default@1"))
    store.relocate(replace(result.job, path=Path("/moved/bo/x.mp4"), student_id="bo",
                           session_id="x", recorded_at=datetime(2026, 3, 9)))
    assert store.student_ids() == ["bo"]
    [moved, _] = sorted(store.sessions_of("bo"), key=lambda s: s.session_id, reverse=True)
    assert (moved.session_id, moved.video_path, moved.recorded_at) == (
        "x", "/moved/bo/x.mp4", datetime(2026, 3, 9))
    after = store.report_states()
    assert set(after) == {"bo"} and after["bo"] != before["bo"]


def test_report_states_change_only_with_the_students_sessions(store):
    store.save(make_result("ana", 3, "a" * 64, ["sad"]))
    store.save(make_result("bo", 4, "b" * 64, ["happy"]))
    before = store.report_states()
    assert store.report_states() == before
    store.save(make_result("bo", 5, "c" * 64, ["sad"]))
    after = store.report_states()
    assert after["ana"] == before["ana"] and after["bo"] != before["bo"]


def test_stored_paths_are_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    store = Store(f"sqlite:///{tmp_path}/s.db")
    result = make_result("ana", 3, "a" * 64, ["sad"])
    store.save(replace(result, job=replace(result.job, path=Path("v/ana.mp4"))))
    assert store.sessions_of("ana")[0].video_path == str(tmp_path / "v" / "ana.mp4")


def test_a_reading_command_never_creates_tables(db_url):
    with pytest.raises(StoreError, match="no (screener )?database"):
        Store(db_url, create=False)
    assert Store(db_url).student_ids() == []  # a scan may create it afterwards


def test_a_read_only_reader_takes_only_the_current_schema_and_changes_nothing(tmp_path):
    """`history` and `report` open SQLite read-only: they cannot migrate, so an older
    database is refused with what to do, and a newer or foreign one as a writer refuses it."""
    url = f"sqlite:///{tmp_path}/screener.db"
    Store(url).save(make_result("ana", 3, "a" * 64, ["sad"]))
    downgrade_to_v1(url)
    with pytest.raises(StoreError, match=r"has schema version 1, older than this screener "
                                         r"reads \(3\); a scan brings it forward"):
        Store(url, create=False, read_only=True)
    assert stored_version(url) == "1"
    Store(url)  # a scan brings it forward
    assert Store(url, create=False, read_only=True).student_ids() == ["ana"]
    execute(url, "UPDATE screener_meta SET value = '4' WHERE key = 'schema_version'")
    with pytest.raises(StoreError, match="schema version 4, newer than this screener"):
        Store(url, create=False, read_only=True)
    other = tmp_path / "other.db"
    execute(f"sqlite:///{other}", "CREATE TABLE notes (x INTEGER)")
    with pytest.raises(StoreError, match="is not a screener database"):
        Store(f"sqlite:///{other}", create=False, read_only=True)


def evidence(t_s: float, reason: str = "most negative face") -> EvidenceFrame:
    jpeg = b"\xff\xd8jpeg" + bytes([int(t_s)])
    return EvidenceFrame(t_s, int(t_s * 10), "sad", 0.9, reason, jpeg)


def test_evidence_frames_are_stored_read_back_in_time_order_and_replaced(store):
    result = make_result("ana", 3, "a" * 64, ["sad"] * 4)
    result.evidence_frames = [evidence(3.0), evidence(1.0, "longest negative stretch")]
    pk = store.save(result)
    assert store.evidence_frames_of(pk) == [evidence(1.0, "longest negative stretch"),
                                            evidence(3.0)]
    again = make_result("ana", 3, "a" * 64, ["sad"] * 4)  # re-analysed without --evidence
    new_pk = store.save(again)
    assert store.evidence_frames_of(new_pk) == [] and store.evidence_frames_of(pk) == []


def test_a_version_2_database_gains_the_evidence_table(db_url: str):
    Store(db_url).save(make_result("ana", 3, "a" * 64, ["sad"]))
    execute(db_url, "DROP TABLE evidence_frames",
            "UPDATE screener_meta SET value = '2' WHERE key = 'schema_version'")
    store = Store(db_url)
    assert "evidence_frames" in tables(db_url) and stored_version(db_url) == str(SCHEMA_VERSION)
    [old] = store.sessions_of("ana")
    assert store.evidence_frames_of(old.pk) == []
    new = make_result("ana", 4, "b" * 64, ["sad"])
    new.evidence_frames = [evidence(0.0)]
    assert store.evidence_frames_of(store.save(new)) == [evidence(0.0)]
