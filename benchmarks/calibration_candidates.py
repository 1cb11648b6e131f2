"""Can one calibration hold on FER2013 faces and on web photographs at once?

One temperature fitted on FER2013 `val` calibrates the joined model there (ECE 0.02), but on
web photographs of held-out persons the same model is right more often than it says (ECE
0.15). This benchmark measures, per face source of benchmarks/domain_benchmark.py, what other
calibrations and crops would give, every one fitted without the held-out persons:

- `shipped`: the joined model as it ships: a temperature per face from the members'
  disagreement and each one's confidence (`MemberTemperature`), fitted on FER2013 `val` and
  the web photographs' `fit` half, each weighing alike (scripts/join_models.py);
- `temperature_fer_val`: one temperature fitted on FER2013 `val` (shipped before); the crop
  and zoo candidates below are read at it, as they were measured;
- `member_temperature_fer_val_x2`, `_x3`: the shipped form with FER2013 `val` weighing two or
  three times as much as the fit persons (the shipped one weighs them alike, the rule set
  before measuring); `member_temperature_cross_fitted`: the shipped form taught by the
  held-out persons' own labels, cross-fitted (below), as a yardstick of what the fit persons
  cost it. `shipped_wild_held_out_ece_person_bootstrap`: the spread of the shipped ECE on the
  held-out persons, drawn by person;
- `pooled_temperature`: one temperature fitted on FER2013 `val` and the web photographs'
  `fit` half together (each source weighted alike);
- `disagreement_temperature`: a temperature that grows or shrinks with how far the two
  members disagree on a face (T = exp(a + b * (1 - Bhattacharyya affinity))), fitted on the
  same two sources: the members disagree most where the FER2013 member is out of its domain;
- `agreement_temperature`: the same with a second term for whether the two members name the
  same emotion (T = exp(a + b * disagreement + c * agree)): on web photographs the second
  member is right far more often than the first, so where they agree the joined reading is
  surer than its averaged probabilities say;
- `stacked`: a multinomial logistic regression on both members' log-probabilities (a learnt
  combiner), fitted on the same two sources, each weighted alike;
- `stacked_cross_fitted_balance*`: the same combiner taught by the held-out persons' own
  labels, honestly: fitted on FER2013 `val` and the held-out web photographs in two folds (by
  person), each face read by the fit that did not see it; `balance` weighs the classes
  towards alike (0: as they come, mostly neutral on web photographs). Rows for those two
  sources only;
- `negative_bias*`: not a calibration but an operating point: the shipped reading with the
  log-probabilities of angry, sad and fear raised by 0.1-0.6 before the argmax, to show what
  reading more negative faces negative costs in neutral faces read negative;
- `equalised_fer_member`, `equalised_both`: the 48x48 crop histogram-equalised
  (`cv2.equalizeHist`) before the FER2013 member, or before both members, as most FER2013
  training images were;
- `zoo_where_members_disagree*`: OpenCV Zoo's expression model (float, in lab/models, its
  temperature fitted on the fit persons, which it never saw) read only where the two members
  disagree by more than 0.1 or 0.2 (Bhattacharyya), joined there at half a member's weight: a
  third member at a fraction of its cost (`escalated`: the share of faces it reads).

The `fit` half taught the second member, so a calibration fitted on it flatters that member;
read the held-out rows.

    python benchmarks/calibration_candidates.py [--model models/emotion_joined.json] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import sys
import zlib
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.domain_benchmark import (  # noqa: E402
    SHARED,
    cached_sources,
    negative_bias,
    screener_shares,
)
from screener.emotions.aligned import AlignedOnnxModel  # noqa: E402
from screener.emotions.joined import GREY, JoinedEmotionModel, join  # noqa: E402
from screener.emotions.temperature import TINY, member_disagreement  # noqa: E402
from screener.lab.calibration import fit_member_temperature, fit_temperature  # noqa: E402
from screener.lab.evaluation import expected_calibration_error  # noqa: E402
from screener.lab.face_sources import load_wild  # noqa: E402
from screener.settings import Settings  # noqa: E402

FIT_SOURCES = ("fer_val", "wild_fit")
ZOO = ROOT / "lab/models/fer_mobilefacenet/fer_mobilefacenet.onnx"
ZOO_WEIGHT = 0.5


def softmax(z: np.ndarray) -> np.ndarray:
    z = np.exp(z - z.max(axis=1, keepdims=True))
    return z / z.sum(axis=1, keepdims=True)


def mean_logs(members: list[np.ndarray], weights: tuple[float, ...]) -> np.ndarray:
    """The members' log-probabilities averaged by `weights`, as the joined model averages them."""
    logs = sum(w * np.log(np.maximum(p, TINY)) for p, w in zip(members, weights, strict=True))
    return logs / sum(weights)


def mean_nll(probabilities: dict[str, np.ndarray], labels: dict[str, np.ndarray]) -> float:
    return float(np.mean([
        -np.log(np.maximum(p[np.arange(len(labels[s])), labels[s]], TINY)).mean()
        for s, p in probabilities.items()
    ]))


def fit_disagreement(reads: dict, labels: dict, weights: tuple[float, ...]) -> tuple[float, float]:
    """(a, b) by grid search: two parameters, no optimisation library needed."""
    best = (np.inf, 0.0, 0.0)
    for a in np.linspace(-0.6, 0.4, 41):
        for b in np.linspace(-3.0, 1.0, 41):
            fitted = {s: join(reads[s], weights, np.exp(a + b * member_disagreement(reads[s])))
                      for s in FIT_SOURCES}
            loss = mean_nll(fitted, labels)
            if loss < best[0]:
                best = (loss, float(a), float(b))
    return best[1], best[2]


def agree(members: list[np.ndarray]) -> np.ndarray:
    return (members[0].argmax(axis=1) == members[1].argmax(axis=1)).astype(float)


def agreement_temperature(members: list[np.ndarray], a: float, b: float, c: float
                          ) -> np.ndarray:
    return np.exp(a + b * member_disagreement(members) + c * agree(members))


def fit_agreement(reads: dict, labels: dict, weights: tuple[float, ...]
                  ) -> tuple[float, float, float]:
    """(a, b, c) by grid search, coarse then fine around the best."""
    best = (np.inf, 0.0, 0.0, 0.0)
    grids = [(np.linspace(-0.8, 0.6, 15), np.linspace(-3.0, 1.0, 17), np.linspace(-1.0, 0.6, 17))]
    for step in range(2):
        for a in grids[-1][0]:
            for b in grids[-1][1]:
                for c in grids[-1][2]:
                    fitted = {s: join(reads[s], weights, agreement_temperature(reads[s], a, b, c))
                              for s in FIT_SOURCES}
                    loss = mean_nll(fitted, labels)
                    if loss < best[0]:
                        best = (loss, float(a), float(b), float(c))
        if step == 0:
            _, a0, b0, c0 = best
            grids.append((np.linspace(a0 - 0.1, a0 + 0.1, 11),
                          np.linspace(b0 - 0.25, b0 + 0.25, 11),
                          np.linspace(c0 - 0.1, c0 + 0.1, 11)))
    return best[1], best[2], best[3]


def fit_stacked(features: list[np.ndarray], labels: list[np.ndarray], balance: float = 0.0,
                steps: int = 3000, l2: float = 1e-3) -> tuple[np.ndarray, np.ndarray]:
    """Weights and bias of softmax(features @ W + b) by full-batch Adam: a few thousand faces
    and 14 features need no optimisation library. Each set of faces weighs alike; `balance`
    (0-1) also weighs each class within a set towards alike, against the sets' neutral mass."""
    x, targets = np.vstack(features), np.eye(7)[np.concatenate(labels)]
    shares = []
    for y in labels:
        share = np.full(len(y), 1.0 / len(y))
        if balance:
            counts = np.bincount(y, minlength=7).astype(float)
            per_class = 1.0 / np.maximum(counts, 1.0)
            share *= (per_class[y] / per_class[y].mean()) ** balance
            share /= share.sum()
        shares.append(share)
    share = np.concatenate(shares) / len(shares)
    params = [np.zeros((x.shape[1], 7)), np.zeros(7)]
    moments = [[np.zeros_like(p), np.zeros_like(p)] for p in params]
    for step in range(1, steps + 1):
        p = softmax(x @ params[0] + params[1])
        error = (p - targets) * share[:, None]
        grads = [x.T @ error + l2 * params[0], error.sum(axis=0)]
        for param, grad, (m, v) in zip(params, grads, moments, strict=True):
            m[:] = 0.9 * m + 0.1 * grad
            v[:] = 0.999 * v + 0.001 * grad**2
            param -= 0.01 * (m / (1 - 0.9**step)) / (np.sqrt(v / (1 - 0.999**step)) + 1e-8)
    return params[0], params[1]


def cross_folds(labels: dict, persons: list[str]) -> dict[str, np.ndarray]:
    """Two folds of FER2013 `val` and of the held-out web photographs (by person)."""
    return {"fer_val": np.arange(len(labels["fer_val"])) % 2,
            "wild_held_out": np.array([zlib.crc32(f"{p}#fold".encode()) % 2 for p in persons])}


def cross_fitted_stacked(reads: dict, labels: dict, persons: list[str], balance: float
                         ) -> dict[str, np.ndarray]:
    """The stacked combiner fitted where the held-out persons' labels would teach it most:
    on FER2013 `val` and the held-out web photographs, in two folds (by person for the web
    photographs), each face read by the fit on the other fold. The `fit` half is left out,
    since the second member learnt it. Returns the cross-fitted readings of those two sources."""
    folds = cross_folds(labels, persons)
    read = {s: np.zeros((len(labels[s]), 7)) for s in folds}
    for fold in (0, 1):
        fitted = fit_stacked([stack_features([m[folds[s] == fold] for m in reads[s]])
                              for s in folds],
                             [labels[s][folds[s] == fold] for s in folds], balance)
        for s in folds:
            out = folds[s] != fold
            read[s][out] = stacked([m[out] for m in reads[s]], *fitted)
    return read


def cross_fitted_member_temperature(reads: dict, labels: dict, persons: list[str],
                                    weights: tuple[float, ...]) -> dict[str, np.ndarray]:
    """The shipped form of calibration taught by the held-out persons' own labels instead of
    the fit persons' (whom member 2 learnt), cross-fitted as `cross_fitted_stacked`: how far
    the fit persons let it get."""
    folds = cross_folds(labels, persons)
    read = {s: np.zeros((len(labels[s]), 7)) for s in folds}
    for fold in (0, 1):
        fitted = fit_member_temperature(
            [([m[folds[s] == fold] for m in reads[s]], labels[s][folds[s] == fold])
             for s in folds], weights)
        for s in folds:
            out = folds[s] != fold
            members = [m[out] for m in reads[s]]
            read[s][out] = join(members, weights, fitted)
    return read


def person_bootstrap_ece(probabilities: np.ndarray, labels: np.ndarray, persons: list[str],
                         draws: int = 200, seed: int = 0) -> list[float]:
    """5th, 50th and 95th percentiles of the ECE over persons drawn with replacement (faces
    of one person are not independent; resampling also inflates an ECE a little)."""
    rng = np.random.default_rng(seed)
    people = np.asarray(persons)
    rows = {p: np.flatnonzero(people == p) for p in np.unique(people)}
    names = list(rows)
    values = []
    for _ in range(draws):
        picked = np.concatenate([rows[names[i]] for i in rng.integers(len(names), size=len(names))])
        values.append(expected_calibration_error(probabilities[picked], labels[picked]))
    return [round(float(v), 4) for v in np.percentile(values, [5, 50, 95])]


def stack_features(members: list[np.ndarray]) -> np.ndarray:
    return np.hstack([np.log(np.maximum(p, 1e-6)) for p in members])


def stacked(members: list[np.ndarray], weights: np.ndarray, bias: np.ndarray) -> np.ndarray:
    return softmax(stack_features(members) @ weights + bias)


def zoo_reads(sources: list, labels: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The zoo model's probabilities per source (NaN rows where no aligned crop was cut), at
    the temperature that fits the fit persons."""
    zoo = AlignedOnnxModel(ZOO, temperature=1.0)
    logits = {}
    for source in sources:
        logits[source.name] = np.full((len(source.aligned), 7), np.nan)
        found = [i for i, face in enumerate(source.aligned) if face is not None]
        if found:
            logits[source.name][found] = zoo.logits(np.stack([source.aligned[i] for i in found]))
    temperature = fit_temperature(softmax(logits["wild_fit"]), labels["wild_fit"])
    read = {}
    for name, z in logits.items():
        found = ~np.isnan(z).any(axis=1)
        read[name] = np.full_like(z, np.nan)
        read[name][found] = softmax(z[found] / temperature)
    return read


def zoo_where_disagree(members: list[np.ndarray], zoo: np.ndarray, weights: tuple[float, ...],
                       temperature: float, least: float) -> tuple[np.ndarray, float]:
    """The joined reading, with the zoo model joined in where the members disagree by more
    than `least`; and the share of faces it read."""
    read = ~np.isnan(zoo).any(axis=1) & (member_disagreement(members) > least)
    logs = mean_logs(members, weights)
    joined = (logs + ZOO_WEIGHT * np.log(np.maximum(np.nan_to_num(zoo), TINY))) / (1 + ZOO_WEIGHT)
    return softmax(np.where(read[:, None], joined, logs) / temperature), float(read.mean())


def row(probabilities: np.ndarray, labels: np.ndarray) -> dict:
    return {
        "accuracy": round(float((probabilities.argmax(axis=1) == labels).mean()), 4),
        "ece": round(expected_calibration_error(probabilities, labels), 4),
        "mean_confidence": round(float(probabilities.max(axis=1).mean()), 4),
        **screener_shares(probabilities, labels),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=Settings().model_path)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    model = JoinedEmotionModel(args.model, flip_margin=Settings().emotions.flip_margin)
    if len(model.members) != 2 or any(kind != GREY for _, kind, _ in model.members):
        sys.exit("error: this benchmark compares joined models of two grey members")
    sources = cached_sources(smoke=False)
    labels = {s.name: s.labels for s in sources}
    plain, equalised = {}, {}
    for source in sources:
        flat = np.stack([cv2.equalizeHist(np.ascontiguousarray(g)) for g in source.grey])
        plain[source.name] = [m.predict(source.grey) for m, _, _ in model.members]
        equalised[source.name] = [m.predict(flat) for m, _, _ in model.members]
    weights = model.weights
    fer_t = fit_temperature(join(plain["fer_val"], weights, 1.0), labels["fer_val"])
    pooled_t = fit_temperature(
        np.concatenate([join(plain[s], weights, 1.0) for s in FIT_SOURCES]),
        np.concatenate([labels[s] for s in FIT_SOURCES]))
    a, b = fit_disagreement(plain, labels, weights)
    a3, b3, c3 = fit_agreement(plain, labels, weights)
    heavier_fer = {times: fit_member_temperature(
        [(plain["fer_val"], labels["fer_val"])] * times + [(plain["wild_fit"], labels["wild_fit"])],
        weights) for times in (2, 3)}
    stack_w, stack_b = fit_stacked([stack_features(plain[s]) for s in FIT_SOURCES],
                                   [labels[s] for s in FIT_SOURCES])
    candidates = {
        "shipped": lambda s: join(plain[s], weights, model.calibration),
        "temperature_fer_val": lambda s: join(plain[s], weights, fer_t),
        "pooled_temperature": lambda s: join(plain[s], weights, pooled_t),
        "disagreement_temperature": lambda s: join(
            plain[s], weights, np.exp(a + b * member_disagreement(plain[s]))),
        "agreement_temperature": lambda s: join(
            plain[s], weights, agreement_temperature(plain[s], a3, b3, c3)),
        "stacked": lambda s: stacked(plain[s], stack_w, stack_b),
        **{f"member_temperature_fer_val_x{times}": (lambda s, fitted=fitted: join(
            plain[s], weights, fitted)) for times, fitted in heavier_fer.items()},
        **{f"negative_bias{bias}": (lambda s, bias=bias: negative_bias(
            join(plain[s], weights, model.calibration), bias))
           for bias in (0.1, 0.2, 0.3, 0.4, 0.6)},
        "equalised_fer_member": lambda s: join(
            [equalised[s][0], plain[s][1]], weights, fer_t),
        "equalised_both": lambda s: join(equalised[s], weights, fer_t),
    }
    zoo = zoo_reads(sources, labels)
    escalated: dict[str, dict[str, float]] = {}
    for least in (0.1, 0.2):
        name = f"zoo_where_members_disagree{least}"
        reads = {s: zoo_where_disagree(plain[s], zoo[s], weights, fer_t, least)
                 for s in labels}
        escalated[name] = {s: share for s, (_, share) in reads.items()}
        candidates[name] = lambda s, reads=reads: reads[s][0]
    wild = load_wild(SHARED / "datasets/wild", Settings().faces, half="held_out")
    if not np.array_equal(wild.labels, labels["wild_held_out"]):
        sys.exit("error: benchmarks/.cache/domain is stale: delete it and run again")
    cross_fitted = {f"stacked_cross_fitted_balance{balance}": cross_fitted_stacked(
        plain, labels, wild.persons, balance) for balance in (0.0, 0.5, 1.0)}
    cross_fitted["member_temperature_cross_fitted"] = cross_fitted_member_temperature(
        plain, labels, wild.persons, weights)
    result = {"model": model.name, "fitted_on": list(FIT_SOURCES),
              "temperature_fer_val": round(fer_t, 4),
              "shipped_wild_held_out_ece_person_bootstrap": person_bootstrap_ece(
                  join(plain["wild_held_out"], weights, model.calibration),
                  labels["wild_held_out"], wild.persons),
              "pooled_temperature": round(pooled_t, 4),
              "disagreement_temperature": {"a": round(a, 3), "b": round(b, 3)},
              "agreement_temperature": {"a": round(a3, 3), "b": round(b3, 3), "c": round(c3, 3)},
              "escalated": {name: {s: round(v, 4) for s, v in shares.items()}
                            for name, shares in escalated.items()},
              "candidates": {name: {s: row(read(s), labels[s]) for s in labels}
                             for name, read in candidates.items()}
              | {name: {s: row(p, labels[s]) for s, p in reads.items()}
                 for name, reads in cross_fitted.items()}}
    for name, rows in result["candidates"].items():
        print(f"\n{name}\n{'source':18s} {'acc':>6s} {'ECE':>6s} {'conf':>6s} {'neg>neg':>8s} "
              f"{'neu>neg':>8s}")
        for source, r in rows.items():
            print(f"{source:18s} {r['accuracy']:6.3f} {r['ece']:6.3f} {r['mean_confidence']:6.3f}"
                  f" {r['negative_read_negative']:8.3f} {r['neutral_read_negative']:8.3f}")
    if args.out:
        args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
