"""int8 models (screener/lab/quantization.py) and `screener ensemble --int8`."""

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from tests.conftest import conv_model, import_or_missing

onnx = import_or_missing("onnx", "tensorflow")  # the train extra

from screener.cli import app  # noqa: E402
from screener.emotions.model import OnnxEmotionModel, preprocess  # noqa: E402
from screener.lab.quantization import calibration_faces, quantize_int8  # noqa: E402


def faces(count: int, seed: int) -> np.ndarray:
    """Smooth random pictures, so the convolution sees structure and not only noise."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (count, 6, 6)).astype(np.float32)
    return np.stack([cv2.resize(f, (48, 48)) for f in small]).clip(0, 255).astype(np.uint8)


def raw(path: Path, images: np.ndarray) -> np.ndarray:
    return OnnxEmotionModel(path, temperature=1.0).predict(images)


def test_an_int8_model_answers_as_its_float_model_does_in_integer_arithmetic(tmp_path):
    float_model = conv_model(tmp_path / "float.onnx")
    int8_model = conv_model(tmp_path / "int8.onnx")
    quantize_int8(int8_model, preprocess(faces(200, seed=1)))

    graph = onnx.load(str(int8_model)).graph
    ops = {node.op_type for node in graph.node}
    assert {"QuantizeLinear", "DequantizeLinear", "Conv"} <= ops and ops & {"MatMul", "Gemm"}
    weights = {t.name: t for t in graph.initializer}
    int8_weights = [t for t in weights.values() if t.data_type == onnx.TensorProto.INT8]
    assert int8_weights and max(len(t.dims) for t in int8_weights) == 4  # the conv kernels
    kernels = onnx.numpy_helper.to_array(max(int8_weights, key=lambda t: len(t.dims)))
    assert np.abs(kernels).max() <= 64  # 7-bit weights: the same answers with or without VNNI

    test = faces(300, seed=2)
    exact, quantized = raw(float_model, test), raw(int8_model, test)
    assert exact.std(axis=0).max() > 0.05  # the model does tell these faces apart
    assert np.abs(quantized - exact).max() < 0.05
    assert (quantized.argmax(axis=1) == exact.argmax(axis=1)).mean() >= 0.95
    assert not np.array_equal(quantized, exact)
    # The probabilities themselves stay float, not in steps of 1/255.
    steps = np.round(quantized * 255, 3)
    assert not np.allclose(steps, np.round(steps))


def test_calibration_faces_are_a_fixed_preprocessed_sample():
    images = faces(1000, seed=3)
    first, again = calibration_faces(images, 50), calibration_faces(images, 50)
    assert first.shape == (50, 48, 48, 1) and np.array_equal(first, again)
    assert first.min() >= -1.0 and first.max() <= 1.0
    assert len(calibration_faces(images[:20], 50)) == 20  # a small data set gives all it has
    # A model that reads equalised faces has its int8 ranges set on equalised faces.
    equalised = calibration_faces(images, 50, equalised=True)
    sample = np.round((first[..., 0] + 1.0) * 127.5).astype(np.uint8)
    expected = np.stack([cv2.equalizeHist(face) for face in sample])
    assert np.allclose(equalised[..., 0], expected / 127.5 - 1.0, atol=1e-6)
    with pytest.raises(ValueError, match="at least one face"):
        quantize_int8(Path("unused.onnx"), np.zeros((0, 48, 48, 1), np.float32))


def _faces_folder(root: Path) -> Path:
    for split, seed in (("train", 4), ("val", 5)):
        for i, image in enumerate(faces(60, seed)):
            label = ("happy", "sad", "angry", "neutral")[i % 4]
            (root / split / label).mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(root / split / label / f"{i}.png"), image)
    return root


def test_the_ensemble_command_builds_an_int8_ensemble_and_says_so(tmp_path):
    members = [conv_model(tmp_path / "a.onnx", seed=5), conv_model(tmp_path / "b.onnx", seed=6)]
    data = _faces_folder(tmp_path / "fer")
    runner = CliRunner()
    for name, extra in (("float", []), ("int8", ["--int8"])):
        result = runner.invoke(app, ["ensemble", *map(str, members), "--data", str(data),
                                     "--out", str(tmp_path / f"{name}.onnx"), *extra])
        assert result.exit_code == 0 and "Traceback" not in result.output, result.output
    assert "quantizing them to int8 on 60 train faces" in result.output
    assert "ensemble of 2 in int8: val accuracy" in result.output
    card = json.loads((tmp_path / "int8.json").read_text())
    assert card["quantization"]["calibration"] == "60 FER2013 train faces"
    assert "reduce_range" in card["quantization"]["scheme"]
    assert "run in int8" in card["description"]
    assert "quantization" not in json.loads((tmp_path / "float.json").read_text())
    test = faces(100, seed=7)
    assert np.abs(raw(tmp_path / "int8.onnx", test) - raw(tmp_path / "float.onnx", test)).max() \
        < 0.05


def test_the_quantize_command_keeps_the_training_record_and_measures_the_int8_model(tmp_path):
    trained = conv_model(tmp_path / "trained.onnx", seed=8)
    record = {"name": "trained", "architecture": "a test network", "parameters": 1234,
              "settings": {"epochs": 3}, "val_accuracy": 0.99, "flip_margin": 0.2,
              "calibration": {"temperature": 9.0}, "error_profile": {"model": "trained"},
              "equalise": True,
              "description": "a test network trained by screener; accuracy 99.0% on val"}
    trained.with_suffix(".json").write_text(json.dumps(record))
    data = _faces_folder(tmp_path / "fer")
    out = tmp_path / "int8" / "small.onnx"
    out.parent.mkdir()
    result = CliRunner().invoke(app, ["quantize", str(trained), "--data", str(data),
                                      "--out", str(out)])
    assert result.exit_code == 0 and "Traceback" not in result.output, result.output
    assert "int8: val accuracy" in result.output and "(float32: 0.9900)" in result.output

    card = json.loads(out.with_suffix(".json").read_text())
    assert card["name"] == "small"
    assert (card["architecture"], card["parameters"], card["settings"]) == (
        "a test network", 1234, {"epochs": 3})
    assert card["quantization"]["calibration"] == "60 FER2013 train faces"
    assert card["quantized_from"] == {"model": "trained.onnx", "val_accuracy": 0.99}
    assert card["equalise"] is True  # the int8 model reads faces as its float model did
    # What described the float model's answers is measured again on the int8 one.
    assert card["val_accuracy"] == round(card["evaluation"]["accuracy"], 4) != 0.99
    assert card["calibration"]["temperature"] != 9.0 and "error_profile" not in card
    assert card["description"].startswith("a test network trained by screener, run in int8;")
    assert (tmp_path / "int8" / "small_confusion.png").is_file()
    assert (tmp_path / "int8" / "small_reliability.png").is_file()

    graph_ops = {node.op_type for node in onnx.load(str(out)).graph.node}
    assert "QuantizeLinear" in graph_ops
    test = faces(100, seed=9)
    assert np.abs(raw(out, test) - raw(trained, test)).max() < 0.05
    assert json.loads(trained.with_suffix(".json").read_text()) == record  # left as it was


@pytest.mark.parametrize("case", ["same file", "already int8", "not onnx", "no model"])
def test_the_quantize_command_refuses_what_it_cannot_do_in_a_sentence(tmp_path, case):
    trained = conv_model(tmp_path / "trained.onnx", seed=8)
    out = tmp_path / "out.onnx"
    if case == "same file":
        out = trained
    elif case == "already int8":
        trained.with_suffix(".json").write_text(json.dumps({"quantization": {"scheme": "x"}}))
    elif case == "not onnx":
        out = tmp_path / "out.keras"
    else:
        trained = tmp_path / "missing.onnx"
    data = _faces_folder(tmp_path / "fer")
    result = CliRunner().invoke(app, ["quantize", str(trained), "--data", str(data),
                                      "--out", str(out)])
    assert result.exit_code != 0 and "Traceback" not in result.output
    expected = {"same file": "must be a new file", "already int8": "already runs in int8",
                "not onnx": "must end in .onnx", "no model": "no model at"}[case]
    assert expected in result.output, result.output
    assert "quantizing" not in result.output  # refused before any slow work starts
    assert case == "same file" or not out.exists()
