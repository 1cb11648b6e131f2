"""How much of a session really showed each emotion, correcting for the model's known errors.

A classifier that is right two times in three pulls every session's label shares towards its
own average: a truly sad session reads partly neutral, a truly calm one partly sad. Counting
top labels ("classify and count") therefore under-reads negative sessions and over-reads calm
ones. The estimators here undo that with what the model is known to get wrong on labelled
faces (its `ErrorProfile`, measured on FER2013 `val`):

* `adjusted_count`: the observed label shares are the true mix seen through the confusion
  matrix, so solve for the mix (least squares on the simplex);
* `probabilistic_adjusted_count`: the same with the mean probabilities and the mean
  probability each true class receives (soft confusion): less noisy than hard labels;
* `em_priors`: Saerens, Latinne and Decaestecker (2002): reweight each face's posterior by
  new/training priors and re-estimate the priors until they settle.

`estimate_negative_share` is what scans use: the soft adjusted count, which
benchmarks/estimator_benchmark.py found the most accurate and unbiased (EM under-reads
negative sessions by 2-3 points; docs/benchmarks.md). Its interval is a bootstrap over blocks
of consecutive faces: neighbouring key frames show the same expression and share the model's
mistakes, so resampling faces one by one would claim far more certainty than the session
holds.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from screener.domain import EMOTIONS

_K = len(EMOTIONS)
_TINY = 1e-12

BLOCK_SECONDS = 30.0
"""Longest bootstrap block: longer than most expressions last. Of 10-60 s, 30 s gave the
measured coverage closest to the nominal 90% (docs/benchmarks.md)."""
MIN_BLOCKS = 8
"""A session is cut into at least this many blocks: a one-minute session in two 30-s blocks
can only be resampled three ways, and its interval held the truth in 64% of simulated
sessions; in 8 blocks, with the small-sample correction below, 80% (docs/benchmarks.md)."""
MIN_BLOCK_FACES = 3
ESTIMATOR_VERSION = 2
"""Part of a stored session's model version: a change to how the estimate or its interval is
made re-estimates stored sessions. 2: at least `MIN_BLOCKS` blocks, small-sample correction."""
BOOTSTRAP_REPLICATES = 400
INTERVAL = 0.90
SEED = 20_021
"""Fixed, so a session always gets the same interval."""


@dataclass(frozen=True)
class ErrorProfile:
    """What the model answers for faces of each true emotion, measured on labelled faces.

    `confusion[i, j]`: faces of true class i whose top label was j (counts). `mean_probabilities
    [i]`: the mean probability vector faces of true class i received, when recorded."""

    confusion: np.ndarray
    mean_probabilities: np.ndarray | None = None
    source: str = ""

    @property
    def priors(self) -> np.ndarray:
        """Class frequencies of the faces the profile (and the calibration) was measured on."""
        counts = self.confusion.sum(axis=1)
        return counts / counts.sum()

    @property
    def digest(self) -> str:
        """Short fingerprint of the numbers: stored sessions' estimates were made with one
        profile, and a new one (re-measured, or on other crops) means estimating them again."""
        numbers = [self.confusion] + ([self.mean_probabilities]
                                      if self.mean_probabilities is not None else [])
        hashed = hashlib.sha256()
        for array in numbers:
            hashed.update(np.ascontiguousarray(array, dtype=np.float64).tobytes())
        return hashed.hexdigest()[:8]

    @property
    def label_rates(self) -> np.ndarray:
        """P(top label j | true class i), rows summing to 1."""
        counts = self.confusion.sum(axis=1, keepdims=True)
        return self.confusion / np.maximum(counts, _TINY)

    @classmethod
    def for_model(cls, model_path: Path) -> ErrorProfile | None:
        """The profile recorded in the model's .json by scripts/record_error_profile.py, else
        the confusion matrix of its recorded `evaluation`, else None."""
        meta_path = model_path.with_suffix(".json")
        if not meta_path.is_file():
            return None
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        recorded = meta.get("error_profile") or {}
        confusion = recorded.get("confusion") or meta.get("evaluation", {}).get("confusion")
        if confusion is None:
            return None
        soft = recorded.get("mean_probabilities")
        return cls(
            confusion=np.asarray(confusion, dtype=np.float64),
            mean_probabilities=np.asarray(soft, dtype=np.float64) if soft else None,
            source=str(recorded.get("model", meta_path.name)),
        )

    @classmethod
    def measure(
        cls, probabilities: np.ndarray, labels: np.ndarray, source: str = ""
    ) -> ErrorProfile:
        """The profile of a model's `probabilities` on faces of known `labels`."""
        probabilities = np.asarray(probabilities, dtype=np.float64)
        labels = np.asarray(labels, dtype=np.int64)
        confusion = np.zeros((_K, _K))
        np.add.at(confusion, (labels, probabilities.argmax(axis=1)), 1)
        sums = np.zeros((_K, _K))
        np.add.at(sums, labels, probabilities)
        mean = sums / np.maximum(confusion.sum(axis=1, keepdims=True), 1)
        return cls(confusion=confusion, mean_probabilities=mean, source=source)


# --- estimators: (n, 7) probabilities -> the session's mix over the 7 emotions ------------------


def label_shares(probabilities: np.ndarray) -> np.ndarray:
    """Classify and count: the share of faces whose top label is each emotion (the raw share)."""
    if len(probabilities) == 0:
        return np.zeros(_K)
    return np.bincount(np.argmax(probabilities, axis=1), minlength=_K) / len(probabilities)


def adjusted_count(probabilities: np.ndarray, profile: ErrorProfile) -> np.ndarray:
    """The mix whose label shares, seen through the confusion matrix, best match the session's."""
    return simplex_least_squares(profile.label_rates, label_shares(probabilities)[None])[0]


def probabilistic_adjusted_count(probabilities: np.ndarray, profile: ErrorProfile) -> np.ndarray:
    """The mix whose expected mean probabilities best match the session's."""
    if profile.mean_probabilities is None:
        return adjusted_count(probabilities, profile)
    means = np.asarray(probabilities, dtype=np.float64).mean(axis=0, keepdims=True)
    return simplex_least_squares(profile.mean_probabilities, means)[0]


def em_priors(
    probabilities: np.ndarray, training_priors: np.ndarray, iterations: int = 300,
    tolerance: float = 1e-6,
) -> np.ndarray:
    """Saerens et al. (2002): the session's class priors that its reweighted posteriors imply."""
    posteriors = np.asarray(probabilities, dtype=np.float64)
    priors = training_priors.copy()
    for _ in range(iterations):
        weighted = posteriors * (priors / training_priors)
        weighted /= np.maximum(weighted.sum(axis=1, keepdims=True), _TINY)
        updated = weighted.mean(axis=0)
        converged = np.abs(updated - priors).max() < tolerance
        priors = updated
        if converged:
            break
    return priors


def reweighted(
    probabilities: np.ndarray, mix: np.ndarray, training_priors: np.ndarray
) -> np.ndarray:
    """Each face's posterior under the session's estimated mix instead of the training priors."""
    weighted = np.asarray(probabilities, dtype=np.float64) * (mix / training_priors)
    return weighted / np.maximum(weighted.sum(axis=1, keepdims=True), _TINY)


def simplex_least_squares(
    rates: np.ndarray, observed: np.ndarray, iterations: int = 2000, tolerance: float = 1e-10
) -> np.ndarray:
    """For each row q of `observed`, the p >= 0 with sum 1 minimising |rates^T p - q|^2.

    Accelerated projected gradient (FISTA), all rows at once, so a bootstrap's hundreds of
    solves cost one. The soft confusion matrix is poorly conditioned (disgust and angry look
    alike), so it takes a few hundred steps to settle to 1e-6."""
    a = np.asarray(rates, dtype=np.float64)
    gram, targets = a @ a.T, np.asarray(observed, dtype=np.float64) @ a.T
    step = 1.0 / np.linalg.eigvalsh(gram).max()
    p = np.full((len(targets), a.shape[0]), 1.0 / a.shape[0])
    z, t = p.copy(), 1.0
    for _ in range(iterations):
        p_next = project_to_simplex(z - step * (z @ gram - targets))
        t_next = (1.0 + np.sqrt(1.0 + 4.0 * t * t)) / 2.0
        z = p_next + ((t - 1.0) / t_next) * (p_next - p)
        settled = np.abs(p_next - p).max() < tolerance
        p, t = p_next, t_next
        if settled:
            break
    return p


def project_to_simplex(v: np.ndarray) -> np.ndarray:
    """Euclidean projection of each row onto {p >= 0, sum p = 1} (Duchi et al. 2008)."""
    u = -np.sort(-v, axis=1)
    cumulative = np.cumsum(u, axis=1) - 1.0
    ks = np.arange(1, v.shape[1] + 1)
    rho = (u - cumulative / ks > 0).sum(axis=1)
    theta = cumulative[np.arange(len(v)), rho - 1] / rho
    return np.maximum(v - theta[:, None], 0.0)


# --- the session estimate and its interval -----------------------------------------------------


@dataclass(frozen=True)
class ShareEstimate:
    """A session's estimated share of negative faces with its bootstrap interval."""

    share: float
    low: float
    high: float
    mix: tuple[float, ...]
    """The estimated share of each of the seven emotions."""


def estimate_negative_share(
    probabilities: np.ndarray,
    negative: Sequence[str],
    profile: ErrorProfile | None,
    block: int = int(BLOCK_SECONDS),
    replicates: int = BOOTSTRAP_REPLICATES,
    interval: float = INTERVAL,
    seed: int = SEED,
) -> ShareEstimate | None:
    """The corrected negative share of a session's faces, in time order; None without faces.

    The estimator is the soft adjusted count when the profile records mean probabilities (the
    most accurate in the benchmark, and unbiased), else the adjusted count of top labels.
    `block` is the longest block in faces (30 s at one face a second; shorter in a short
    session, `block_length`). Without a profile (a model with no
    recorded errors) nothing can be corrected: the raw label share is returned, still with its
    interval."""
    probabilities = np.asarray(probabilities, dtype=np.float64).reshape(-1, _K)
    if len(probabilities) == 0:
        return None
    columns = sorted(EMOTIONS.index(e) for e in negative)
    block = block_length(len(probabilities), block)
    mixes = bootstrap_mixes(probabilities, profile, block, replicates, seed)
    point = mixes[0]
    share = float(point[columns].sum())
    # The bootstrap spread of a mean over B blocks is (B-1)/B of its variance: widen it back.
    blocks = -(-len(probabilities) // block)
    widen = np.sqrt(blocks / (blocks - 1)) if blocks > 1 else 1.0
    shares = share + widen * (mixes[1:, columns].sum(axis=1) - share)
    tail = (1.0 - interval) / 2.0
    low, high = np.clip(np.quantile(shares, [tail, 1.0 - tail]), 0.0, 1.0)
    return ShareEstimate(
        share=share, low=float(min(low, share)), high=float(max(high, share)),
        mix=tuple(float(x) for x in point),
    )


def block_length(faces: int, longest: int) -> int:
    """Faces per bootstrap block: `longest`, shortened so that a short session still has
    `MIN_BLOCKS` blocks, but never below `MIN_BLOCK_FACES` (then fewer blocks)."""
    return max(1, min(longest, max(MIN_BLOCK_FACES, faces // MIN_BLOCKS)))


def bootstrap_mixes(
    probabilities: np.ndarray, profile: ErrorProfile | None, block: int, replicates: int,
    seed: int,
) -> np.ndarray:
    """Row 0: the mix estimated from the session; then one per block-bootstrap replicate.

    Blocks are consecutive runs of `block` faces (the last may be shorter); a replicate draws
    as many blocks as the session has, with replacement. The corrected estimators are linear
    maps of the session's mean label or probability vector followed by a projection, so each
    replicate only needs its blocks' sums."""
    n = len(probabilities)
    soft = profile is not None and profile.mean_probabilities is not None
    per_face = probabilities if soft else np.eye(_K)[np.argmax(probabilities, axis=1)]
    starts = np.arange(0, n, block)
    sums = np.add.reduceat(per_face, starts, axis=0)
    sizes = np.diff(np.append(starts, n)).astype(np.float64)
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, len(starts), size=(replicates, len(starts)))
    counts = np.zeros((replicates, len(starts)))
    np.add.at(counts, (np.repeat(np.arange(replicates), len(starts)), draws.ravel()), 1)
    means = np.vstack([per_face.mean(axis=0, keepdims=True),
                       (counts @ sums) / (counts @ sizes)[:, None]])
    if profile is None:
        return means
    rates = profile.mean_probabilities if soft else profile.label_rates
    return simplex_least_squares(rates, means)
