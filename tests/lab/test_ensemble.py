"""Joining trained models into one ONNX file (screener/lab/ensemble.py) and `screener ensemble`."""

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from tests.conftest import banded_model, brightness_model, import_or_missing

import_or_missing("onnx", "tensorflow")  # the train extra

from screener.cli import app  # noqa: E402
from screener.domain import EMOTIONS  # noqa: E402
from screener.emotions.model import OnnxEmotionModel  # noqa: E402
from screener.lab.ensemble import EnsembleError, build_ensemble, join_models  # noqa: E402
from screener.lab.fer_data import load_split  # noqa: E402


def raw(path: Path, faces: np.ndarray) -> np.ndarray:
    return OnnxEmotionModel(path, temperature=1.0).predict(faces)


@pytest.fixture
def members(tmp_path: Path) -> list[Path]:
    """Two real models that disagree: bright faces are happy to one and angry to the other."""
    return [
        brightness_model(tmp_path / "bright.onnx", left_half=True),
        banded_model(tmp_path / "banded.onnx", dark="sad", mid="neutral", bright="angry",
                     band=0.1),
    ]


def test_the_joined_model_answers_the_mean_of_its_members(tmp_path, members):
    faces = np.random.default_rng(3).integers(0, 256, (40, 48, 48), dtype=np.uint8)
    faces[:10] = 230  # some near-certain answers, where the members disagree most
    faces[10:20, :, :24] = 10
    joined = join_models(members, tmp_path / "joined.onnx")
    assert [m.name for m in joined] == ["bright", "banded"]
    expected = (raw(members[0], faces) + raw(members[1], faces)) / 2
    got = raw(tmp_path / "joined.onnx", faces)
    assert np.abs(got - expected).max() < 1e-6
    assert np.abs(raw(members[0], faces) - raw(members[1], faces)).max() > 0.9


def test_three_members_are_averaged_with_equal_weights(tmp_path, members):
    third = banded_model(tmp_path / "third.onnx", dark="fear", mid="surprise", bright="happy")
    faces = np.random.default_rng(4).integers(0, 256, (30, 48, 48), dtype=np.uint8)
    join_models([*members, third], tmp_path / "three.onnx")
    expected = sum(raw(path, faces) for path in [*members, third]) / 3
    assert np.abs(raw(tmp_path / "three.onnx", faces) - expected).max() < 1e-6


def _grey(path: Path, value: int, left: int | None = None) -> None:
    image = np.full((48, 48), value, np.uint8)
    if left is not None:
        image[:, :24] = left
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), image)


@pytest.fixture
def faces_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "faces"
    for i, (label, value, left) in enumerate([
        ("happy", 230, None), ("happy", 230, 30), ("angry", 230, None), ("angry", 120, 230),
        ("sad", 10, None), ("sad", 20, None), ("neutral", 128, None), ("neutral", 140, 240),
    ]):
        _grey(folder / label / f"{i}.png", value, left)
    return folder


def test_an_ensemble_is_measured_calibrated_and_described_like_a_trained_model(
    tmp_path, members, faces_folder
):
    data = load_split(faces_folder, "val")
    out = tmp_path / "ens" / "joined.onnx"
    result = build_ensemble(members, out, data)

    def accuracy(probabilities: np.ndarray) -> float:
        return float((probabilities.argmax(axis=1) == data.labels).mean())

    alone = [accuracy(raw(path, data.images)) for path in members]
    assert result.member_accuracy == pytest.approx({"bright": alone[0], "banded": alone[1]})
    mean = (raw(members[0], data.images) + raw(members[1], data.images)) / 2
    assert result.accuracy_by_flip_margin[0.0] == pytest.approx(accuracy(mean))
    card = json.loads(out.with_suffix(".json").read_text())
    assert [m["name"] for m in card["members"]] == ["bright", "banded"]
    assert card["val_accuracy_by_flip_margin"]["0"] == pytest.approx(accuracy(mean), abs=1e-4)
    assert card["val_images"] == len(data.labels) == 8
    assert card["calibration"]["temperature"] > 0
    assert out.with_name("joined_confusion.png").is_file()
    assert out.with_name("joined_reliability.png").is_file()
    model = OnnxEmotionModel(out, flip_margin=card["flip_margin"])
    assert model.card.name == "joined"
    assert model.card.val_accuracy == pytest.approx(card["val_accuracy"])
    assert model.temperature == pytest.approx(card["calibration"]["temperature"])


@pytest.mark.parametrize("case", ["one", "same file twice", "out is a member", "missing"])
def test_members_that_cannot_make_an_ensemble_are_refused(tmp_path, members, case):
    chosen, out = {
        "one": ([members[0]], tmp_path / "e.onnx"),
        "same file twice": ([members[0], members[0].parent / "." / members[0].name],
                            tmp_path / "e.onnx"),
        "out is a member": (members, members[1]),
        "missing": ([members[0], tmp_path / "nowhere.onnx"], tmp_path / "e.onnx"),
    }[case]
    with pytest.raises(EnsembleError):
        join_models(chosen, out)
    assert not (tmp_path / "e.onnx").exists()


def test_a_model_that_is_not_a_seven_emotion_face_model_is_refused(tmp_path, members):
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("ReduceMean", ["faces"], ["probabilities"], axes=[2], keepdims=0)],
        "other",
        [helper.make_tensor_value_info("faces", TensorProto.FLOAT, [None, 48, 48, 1])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, [None, 48, 1])],
    )
    other = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    onnx.save(other, tmp_path / "other.onnx")
    (tmp_path / "text.onnx").write_text("not a model")
    for bad in ("other.onnx", "text.onnx"):
        with pytest.raises(EnsembleError, match=bad):
            join_models([members[0], tmp_path / bad], tmp_path / "e.onnx")


def test_the_ensemble_command_writes_a_model_scans_can_load(tmp_path, members, faces_folder):
    runner = CliRunner()
    out = tmp_path / "joined.onnx"
    result = runner.invoke(app, ["ensemble", *map(str, members), "--data", str(faces_folder),
                                 "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "member bright: val accuracy" in result.output
    assert "ensemble of 2: val accuracy" in result.output
    assert OnnxEmotionModel(out).predict(np.zeros((1, 48, 48), np.uint8)).shape == (1, 7)
    assert len(EMOTIONS) == 7

    refused = runner.invoke(app, ["ensemble", str(members[0]), "--data", str(faces_folder),
                                  "--out", str(tmp_path / "one.onnx")])
    assert refused.exit_code == 2
    assert "at least two models" in refused.output and "Traceback" not in refused.output
    wrong = runner.invoke(app, ["ensemble", *map(str, members), "--data", str(faces_folder),
                                "--out", str(tmp_path / "joined.keras")])
    assert wrong.exit_code == 2 and "must end in .onnx" in wrong.output


def test_zooms_for_unsure_faces_are_stored_and_measured_with_the_ensemble(
    tmp_path, members, faces_folder
):
    runner = CliRunner()
    out = tmp_path / "zoomed.onnx"
    result = runner.invoke(app, ["ensemble", *map(str, members), "--data", str(faces_folder),
                                 "--out", str(out), "--unsure-zooms", "1.1,0.9"])
    assert result.exit_code == 0, result.output
    card = json.loads(out.with_suffix(".json").read_text())
    assert card["unsure_zooms"] == [1.1, 0.9] and "zooms 1.1, 0.9" in card["description"]
    assert card["calibration"]["temperature"] > 0
    assert "+zoom1.1,0.9" in OnnxEmotionModel(out, flip_margin=0.2).name
    for bad in ("1.1,x", "3"):
        refused = runner.invoke(app, ["ensemble", *map(str, members), "--data",
                                      str(faces_folder), "--out", str(out),
                                      "--unsure-zooms", bad])
        assert refused.exit_code == 2 and "--unsure-zooms" in refused.output
