"""The estimator benchmark's stand-in for a better model."""

import numpy as np

from benchmarks.estimator_benchmark import with_errors_fixed


def _answers(seed: int = 0, images: int = 2000, classes: int = 7):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, classes, images)
    probabilities = rng.dirichlet(np.ones(classes), images)
    right = rng.random(images) < 0.6
    probabilities[right, labels[right]] += 2.0  # the model is right on about 60%
    return probabilities / probabilities.sum(axis=1, keepdims=True), labels


def _accuracy(probabilities, labels):
    return float((probabilities.argmax(axis=1) == labels).mean())


def test_fixing_a_share_of_errors_raises_accuracy_by_that_share():
    probabilities, labels = _answers()
    before = _accuracy(probabilities, labels)
    fixed = with_errors_fixed(probabilities, labels, 0.5, seed=3)
    expected = before + 0.5 * (1 - before)
    assert abs(_accuracy(fixed, labels) - expected) < 0.03
    assert _accuracy(with_errors_fixed(probabilities, labels, 1.0, seed=3), labels) == 1.0


def test_rightly_read_images_keep_their_answers_and_fixed_ones_borrow_real_answers():
    probabilities, labels = _answers()
    right = probabilities.argmax(axis=1) == labels
    fixed = with_errors_fixed(probabilities, labels, 0.3, seed=5)
    assert np.array_equal(fixed[right], probabilities[right])
    changed = np.flatnonzero(np.any(fixed != probabilities, axis=1))
    assert len(changed) and not right[changed].any()
    donors = {tuple(row) for row in probabilities[right]}
    assert all(tuple(fixed[i]) in donors for i in changed)
    assert np.array_equal(fixed[changed].argmax(axis=1), labels[changed])


def test_nothing_changes_at_zero_and_the_input_is_not_modified():
    probabilities, labels = _answers()
    kept = probabilities.copy()
    assert np.array_equal(with_errors_fixed(probabilities, labels, 0.0, seed=1), kept)
    with_errors_fixed(probabilities, labels, 0.7, seed=1)
    assert np.array_equal(probabilities, kept)
