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


def test_a_larger_negative_bias_reads_more_faces_negative_and_zero_changes_nothing():
    import numpy as np

    from benchmarks.domain_benchmark import bias_curve, screener_shares

    rng = np.random.default_rng(3)
    probabilities = rng.dirichlet(np.ones(7), size=300)
    labels = rng.integers(0, 7, size=300)
    curve = bias_curve(probabilities, labels, [0.0, 0.5, 1.0, 3.0])
    assert curve["0"] == screener_shares(probabilities, labels)
    for share in ("negative_read_negative", "neutral_read_negative", "other_read_negative"):
        values = [curve[b][share] for b in ("0", "0.5", "1", "3")]
        assert values == sorted(values) and values[-1] > values[0]
