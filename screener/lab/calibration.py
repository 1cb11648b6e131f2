"""Temperature scaling (Guo et al. 2017): probabilities that mean what they say.

A network trained with cross-entropy is usually over- or under-confident; dividing its
logits by one fitted temperature fixes most of that without changing any face's likeliest
emotion, so accuracy is untouched. The exported graph ends in a softmax, so the logits are
recovered as log-probabilities: softmax(log p / T) equals softmax(z / T) for the network's
logits z.

The temperature is applied to what a scan outputs, after flip averaging, and fitted on those
same outputs: which faces are mirrored is decided on the raw probabilities, so calibration
changes neither that choice nor any prediction.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from screener.emotions.joined import pool
from screener.emotions.temperature import (
    TINY,
    MemberTemperature,
    apply_temperature,
    member_features,
)

_BETA_RANGE = (0.05, 20.0)
"""Search range of 1/T: from ten times flatter to twenty times sharper."""


def negative_log_likelihood(probabilities: np.ndarray, labels: np.ndarray) -> float:
    chosen = probabilities[np.arange(len(labels)), labels]
    return float(-np.log(np.maximum(chosen, TINY)).mean())


def fit_temperature(probabilities: np.ndarray, labels: np.ndarray) -> float:
    """The temperature that minimises the negative log-likelihood of `labels`.

    The NLL is convex in 1/T, so a golden-section search on 1/T finds its minimum without an
    optimisation library."""
    log_p = np.log(np.maximum(np.asarray(probabilities, np.float64), TINY))
    labels = np.asarray(labels, dtype=np.int64)

    def nll(beta: float) -> float:
        z = log_p * beta
        z -= z.max(axis=1, keepdims=True)
        log_norm = np.log(np.exp(z).sum(axis=1))
        return float((log_norm - z[np.arange(len(labels)), labels]).mean())

    golden = (np.sqrt(5.0) - 1.0) / 2.0
    low, high = _BETA_RANGE
    a, b = high - golden * (high - low), low + golden * (high - low)
    nll_a, nll_b = nll(a), nll(b)
    while high - low > 1e-5:
        if nll_a < nll_b:
            high, b, nll_b = b, a, nll_a
            a = high - golden * (high - low)
            nll_a = nll(a)
        else:
            low, a, nll_a = a, b, nll_b
            b = low + golden * (high - low)
            nll_b = nll(b)
    return float(1.0 / ((low + high) / 2.0))


@dataclass(frozen=True)
class Calibration:
    """A fitted temperature and the evidence for it, as stored in the model's .json."""

    temperature: float
    flip_margin: float
    images: int
    ece_before: float
    ece_after: float
    """On all the fitting images with the temperature fitted on them (optimistic)."""
    ece_cross_fitted: float
    """Each half calibrated by the temperature fitted on the other half: the honest figure."""
    cross_fitted_temperatures: tuple[float, float]
    fitted_on: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": "temperature",
            "temperature": round(self.temperature, 4),
            "flip_margin": self.flip_margin,
            "images": self.images,
            "fitted_on": self.fitted_on,
            "ece_before": round(self.ece_before, 4),
            "ece_after": round(self.ece_after, 4),
            "ece_cross_fitted": round(self.ece_cross_fitted, 4),
            "cross_fitted_temperatures": [round(t, 4) for t in self.cross_fitted_temperatures],
        }


def fit_calibration(
    probabilities: np.ndarray,
    labels: np.ndarray,
    flip_margin: float,
    fitted_on: str = "FER2013 val",
    seed: int = 0,
) -> Calibration:
    """Fit a temperature on all the images, and measure by 2-fold cross-fitting what it is
    worth on images it was not fitted on (the ECE of one fit on its own data flatters it)."""
    from screener.lab.evaluation import expected_calibration_error  # evaluation imports emotions

    labels = np.asarray(labels, dtype=np.int64)
    order = np.random.default_rng(seed).permutation(len(labels))
    halves = (order[: len(order) // 2], order[len(order) // 2 :])
    cross = np.empty_like(probabilities)
    temperatures = []
    for fit_rows, test_rows in (halves, halves[::-1]):
        temperature = fit_temperature(probabilities[fit_rows], labels[fit_rows])
        temperatures.append(temperature)
        cross[test_rows] = apply_temperature(probabilities[test_rows], temperature)
    temperature = fit_temperature(probabilities, labels)
    return Calibration(
        temperature=temperature,
        flip_margin=flip_margin,
        images=len(labels),
        ece_before=expected_calibration_error(probabilities, labels),
        ece_after=expected_calibration_error(apply_temperature(probabilities, temperature), labels),
        ece_cross_fitted=expected_calibration_error(cross, labels),
        cross_fitted_temperatures=(temperatures[0], temperatures[1]),
        fitted_on=fitted_on,
    )


def store_calibration(model_path: Path, calibration: Calibration) -> None:
    """Write the calibration into the model's .json, where `OnnxEmotionModel` reads it."""
    meta_path = model_path.with_suffix(".json")
    meta = json.loads(meta_path.read_text(encoding="utf-8")) if meta_path.is_file() else {}
    meta["calibration"] = calibration.to_dict()
    meta_path.write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")


def fit_member_temperature(
    sets: Sequence[tuple[Sequence[np.ndarray], np.ndarray]],
    weights: Sequence[float],
    steps: int = 3000,
) -> MemberTemperature:
    """The per-face temperature of a joined model (`MemberTemperature`) that minimises the
    negative log-likelihood, each set of faces weighing alike whatever its size, so that
    neither face source decides alone how sure the model should sound.

    `sets`: (each member's probabilities, labels) per face source. Four coefficients and a
    few thousand faces need no optimisation library: full-batch Adam, from T = 1."""
    prepared = []
    for members, labels in sets:
        logs = np.log(np.maximum(pool(members, weights), TINY))
        prepared.append((member_features(members), logs, np.asarray(labels, np.int64)))
    w = np.zeros(prepared[0][0].shape[1])
    first, second = np.zeros_like(w), np.zeros_like(w)
    for step in range(1, steps + 1):
        gradient = np.zeros_like(w)
        for features, logs, labels in prepared:
            scaled = logs / np.exp(features @ w)[:, None]
            p = np.exp(scaled - scaled.max(axis=1, keepdims=True))
            p /= p.sum(axis=1, keepdims=True)
            # d NLL / d log T for each face: the scaled logit of the true class minus its mean
            slope = scaled[np.arange(len(labels)), labels] - (p * scaled).sum(axis=1)
            gradient += features.T @ slope / len(labels)
        gradient /= len(prepared)
        first = 0.9 * first + 0.1 * gradient
        second = 0.999 * second + 0.001 * gradient**2
        w -= 0.02 * (first / (1 - 0.9**step)) / (np.sqrt(second / (1 - 0.999**step)) + 1e-8)
    return MemberTemperature(bias=float(w[0]), disagreement=float(w[1]),
                             confidence=tuple(float(c) for c in w[2:]))
