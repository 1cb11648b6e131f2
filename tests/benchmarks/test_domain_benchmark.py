"""The domain benchmark's smoke mode reads every face source and scores the shipped model."""

import json

from tests.conftest import SHARED, missing


def test_the_smoke_run_scores_every_source_and_the_simulated_sessions(tmp_path, monkeypatch):
    if not (SHARED / "datasets" / "wild" / "labels.csv").is_file():
        missing("shared", "../shared/datasets is absent: domain benchmark skipped")
    from benchmarks import domain_benchmark

    monkeypatch.setattr(domain_benchmark, "CACHE", tmp_path / "cache")
    monkeypatch.setattr(domain_benchmark, "SMOKE_FACES", 12)
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
