import sqlite3
from datetime import datetime
from pathlib import Path

import pytest

from screener import store as store_module
from screener.aggregate import session_metrics, with_smoothing
from screener.domain import Assessment, Box, Observation, SessionResult, VideoInfo, VideoJob
from screener.store import SCHEMA_VERSION, Store, StoreError


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
def store(tmp_path: Path) -> Store:
    return Store(f"sqlite:///{tmp_path}/screener.db")


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
    assert store.known_versions("a" * 64) == ("m@1", "default@1")
    store.save(make_result("ana", 3, "a" * 64, ["happy", "happy"], model="m@2"))
    [stored] = store.sessions_of("ana")
    assert stored.model_version == "m@2"
    assert len(store.observations_of(stored.pk)) == 2
    assert store.known_versions("f" * 64) is None


def test_history_survives_reopening(tmp_path: Path):
    url = f"sqlite:///{tmp_path}/db/nested/screener.db"
    Store(url).save(make_result("ana", 3, "a" * 64, ["sad"]))
    assert len(Store(url).sessions_of("ana")) == 1


def test_a_newer_schema_is_refused(tmp_path: Path):
    path = tmp_path / "screener.db"
    Store(f"sqlite:///{path}")
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE screener_meta SET value = ? WHERE key = 'schema_version'",
                     (str(SCHEMA_VERSION + 1),))
    with pytest.raises(StoreError, match="newer"):
        Store(f"sqlite:///{path}")


def downgrade_to_v1(path: Path) -> None:
    """Turn a current database into what schema 1 wrote: no sessions.model_accuracy."""
    with sqlite3.connect(path) as conn:
        conn.execute("ALTER TABLE sessions DROP COLUMN model_accuracy")
        conn.execute("UPDATE screener_meta SET value = '1' WHERE key = 'schema_version'")


def columns(path: Path) -> set[str]:
    with sqlite3.connect(path) as conn:
        return {row[1] for row in conn.execute("PRAGMA table_info(sessions)")}


def test_a_version_1_database_migrates_forward_and_keeps_its_sessions(tmp_path: Path):
    path = tmp_path / "screener.db"
    Store(f"sqlite:///{path}").save(make_result("ana", 3, "a" * 64, ["sad", "happy"]))
    downgrade_to_v1(path)
    assert "model_accuracy" not in columns(path)

    store = Store(f"sqlite:///{path}")
    assert "model_accuracy" in columns(path)
    with store.engine.connect() as conn:
        assert Store.schema_version(conn) == SCHEMA_VERSION == 2
    [old] = store.sessions_of("ana")
    assert old.model_accuracy is None and old.level == "low"
    assert len(store.observations_of(old.pk)) == 2
    new = make_result("ana", 4, "b" * 64, ["sad"])
    new.model_accuracy = 0.61
    store.save(new)
    assert [s.model_accuracy for s in store.sessions_of("ana")] == [None, 0.61]


def test_a_failed_migration_leaves_the_database_at_its_old_version(tmp_path: Path, monkeypatch):
    path = tmp_path / "screener.db"
    Store(f"sqlite:///{path}").save(make_result("ana", 3, "a" * 64, ["sad"]))
    downgrade_to_v1(path)

    def half_done(conn):
        store_module._add_model_accuracy(conn)
        raise RuntimeError("power cut")

    monkeypatch.setitem(store_module.MIGRATIONS, 1, half_done)
    with pytest.raises(StoreError, match="power cut"):
        Store(f"sqlite:///{path}")
    assert "model_accuracy" not in columns(path)
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT value FROM screener_meta").fetchone() == ("1",)
    monkeypatch.undo()
    assert Store(f"sqlite:///{path}").sessions_of("ana")[0].session_id == "ana-3"


def test_foreign_or_corrupt_databases_are_clear_errors(tmp_path: Path):
    other = tmp_path / "other.db"
    with sqlite3.connect(other) as conn:
        conn.execute("CREATE TABLE invoices (id INTEGER)")
    with pytest.raises(StoreError, match="not a screener database"):
        Store(f"sqlite:///{other}")
    corrupt = tmp_path / "corrupt.db"
    corrupt.write_bytes(b"garbage" * 1000)
    with pytest.raises(StoreError, match="cannot open"):
        Store(f"sqlite:///{corrupt}")


def test_a_video_renamed_to_another_student_moves_and_leaves_no_empty_student(store):
    store.save(make_result("ana", 3, "a" * 64, ["sad"]))
    store.save(make_result("bo", 3, "a" * 64, ["sad"]))
    assert store.student_ids() == ["bo"]
    assert len(store.sessions_of("bo")) == 1
