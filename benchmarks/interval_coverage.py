"""Does the 90% interval hold the true negative share as often as it says, at every length?

    python benchmarks/interval_coverage.py [--sessions 150]
        [--out benchmarks/results/interval_coverage.json]

Simulated sessions of FER2013 `val` faces as in estimator_benchmark.py (segments of 3-30 s of
one emotion, 1-3 images a segment, so consecutive faces share the model's mistakes; the
profile measured on the other half of `val`), at fixed lengths from one to fifteen minutes.
Two intervals: fixed 30-s blocks with plain bootstrap quantiles (screener's first interval),
and the shipped one (`estimate_negative_share`: at least 8 blocks, spread widened by
sqrt(B/(B-1))). A few minutes of a shared machine.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks import estimator_benchmark as simulated  # noqa: E402
from screener.session.error_profile import ErrorProfile  # noqa: E402
from screener.session.estimate import SEED, bootstrap_mixes, estimate_negative_share  # noqa: E402
from screener.settings import Settings  # noqa: E402

LENGTHS_S = (60, 120, 240, 480, 900)


def fixed_blocks_interval(p: np.ndarray, profile: ErrorProfile) -> tuple[float, float]:
    mixes = bootstrap_mixes(p, profile, 30, 400, SEED)
    share = float(mixes[0][simulated.NEG_IDX].sum())
    low, high = np.quantile(mixes[1:, simulated.NEG_IDX].sum(axis=1), [0.05, 0.95])
    return min(low, share), max(high, share)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared/datasets/fer2013")
    parser.add_argument("--sessions", type=int, default=150, help="per length and fold")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()

    probabilities, labels, model = simulated.val_probabilities(Settings().model_path, args.data)
    halves = simulated.halves(labels, 21)
    record: dict = {"model": model, "sessions_per_length": 2 * args.sessions, "lengths": {}}
    for seconds in LENGTHS_S:
        inside: dict[str, list[bool]] = {"fixed 30-s blocks": [], "shipped": []}
        widths: dict[str, list[float]] = {k: [] for k in inside}
        for fold, (fit, own) in enumerate([halves, halves[::-1]]):
            profile = ErrorProfile.measure(probabilities[fit], labels[fit])
            rng = np.random.default_rng(100 + fold)
            pools = [np.intersect1d(np.flatnonzero(labels == c), own) for c in range(7)]
            for _ in range(args.sessions):
                classes, images = simulated.simulate_session(
                    rng, simulated.make_student(rng), pools, False, seconds)
                truth = float(np.isin(classes, simulated.NEG_IDX).mean())
                p = probabilities[images].astype(np.float64)
                shipped = estimate_negative_share(p, simulated.NEGATIVE, profile)
                assert shipped is not None
                for name, (low, high) in (("fixed 30-s blocks", fixed_blocks_interval(p, profile)),
                                          ("shipped", (shipped.low, shipped.high))):
                    inside[name].append(low - 1e-9 <= truth <= high + 1e-9)
                    widths[name].append(high - low)
        record["lengths"][f"{seconds // 60} min"] = {
            name: {"coverage": round(float(np.mean(inside[name])), 3),
                   "mean_width": round(float(np.mean(widths[name])), 3)} for name in inside}
        print(seconds // 60, "min", record["lengths"][f"{seconds // 60} min"], flush=True)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(record, indent=2) + "\n")


if __name__ == "__main__":
    main()
