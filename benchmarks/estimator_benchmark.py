"""Do the session estimates give the level the truth would? Simulated sessions of FER2013 faces.

    python benchmarks/estimator_benchmark.py [--sessions 600] [--data ../shared/datasets/fer2013]
        [--images segment|face] [--crops clean|pipeline] [--fix-errors SHARE]
        [--out benchmarks/results/estimator.json]

Real videos with a known emotion every second are scarce, so sessions are built from FER2013
`val` faces whose true emotion is known. A session follows a true label sequence: segments of
3-30 s, each of one emotion, drawn with the student's negative propensity; a segment shows 1-3
images of its emotion, each for a contiguous part of it (so, as in a video, consecutive faces
share the model's mistakes). Students differ in how negative they are and in which negative
and other emotions they show; sessions last 2-30 minutes, one face a second.

The level the default rules give on the TRUE labels (one observation a second, smoothed as
scans smooth) is the reference. Each variant is scored on agreement with it, High sessions
caught, truly Low sessions called High, and the mean absolute error of the negative share.

Every `val` image is predicted once, as scans run the model, and cached in benchmarks/.cache/.
What the estimators know of the model's errors is measured on half of `val` and the sessions
are built from the other half, then the halves swap ("cross-fitted"): choosing on the images
that set the error profile would flatter the estimates; that figure ("in-sample") is shown too.

`--crops pipeline` takes each face's probabilities from a synthetic still read through the
face detector and crop (benchmarks/synthetic_scenes.py), as the session benchmark's videos
are read, instead of the clean 48x48 image; the profile is then measured the same way.
`shipped_by_length` splits the shipped estimator's scores by session length.

`--fix-errors SHARE` asks what a better model would give: that share of the misread images
(drawn with the seed) take the probabilities of a rightly read image of their own class, so
the model is right more often with the same kind of confidence, and its mistakes stay shared
within segments. The error profile is measured on those answers, as for a real model.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from screener.domain import EMOTIONS, Box, Observation
from screener.emotions.model import OnnxEmotionModel
from screener.faces import faces_version, make_detector
from screener.lab.fer_data import load_split
from screener.session.aggregate import negative_runs, session_metrics, smooth_labels, with_smoothing
from screener.session.error_profile import ErrorProfile
from screener.session.estimate import (
    adjusted_count,
    em_priors,
    estimate_negative_share,
    label_shares,
    probabilistic_adjusted_count,
    reweighted,
)
from screener.session.rules import RuleSet, load_rules, parse_rules
from screener.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.result_files import machine_summary, print_and_save  # noqa: E402
from benchmarks.synthetic_scenes import labelled_faces, still_predictions  # noqa: E402

NEGATIVE = ("angry", "fear", "sad")
NEG_IDX = [EMOTIONS.index(e) for e in NEGATIVE]
OTHER_IDX = [EMOTIONS.index(e) for e in ("disgust", "happy", "surprise", "neutral")]
BOX = Box(0, 0, 48, 48)


# --- the model's answers on val, once -----------------------------------------------------------


def val_probabilities(model_path: Path, data: Path,
                      crops: str = "clean") -> tuple[np.ndarray, np.ndarray, str]:
    """(probabilities, labels, model name) of every `val` image, as scans run the model:
    on the 48x48 originals (`clean`), or on synthetic stills read through the detector and
    crop (`pipeline`; faces the detector misses are left out)."""
    settings = Settings()
    model = OnnxEmotionModel(model_path, 64, flip_margin=settings.emotions.flip_margin)
    version = model.name if crops == "clean" else f"{model.name}+{faces_version(settings.faces)}"
    cache = ROOT / "benchmarks/.cache" / f"val_{crops}_{version.replace('/', '_')}.npz"
    if cache.is_file():
        stored = np.load(cache)
        return stored["probabilities"], stored["labels"], version
    if crops == "pipeline":
        paths, labels = labelled_faces(data / "val")
        probabilities, found = still_predictions(paths, make_detector(settings.faces), model,
                                                 settings.faces)
        probabilities, labels = probabilities[found], labels[found]
        cache.parent.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(cache, probabilities=probabilities, labels=labels)
        return probabilities, labels, version
    val = load_split(data, "val")
    probabilities = model.predict(val.images)
    cache.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(cache, probabilities=probabilities, labels=val.labels)
    return probabilities, val.labels, version


def with_errors_fixed(probabilities: np.ndarray, labels: np.ndarray, share: float,
                      seed: int) -> np.ndarray:
    """A stand-in for a model right on `share` of the images this one misreads: each fixed
    image gets the answer the model gave a rightly read image of its class (drawn at random),
    so what changes is how often it errs, not how sure it is when right."""
    fixed = probabilities.copy()
    if share <= 0.0:
        return fixed
    rng = np.random.default_rng(seed)
    right = probabilities.argmax(axis=1) == labels
    wrong = np.flatnonzero(~right)
    chosen = wrong[rng.random(len(wrong)) < share]
    for c in range(len(EMOTIONS)):
        donors = np.flatnonzero(right & (labels == c))
        targets = chosen[labels[chosen] == c]
        if len(donors) and len(targets):
            fixed[targets] = probabilities[rng.choice(donors, size=len(targets))]
    return fixed


# --- simulated sessions ------------------------------------------------------------------------


@dataclass(frozen=True)
class Student:
    propensity: float
    """Share of time the student shows negative affect, on average."""
    negative_mix: np.ndarray
    other_mix: np.ndarray


def make_student(rng: np.random.Generator) -> Student:
    return Student(
        propensity=float(rng.uniform(0.0, 0.95)),
        negative_mix=rng.dirichlet([2.0, 2.0, 2.0]),
        other_mix=rng.dirichlet([0.3, 3.0, 1.0, 5.0]),
    )


def simulate_session(
    rng: np.random.Generator, student: Student, pools: list[np.ndarray], images_per_face: bool,
    seconds: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """(true class, val image) for each face of one session, one face a second.

    `images_per_face`: each face a different image of its segment's emotion (the model's
    errors independent from face to face), instead of 1-3 images per segment. `seconds`:
    the session's length, else drawn from 2-30 minutes (log-uniform)."""
    if seconds is None:
        seconds = int(np.exp(rng.uniform(np.log(120), np.log(1800))))
    share = float(np.clip(student.propensity + rng.normal(0.0, 0.1), 0.0, 1.0))
    classes, images = [], []
    while len(classes) < seconds:
        if rng.random() < share:
            c = NEG_IDX[rng.choice(3, p=student.negative_mix)]
        else:
            c = OTHER_IDX[rng.choice(4, p=student.other_mix)]
        length = int(rng.integers(3, 31))
        shown = rng.choice(pools[c], size=length if images_per_face else int(rng.integers(1, 4)))
        classes += [c] * length
        images += [shown[i * len(shown) // length] for i in range(length)]
    return np.array(classes[:seconds]), np.array(images[:seconds])


def as_observations(probabilities: np.ndarray, window: int) -> list[Observation]:
    observations = [
        Observation(float(i), i, BOX, tuple(map(float, p)), EMOTIONS[int(np.argmax(p))])
        for i, p in enumerate(probabilities)
    ]
    return with_smoothing(observations, window)


def label_metrics(classes: np.ndarray, rules: RuleSet) -> dict[str, float]:
    """The label-based metrics the default rules read, as `session_metrics` computes them
    (checked on each fold's first session), without building an observation per face."""
    labels = [EMOTIONS[c] for c in classes]
    episodes, longest = negative_runs(
        smooth_labels(labels, rules.smoothing_window), set(rules.negative), rules.min_run
    )
    share = float(np.isin(classes, [EMOTIONS.index(e) for e in rules.negative]).mean())
    return {"face_frames": len(classes), "negative_share": share,
            "longest_negative_run_s": float(longest), "negative_episodes": sum(episodes.values())}


# --- variants ----------------------------------------------------------------------------------


Mixer = Callable[[np.ndarray, ErrorProfile], np.ndarray]
MIXERS: dict[str, Mixer] = {
    "count": lambda p, _: label_shares(p),
    "mean probability": lambda p, _: np.asarray(p, np.float64).mean(axis=0),
    "adjusted count": adjusted_count,
    "soft adjusted count": probabilistic_adjusted_count,
    "EM priors": lambda p, profile: em_priors(p, profile.priors),
}


def reweighted_runs(
    probabilities: np.ndarray, mix: np.ndarray, profile: ErrorProfile, rules: RuleSet
) -> tuple[float, int]:
    """(longest negative run, negative episodes) from labels reweighted by the session's mix."""
    relabelled = reweighted(probabilities, mix, profile.priors).argmax(axis=1)
    metrics = label_metrics(relabelled, rules)
    return metrics["longest_negative_run_s"], int(metrics["negative_episodes"])


def session_rows(
    probabilities: np.ndarray, labels: np.ndarray, profile: ErrorProfile, sessions: int,
    seed: int, rules: RuleSet, images_per_face: bool,
) -> list[dict]:
    rng = np.random.default_rng(seed)
    pools = [np.flatnonzero(labels == c) for c in range(len(EMOTIONS))]
    students = [make_student(rng) for _ in range(max(1, sessions // 8))]
    rows = []
    for number in range(sessions):
        student = students[number % len(students)]
        classes, images = simulate_session(rng, student, pools, images_per_face)
        p = probabilities[images].astype(np.float64)
        truth = label_metrics(classes, rules)
        seen = label_metrics(p.argmax(axis=1), rules)
        estimate = estimate_negative_share(p, NEGATIVE, profile)
        if number == 0:
            check = session_metrics(as_observations(p, rules.smoothing_window), rules.negative,
                                    rules.min_run, 1.0, error_profile=profile)
            assert all(check[k] == v for k, v in seen.items()), (check, seen)
            assert check["negative_share_est"] == estimate.share
        row = {
            "faces": len(classes),
            "true_share": truth["negative_share"],
            "true_level": level_of(rules, truth["negative_share"],
                                   truth["longest_negative_run_s"],
                                   int(truth["negative_episodes"])),
            "raw_run": seen["longest_negative_run_s"],
            "raw_episodes": seen["negative_episodes"],
            "low": estimate.low,
            "high": estimate.high,
        }
        for name, mixer in MIXERS.items():
            mix = mixer(p, profile)
            row[name] = float(mix[NEG_IDX].sum())
            if name == "soft adjusted count":
                row[f"{name} runs"] = reweighted_runs(p, mix, profile, rules)
        rows.append(row)
    return rows


def level_of(rules: RuleSet, share: float, run: float, episodes: int) -> str:
    return rules.assess({
        "face_frames": 100, "negative_share": share, "negative_share_est": share,
        "longest_negative_run_s": run, "longest_negative_run_est_s": run,
        "negative_episodes": episodes, "negative_episodes_est": episodes,
    }).level


def score(rows: list[dict], share_key: str, runs: str, rules: RuleSet) -> dict:
    """Agreement of the levels a variant gives with the true levels, and its share error."""
    truth = [r["true_level"] for r in rows]
    levels = []
    for r in rows:
        if runs == "raw labels":
            run, episodes = r["raw_run"], r["raw_episodes"]
        else:
            run, episodes = r[f"{share_key} runs"]
        levels.append(level_of(rules, r[share_key], run, episodes))
    high = [lv for t, lv in zip(truth, levels, strict=True) if t == "high"]
    errors = np.array([r[share_key] - r["true_share"] for r in rows])
    return {
        "level_agreement": round(float(np.mean([t == lv for t, lv in
                                                zip(truth, levels, strict=True)])), 3),
        "high_caught": round(high.count("high") / len(high), 3) if high else None,
        "low_called_high": sum(t == "low" and lv == "high" for t, lv in
                               zip(truth, levels, strict=True)),
        "called_high_not_high": sum(t != "high" and lv == "high" for t, lv in
                                    zip(truth, levels, strict=True)),
        "share_mae": round(float(np.abs(errors).mean()), 4),
        "share_bias": round(float(errors.mean()), 4),
        "confusion": {f"{t}->{lv}": n for (t, lv), n in
                      sorted(Counter(zip(truth, levels, strict=True)).items())},
    }


LENGTHS_MIN = ((2, 5), (5, 10), (10, 20), (20, 30))


def by_length(rows: list[dict], share_key: str, runs: str, rules: RuleSet) -> dict:
    """The same scores for sessions of each length: the longer a session, the more distinct
    expressions it holds, and the less one misread face moves its share."""
    scored = {}
    for shortest, longest in LENGTHS_MIN:
        subset = [r for r in rows if shortest * 60 <= r["faces"] < longest * 60 + 1]
        if subset:
            result = score(subset, share_key, runs, rules)
            result.pop("confusion")
            scored[f"{shortest}-{longest} min"] = {"sessions": len(subset), **result,
                                                   **coverage(subset)}
    return scored


def coverage(rows: list[dict]) -> dict:
    inside = [r["low"] - 1e-9 <= r["true_share"] <= r["high"] + 1e-9 for r in rows]
    widths = [r["high"] - r["low"] for r in rows]
    return {"coverage": round(float(np.mean(inside)), 3),
            "mean_width": round(float(np.mean(widths)), 3)}


VARIANTS = [
    ("count", "raw labels"),  # today's default: negative_share and label runs
    ("mean probability", "raw labels"),
    ("adjusted count", "raw labels"),
    ("soft adjusted count", "raw labels"),
    ("soft adjusted count", "reweighted"),
    ("EM priors", "raw labels"),
]


def halves(labels: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Two halves of `val`, each with half of every class."""
    rng = np.random.default_rng(seed)
    first, second = [], []
    for c in range(len(EMOTIONS)):
        members = rng.permutation(np.flatnonzero(labels == c))
        first.append(members[: len(members) // 2])
        second.append(members[len(members) // 2 :])
    return np.concatenate(first), np.concatenate(second)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=Settings().model_path)
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared/datasets/fer2013")
    parser.add_argument("--sessions", type=int, default=600, help="per fold")
    parser.add_argument("--seed", type=int, default=21)
    parser.add_argument("--images", choices=("segment", "face"), default="segment",
                        help="1-3 images per segment (default), or a new image every face")
    parser.add_argument("--crops", choices=("clean", "pipeline"), default="clean",
                        help="the faces' probabilities, and the profile correcting them, from "
                        "the 48x48 originals (default) or from synthetic stills read through the "
                        "detector and crop")
    parser.add_argument("--fix-errors", type=float, default=0.0, metavar="SHARE",
                        help="simulate a better model: this share (0-1) of the misread images "
                        "read as rightly read images of their class are")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    if not 0.0 <= args.fix_errors <= 1.0:
        parser.error("--fix-errors must be between 0 and 1")

    started = time.perf_counter()
    probabilities, labels, model_name = val_probabilities(args.model, args.data, args.crops)
    accuracy_before = float((probabilities.argmax(axis=1) == labels).mean())
    probabilities = with_errors_fixed(probabilities, labels, args.fix_errors, args.seed)
    rules = load_rules("default")
    before = parse_rules(rules.source and Path(rules.source).read_text()
                         .replace("negative_share_est", "negative_share")
                         .replace("longest_negative_run_est_s", "longest_negative_run_s")
                         .replace("negative_episodes_est", "negative_episodes"), "before")
    a, b = halves(labels, args.seed)
    folds = {"cross-fitted": [(a, b), (b, a)], "in-sample": [(np.arange(len(labels)),) * 2]}
    record: dict = {"model": model_name, "sessions_per_fold": args.sessions,
                    "images": args.images, "crops": args.crops,
                    "fixed_errors": args.fix_errors, "accuracy_before": accuracy_before,
                    "accuracy": float((probabilities.argmax(axis=1) == labels).mean()),
                    "folds": {}}
    for fold, splits in folds.items():
        rows = []
        for number, (fit, sessions) in enumerate(splits):
            profile = ErrorProfile.measure(probabilities[fit], labels[fit], "val half")
            # Sessions index images of their own half only.
            subset = np.full(len(labels), -1)
            subset[sessions] = labels[sessions]
            rows += session_rows(probabilities, subset, profile, args.sessions,
                                 args.seed + number, before, args.images == "face")
        truth = Counter(r["true_level"] for r in rows)
        record["folds"][fold] = {
            "sessions": len(rows),
            "true_levels": dict(sorted(truth.items())),
            "variants": {f"{share} / runs from {runs}": score(rows, share, runs, before)
                         for share, runs in VARIANTS},
            "shipped_interval": coverage(rows),
            "shipped_by_length": by_length(rows, "soft adjusted count", "raw labels", before),
        }
    record["seconds"] = round(time.perf_counter() - started, 1)
    record["machine"] = machine_summary()
    print_and_save(record, args.out)


if __name__ == "__main__":
    main()
