"""Can one calibration hold on FER2013 faces and on web photographs at once?

The joined model's temperature is fitted on FER2013 `val`, where it is calibrated (ECE 0.02);
on web photographs of held-out persons the same model is right more often than it says (ECE
0.15). This benchmark measures, per face source of benchmarks/domain_benchmark.py, what other
calibrations and crops would give, every one fitted without the held-out persons:

- `shipped`: the joined model as it ships;
- `pooled_temperature`: one temperature fitted on FER2013 `val` and the web photographs'
  `fit` half together (each source weighted alike);
- `disagreement_temperature`: a temperature that grows or shrinks with how far the two
  members disagree on a face (T = exp(a + b * (1 - Bhattacharyya affinity))), fitted on the
  same two sources: the members disagree most where the FER2013 member is out of its domain;
- `stacked`: a multinomial logistic regression on both members' log-probabilities (a learnt
  combiner), fitted on the same two sources, each weighted alike;
- `equalised_fer_member`, `equalised_both`: the 48x48 crop histogram-equalised
  (`cv2.equalizeHist`) before the FER2013 member, or before both members, as most FER2013
  training images were.

The `fit` half taught the second member, so a calibration fitted on it flatters that member;
read the held-out rows.

    python benchmarks/calibration_candidates.py [--model models/emotion_joined.json] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.domain_benchmark import cached_sources, screener_shares  # noqa: E402
from screener.emotions.joined import GREY, JoinedEmotionModel  # noqa: E402
from screener.emotions.temperature import TINY  # noqa: E402
from screener.lab.calibration import fit_temperature  # noqa: E402
from screener.lab.evaluation import expected_calibration_error  # noqa: E402
from screener.settings import Settings  # noqa: E402

FIT_SOURCES = ("fer_val", "wild_fit")


def pool(members: list[np.ndarray], weights: tuple[float, ...], temperature: np.ndarray | float
         ) -> np.ndarray:
    logs = sum(w * np.log(np.maximum(p, TINY)) for p, w in zip(members, weights, strict=True))
    z = logs / sum(weights) / np.reshape(temperature, (-1, 1))
    z = np.exp(z - z.max(axis=1, keepdims=True))
    return z / z.sum(axis=1, keepdims=True)


def disagreement(members: list[np.ndarray]) -> np.ndarray:
    first, second = members[0], members[1]
    return 1.0 - np.sqrt(np.maximum(first * second, 0.0)).sum(axis=1)


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
            fitted = {s: pool(reads[s], weights, np.exp(a + b * disagreement(reads[s])))
                      for s in FIT_SOURCES}
            loss = mean_nll(fitted, labels)
            if loss < best[0]:
                best = (loss, float(a), float(b))
    return best[1], best[2]


def fit_stacked(reads: dict, labels: dict, steps: int = 3000, l2: float = 1e-3
                ) -> tuple[np.ndarray, np.ndarray]:
    """Weights and bias of softmax(features @ W + b) by full-batch Adam: a few thousand faces
    and 14 features need no optimisation library."""
    features = np.vstack([stack_features(reads[s]) for s in FIT_SOURCES])
    targets = np.eye(7)[np.concatenate([labels[s] for s in FIT_SOURCES])]
    share = np.concatenate([np.full(len(labels[s]), 1.0 / len(labels[s])) for s in FIT_SOURCES])
    share /= share.sum()
    params = [np.zeros((features.shape[1], 7)), np.zeros(7)]
    moments = [[np.zeros_like(p), np.zeros_like(p)] for p in params]
    for step in range(1, steps + 1):
        z = features @ params[0] + params[1]
        p = np.exp(z - z.max(axis=1, keepdims=True))
        p /= p.sum(axis=1, keepdims=True)
        error = (p - targets) * share[:, None]
        grads = [features.T @ error + l2 * params[0], error.sum(axis=0)]
        for param, grad, (m, v) in zip(params, grads, moments, strict=True):
            m[:] = 0.9 * m + 0.1 * grad
            v[:] = 0.999 * v + 0.001 * grad**2
            param -= 0.01 * (m / (1 - 0.9**step)) / (np.sqrt(v / (1 - 0.999**step)) + 1e-8)
    return params[0], params[1]


def stack_features(members: list[np.ndarray]) -> np.ndarray:
    return np.hstack([np.log(np.maximum(p, 1e-6)) for p in members])


def stacked(members: list[np.ndarray], weights: np.ndarray, bias: np.ndarray) -> np.ndarray:
    z = stack_features(members) @ weights + bias
    z = np.exp(z - z.max(axis=1, keepdims=True))
    return z / z.sum(axis=1, keepdims=True)


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
    pooled_t = fit_temperature(
        np.concatenate([pool(plain[s], weights, 1.0) for s in FIT_SOURCES]),
        np.concatenate([labels[s] for s in FIT_SOURCES]))
    a, b = fit_disagreement(plain, labels, weights)
    stack_w, stack_b = fit_stacked(plain, labels)
    candidates = {
        "shipped": lambda s: pool(plain[s], weights, model.temperature),
        "pooled_temperature": lambda s: pool(plain[s], weights, pooled_t),
        "disagreement_temperature": lambda s: pool(
            plain[s], weights, np.exp(a + b * disagreement(plain[s]))),
        "stacked": lambda s: stacked(plain[s], stack_w, stack_b),
        "equalised_fer_member": lambda s: pool(
            [equalised[s][0], plain[s][1]], weights, model.temperature),
        "equalised_both": lambda s: pool(equalised[s], weights, model.temperature),
    }
    result = {"model": model.name, "fitted_on": list(FIT_SOURCES),
              "pooled_temperature": round(pooled_t, 4),
              "disagreement_temperature": {"a": round(a, 3), "b": round(b, 3)},
              "candidates": {name: {s: row(read(s), labels[s]) for s in labels}
                             for name, read in candidates.items()}}
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
