"""Two models read together: screener's network on the grey crop and OpenCV Zoo's on the
aligned colour crop, pooled with the weights the joined model's file names."""

import json
from pathlib import Path

import numpy as np
import pytest

from screener.domain import EMOTIONS
from screener.emotions.aligned import AlignedOnnxModel
from screener.emotions.joined import JoinedEmotionModel, load_emotion_model
from screener.emotions.model import ModelError, OnnxEmotionModel
from screener.faces import FaceTracker, make_detector
from screener.settings import FaceSettings

MODELS = Path(__file__).resolve().parents[2] / "models"
ZOO = MODELS.parent / "lab" / "models" / "fer_mobilefacenet" / "fer_mobilefacenet.onnx"
VGG = MODELS / "emotion_vgg.onnx"


def joined_file(tmp_path: Path, weights=(0.5, 0.5), temperature=1.0) -> Path:
    path = tmp_path / "joined.json"
    path.write_text(json.dumps({
        "name": "test_joined",
        "joined": [{"model": str(VGG), "weight": weights[0]},
                   {"model": str(ZOO), "input": "aligned112", "weight": weights[1]}],
        "calibration": {"temperature": temperature},
    }))
    return path


@pytest.fixture(scope="module")
def astronaut_face(astronaut):
    from screener.domain import Frame

    settings = FaceSettings(aligned_crop=True)
    frame = Frame(0.0, 0, astronaut, 0, 1.0)
    return FaceTracker(make_detector(settings), settings).faces(frame)[0]


def test_the_zoo_model_reads_the_smiling_astronaut_happy(astronaut_face):
    probabilities = AlignedOnnxModel(ZOO).predict([astronaut_face.aligned])
    assert probabilities.shape == (1, len(EMOTIONS))
    assert EMOTIONS[int(probabilities[0].argmax())] == "happy"
    assert probabilities.sum() == pytest.approx(1.0, abs=1e-5)


def test_the_zoo_models_own_class_order_is_mapped_to_screeners(tmp_path, astronaut_face):
    """Its record says its output order; read in FER2013's order, happy would be neutral."""
    relabelled = tmp_path / "zoo.onnx"
    relabelled.write_bytes(ZOO.read_bytes())
    labels = list(json.loads(ZOO.with_suffix(".json").read_text())["labels"])
    happy, neutral = labels.index("happy"), labels.index("neutral")
    labels[happy], labels[neutral] = "neutral", "happy"
    relabelled.with_suffix(".json").write_text(json.dumps({"labels": labels}))
    probabilities = AlignedOnnxModel(relabelled).predict([astronaut_face.aligned])
    assert EMOTIONS[int(probabilities[0].argmax())] == "neutral"


def test_a_face_without_an_aligned_crop_is_read_by_the_grey_member_alone(tmp_path,
                                                                         astronaut_face):
    joined = JoinedEmotionModel(joined_file(tmp_path))
    grey_only = OnnxEmotionModel(VGG).predict([astronaut_face.crop])
    both = joined.predict([astronaut_face.crop] * 2, [None, astronaut_face.aligned])
    assert np.allclose(both[0], grey_only[0])
    assert not np.allclose(both[1], grey_only[0])


def test_the_weights_decide_how_much_each_member_counts(tmp_path, astronaut_face):
    crops, aligned = [astronaut_face.crop], [astronaut_face.aligned]
    grey = OnnxEmotionModel(VGG).predict(crops)
    colour = AlignedOnnxModel(ZOO).predict(aligned)
    only_grey = JoinedEmotionModel(joined_file(tmp_path, (1.0, 0.0))).predict(crops, aligned)
    only_colour = JoinedEmotionModel(joined_file(tmp_path, (0.0, 1.0))).predict(crops, aligned)
    assert np.allclose(only_grey, grey, atol=1e-4)
    assert np.allclose(only_colour, colour, atol=1e-4)


def test_the_version_names_both_members_and_the_weights(tmp_path):
    name = JoinedEmotionModel(joined_file(tmp_path, (0.3, 0.7))).name
    assert name.startswith("test_joined@") and "emotion_vgg@" in name
    assert "fer_mobilefacenet@" in name and "w0.3:0.7" in name


def test_a_model_path_is_loaded_as_what_it_is(tmp_path):
    assert isinstance(load_emotion_model(VGG), OnnxEmotionModel)
    assert isinstance(load_emotion_model(joined_file(tmp_path)), JoinedEmotionModel)


def test_a_broken_joined_model_file_is_a_model_error(tmp_path):
    broken = tmp_path / "broken.json"
    broken.write_text('{"joined": [{"model": "emotion_vgg.onnx"}]}')
    with pytest.raises(ModelError, match="not a joined emotion model"):
        load_emotion_model(broken)
    with pytest.raises(ModelError, match="not found"):
        load_emotion_model(tmp_path / "missing.json")


def test_two_networks_that_read_grey_crops_are_averaged_in_log_space(tmp_path, astronaut_face):
    path = tmp_path / "two.json"
    path.write_text(json.dumps({"name": "two", "joined": [{"model": str(VGG)},
                                                         {"model": str(VGG)}]}))
    joined = JoinedEmotionModel(path).predict([astronaut_face.crop])
    assert np.allclose(joined, OnnxEmotionModel(VGG).predict([astronaut_face.crop]), atol=1e-4)


def test_the_shipped_model_is_a_joined_model_that_reads_faces_in_one_call(astronaut_face):
    from screener.settings import Settings

    settings = Settings()
    shipped = load_emotion_model(settings.model_path, flip_margin=settings.emotions.flip_margin)
    probabilities = shipped.predict([astronaut_face.crop], [astronaut_face.aligned])
    assert EMOTIONS[int(probabilities[0].argmax())] == "happy"
    assert shipped.card.val_accuracy is not None and shipped.card.val_accuracy >= 0.69


def test_only_a_model_that_reads_aligned_faces_makes_the_scan_cut_them(tmp_path):
    from dataclasses import replace

    from screener.scanning.analysis import Analyzer
    from screener.settings import Settings

    settings = Settings()
    assert not Analyzer.from_settings(settings).settings.faces.aligned_crop
    with_zoo = replace(settings.emotions, model_path=joined_file(tmp_path))
    assert Analyzer.from_settings(settings.replace(emotions=with_zoo)).settings.faces.aligned_crop


def grey_pair_file(tmp_path: Path, calibration: dict) -> Path:
    path = tmp_path / "pair.json"
    path.write_text(json.dumps({"name": "pair", "joined": [
        {"model": str(VGG)}, {"model": str(MODELS / "emotion_vgg_xd.onnx")}],
        "calibration": calibration}))
    return path


def test_a_per_face_temperature_rescales_each_face_by_its_members_and_keeps_its_emotion(
        tmp_path, astronaut_face):
    from screener.emotions.temperature import MemberTemperature, apply_temperature

    fitted = MemberTemperature(bias=0.1, disagreement=-0.9, confidence=(1.6, -1.9))
    path = grey_pair_file(tmp_path, fitted.record())
    crops = np.stack([astronaut_face.crop, astronaut_face.crop[::-1], astronaut_face.crop.T])
    model = JoinedEmotionModel(path)
    members = [member.predict(crops) for member, _, _ in model.members]
    raw = JoinedEmotionModel(path, temperature=1.0).predict(crops)
    got = model.predict(crops)
    temperatures = fitted.temperatures(members)
    assert len(set(np.round(temperatures, 4))) == 3, "each face gets its own temperature"
    assert np.allclose(got, apply_temperature(raw, temperatures), atol=1e-5)
    assert (got.argmax(axis=1) == raw.argmax(axis=1)).all()
    assert not np.allclose(got, raw, atol=1e-3)


@pytest.mark.parametrize("calibration, complaint", [
    ({"method": "member_temperature", "bias": 0.0}, "needs a bias"),
    ({"method": "member_temperature", "bias": 0.0, "disagreement": 0.0, "confidence": [1.0]},
     "one confidence per member"),
])
def test_a_per_face_temperature_that_does_not_fit_the_members_is_a_model_error(
        tmp_path, calibration, complaint):
    with pytest.raises(ModelError, match=complaint):
        JoinedEmotionModel(grey_pair_file(tmp_path, calibration))


def test_a_per_face_temperature_needs_members_that_read_every_face(tmp_path):
    path = joined_file(tmp_path)
    meta = json.loads(path.read_text())
    meta["calibration"] = {"method": "member_temperature", "bias": 0.0, "disagreement": 0.0,
                           "confidence": [0.0, 0.0]}
    path.write_text(json.dumps(meta))
    with pytest.raises(ModelError, match="every member reading grey48"):
        JoinedEmotionModel(path)


def test_the_shipped_model_is_calibrated_per_face_on_both_kinds_of_face():
    """One temperature fitted on FER2013 left it under-confident on web photographs; the
    shipped calibration was fitted on FER2013 `val` and web photographs both."""
    from screener.settings import Settings

    shipped = load_emotion_model(Settings().model_path)
    assert shipped.member_temperature is not None
    calibration = json.loads(Settings().model_path.read_text())["calibration"]
    assert "fer_val" in calibration["fitted_on"] and "wild_fit" in calibration["fitted_on"]
    assert calibration["ece_by_source"]["wild_held_out"] <= 0.05
