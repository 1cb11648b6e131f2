"""face-api.js's expression network rewritten as ONNX (scripts/face_api_expression.py) reads a
face as face-api.js's own TensorFlow code does."""

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import import_or_missing

tf = import_or_missing("tensorflow", "tensorflow")

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "face_api_expression.py"
spec = importlib.util.spec_from_file_location("face_api_expression", SCRIPT)
face_api = importlib.util.module_from_spec(spec)
spec.loader.exec_module(face_api)


def shapes() -> dict[str, list[int]]:
    found = {"dense0/conv0/filters": [3, 3, 3, 32], "dense0/conv0/bias": [32]}
    widths = [(32, 32), (32, 64), (64, 128), (128, 256)]
    for block, (into, out) in enumerate(widths):
        for layer in range(4):
            if block == 0 and layer == 0:
                continue
            channels = into if layer == 0 else out
            name = f"dense{block}/conv{layer}"
            found[f"{name}/depthwise_filter"] = [3, 3, channels, 1]
            found[f"{name}/pointwise_filter"] = [1, 1, channels, out]
            found[f"{name}/bias"] = [out]
    found["fc/weights"], found["fc/bias"] = [256, 7], [7]
    return found


def fake_package(folder: Path) -> None:
    """Random weights stored as face-api.js stores them: filters in 8 bits, biases as floats."""
    rng = np.random.default_rng(0)
    specs, chunks = [], []
    for name, shape in shapes().items():
        count = int(np.prod(shape))
        if name.endswith("bias"):
            specs.append({"name": name, "shape": shape, "dtype": "float32"})
            chunks.append(rng.normal(0, 0.05, count).astype(np.float32).tobytes())
        else:
            scale = float(np.sqrt(2.0 / (count / shape[-1])) / 40)
            specs.append({"name": name, "shape": shape, "dtype": "float32",
                          "quantization": {"dtype": "uint8", "scale": scale,
                                           "min": -128 * scale}})
            chunks.append(rng.integers(0, 256, count, dtype=np.uint8).tobytes())
    (folder / "face_expression_model.bin").write_bytes(b"".join(chunks))
    (folder / "face_expression_model-weights_manifest.json").write_text(json.dumps(
        [{"paths": ["face_expression_model.bin"], "weights": specs}]))


def reference(w: dict[str, np.ndarray], rgb: np.ndarray) -> np.ndarray:
    """face-api.js's FaceFeatureExtractor and FaceProcessor, as its TypeScript reads."""
    def separable(x, name, stride):
        out = tf.nn.separable_conv2d(x, w[f"{name}/depthwise_filter"],
                                     w[f"{name}/pointwise_filter"], [1, stride, stride, 1],
                                     "SAME")
        return out + w[f"{name}/bias"]

    x = (tf.constant(rgb, tf.float32) - face_api.MEAN_RGB) / 255.0
    for block in range(4):
        name = f"dense{block}"
        if block == 0:
            out1 = tf.nn.conv2d(x, w[f"{name}/conv0/filters"], 2, "SAME") + w[f"{name}/conv0/bias"]
        else:
            out1 = separable(x, f"{name}/conv0", 2)
        out1 = tf.nn.relu(out1)
        out2 = separable(out1, f"{name}/conv1", 1)
        out3 = separable(tf.nn.relu(out1 + out2), f"{name}/conv2", 1)
        out4 = separable(tf.nn.relu(out1 + out2 + out3), f"{name}/conv3", 1)
        x = tf.nn.relu(out1 + out2 + out3 + out4)
    x = tf.nn.avg_pool2d(x, 7, 2, "VALID")
    return (tf.reshape(x, (len(rgb), -1)) @ w["fc/weights"] + w["fc/bias"]).numpy()


def test_weights_are_restored_from_eight_bits_and_a_short_file_is_refused(tmp_path):
    fake_package(tmp_path)
    weights = face_api.read_weights(tmp_path)
    manifest = json.loads((tmp_path / "face_expression_model-weights_manifest.json").read_text())
    spec = manifest[0]["weights"][0]
    first = np.frombuffer((tmp_path / "face_expression_model.bin").read_bytes(), np.uint8, 5)
    quantised = spec["quantization"]
    assert np.allclose(weights[spec["name"]].reshape(-1)[:5],
                       first * quantised["scale"] + quantised["min"])
    assert set(weights) == set(shapes())
    data = tmp_path / "face_expression_model.bin"
    data.write_bytes(data.read_bytes()[:-4])
    with pytest.raises(ValueError, match="bytes"):
        face_api.read_weights(tmp_path)


def test_the_onnx_network_reads_faces_as_face_api_js_does(tmp_path):
    from screener.domain import EMOTIONS
    from screener.emotions.aligned import AlignedOnnxModel

    fake_package(tmp_path)
    model = AlignedOnnxModel(face_api.write_model(tmp_path, tmp_path / "net.onnx"),
                             temperature=1.0)
    faces = np.random.default_rng(1).integers(0, 256, (3, 112, 112, 3), dtype=np.uint8)
    expected = reference(face_api.read_weights(tmp_path), faces[..., ::-1].astype(np.float32))
    order = [face_api.LABELS.index(emotion) for emotion in EMOTIONS]
    assert np.allclose(model.logits(faces), expected[:, order], rtol=1e-3, atol=1e-3)
    assert np.ptp(expected, axis=1).min() > 1e-3  # the faces are told apart at all
