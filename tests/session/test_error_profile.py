"""A model's error profile: measured on labelled faces, recorded in its .json, read back with
the profiles of other face sources that the session's interval spans."""

import json

import numpy as np
import pytest

from screener.domain import EMOTIONS
from screener.session.error_profile import ErrorProfile
from screener.settings import Settings

K = len(EMOTIONS)
ANGRY, HAPPY, SAD = (EMOTIONS.index(e) for e in ("angry", "happy", "sad"))


def mostly_right_rates() -> np.ndarray:
    """A model right 60% of the time whose mistakes spread evenly (every row sums to 1)."""
    return 0.6 * np.eye(K) + 0.4 / K


def test_a_models_profile_falls_back_to_its_recorded_confusion(tmp_path):
    confusion = (mostly_right_rates() * 100).tolist()
    model = tmp_path / "m.onnx"
    model.with_suffix(".json").write_text(json.dumps({"evaluation": {"confusion": confusion}}))
    profile = ErrorProfile.for_model(model)
    assert profile.confusion.tolist() == confusion and profile.mean_probabilities is None
    assert profile.source == "m.json"
    recorded = {"error_profile": {"confusion": confusion, "model": "m@abc+flip0.2"},
                "evaluation": {"confusion": np.eye(K).tolist()}}
    model.with_suffix(".json").write_text(json.dumps(recorded))
    profile = ErrorProfile.for_model(model)
    assert profile.confusion.tolist() == confusion and profile.source == "m@abc+flip0.2"
    model.with_suffix(".json").write_text(json.dumps({"name": "m"}))
    assert ErrorProfile.for_model(model) is None
    assert ErrorProfile.for_model(tmp_path / "none.onnx") is None


def test_a_profile_is_measured_as_counts_of_top_labels_and_mean_probabilities_per_class():
    probabilities = np.array([
        [0.6, 0.0, 0.0, 0.0, 0.4, 0.0, 0.0],  # angry, read angry
        [0.2, 0.0, 0.0, 0.0, 0.8, 0.0, 0.0],  # angry, read sad
        [0.0, 0.0, 0.0, 0.0, 0.9, 0.0, 0.1],  # sad, read sad
    ])
    profile = ErrorProfile.measure(probabilities, np.array([ANGRY, ANGRY, SAD]), source="m")
    expected = np.zeros((K, K))
    expected[ANGRY, ANGRY] = expected[ANGRY, SAD] = expected[SAD, SAD] = 1
    assert profile.confusion.tolist() == expected.tolist()
    assert profile.mean_probabilities[ANGRY] == pytest.approx([0.4, 0, 0, 0, 0.6, 0, 0])
    assert profile.mean_probabilities[SAD] == pytest.approx(probabilities[2])
    assert profile.mean_probabilities[HAPPY].tolist() == [0.0] * K  # no happy face seen
    assert profile.source == "m"
    assert profile.priors[[ANGRY, SAD]] == pytest.approx([2 / 3, 1 / 3])


def test_a_model_json_with_source_profiles_gives_them_as_others_and_old_ones_still_load(tmp_path):
    rates = mostly_right_rates()
    main = {"confusion": (rates * 100).tolist(), "mean_probabilities": rates.tolist()}
    model = tmp_path / "m.onnx"
    model.with_suffix(".json").write_text(json.dumps({"error_profile": main}))
    old = ErrorProfile.for_model(model)
    assert old.others == () and old.mean_probabilities.tolist() == rates.tolist()
    few = np.eye(K) * 2  # a source with two faces of each class, all read right
    model.with_suffix(".json").write_text(json.dumps({"error_profile": main, "error_profiles": {
        "b": main, "a": {"confusion": few.tolist(), "mean_probabilities": np.eye(K).tolist()},
        "broken": "not a profile"}}))
    new = ErrorProfile.for_model(model)
    assert [o.source for o in new.others] == ["a", "b"]
    assert new.digest != old.digest
    # Two faces a class say little: the rows are pulled towards the pooled ones.
    assert 0.1 < new.others[0].mean_probabilities[SAD, SAD] < 0.95
    assert new.others[0].confusion.sum(axis=1) == pytest.approx([2.0] * K)


def test_the_shipped_model_records_profiles_of_several_face_sources():
    profile = ErrorProfile.for_model(Settings().model_path)
    assert profile is not None and profile.mean_probabilities is not None
    assert len(profile.others) >= 5
    assert "wild_held_out" not in {o.source for o in profile.others}
