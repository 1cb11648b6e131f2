"""Calibration applied to a model's output (fitted by the model lab,
`screener/lab/calibration.py`): softmax(log p / T) equals softmax(z / T) for the network's
logits z, so the graph's softmax output is enough.

A joined model can carry a temperature per face instead of one for all (`MemberTemperature`):
one temperature fitted on FER2013 left it right 76% of the time on web photographs while it
said 62%, because how sure the pooled answer should be depends on which member is sure. Any
positive temperature keeps each face's likeliest emotion, so accuracy is untouched.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import combinations
from typing import Any

import numpy as np

TINY = 1e-12


def apply_temperature(probabilities: np.ndarray, temperature: float | np.ndarray) -> np.ndarray:
    """Rescale each row's logits by 1/T (one T, or one per row) and renormalise; T = 1 returns
    the input unchanged."""
    if len(probabilities) == 0 or (np.isscalar(temperature) and temperature == 1.0):
        return probabilities
    divisor = np.reshape(np.asarray(temperature, np.float64), (-1, 1))
    logits = np.log(np.maximum(probabilities.astype(np.float64), TINY)) / divisor
    logits -= logits.max(axis=1, keepdims=True)
    scaled = np.exp(logits)
    return (scaled / scaled.sum(axis=1, keepdims=True)).astype(probabilities.dtype)


def member_disagreement(members: Sequence[np.ndarray]) -> np.ndarray:
    """How far the members' readings of each face are apart: 1 - their Bhattacharyya
    affinity, averaged over pairs (0: identical, 1: no emotion in common)."""
    pairs = [1.0 - np.sqrt(np.maximum(a * b, 0.0)).sum(axis=1)
             for a, b in combinations(members, 2)]
    return np.mean(pairs, axis=0)


@dataclass(frozen=True)
class MemberTemperature:
    """T = exp(bias + disagreement * d + sum_k confidence[k] * max p_k): d is the members'
    `member_disagreement`, max p_k member k's own top probability."""

    bias: float
    disagreement: float
    confidence: tuple[float, ...]

    METHOD = "member_temperature"

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> MemberTemperature:
        return cls(bias=float(record["bias"]), disagreement=float(record["disagreement"]),
                   confidence=tuple(float(c) for c in record["confidence"]))

    def temperatures(self, members: Sequence[np.ndarray]) -> np.ndarray:
        if len(members) != len(self.confidence):
            raise ValueError(f"fitted for {len(self.confidence)} members, given {len(members)}")
        weights = np.array([self.bias, self.disagreement, *self.confidence])
        return np.exp(member_features(members) @ weights)

    def record(self) -> dict[str, Any]:
        return {"method": self.METHOD, "bias": round(self.bias, 4),
                "disagreement": round(self.disagreement, 4),
                "confidence": [round(c, 4) for c in self.confidence]}


def member_features(members: Sequence[np.ndarray]) -> np.ndarray:
    """One row per face: 1, the members' disagreement, each member's top probability."""
    count = len(members[0])
    return np.column_stack([np.ones(count), member_disagreement(members),
                            *[np.asarray(m, np.float64).max(axis=1) for m in members]])
