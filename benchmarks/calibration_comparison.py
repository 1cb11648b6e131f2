"""Temperature against vector scaling on FER2013 `val`, each cross-fitted: fitted on one random
half and measured on the other, both ways, over several splits (lab/models/README.md, Calibration).

    python benchmarks/calibration_comparison.py [--model M.onnx] [--margins 0 0.2 1] [--splits 5]

Vector scaling (a scale and a bias per class) is not shipped; it lives only here, to compare.
Needs SciPy (installed with the test extra, through scikit-image).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from scipy.optimize import minimize

from screener.emotions.model import OnnxEmotionModel
from screener.emotions.temperature import apply_temperature
from screener.lab.calibration import fit_temperature, negative_log_likelihood
from screener.lab.evaluation import expected_calibration_error
from screener.lab.fer_data import load_split
from screener.settings import Settings


def _vector_scaled(log_p: np.ndarray, w: np.ndarray) -> np.ndarray:
    z = log_p * w[:7] + w[7:]
    z -= z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def fit_vector_scaling(log_p: np.ndarray, labels: np.ndarray) -> np.ndarray:
    def nll(w: np.ndarray) -> float:
        z = log_p * w[:7] + w[7:]
        z = z - z.max(axis=1, keepdims=True)
        return float((np.log(np.exp(z).sum(axis=1)) - z[np.arange(len(labels)), labels]).mean())

    return minimize(nll, np.r_[np.ones(7), np.zeros(7)], method="L-BFGS-B").x


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=Settings().model_path)
    parser.add_argument("--data", type=Path,
                        default=Path(__file__).resolve().parents[2] / "shared/datasets/fer2013")
    parser.add_argument("--margins", type=float, nargs="+", default=[0.0, 0.2, 1.0])
    parser.add_argument("--splits", type=int, default=5)
    args = parser.parse_args()
    val = load_split(args.data, "val")
    labels = val.labels
    for margin in args.margins:
        model = OnnxEmotionModel(args.model, flip_margin=margin, temperature=1.0)
        p = model.predict(val.images).astype(np.float64)
        log_p = np.log(np.maximum(p, 1e-12))
        rows: dict[str, list[tuple[float, float, float]]] = {"temperature": [], "vector": []}
        for seed in range(args.splits):
            order = np.random.default_rng(seed).permutation(len(labels))
            halves = (order[: len(order) // 2], order[len(order) // 2 :])
            by_t, by_v = np.empty_like(p), np.empty_like(p)
            for fit, test in (halves, halves[::-1]):
                by_t[test] = apply_temperature(p[test], fit_temperature(p[fit], labels[fit]))
                weights = fit_vector_scaling(log_p[fit], labels[fit])
                by_v[test] = _vector_scaled(log_p[test], weights)
            for name, q in (("temperature", by_t), ("vector", by_v)):
                rows[name].append((expected_calibration_error(q, labels),
                                   negative_log_likelihood(q, labels),
                                   float((q.argmax(axis=1) == labels).mean())))
        print(f"flip margin {margin:g}: raw ECE {expected_calibration_error(p, labels):.4f} "
              f"NLL {negative_log_likelihood(p, labels):.4f}; T fitted on all "
              f"{fit_temperature(p, labels):.4f}")
        for name, values in rows.items():
            v = np.array(values)
            print(f"  {name} cross-fitted, {args.splits} splits: ECE {v[:, 0].mean():.4f} "
                  f"(sd {v[:, 0].std():.4f}) NLL {v[:, 1].mean():.4f} "
                  f"accuracy {v[:, 2].mean():.4f}")


if __name__ == "__main__":
    main()
