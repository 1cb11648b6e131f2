"""A calibration temperature applied to a model's output (fitted by the model lab,
`screener/lab/calibration.py`): softmax(log p / T) equals softmax(z / T) for the network's
logits z, so the graph's softmax output is enough."""

from __future__ import annotations

import numpy as np

TINY = 1e-12


def apply_temperature(probabilities: np.ndarray, temperature: float) -> np.ndarray:
    """Rescale each row's logits by 1/T and renormalise; T = 1 returns the input unchanged."""
    if temperature == 1.0 or len(probabilities) == 0:
        return probabilities
    logits = np.log(np.maximum(probabilities.astype(np.float64), TINY)) / temperature
    logits -= logits.max(axis=1, keepdims=True)
    scaled = np.exp(logits)
    return (scaled / scaled.sum(axis=1, keepdims=True)).astype(probabilities.dtype)
