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
negative sessions by 2-3 points; docs/benchmarks.md). Its 90% interval has four parts:

* a bootstrap over blocks of consecutive faces: neighbouring key frames show the same
  expression and share the model's mistakes, so resampling faces one by one would claim far
  more certainty than the session holds;
* the model's errors on faces unlike the ones a profile was measured on: the model's .json
  records a profile per face source (`error_profiles`: FER2013, the same faces blurred, dark,
  compressed or small, web photographs of other people), and each bootstrap replicate reads
  the session through one of them in turn, so the interval spans what they imply;
* the model's own reading, uncorrected (`OWN_READING`): the profiles encode how their
  labellers judge faces, and people who see fewer negative faces than any of them (left out of
  the fit, FER+'s ten voters per face) read a session closer to what the model itself says;
* a floor from the number of distinct expressions seen (`distinct_expressions`): a face that
  holds still is one observation however many key frames show it, so fifteen faces of one
  expression cannot give "0-0%".

benchmarks/source_coverage.py measures the interval's coverage on each face source with that
source's profile left out.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from screener.domain import EMOTIONS
from screener.session.error_profile import OWN_READING, ErrorProfile

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
ESTIMATOR_VERSION = 4
"""Part of a stored session's model version: a change to how the estimate or its interval is
made re-estimates stored sessions. 2: at least `MIN_BLOCKS` blocks, small-sample correction.
3: the interval spans the error profiles of several face sources and has a floor from the
number of distinct expressions. 4: the interval also spans the model's own reading."""
BOOTSTRAP_REPLICATES = 400
INTERVAL = 0.90
SEED = 20_021
"""Fixed, so a session always gets the same interval."""
EXPRESSION_CHANGE = 0.25
"""A face starts a new distinct expression when its top label differs from the current
expression's first face, or its probabilities moved this far from that face's (total variation
distance, half the summed absolute differences)."""
BETWEEN_SOURCES = 1.0
"""How far each replicate's source moves the estimate, as a multiple of the difference between
that source's estimate and the main profile's (1: as measured)."""


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


def interval_text(low: float, high: float) -> str:
    """The one way an interval is written, on pages, in the terminal and in trend sentences:
    'likely 25% to 52%'."""
    return f"likely {low:.0%} to {high:.0%}"


def estimate_negative_share(
    probabilities: np.ndarray,
    negative: Sequence[str],
    profile: ErrorProfile | None,
    block: int = int(BLOCK_SECONDS),
    replicates: int = BOOTSTRAP_REPLICATES,
    interval: float = INTERVAL,
    seed: int = SEED,
    between: float = BETWEEN_SOURCES,
    floor: bool = True,
) -> ShareEstimate | None:
    """The corrected negative share of a session's faces, in time order; None without faces.

    The estimator is the soft adjusted count when the profile records mean probabilities (the
    most accurate in the benchmark, and unbiased), else the adjusted count of top labels.
    `block` is the longest block in faces (30 s at one face a second; shorter in a short
    session, `block_length`). Without a profile (a model with no
    recorded errors) nothing can be corrected: the raw label share is returned, still with its
    interval.

    The interval (`source_spread`): from the lowest to the highest share the profiles
    (`profile`, its `others` and `OWN_READING`) imply, each end widened by the block
    bootstrap's tail, and no narrower than the floor `distinct_expressions` sets (`floor`)."""
    probabilities = np.asarray(probabilities, dtype=np.float64).reshape(-1, _K)
    if len(probabilities) == 0:
        return None
    columns = sorted(EMOTIONS.index(e) for e in negative)
    spread = source_spread(probabilities, columns, profile, block, replicates, seed)
    low, high = spread.interval(between, interval)
    if floor:
        least, most = wilson_interval(spread.share, distinct_expressions(probabilities),
                                      interval)
        low, high = min(low, least), max(high, most)
    return ShareEstimate(
        share=spread.share, low=float(min(low, spread.share)),
        high=float(max(high, spread.share)), mix=tuple(float(x) for x in spread.mix),
    )


@dataclass(frozen=True)
class SourceSpread:
    """What the interval is made of: the session's share under the main profile (`share`,
    `mix`), under each profile (`own`: the main one first), and each bootstrap replicate's
    departure from the share under the profile that read it (`departures`)."""

    share: float
    mix: np.ndarray
    own: np.ndarray
    departures: np.ndarray

    def interval(self, between: float = BETWEEN_SOURCES, interval: float = INTERVAL
                 ) -> tuple[float, float]:
        """From the lowest to the highest share the profiles imply (moved `between` times
        their difference from the main one), each end widened by the bootstrap's tail."""
        tail = (1.0 - interval) / 2.0
        shifted = self.share + between * (self.own - self.share)
        below, above = np.quantile(self.departures, [tail, 1.0 - tail])
        low = min(self.share, float(shifted.min())) + min(0.0, float(below))
        high = max(self.share, float(shifted.max())) + max(0.0, float(above))
        return float(np.clip(low, 0.0, 1.0)), float(np.clip(high, 0.0, 1.0))


def source_spread(
    probabilities: np.ndarray, columns: Sequence[int], profile: ErrorProfile | None,
    block: int = int(BLOCK_SECONDS), replicates: int = BOOTSTRAP_REPLICATES, seed: int = SEED,
    own_reading: bool = True,
) -> SourceSpread:
    """Replicate r resamples the session's blocks (`block_length`) and is read through
    profile r mod S of the S profiles (`profile`, then its `others`, then `OWN_READING` when
    `own_reading`; without a profile the own reading is the only one)."""
    probabilities = np.asarray(probabilities, dtype=np.float64).reshape(-1, _K)
    columns = list(columns)
    block = block_length(len(probabilities), block)
    profiles: list[ErrorProfile | None] = [None]
    if profile is not None:
        profiles = [profile, *profile.others, *([OWN_READING] if own_reading else [])]
    means = bootstrap_means(probabilities, profile, block, replicates, seed)
    which = np.arange(replicates) % len(profiles)
    # The bootstrap spread of a mean over B blocks is (B-1)/B of its variance: widen it back.
    blocks = -(-len(probabilities) // block)
    widen = np.sqrt(blocks / (blocks - 1)) if blocks > 1 else 1.0
    own, departures, mix = np.zeros(len(profiles)), np.zeros(replicates), np.zeros(_K)
    for number, other in enumerate(profiles):
        rows = np.flatnonzero(which == number)
        mixes = solve(np.vstack([means[:1], means[1:][rows]]), other)
        own[number] = mixes[0, columns].sum()
        departures[rows] = widen * (mixes[1:, columns].sum(axis=1) - own[number])
        if number == 0:
            mix = mixes[0]
    return SourceSpread(float(own[0]), mix, own, departures)


def distinct_expressions(probabilities: np.ndarray, change: float = EXPRESSION_CHANGE) -> int:
    """How many distinct expressions a session's faces (in time order) show: a face starts a
    new one when its top label differs from the current expression's first face, or when its
    probabilities moved more than `change` (total variation distance) from that face's. Faces
    that hold still are one observation of the model, however many key frames show them."""
    probabilities = np.asarray(probabilities, dtype=np.float64).reshape(-1, _K)
    count, anchor = 0, None
    for p in probabilities:
        if (anchor is None or p.argmax() != anchor.argmax()
                or 0.5 * np.abs(p - anchor).sum() > change):
            count, anchor = count + 1, p
    return count


def wilson_interval(share: float, observations: int, interval: float = INTERVAL
                    ) -> tuple[float, float]:
    """The Wilson score interval of a share seen in `observations` independent observations:
    how far `observations` distinct expressions can pin a share down, even if the model
    read each one right. Never narrower at 0% or 100% than a few observations allow."""
    if observations <= 0:
        return 0.0, 1.0
    z = float(_normal_quantile(0.5 + interval / 2.0))
    n, p = float(observations), min(max(share, 0.0), 1.0)
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def _normal_quantile(q: float) -> float:
    """The standard normal quantile, by bisection on erf (no SciPy at run time)."""
    from math import erf, sqrt

    low, high = -10.0, 10.0
    for _ in range(80):
        middle = (low + high) / 2
        if 0.5 * (1 + erf(middle / sqrt(2))) < q:
            low = middle
        else:
            high = middle
    return (low + high) / 2


def block_length(faces: int, longest: int) -> int:
    """Faces per bootstrap block: `longest`, shortened so that a short session still has
    `MIN_BLOCKS` blocks, but never below `MIN_BLOCK_FACES` (then fewer blocks)."""
    return max(1, min(longest, max(MIN_BLOCK_FACES, faces // MIN_BLOCKS)))


def bootstrap_means(
    probabilities: np.ndarray, profile: ErrorProfile | None, block: int, replicates: int,
    seed: int,
) -> np.ndarray:
    """Row 0: the session's mean probability vector (mean one-hot top label when the profile
    records no mean probabilities); then one per block-bootstrap replicate.

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
    return np.vstack([per_face.mean(axis=0, keepdims=True),
                      (counts @ sums) / (counts @ sizes)[:, None]])


def solve(means: np.ndarray, profile: ErrorProfile | None) -> np.ndarray:
    """The mix behind each row of mean vectors, read through `profile` (as is without one)."""
    if profile is None:
        return means
    return simplex_least_squares(profile.rates, means)


def bootstrap_mixes(
    probabilities: np.ndarray, profile: ErrorProfile | None, block: int, replicates: int,
    seed: int,
) -> np.ndarray:
    """Row 0: the mix estimated from the session; then one per block-bootstrap replicate,
    all read through `profile` alone."""
    return solve(bootstrap_means(probabilities, profile, block, replicates, seed), profile)
