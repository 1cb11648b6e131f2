"""OpenCV Zoo's int8 expression model, rewritten in float with a free batch dimension, answers
as the int8 file does."""

from pathlib import Path

import numpy as np
import pytest

from tests.conftest import REPO, SHARED, import_or_missing, missing

INT8 = (SHARED / "models" / "fer_mobilefacenet"
        / "facial_expression_recognition_mobilefacenet_2022july_int8.onnx")


@pytest.fixture(scope="module")
def int8_file() -> Path:
    if not INT8.is_file():
        missing("shared", f"{INT8} is absent")
    return INT8


def test_the_float_model_agrees_with_the_int8_file_and_takes_batches(tmp_path, int8_file):
    import_or_missing("onnx", "tensorflow")
    import onnxruntime as ort

    from screener.lab.dequantize import dequantize_model

    target = tmp_path / "float.onnx"
    dequantize_model(int8_file, target)
    faces = np.random.default_rng(0).uniform(-1, 1, (16, 3, 112, 112)).astype(np.float32)
    faces[8:] = np.clip(faces[8:] * 0.3, -1, 1)  # smoother faces too
    quantized = ort.InferenceSession(str(int8_file), providers=["CPUExecutionProvider"])
    expected = np.concatenate([quantized.run(None, {"data": f[None]})[0] for f in faces])
    answered = ort.InferenceSession(str(target), providers=["CPUExecutionProvider"]).run(
        None, {"data": faces})[0]
    assert answered.shape == (16, 7)
    assert np.corrcoef(answered.ravel(), expected.ravel())[0, 1] > 0.97
    shipped = REPO / "lab" / "models" / "fer_mobilefacenet" / "fer_mobilefacenet.onnx"
    assert target.read_bytes() == shipped.read_bytes()  # the file kept is this rewrite
