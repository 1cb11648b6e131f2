"""Pooling session benchmark draws: counts, the targets, Wilson intervals, refusals."""

import json

import pytest

from benchmarks.session_pool import main, pool, wilson


def _row(true_level, level, true_share, estimate, borderline=False):
    return {"true_level": true_level, "level": level, "true_negative_share": true_share,
            "negative_share": true_share - 0.1, "negative_share_error": 0.1,
            "negative_share_est": estimate, "negative_share_est_error": abs(estimate - true_share),
            "truth_in_interval": abs(estimate - true_share) < 0.05, "borderline": borderline}


def _run(seed, rows, profile="clean"):
    return {"run": {"seed": seed, "minutes": 10, "profile": profile, "config": None},
            "sessions": rows}


def test_wilson_matches_known_values_and_stays_honest_at_the_edges():
    low, high = wilson(25, 28)
    assert (round(low, 3), round(high, 3)) == (0.728, 0.963)
    low, high = wilson(10, 10)
    assert high == pytest.approx(1.0) and 0.69 < low < 0.73  # ten of ten is not certainty
    assert wilson(0, 0) == (0.0, 1.0)


def test_pooled_counts_rates_bias_and_targets():
    first = _run(23, [_row("high", "high", 0.7, 0.66), _row("high", "moderate", 0.52, 0.46, True),
                      _row("low", "low", 0.1, 0.12)])
    second = _run(24, [_row("moderate", "high", 0.46, 0.52, True), _row("low", "high", 0.2, 0.55)])
    pooled = pool([first, second])
    assert pooled["seeds"] == [23, 24] and pooled["sessions"] == 5
    assert pooled["level_agreement"] == 2 and pooled["true_high"] == 2
    assert pooled["high_caught"] == 1 and pooled["high_caught_rate"] == 0.5
    assert (pooled["true_high_clear_of_line"], pooled["high_caught_clear_of_line"]) == (1, 1)
    assert pooled["false_high"] == 2 and pooled["low_called_high"] == 1
    assert pooled["negative_share_est_bias_high"] == pytest.approx(-0.05)
    assert pooled["wrong_levels"] == 3 and pooled["wrong_levels_borderline"] == 2
    assert pooled["negative_share_est_mae"] == pytest.approx(0.53 / 5)
    assert pooled["targets_met"] == {"level_agreement_90": False, "high_caught_90": False,
                                     "no_low_called_high": False, "estimate_error_0.08": False}


def test_a_run_without_a_recorded_seed_is_the_default_draw():
    old = _run(23, [_row("high", "high", 0.7, 0.7)])
    del old["run"]["seed"]
    assert pool([old, _run(24, [_row("low", "low", 0.1, 0.1)])])["seeds"] == [23, 24]


def test_the_same_draw_twice_or_different_settings_are_refused():
    with pytest.raises(ValueError, match="twice"):
        pool([_run(24, []), _run(24, [])])
    with pytest.raises(ValueError, match="different settings"):
        pool([_run(24, [_row("low", "low", 0.1, 0.1)], "clean"),
              _run(25, [_row("low", "low", 0.1, 0.1)], "pipeline")])


def test_command_line_writes_the_pooled_figures_and_refuses_unreadable_files(tmp_path, capsys):
    files = []
    for seed in (23, 24):
        path = tmp_path / f"seed{seed}.json"
        path.write_text(json.dumps(_run(seed, [_row("high", "high", 0.7, 0.68)])))
        files.append(str(path))
    out = tmp_path / "pooled.json"
    assert main([*files, "--out", str(out)]) == 0
    assert "High caught 2 of 2" in capsys.readouterr().out
    written = json.loads(out.read_text())
    assert written["files"] == files and written["targets_met"]["high_caught_90"]
    with pytest.raises(SystemExit) as stopped:
        main([str(tmp_path / "missing.json")])
    assert stopped.value.code == 2
    assert "cannot read" in capsys.readouterr().err
