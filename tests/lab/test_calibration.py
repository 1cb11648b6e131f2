import json

import numpy as np
import pytest

from screener.emotions.temperature import apply_temperature
from screener.lab.calibration import (
    fit_calibration,
    fit_temperature,
    negative_log_likelihood,
    store_calibration,
)
from screener.lab.evaluation import expected_calibration_error


def softmax(logits: np.ndarray) -> np.ndarray:
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def overconfident(n: int = 4000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Labels drawn from softmax(z), reported as softmax(3 z): three times too sharp, so the
    right temperature is 3."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(0, 1.0, (n, 7))
    true = softmax(logits)
    labels = np.array([rng.choice(7, p=row) for row in true])
    return softmax(3.0 * logits).astype(np.float32), labels


def test_temperature_one_changes_nothing():
    probabilities, _ = overconfident(50)
    assert apply_temperature(probabilities, 1.0) is probabilities


def test_temperature_keeps_each_rows_likeliest_class_and_sums_to_one():
    probabilities, _ = overconfident(200)
    for temperature in (0.5, 2.0, 3.0):
        scaled = apply_temperature(probabilities, temperature)
        assert np.array_equal(scaled.argmax(axis=1), probabilities.argmax(axis=1))
        assert np.allclose(scaled.sum(axis=1), 1.0, atol=1e-5)
    flatter = apply_temperature(probabilities, 2.0)
    assert (flatter.max(axis=1) <= probabilities.max(axis=1) + 1e-6).all()


def test_temperature_of_softmax_probabilities_equals_dividing_the_logits():
    logits = np.array([[2.0, 0.5, -1.0, 0, 0, 0, 1.0]])
    assert np.allclose(apply_temperature(softmax(logits), 2.5), softmax(logits / 2.5), atol=1e-6)


def test_fitted_temperature_undoes_an_overconfident_model_and_lowers_ece():
    probabilities, labels = overconfident()
    temperature = fit_temperature(probabilities, labels)
    assert temperature == pytest.approx(3.0, rel=0.1)
    calibrated = apply_temperature(probabilities, temperature)
    assert negative_log_likelihood(calibrated, labels) < negative_log_likelihood(
        probabilities, labels
    )
    before = expected_calibration_error(probabilities, labels)
    after = expected_calibration_error(calibrated, labels)
    assert before > 0.15 and after < 0.04


def test_cross_fitted_ece_is_measured_on_halves_the_temperature_never_saw():
    probabilities, labels = overconfident()
    calibration = fit_calibration(probabilities, labels, flip_margin=0.2)
    assert calibration.images == len(labels)
    assert all(t == pytest.approx(3.0, rel=0.15) for t in calibration.cross_fitted_temperatures)
    assert calibration.ece_cross_fitted < calibration.ece_before / 3
    assert calibration.ece_after < calibration.ece_before / 3


def test_calibration_is_stored_beside_the_models_metrics(tmp_path):
    model = tmp_path / "m.onnx"
    model.with_suffix(".json").write_text(json.dumps({"name": "m", "val_accuracy": 0.5}))
    probabilities, labels = overconfident(500)
    store_calibration(model, fit_calibration(probabilities, labels, flip_margin=0.2))
    meta = json.loads(model.with_suffix(".json").read_text())
    assert meta["val_accuracy"] == 0.5
    assert meta["calibration"]["method"] == "temperature"
    assert meta["calibration"]["temperature"] > 1.5
    assert meta["calibration"]["flip_margin"] == 0.2


def test_a_per_face_temperature_is_fitted_where_one_temperature_cannot_fit_both_sources():
    """Two face sources: on one the pooled answer is three times too sharp, on the other
    twice too flat; how sure the members are tells them apart, so a per-face temperature fits
    both and one temperature fits neither."""
    from screener.emotions.joined import pool
    from screener.lab.calibration import fit_member_temperature

    rng = np.random.default_rng(4)
    sets = []
    for sharpness, spread in ((4.0, 2.0), (0.2, 0.8)):
        logits = rng.normal(0, 1.0, (3000, 7))
        labels = np.array([rng.choice(7, p=row) for row in softmax(logits)])
        first = softmax(sharpness * logits)
        second = softmax(spread * logits)
        sets.append(([first, second], labels))
    fitted = fit_member_temperature(sets, (1.0, 1.0), steps=1500)
    one = fit_temperature(np.vstack([pool(m, (1.0, 1.0)) for m, _ in sets]),
                          np.concatenate([y for _, y in sets]))
    for members, labels in sets:
        joined = pool(members, (1.0, 1.0))
        per_face = apply_temperature(joined, fitted.temperatures(members))
        assert expected_calibration_error(per_face, labels) < 0.06
        assert expected_calibration_error(per_face, labels) < \
            expected_calibration_error(apply_temperature(joined, one), labels)
        assert (per_face.argmax(axis=1) == joined.argmax(axis=1)).all()
