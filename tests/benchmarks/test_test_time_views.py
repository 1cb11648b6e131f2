"""The test-time views benchmark reads the domain benchmark's face sources with every view a
model card can ask for."""

import json


def test_every_view_is_scored_on_the_web_and_fer2013_sources(
        smoke_face_sources, tmp_path, monkeypatch):
    from benchmarks import test_time_views

    out = tmp_path / "views.json"
    monkeypatch.setattr("sys.argv", ["test_time_views", "--sources", "--smoke",
                                     "--out", str(out)])
    test_time_views.main()
    result = json.loads(out.read_text())
    assert set(result["views"]) == set(test_time_views.SOURCE_VIEWS)
    for rows in result["views"].values():
        assert set(rows) == set(test_time_views.SOURCES)
        assert all(0.0 <= row["accuracy"] <= 1.0 for row in rows.values())
    shipped, mirrored = (result["views"][v] for v in list(test_time_views.SOURCE_VIEWS)[::2])
    assert shipped != mirrored  # the views reach the members
