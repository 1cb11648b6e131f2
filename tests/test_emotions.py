import subprocess
import sys

import numpy as np
import pytest

from screener.emotions import (
    EMOTIONS,
    ModelCard,
    ModelError,
    OnnxEmotionModel,
    preprocess,
)
from screener.faces import HaarFaceDetector, largest_face_crop
from screener.settings import FaceSettings, Settings


@pytest.fixture(scope="module")
def shipped_model() -> OnnxEmotionModel:
    return OnnxEmotionModel(Settings().model_path)


def test_preprocess_scales_to_minus_one_one_nhwc():
    crops = np.array([[[0, 255], [127, 128]]], dtype=np.uint8)
    batch = preprocess(crops)
    assert batch.shape == (1, 2, 2, 1)
    assert batch.min() == -1.0 and batch.max() == 1.0
    assert batch.dtype == np.float32


def test_shipped_model_gives_probabilities_for_any_batch(shipped_model):
    rng = np.random.default_rng(0)
    crops = rng.integers(0, 255, (300, 48, 48), dtype=np.uint8)
    probabilities = shipped_model.predict(crops)
    assert probabilities.shape == (300, len(EMOTIONS))
    assert np.allclose(probabilities.sum(axis=1), 1.0, atol=1e-4)
    assert shipped_model.predict(crops[:0]).shape == (0, len(EMOTIONS))


def test_batching_does_not_change_predictions(shipped_model):
    rng = np.random.default_rng(1)
    crops = rng.integers(0, 255, (10, 48, 48), dtype=np.uint8)
    small_batches = OnnxEmotionModel(Settings().model_path, batch_size=4)
    assert np.allclose(shipped_model.predict(crops), small_batches.predict(crops), atol=1e-5)


def test_shipped_model_labels_the_smiling_astronaut_happy(shipped_model, astronaut):
    crop = largest_face_crop(HaarFaceDetector(FaceSettings()), astronaut, FaceSettings())
    assert crop is not None
    probabilities = shipped_model.predict([crop])[0]
    assert EMOTIONS[int(probabilities.argmax())] == "happy"


def test_shipped_model_has_a_measured_accuracy():
    card = ModelCard.for_model(Settings().model_path)
    assert card.val_accuracy is not None and 0.3 < card.val_accuracy <= 1.0


def test_version_is_the_card_name_and_a_hash_of_the_file(shipped_model):
    import hashlib

    path = Settings().model_path
    digest = hashlib.sha256(path.read_bytes()).hexdigest()[:10]
    assert shipped_model.name == f"{shipped_model.card.name}@{digest}"


def test_missing_or_broken_model_is_a_model_error(tmp_path):
    with pytest.raises(ModelError, match="not found"):
        OnnxEmotionModel(tmp_path / "absent.onnx")
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"not a model")
    with pytest.raises(ModelError, match="cannot load"):
        OnnxEmotionModel(broken)


def test_scan_path_never_imports_tensorflow():
    code = (
        "import sys; from screener.analysis import Analyzer; from screener.settings import "
        "Settings; Analyzer.from_settings(Settings()); import screener.cli, screener.scan, "
        "screener.store, screener.report; print('tensorflow' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_flip_averaging_is_the_mean_of_a_face_and_its_mirror(shipped_model):
    rng = np.random.default_rng(2)
    crops = rng.integers(0, 255, (6, 48, 48), dtype=np.uint8)
    averaged = OnnxEmotionModel(Settings().model_path, flip_average=True).predict(crops)
    expected = (shipped_model.predict(crops) + shipped_model.predict(crops[:, :, ::-1])) / 2
    assert np.allclose(averaged, expected, atol=1e-6)
    symmetric = np.concatenate([crops[:, :, :24], crops[:, :, :24][:, :, ::-1]], axis=2)
    assert np.allclose(
        OnnxEmotionModel(Settings().model_path, flip_average=True).predict(symmetric),
        shipped_model.predict(symmetric), atol=1e-5,
    )
