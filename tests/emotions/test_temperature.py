"""The calibration a scan applies: one temperature for all faces, or one per face."""

import numpy as np
import pytest

from screener.emotions.temperature import (
    MemberTemperature,
    apply_temperature,
    member_disagreement,
)


def probabilities(rows: int, seed: int = 0) -> np.ndarray:
    z = np.random.default_rng(seed).normal(0, 2, (rows, 7))
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return (e / e.sum(axis=1, keepdims=True)).astype(np.float32)


def test_a_temperature_per_face_equals_rescaling_each_face_alone():
    p = probabilities(5)
    temperatures = np.array([0.5, 1.0, 2.0, 0.8, 3.0])
    together = apply_temperature(p, temperatures)
    for row, t in enumerate(temperatures):
        assert np.allclose(together[row], apply_temperature(p[row:row + 1], float(t))[0],
                           atol=1e-6)
    assert (together.argmax(axis=1) == p.argmax(axis=1)).all()


def test_members_that_agree_do_not_disagree_and_members_with_nothing_in_common_do_fully():
    p = probabilities(4)
    assert np.allclose(member_disagreement([p, p]), 0.0, atol=1e-6)
    one_hot = np.eye(7)[[0, 1]]
    assert np.allclose(member_disagreement([one_hot, one_hot[::-1]]), 1.0)


def test_the_per_face_temperature_grows_with_the_members_confidence_its_coefficient_names():
    unsure, sure = np.full((1, 7), 1 / 7), np.eye(7)[[3]]
    fitted = MemberTemperature(bias=0.0, disagreement=0.0, confidence=(1.0, -1.0))
    first_sure = fitted.temperatures([sure, unsure])[0]
    second_sure = fitted.temperatures([unsure, sure])[0]
    assert first_sure > 1.0 > second_sure


def test_a_per_face_temperature_is_stored_and_read_back_alike():
    fitted = MemberTemperature(bias=-0.02, disagreement=-0.88, confidence=(1.65, -1.86))
    assert MemberTemperature.from_record(fitted.record()) == fitted
    with pytest.raises(ValueError, match="fitted for 2 members"):
        fitted.temperatures([probabilities(2)])
