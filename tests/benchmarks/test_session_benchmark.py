"""The session benchmark's smoke mode runs the real pipeline end to end and scores it."""

import json

import numpy as np
import pytest

from tests.conftest import SHARED


def _benchmark():
    from benchmarks import session_benchmark

    return session_benchmark


@pytest.fixture(scope="module")
def fer_val():
    folder = SHARED / "datasets" / "fer2013" / "val"
    if not folder.is_dir():
        pytest.skip("../shared/datasets/fer2013 is absent: session benchmark skipped")
    return folder


@pytest.mark.slow
def test_smoke_sessions_are_built_cached_and_scored(tmp_path, fer_val, capsys):
    bench = _benchmark()
    sessions = bench.build_sessions(smoke=True, cache=tmp_path, fer_val=fer_val)
    assert len(sessions) == 1
    session = sessions[0]
    assert session.path.is_file() and session.path.parent == tmp_path
    labels = [s.label for s in session.segments]
    assert None in labels and any(labels)
    again = bench.build_sessions(smoke=True, cache=tmp_path, fer_val=fer_val)
    assert again[0].path == session.path  # cached, not rebuilt
    assert again[0].path.stat().st_mtime == session.path.stat().st_mtime

    out = tmp_path / "smoke.json"
    assert bench.main(["--smoke", "--cache", str(tmp_path), "--out", str(out)]) == 0
    totals = json.loads(out.read_text())["totals"]
    assert totals["sessions"] == 1
    assert totals["face_segments"] == sum(label is not None for label in labels)
    assert 0.0 <= totals["segment_face_recall"] <= 1.0
    assert totals["interval_coverage"] in (0.0, 1.0)  # one session: inside its interval or not
    assert 0.0 <= totals["interval_width"] <= 1.0
    assert 0 <= totals["wrong_levels_borderline"] <= totals["borderline"] <= 1
    assert "face recall" in capsys.readouterr().out


@pytest.mark.slow
def test_another_seed_draws_other_sessions_and_is_recorded(tmp_path, fer_val):
    bench = _benchmark()
    default = bench.build_sessions(smoke=True, cache=tmp_path, fer_val=fer_val)[0]
    other = bench.build_sessions(smoke=True, cache=tmp_path, fer_val=fer_val, seed=24)[0]
    assert [g.image for g in other.segments] != [g.image for g in default.segments]
    assert other.path != default.path
    out = tmp_path / "seed.json"
    assert bench.main(["--smoke", "--seed", "24", "--cache", str(tmp_path), "--out",
                       str(out)]) == 0
    document = json.loads(out.read_text())
    assert document["run"]["seed"] == 24
    assert [r["session"] for r in document["sessions"]] == [other.name]
    assert document["totals"]["face_segments"] == sum(g.label is not None
                                                      for g in other.segments)


def test_truth_level_follows_the_default_rules():
    bench = _benchmark()
    rules = bench.load_rules("default")
    sad = [bench.Segment(i * 4, i * 4 + 4, "sad") for i in range(5)]
    happy = [bench.Segment(i * 4, i * 4 + 4, "happy") for i in range(5)]
    assert bench.truth_level(sad, rules)[1] == "high"
    assert bench.truth_level(happy, rules)[1] == "low"
    metrics, level = bench.truth_level(happy[:2], rules)
    assert level == "insufficient" and metrics["face_frames"] == 8


@pytest.fixture(scope="module")
def small_val(tmp_path_factory, fer_val):
    """Six faces of each emotion: enough for a smoke session and a profile beside it."""
    import shutil

    folder = tmp_path_factory.mktemp("val")
    for emotion in sorted(p.name for p in fer_val.iterdir() if p.is_dir()):
        (folder / emotion).mkdir()
        for path in sorted((fer_val / emotion).glob("*.jpg"))[:6]:
            shutil.copy(path, folder / emotion / path.name)
    return folder


@pytest.mark.slow
def test_the_held_out_profile_never_measures_a_session_image(tmp_path, small_val):
    from screener.scanning.analysis import Analyzer
    from screener.settings import Settings

    bench = _benchmark()
    sessions = bench.build_sessions(smoke=True, cache=tmp_path / "sessions", fer_val=small_val)
    shown = {g.image for g in sessions[0].segments if g.image}
    analyzer = Analyzer.from_settings(Settings())
    clean = bench.held_out_profile(sessions, analyzer, "clean", tmp_path / "stills", small_val)
    assert clean.confusion.sum() == 7 * 6 - len(shown)
    assert "held-out" in clean.source

    pipeline = bench.held_out_profile(sessions, analyzer, "pipeline", tmp_path / "stills",
                                      small_val)
    [cached] = (tmp_path / "stills").glob("stills-*.npz")
    names = set(np.load(cached)["names"])
    assert names.isdisjoint(shown) and len(names) == 7 * 6 - len(shown)
    found = int(np.load(cached)["found"].sum())
    assert pipeline.confusion.sum() == found >= 0.7 * len(names)  # faces the detector found
    written = cached.stat().st_mtime_ns
    again = bench.held_out_profile(sessions, analyzer, "pipeline", tmp_path / "stills",
                                   small_val)
    assert np.array_equal(again.confusion, pipeline.confusion)
    assert cached.stat().st_mtime_ns == written  # read back, not measured again
