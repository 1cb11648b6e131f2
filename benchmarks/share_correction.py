"""Is the corrected negative share closer to the truth than the raw share, on every face source?

    python benchmarks/share_correction.py [--model models/emotion_joined.json] [--sessions 60]
        [--out benchmarks/results/share_correction.json]

The correction undoes the model's known errors (its error profile, measured on FER2013 `val`);
on faces whose errors differ it can make a share worse. For each source of the domain
benchmark's cache, ten-minute sessions are simulated from its faces (estimator_benchmark's
students) and both shares compared with the true one: mean absolute error and mean signed
error (bias). A source where the corrected share is worse on average is named.
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
from benchmarks.domain_benchmark import cached_sources  # noqa: E402
from screener.emotions.joined import load_emotion_model  # noqa: E402
from screener.session.error_profile import ErrorProfile  # noqa: E402
from screener.session.estimate import estimate_negative_share  # noqa: E402
from screener.settings import Settings  # noqa: E402

SECONDS = 600


def main() -> None:
    settings = Settings()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=settings.model_path)
    parser.add_argument("--sessions", type=int, default=60)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    model = load_emotion_model(args.model, 64, flip_margin=settings.emotions.flip_margin)
    profile = ErrorProfile.for_model(args.model)
    rows = {}
    for source in cached_sources(smoke=False):
        probabilities = model.predict(source.grey, source.aligned).astype(np.float64)
        labels = source.labels
        pools = [np.flatnonzero(labels == c) for c in range(7)]
        pools = [pool if len(pool) else np.flatnonzero(labels >= 0) for pool in pools]
        rng = np.random.default_rng(2027)
        raw_errors, corrected_errors = [], []
        for _ in range(args.sessions):
            classes, images = simulated.simulate_session(
                rng, simulated.make_student(rng), pools, False, seconds=SECONDS)
            true = float(np.isin(classes, simulated.NEG_IDX).mean())
            p = probabilities[images]
            raw = float(np.isin(p.argmax(axis=1), simulated.NEG_IDX).mean())
            estimate = estimate_negative_share(p, simulated.NEGATIVE, profile)
            raw_errors.append(raw - true)
            corrected_errors.append(estimate.share - true)
        raw_errors, corrected_errors = np.array(raw_errors), np.array(corrected_errors)
        rows[source.name] = {
            "raw_mean_abs_error": round(float(np.abs(raw_errors).mean()), 4),
            "corrected_mean_abs_error": round(float(np.abs(corrected_errors).mean()), 4),
            "raw_bias": round(float(raw_errors.mean()), 4),
            "corrected_bias": round(float(corrected_errors.mean()), 4),
            "corrected_worse": bool(np.abs(corrected_errors).mean() > np.abs(raw_errors).mean()),
        }
        row = rows[source.name]
        print(f"{source.name:16s} raw {row['raw_mean_abs_error']:.3f} (bias {row['raw_bias']:+.3f})"
              f"  corrected {row['corrected_mean_abs_error']:.3f} "
              f"(bias {row['corrected_bias']:+.3f}){'  WORSE' if row['corrected_worse'] else ''}")
    if args.out:
        args.out.write_text(json.dumps({"model": model.name, "sessions": args.sessions,
                                        "seconds": SECONDS, "sources": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
