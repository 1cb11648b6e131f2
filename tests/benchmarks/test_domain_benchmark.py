"""The domain benchmark's smoke mode reads every face source and scores the shipped model."""

import json


def test_the_smoke_run_scores_every_source_and_the_simulated_sessions(
        smoke_face_sources, tmp_path, monkeypatch):
    domain_benchmark = smoke_face_sources
    out = tmp_path / "domain.json"
    monkeypatch.setattr("sys.argv", ["domain_benchmark", "--smoke", "--sessions", "3",
                                     "--out", str(out)])
    domain_benchmark.main()
    [result] = json.loads(out.read_text())["results"]
    sources = result["sources"]
    assert {"fer_val", "fer_val_ferplus", "fer_blur", "fer_dark", "fer_jpeg", "fer_small",
            "wild_held_out", "wild_fit"} <= set(sources)
    for name in ("fer_val", "wild_held_out"):
        row = sources[name]
        assert row["faces"] > 0 and 0.0 <= row["accuracy"] <= 1.0 and row["ece"] >= 0.0
        assert sources[f"{name}_sessions"]["calm"]["sessions"] == 3
