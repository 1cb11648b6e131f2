"""Does the 90% interval hold the true negative share on faces unlike the ones it was fitted on?

    python benchmarks/source_coverage.py [--model models/emotion_vgg.onnx] [--sessions 120]
        [--out benchmarks/results/source_coverage.json]

Face sources: the labelled faces benchmarks/domain_benchmark.py caches (FER2013 `val` on its
own and on FER+ labels; the same faces blurred, dark, compressed and small, found by the
detector; web photographs of held-out people and of the people the model lab may tune on).
Every source's faces are read once by the model (`load_emotion_model`, so a joined model is
measured the same way) and cached in benchmarks/.cache/domain/.

Leave one source out: for each source, the error profiles are measured on the OTHER sources
(each source's rows pulled towards the pooled rows where it holds few faces of a class, as
`ErrorProfile.for_model` reads them), and
sessions are simulated from the held-out source's faces as estimator_benchmark.py simulates
them (segments of 3-30 s of one emotion, 1-3 images a segment, one face a second), at 1, 5 and
10 minutes. The main profile (the point estimate) is FER2013 `val`'s where it is among the
fitted sources, else the pool of them. Intervals compared:

* `before`: the main profile alone, block bootstrap (screener's interval before estimator 3;
  its profile is FER2013 `val`, measured on all of it, as the model's .json records it, so on
  `fer_val` it is in-sample);
* `sources`: each replicate read through one source's profile in turn;
* `sources + floor`: the same with the floor from the number of distinct expressions (shipped
  until estimator 4);
* `sources + own reading + floor`: the same with the model's own uncorrected reading as one more
  profile (`OWN_READING`; shipped);
* `floor only`: the main profile's bootstrap with the floor.

`levels`: how often the level from the shipped estimate agrees with the level the true labels
give, by the number of distinct expressions the session shows (sessions of 10 s to 10 minutes),
from which screener's "too short to judge" line is chosen (`--levels` sessions per source and
seed, pooled over `--level-seeds`: one seed's bands of 200 sessions differ by up to 12 points
from run to run). `--levels-only` skips the coverage table.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks import estimator_benchmark as simulated  # noqa: E402
from benchmarks.domain_benchmark import cached_sources  # noqa: E402
from benchmarks.result_files import machine_summary, print_and_save  # noqa: E402
from screener.emotions.joined import load_emotion_model  # noqa: E402
from screener.session.error_profile import ErrorProfile  # noqa: E402
from screener.session.estimate import (  # noqa: E402
    distinct_expressions,
    estimate_negative_share,
    source_spread,
    wilson_interval,
)
from screener.session.rules import load_rules, parse_rules  # noqa: E402
from screener.settings import Settings  # noqa: E402

CACHE = ROOT / "benchmarks" / ".cache" / "domain"
LENGTHS_S = (60, 300, 600)
MAIN = "fer_val"
TARGET = 0.85
LEVEL_RIGHT = 0.8
EXPRESSION_BINS = ((1, 4), (5, 9), (10, 14), (15, 19), (20, 29), (30, 39), (40, 59),
                   (60, 10_000))
VARIANTS = ("before", "floor only", "sources pooled", "sources pooled + floor",
            "sources", "sources + floor", "sources x1.5 + floor", "sources x2 + floor",
            "sources + own reading + floor")
SHIPPED = "sources + own reading + floor"


def source_probabilities(model_path: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """{source: (probabilities, labels)}, each source read once by the model and cached."""
    settings = Settings()
    model = load_emotion_model(model_path, 64, flip_margin=settings.emotions.flip_margin)
    cache = CACHE / f"probabilities_{model.name.replace('/', '_')}.npz"
    if cache.is_file():
        stored = np.load(cache)
        names = sorted({k.rsplit("/", 1)[0] for k in stored.files})
        return {n: (stored[f"{n}/p"], stored[f"{n}/labels"]) for n in names}
    read = {}
    for source in cached_sources(smoke=False):
        probabilities = model.predict(source.grey, source.aligned).astype(np.float64)
        read[source.name] = (probabilities, np.asarray(source.labels, np.int64))
        print(f"read {source.name}: {len(source.labels)} faces", flush=True)
    arrays = {f"{n}/{k}": v for n, (p, lb) in read.items() for k, v in (("p", p), ("labels", lb))}
    np.savez_compressed(cache, **arrays)
    return read


def fitted_profile(read: dict[str, tuple[np.ndarray, np.ndarray]], held_out: str
                   ) -> ErrorProfile:
    """The main profile with the other sources' profiles, none of them from `held_out`."""
    measured = {n: ErrorProfile.measure(p, lb, n) for n, (p, lb) in read.items() if n != held_out}
    pooled = ErrorProfile.pooled(list(measured.values()))
    others = [profile.shrunk(pooled) for profile in measured.values()]
    main = measured.get(MAIN, pooled)
    return main.with_others(others)


def intervals(p: np.ndarray, fitted: ErrorProfile, shipped: ErrorProfile
              ) -> dict[str, tuple[float, float]]:
    """Every variant's interval for one session's probabilities."""
    columns = simulated.NEG_IDX
    alone = source_spread(p, columns, shipped.with_others(()), own_reading=False)
    spread = source_spread(p, columns, fitted, own_reading=False)
    with_own = source_spread(p, columns, fitted)
    which = np.arange(len(spread.departures)) % len(spread.own)
    pooled = np.clip(np.quantile(spread.own[which] + spread.departures, [0.05, 0.95]), 0, 1)
    pooled = (min(pooled[0], spread.share), max(pooled[1], spread.share))

    def floored(low_high: tuple[float, float], share: float) -> tuple[float, float]:
        least, most = wilson_interval(share, distinct_expressions(p))
        return min(low_high[0], least), max(low_high[1], most)

    before = alone.interval(1.0)
    found = {
        "before": before,
        "floor only": floored(before, alone.share),
        "sources pooled": pooled,
        "sources pooled + floor": floored(pooled, spread.share),
        "sources": spread.interval(1.0),
        "sources + floor": floored(spread.interval(1.0), spread.share),
        "sources x1.5 + floor": floored(spread.interval(1.5), spread.share),
        "sources x2 + floor": floored(spread.interval(2.0), spread.share),
        "sources + own reading + floor": floored(with_own.interval(1.0), with_own.share),
    }
    return found


def coverage_rows(read: dict, sessions: int, seed: int) -> dict:
    shipped = ErrorProfile.measure(*read[MAIN], MAIN)
    table: dict = {}
    for number, (name, (probabilities, labels)) in enumerate(read.items()):
        fitted = fitted_profile(read, name)
        pools = [np.flatnonzero(labels == c) for c in range(7)]
        pools = [pool if len(pool) else np.flatnonzero(labels >= 0)[:1] for pool in pools]
        table[name] = {}
        for seconds in LENGTHS_S:
            rng = np.random.default_rng([seed, number, seconds])
            inside = {v: [] for v in VARIANTS}
            widths = {v: [] for v in VARIANTS}
            for _ in range(sessions):
                classes, images = simulated.simulate_session(
                    rng, simulated.make_student(rng), pools, False, seconds)
                truth = float(np.isin(classes, simulated.NEG_IDX).mean())
                p = probabilities[images]
                for variant, (low, high) in intervals(p, fitted, shipped).items():
                    inside[variant].append(low - 1e-9 <= truth <= high + 1e-9)
                    widths[variant].append(high - low)
            table[name][f"{seconds // 60} min"] = {
                v: {"coverage": round(float(np.mean(inside[v])), 3),
                    "mean_width": round(float(np.mean(widths[v])), 3)} for v in VARIANTS}
            print(name, seconds // 60, "min",
                  {v: table[name][f"{seconds // 60} min"][v] for v in ("before", SHIPPED)},
                  flush=True)
    return table


def level_rows(read: dict, sessions: int, seed: int) -> list[dict]:
    """Sessions of 10 s to 10 minutes: the true level, the shipped estimate's level, and how
    many distinct expressions the session showed. The level needs only the point estimate, so
    the bootstrap is cut to one replicate."""
    rules = load_rules("default")
    truth_rules = parse_rules(Path(rules.source).read_text()
                              .replace("negative_share_est", "negative_share"), "truth")
    rows = []
    for number, (name, (probabilities, labels)) in enumerate(read.items()):
        fitted = fitted_profile(read, name)
        pools = [np.flatnonzero(labels == c) for c in range(7)]
        pools = [pool if len(pool) else np.flatnonzero(labels >= 0)[:1] for pool in pools]
        rng = np.random.default_rng([seed, number, 1])
        for _ in range(sessions):
            seconds = int(np.exp(rng.uniform(np.log(10), np.log(600))))
            classes, images = simulated.simulate_session(
                rng, simulated.make_student(rng), pools, False, seconds)
            p = probabilities[images]
            truth = simulated.label_metrics(classes, truth_rules)
            seen = simulated.label_metrics(p.argmax(axis=1), truth_rules)
            estimate = estimate_negative_share(p, simulated.NEGATIVE, fitted, replicates=1)
            assert estimate is not None
            level = rules.assess({**seen, "negative_share_est": estimate.share}).level
            rows.append({"source": name, "faces": seconds, "seed": seed,
                         "expressions": distinct_expressions(p),
                         "right": level == truth_rules.assess(truth).level})
    return rows


def level_table(rows: list[dict]) -> dict:
    table = {}
    for least, most in EXPRESSION_BINS:
        subset = [r for r in rows if least <= r["expressions"] <= most]
        if subset:
            table[f"{least}-{most}" if most < 10_000 else f"{least}+"] = {
                "sessions": len(subset),
                "levels_right": round(float(np.mean([r["right"] for r in subset])), 3),
                "median_faces": int(np.median([r["faces"] for r in subset]))}
    return table


def too_short_line(table: dict) -> int:
    """The lower edge of the first band of `EXPRESSION_BINS` from which every band holding at
    least 30 sessions gets the level right in `LEVEL_RIGHT` of them."""
    bands = [(int(name.split("-")[0].rstrip("+")), band) for name, band in table.items()]
    for number, (least, _) in enumerate(bands):
        if all(band["levels_right"] >= LEVEL_RIGHT for _, band in bands[number:]
               if band["sessions"] >= 30):
            return least
    return EXPRESSION_BINS[-1][0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=Settings().model_path)
    parser.add_argument("--sessions", type=int, default=120, help="per source and length")
    parser.add_argument("--levels", type=int, default=300,
                        help="sessions per source and level seed, for the line")
    parser.add_argument("--seed", type=int, default=43)
    parser.add_argument("--level-seeds", default="43,7,11,13,17",
                        help="comma-separated; the level sessions of each are pooled")
    parser.add_argument("--levels-only", action="store_true", help="skip the coverage table")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()

    started = time.perf_counter()
    read = source_probabilities(args.model)
    record: dict = {
        "model": str(args.model), "sessions_per_source_and_length": args.sessions,
        "target": TARGET, "shipped": SHIPPED,
        "sources": {n: {"faces": len(lb),
                        "accuracy": round(float((p.argmax(axis=1) == lb).mean()), 4)}
                    for n, (p, lb) in read.items()},
    }
    if not args.levels_only:
        record["coverage"] = coverage_rows(read, args.sessions, args.seed)
        record["worst"] = {
            v: min(cell[v]["coverage"] for lengths in record["coverage"].values()
                   for cell in lengths.values()) for v in VARIANTS}
    if args.levels:
        seeds = [int(seed) for seed in args.level_seeds.split(",")]
        rows = [row for seed in seeds for row in level_rows(read, args.levels, seed)]
        record["level_seeds"] = seeds
        record["levels_by_distinct_expressions"] = level_table(rows)
        record["levels_by_seed"] = {
            seed: level_table([r for r in rows if r["seed"] == seed]) for seed in seeds}
        record["too_short_below"] = too_short_line(record["levels_by_distinct_expressions"])
    record["seconds"] = round(time.perf_counter() - started, 1)
    record["machine"] = machine_summary()
    print_and_save(record, args.out)


if __name__ == "__main__":
    main()
