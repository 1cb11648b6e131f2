import json

import cv2
import numpy as np
import pytest

from screener.domain import EMOTIONS
from screener.lab.evaluation import draw_confusion, evaluate_predictions

ANGRY, DISGUST, FEAR, HAPPY, SAD, SURPRISE, NEUTRAL = range(7)

# Worked on paper (rows true, columns predicted):
#   angry:   3 true -> 2 angry, 1 happy
#   happy:   4 true -> 4 happy
#   neutral: 3 true -> 2 neutral, 1 angry
LABELS = [ANGRY] * 3 + [HAPPY] * 4 + [NEUTRAL] * 3
PREDICTED = [ANGRY, ANGRY, HAPPY, HAPPY, HAPPY, HAPPY, HAPPY, NEUTRAL, ANGRY, NEUTRAL]


def test_accuracy_precision_recall_f1_and_confusion_by_hand():
    ev = evaluate_predictions(np.array(LABELS), np.array(PREDICTED))
    assert ev.count == 10
    assert ev.accuracy == pytest.approx(8 / 10)
    expected_confusion = [[0] * 7 for _ in range(7)]
    expected_confusion[ANGRY][ANGRY] = 2
    expected_confusion[ANGRY][HAPPY] = 1
    expected_confusion[HAPPY][HAPPY] = 4
    expected_confusion[NEUTRAL][NEUTRAL] = 2
    expected_confusion[NEUTRAL][ANGRY] = 1
    assert ev.confusion == expected_confusion

    angry = ev.per_class["angry"]  # tp 2, predicted 3, actual 3
    assert (angry.precision, angry.recall, angry.f1) == pytest.approx((2 / 3, 2 / 3, 2 / 3))
    assert angry.support == 3
    happy = ev.per_class["happy"]  # tp 4, predicted 5, actual 4
    assert (happy.precision, happy.recall) == pytest.approx((0.8, 1.0))
    assert happy.f1 == pytest.approx(2 * 0.8 * 1.0 / 1.8)
    assert happy.support == 4
    neutral = ev.per_class["neutral"]  # tp 2, predicted 2, actual 3
    assert (neutral.precision, neutral.recall, neutral.f1) == pytest.approx((1.0, 2 / 3, 0.8))
    assert neutral.support == 3


def test_classes_absent_from_the_data_get_zeros():
    ev = evaluate_predictions(np.array(LABELS), np.array(PREDICTED))
    for name in ("disgust", "fear", "sad", "surprise"):
        m = ev.per_class[name]
        assert (m.precision, m.recall, m.f1, m.support) == (0.0, 0.0, 0.0, 0)
    assert list(ev.per_class) == list(EMOTIONS)


def test_a_class_only_predicted_has_zero_precision_and_support():
    ev = evaluate_predictions(np.array([SAD, SAD]), np.array([SURPRISE, SAD]))
    assert ev.accuracy == 0.5
    surprise = ev.per_class["surprise"]
    assert (surprise.precision, surprise.recall, surprise.f1, surprise.support) == (0, 0, 0, 0)
    sad = ev.per_class["sad"]  # tp 1, predicted 1, actual 2
    assert (sad.precision, sad.recall) == (1.0, 0.5)
    assert sad.f1 == pytest.approx(2 * 0.5 / 1.5)
    assert sad.support == 2


def test_perfect_predictions():
    labels = np.arange(7).repeat(2)
    ev = evaluate_predictions(labels, labels.copy())
    assert ev.accuracy == 1.0
    assert ev.confusion == (np.eye(7, dtype=int) * 2).tolist()
    assert all((m.precision, m.recall, m.f1, m.support) == (1, 1, 1, 2)
               for m in ev.per_class.values())


def test_no_data_gives_zero_accuracy():
    ev = evaluate_predictions(np.array([], dtype=int), np.array([], dtype=int))
    assert (ev.accuracy, ev.count) == (0.0, 0)
    assert all(sum(row) == 0 for row in ev.confusion)


def test_to_dict_is_json_ready():
    ev = evaluate_predictions(np.array(LABELS), np.array(PREDICTED))
    data = json.loads(json.dumps(ev.to_dict()))
    assert data["accuracy"] == pytest.approx(0.8)
    assert data["count"] == 10
    assert data["classes"] == list(EMOTIONS)
    assert data["per_class"]["happy"]["precision"] == pytest.approx(0.8)
    assert data["per_class"]["happy"]["support"] == 4
    assert data["confusion"][ANGRY][HAPPY] == 1


def test_draw_confusion_writes_a_readable_png(tmp_path):
    ev = evaluate_predictions(np.array(LABELS), np.array(PREDICTED))
    path = tmp_path / "nested" / "confusion.png"
    draw_confusion(ev, path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    image = cv2.imread(str(path))
    assert image is not None
    height, width, channels = image.shape
    assert channels == 3
    assert 7 * 40 <= height <= 2000 and 7 * 40 <= width <= 2000
    assert (image < 200).any() and (image == 255).all(axis=2).any()  # ink on a white page


def test_draw_confusion_depends_on_the_evaluation(tmp_path):
    labels = np.arange(7).repeat(3)
    right = evaluate_predictions(labels, labels.copy())
    wrong = evaluate_predictions(labels, (labels + 1) % 7)
    draw_confusion(right, tmp_path / "right.png")
    draw_confusion(wrong, tmp_path / "wrong.png")
    a, b = cv2.imread(str(tmp_path / "right.png")), cv2.imread(str(tmp_path / "wrong.png"))
    assert a.shape == b.shape
    assert not np.array_equal(a, b)


def test_expected_calibration_error_by_hand():
    from screener.lab.evaluation import expected_calibration_error, reliability

    # confidences 0.9, 0.9 (bin 14/15..1], one right, one wrong) and 0.5, 0.5, 0.5, 0.5
    # (bin (7/15, 8/15], three right): |0.5 - 0.9| * 2/6 + |0.75 - 0.5| * 4/6 = 0.3
    def row(top: int, confidence: float) -> list[float]:
        rest = (1 - confidence) / 6
        return [confidence if i == top else rest for i in range(7)]

    probabilities = np.array([row(HAPPY, 0.9), row(HAPPY, 0.9)] + [row(SAD, 0.5)] * 4)
    labels = np.array([HAPPY, ANGRY, SAD, SAD, SAD, NEUTRAL])
    assert expected_calibration_error(probabilities, labels) == pytest.approx(0.3)
    bins = reliability(probabilities, labels)
    assert len(bins) == 15
    assert bins[13] == pytest.approx((0.9, 0.5, 2))
    assert bins[7] == pytest.approx((0.5, 0.75, 4))
    assert sum(count for _, _, count in bins) == 6


def test_a_confidence_on_a_bin_edge_falls_in_the_lower_bin():
    from screener.lab.evaluation import reliability

    probabilities = np.full((1, 7), (1 - 2 / 3) / 6)
    probabilities[0, 0] = 2 / 3  # the upper edge of bin (9/15, 10/15]
    assert reliability(probabilities, np.array([ANGRY]))[9][2] == 1


def test_evaluating_probabilities_adds_the_ece_to_the_metrics():
    from screener.lab.evaluation import evaluate_probabilities

    probabilities = np.eye(7)[PREDICTED]
    ev = evaluate_probabilities(np.array(LABELS), probabilities)
    assert ev.accuracy == pytest.approx(0.8)
    assert ev.ece == pytest.approx(0.2)  # all certain, 80% right
    assert ev.to_dict()["ece"] == pytest.approx(0.2)
    assert "ece" not in evaluate_predictions(np.array(LABELS), np.array(PREDICTED)).to_dict()


def test_reliability_diagram_is_a_png(tmp_path):
    from screener.lab.evaluation import draw_reliability

    rng = np.random.default_rng(0)
    probabilities = rng.dirichlet(np.ones(7), 100)
    labels = rng.integers(0, 7, 100)
    path = tmp_path / "out" / "reliability.png"
    draw_reliability({"a": (probabilities, labels), "b": (probabilities ** 2, labels)}, path)
    image = cv2.imread(str(path))
    assert image is not None and image.shape[0] > 400
