"""The session benchmark's targets over several draws pooled, with how far each could be off.

    cd benchmarks/results
    python ../session_pool.py session_benchmark_10min_clean_vgg64_cycle3{,_seed2{4,5,6,7}}.json \
        --out session_pool_10min_clean_vgg64_cycle3.json

Twelve sessions cannot tell 10 of 12 from 11 of 12; the targets of issue 21 (level agreement and
High caught at least 90%, no truly Low session called High, estimate error at most 0.08) are
judged on draws pooled, each rate with its 95% Wilson interval so that a reader sees how few
sessions stand behind it. The draws must be distinct seeds of the same benchmark settings.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.session_benchmark import DEFAULT_SEED  # noqa: E402
from screener.session.rules import ESTIMATE, load_rules  # noqa: E402


def _high_line() -> float:
    """The default rules' lowest estimate that can give High: the line the misses sit on."""
    return min(c.value for r in load_rules("default").rules if r.level == "high"
               for c in r.conditions if c.metric == ESTIMATE and c.op in (">=", ">"))


HIGH_LINE = _high_line()
NEAR = 0.05  # a High session this close to the line goes either way on a few faces


def wilson(successes: int, trials: int, z: float = 1.959964) -> tuple[float, float]:
    """The 95% Wilson score interval: honest at the edges (10 of 10 is not 100% sure), where
    the normal approximation claims too much."""
    if trials == 0:
        return (0.0, 1.0)
    p = successes / trials
    centre = (p + z * z / (2 * trials)) / (1 + z * z / trials)
    spread = math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials))
    half = z * spread / (1 + z * z / trials)
    return (max(0.0, centre - half), min(1.0, centre + half))


def pool(runs: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Pooled targets of several session benchmark runs (their `sessions` rows)."""
    seeds = [run["run"].get("seed", DEFAULT_SEED) for run in runs]
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"a seed is pooled twice: {sorted(seeds)}")
    settings = {json.dumps({k: run["run"].get(k) for k in ("minutes", "profile", "config")})
                for run in runs}
    if len(settings) > 1:
        raise ValueError(f"runs of different settings cannot be pooled: {sorted(settings)}")
    rows = [row for run in runs for row in run["sessions"]]
    high = [r for r in rows if r["true_level"] == "high"]
    agree = sum(r["level"] == r["true_level"] for r in rows)
    caught = sum(r["level"] == "high" for r in high)
    estimated = [r for r in rows if "negative_share_est_error" in r]
    covered = [r["truth_in_interval"] for r in rows if "truth_in_interval" in r]
    signed = [r["negative_share_est"] - r["true_negative_share"] for r in estimated]
    high_signed = [r["negative_share_est"] - r["true_negative_share"] for r in estimated
                   if r["true_level"] == "high"]
    wrong = [r for r in rows if r["level"] != r["true_level"]]
    clear = [r for r in high if r["true_negative_share"] >= HIGH_LINE + NEAR]
    low_called_high = sum(r["true_level"] == "low" and r["level"] == "high" for r in rows)
    est_mae = _mean([r["negative_share_est_error"] for r in estimated])
    return {
        "seeds": seeds,
        "sessions": len(rows),
        "level_agreement": agree,
        "level_agreement_rate": agree / len(rows),
        "level_agreement_wilson95": wilson(agree, len(rows)),
        "true_high": len(high),
        "high_caught": caught,
        "high_caught_rate": caught / len(high) if high else None,
        "high_caught_wilson95": wilson(caught, len(high)),
        "true_high_clear_of_line": len(clear),
        "high_caught_clear_of_line": sum(r["level"] == "high" for r in clear),
        "low_called_high": low_called_high,
        "false_high": sum(r["true_level"] != "high" and r["level"] == "high" for r in rows),
        "negative_share_mae": _mean([r["negative_share_error"] for r in rows]),
        "negative_share_est_mae": est_mae,
        "negative_share_est_bias": _mean(signed),
        "negative_share_est_bias_high": _mean(high_signed),
        "interval_coverage": sum(covered) / len(covered) if covered else None,
        "wrong_levels": len(wrong),
        "wrong_levels_borderline": sum(r["borderline"] for r in wrong),
        "targets_met": {
            "level_agreement_90": agree / len(rows) >= 0.9,
            "high_caught_90": bool(high) and caught / len(high) >= 0.9,
            "no_low_called_high": low_called_high == 0,
            "estimate_error_0.08": est_mae is not None and est_mae <= 0.08,
        },
    }


def _mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None


def summary(pooled: dict[str, Any]) -> str:
    p = pooled
    lo, hi = p["level_agreement_wilson95"]
    hlo, hhi = p["high_caught_wilson95"]
    met = ", ".join(f"{k} {'met' if v else 'NOT met'}" for k, v in p["targets_met"].items())
    est = p["negative_share_est_mae"]
    return "\n".join([
        f"seeds {', '.join(map(str, p['seeds']))}: {p['sessions']} sessions",
        f"level agreement {p['level_agreement']} of {p['sessions']} "
        f"({p['level_agreement_rate']:.0%}; 95% Wilson {lo:.0%}-{hi:.0%})",
        f"High caught {p['high_caught']} of {p['true_high']} "
        + (f"({p['high_caught_rate']:.0%}; 95% Wilson {hlo:.0%}-{hhi:.0%})"
           if p["true_high"] else ""),
        f"  of them {p['true_high_clear_of_line']} at least {NEAR} over the line: caught "
        f"{p['high_caught_clear_of_line']}",
        f"truly Low called High {p['low_called_high']}; any other called High "
        f"{p['false_high'] - p['low_called_high']}",
        f"share error raw {p['negative_share_mae']:.3f} -> estimate "
        + (f"{est:.3f} (bias {p['negative_share_est_bias']:+.3f}, on High sessions "
           f"{p['negative_share_est_bias_high']:+.3f})" if est is not None else "none"),
        f"wrong levels marked borderline: {p['wrong_levels_borderline']} of {p['wrong_levels']}",
        f"targets: {met}",
    ])


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", nargs="+", type=Path,
                        help="session benchmark results JSONs, one per seed")
    parser.add_argument("--out", type=Path, help="write the pooled figures here")
    args = parser.parse_args(argv)
    runs = []
    for path in args.results:
        try:
            runs.append(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, json.JSONDecodeError) as error:
            parser.error(f"cannot read {path}: {error}")
    try:
        pooled = pool(runs)
    except ValueError as error:
        parser.error(str(error))
    pooled["files"] = [str(p) for p in args.results]
    print(summary(pooled))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(pooled, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
