import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from screener.domain import EMOTIONS
from screener.emotions.model import ModelCard, ModelError, OnnxEmotionModel, preprocess
from screener.faces import HaarFaceDetector, largest_face_crop
from screener.settings import FaceSettings, Settings

VGG = Path(__file__).resolve().parents[2] / "models" / "emotion_vgg.onnx"
"""The shipped network that reads grey crops (a member of the shipped joined model)."""


@pytest.fixture(scope="module")
def shipped_model() -> OnnxEmotionModel:
    return OnnxEmotionModel(VGG)


@pytest.fixture(scope="module")
def raw_model() -> OnnxEmotionModel:
    """The shipped network without its calibration, for checking flip averaging alone."""
    return OnnxEmotionModel(VGG, temperature=1.0)


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
    small_batches = OnnxEmotionModel(VGG, batch_size=4)
    assert np.allclose(shipped_model.predict(crops), small_batches.predict(crops), atol=1e-5)


def test_shipped_model_labels_the_smiling_astronaut_happy(shipped_model, astronaut):
    crop = largest_face_crop(HaarFaceDetector(FaceSettings()), astronaut, FaceSettings())
    assert crop is not None
    probabilities = shipped_model.predict([crop])[0]
    assert EMOTIONS[int(probabilities.argmax())] == "happy"


def test_shipped_model_has_a_measured_accuracy_at_the_default_flip_margin():
    import json

    path = VGG
    margin = Settings().emotions.flip_margin
    recorded = json.loads(path.with_suffix(".json").read_text())["val_accuracy_by_flip_margin"]
    card = ModelCard.for_model(path, margin)
    assert card.val_accuracy == recorded[f"{margin:g}"]
    assert 0.3 < card.val_accuracy <= 1.0


def test_version_is_the_card_name_and_a_hash_of_the_file(shipped_model):
    import hashlib

    path = VGG
    digest = hashlib.sha256(path.read_bytes()).hexdigest()[:10]
    calibrated = f"+T{shipped_model.card.temperature:.4g}"
    # +dark64: how underexposed faces are read is part of what a session's numbers depend on
    assert shipped_model.name == f"{shipped_model.card.name}@{digest}+dark64{calibrated}"


def test_missing_or_broken_model_is_a_model_error(tmp_path):
    with pytest.raises(ModelError, match="not found"):
        OnnxEmotionModel(tmp_path / "absent.onnx")
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"not a model")
    with pytest.raises(ModelError, match="cannot load"):
        OnnxEmotionModel(broken)


def test_scan_path_never_imports_tensorflow():
    code = (
        "import sys; from screener.scanning.analysis import Analyzer; "
        "from screener.settings import Settings; Analyzer.from_settings(Settings()); "
        "import screener.cli, screener.scanning.scan, screener.storage.store, "
        "screener.reports.report; print('tensorflow' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_flip_margin_one_averages_every_face_with_its_mirror(raw_model):
    rng = np.random.default_rng(2)
    crops = rng.integers(0, 255, (6, 48, 48), dtype=np.uint8)
    every_face = OnnxEmotionModel(VGG, flip_margin=1.0, temperature=1.0)
    averaged = every_face.predict(crops)
    expected = (raw_model.predict(crops) + raw_model.predict(crops[:, :, ::-1])) / 2
    assert np.allclose(averaged, expected, atol=1e-6)
    symmetric = np.concatenate([crops[:, :, :24], crops[:, :, :24][:, :, ::-1]], axis=2)
    assert np.allclose(
        every_face.predict(symmetric),
        raw_model.predict(symmetric), atol=1e-5,
    )


def test_flip_margin_mirrors_only_the_faces_whose_two_likeliest_emotions_are_close(
    raw_model,
):
    rng = np.random.default_rng(3)
    crops = rng.integers(0, 255, (60, 48, 48), dtype=np.uint8)
    plain = raw_model.predict(crops)
    mirror = raw_model.predict(crops[:, :, ::-1])
    top_two = np.sort(plain, axis=1)[:, -2:]
    gap = top_two[:, 1] - top_two[:, 0]
    margin = float(np.median(gap))
    unsure = gap < margin
    assert 0 < unsure.sum() < len(crops)
    model = OnnxEmotionModel(VGG, flip_margin=margin, temperature=1.0)
    expected = np.where(unsure[:, None], (plain + mirror) / 2, plain)
    assert np.allclose(model.predict(crops), expected, atol=1e-6)
    # decided face by face: a face alone gets the answer it gets in a batch
    alone = np.concatenate([model.predict(crops[i : i + 1]) for i in range(len(crops))])
    assert np.allclose(alone, expected, atol=1e-5)


def test_flip_margin_is_part_of_the_version_and_must_be_a_share(tmp_path):
    path = VGG
    assert "+flip0.2" in OnnxEmotionModel(path, flip_margin=0.2).name
    assert "+flip" not in OnnxEmotionModel(path, flip_margin=0.0).name
    for bad in (-0.1, 1.5):
        with pytest.raises(ModelError, match="between 0 and 1"):
            OnnxEmotionModel(path, flip_margin=bad)


def _card_json(tmp_path, meta: dict) -> Path:
    import json

    model = tmp_path / "m.onnx"
    model.with_suffix(".json").write_text(json.dumps(meta))
    return model


def test_card_states_the_accuracy_measured_at_the_models_flip_margin(tmp_path):
    model = _card_json(tmp_path, {
        "name": "m", "val_accuracy": 0.66, "flip_margin": 0.2,
        "val_accuracy_by_flip_margin": {"0": 0.65, "0.2": 0.66, "1": 0.662},
    })
    assert ModelCard.for_model(model, 0.2).val_accuracy == 0.66
    assert ModelCard.for_model(model, 1.0).val_accuracy == 0.662
    assert ModelCard.for_model(model, 0.0).val_accuracy == 0.65
    assert ModelCard.for_model(model, 0.5).val_accuracy == 0.65  # not measured: single pass


def test_card_of_a_model_recorded_before_flip_margins_is_its_single_pass_accuracy(tmp_path):
    model = _card_json(tmp_path, {"name": "old", "val_accuracy": 0.6})
    assert ModelCard.for_model(model, 0.0).val_accuracy == 0.6
    assert ModelCard.for_model(model, 0.2).val_accuracy == 0.6


def test_a_temperature_of_one_gives_the_networks_own_probabilities(tmp_path):
    import shutil

    rng = np.random.default_rng(3)
    crops = rng.integers(0, 255, (20, 48, 48), dtype=np.uint8)
    bare = tmp_path / "bare.onnx"
    shutil.copy(VGG, bare)  # no .json: no calibration
    raw = OnnxEmotionModel(bare, flip_margin=0.2).predict(crops)
    unscaled = OnnxEmotionModel(bare, flip_margin=0.2, temperature=1.0)
    assert np.array_equal(unscaled.predict(crops), raw)
    assert OnnxEmotionModel(bare, flip_margin=0.2).name.endswith("+flip0.2")


def test_the_stored_temperature_rescales_the_flip_averaged_output(tmp_path):
    import json
    import shutil

    from screener.emotions.temperature import apply_temperature

    rng = np.random.default_rng(4)
    crops = rng.integers(0, 255, (40, 48, 48), dtype=np.uint8)
    model = tmp_path / "m.onnx"
    shutil.copy(VGG, model)
    model.with_suffix(".json").write_text(json.dumps({"calibration": {"temperature": 2.0}}))
    raw = OnnxEmotionModel(model, flip_margin=0.2, temperature=1.0).predict(crops)
    calibrated = OnnxEmotionModel(model, flip_margin=0.2)
    assert calibrated.name.endswith("+flip0.2+T2")
    got = calibrated.predict(crops)
    assert np.allclose(got, apply_temperature(raw, 2.0), atol=1e-6)
    assert np.array_equal(got.argmax(axis=1), raw.argmax(axis=1))
    assert (got.max(axis=1) < raw.max(axis=1)).all()
    with pytest.raises(ModelError, match="positive"):
        OnnxEmotionModel(model, temperature=0.0)


def test_a_scan_labels_the_astronaut_happy_without_importing_tensorflow(make_video, astronaut):
    video = make_video("astronaut.mp4", [astronaut.copy() for _ in range(20)], fps=10)
    code = (
        "import sys, datetime, collections; from pathlib import Path; "
        "from screener.scanning.analysis import Analyzer; from screener.domain import VideoJob; "
        "from screener.settings import Settings; "
        f"job = VideoJob(Path({str(video)!r}), 'a', 'a-1', datetime.datetime(2026, 1, 1), "
        "'0' * 64); "
        "result = Analyzer.from_settings(Settings()).analyze(job); "
        "labels = collections.Counter(o.label for o in result.observations if o.label); "
        "print(labels.most_common(1)[0][0], sum(labels.values()), 'tensorflow' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    label, faces, tensorflow = out.stdout.split()
    assert (label, tensorflow) == ("happy", "False") and int(faces) >= 2


def test_card_states_the_most_honest_calibration_error_it_records(tmp_path):
    assert ModelCard.for_model(_card_json(tmp_path, {"name": "m"}), 0.2).ece is None
    fitted = {"calibration": {"ece_before": 0.05, "ece_after": 0.02}}
    assert ModelCard.for_model(_card_json(tmp_path, fitted), 0.2).ece == 0.02
    crossed = {"calibration": {"ece_after": 0.02, "ece_cross_fitted": 0.016}}
    assert ModelCard.for_model(_card_json(tmp_path, crossed), 0.2).ece == 0.016
    assert ModelCard.for_model(_card_json(tmp_path, {"ece": 0.03}), 0.2).ece == 0.03


def test_zooming_a_face_scales_it_about_its_centre():
    from screener.emotions.model import zoom_faces

    face = np.zeros((1, 48, 48, 1), np.float32)
    face[0, 20:28, 20:28] = 1.0  # an 8x8 square in the middle
    assert np.array_equal(zoom_faces(face, 1.0), face)
    assert (zoom_faces(face, 2.0) > 0.5).sum() == pytest.approx(256, abs=40)
    assert (zoom_faces(face, 0.5) > 0.5).sum() == pytest.approx(16, abs=8)
    edge = np.zeros((1, 48, 48, 1), np.float32)
    edge[0, :, :2] = 1.0
    assert zoom_faces(edge, 0.8)[0, 24, 0, 0] == 1.0  # a border is repeated, not black


def test_a_model_card_can_run_its_unsure_faces_at_other_zooms_too(tmp_path):
    """A model whose answer depends on the face's left half, so every view differs."""
    import json
    import shutil

    from screener.emotions.model import zoom_faces
    from tests.conftest import brightness_model

    base = brightness_model(tmp_path / "bright.onnx", left_half=True)
    zoomed = tmp_path / "zoomed.onnx"
    shutil.copy(base, zoomed)
    zoomed.with_suffix(".json").write_text(json.dumps({"name": "z", "unsure_zooms": [1.2, 0.8]}))
    rng = np.random.default_rng(8)
    crops = rng.integers(0, 256, (30, 48, 48), dtype=np.uint8)
    crops[:10, :, :24] = 250  # sure: a bright left half
    raw = OnnxEmotionModel(base, temperature=1.0)
    one_pass = raw.predict(crops)
    model = OnnxEmotionModel(zoomed, flip_margin=0.9, temperature=1.0)
    unsure = model.unsure(one_pass)
    assert 0 < len(unsure) < len(crops)
    faces = preprocess(crops[unsure])
    views = [faces, faces[:, :, ::-1]]
    for zoom in (1.2, 0.8):
        views += [zoom_faces(faces, zoom), zoom_faces(faces, zoom)[:, :, ::-1]]
    session = OnnxEmotionModel(base, temperature=1.0)._session
    expected = one_pass.copy()
    expected[unsure] = np.mean([session.run(None, {"faces": v})[0] for v in views], axis=0)
    assert np.allclose(model.predict(crops), expected, atol=1e-6)
    assert model.name.endswith("+flip0.9+zoom1.2,0.8")
    one = OnnxEmotionModel(zoomed, flip_margin=0.0, temperature=1.0)
    assert "+zoom" not in one.name and np.allclose(one.predict(crops), one_pass, atol=1e-6)
    zoomed.with_suffix(".json").write_text(json.dumps({"unsure_zooms": [3.0]}))
    with pytest.raises(ModelError, match="unsure_zooms"):
        OnnxEmotionModel(zoomed, flip_margin=0.2)


def test_a_model_trained_on_equalised_faces_reads_a_dark_face_as_its_equalised_self(tmp_path):
    import json
    import shutil

    import cv2

    rng = np.random.default_rng(5)
    faces = rng.integers(0, 255, (12, 48, 48), dtype=np.uint8)
    equalised = np.stack([cv2.equalizeHist(f) for f in faces])
    dark = (faces * 0.6).astype(np.uint8)  # the same faces in a dim room, not underexposed
    model = tmp_path / "eq.onnx"
    shutil.copy(VGG, model)
    plain = OnnxEmotionModel(model, temperature=1.0)
    assert not plain.card.equalise
    assert not np.allclose(plain.predict(dark), plain.predict(equalised), atol=1e-3)

    model.with_suffix(".json").write_text(json.dumps({"equalise": True}))
    reads_equalised = OnnxEmotionModel(model, temperature=1.0)
    assert reads_equalised.card.equalise and "+eq" in reads_equalised.name
    assert np.allclose(reads_equalised.predict(faces), plain.predict(equalised), atol=1e-6)
    # A dim face keeps its shape: equalised, it is nearly the well-lit face equalised.
    assert np.abs(reads_equalised.predict(dark) - plain.predict(equalised)).max() < 0.2


def test_an_underexposed_face_is_equalised_before_the_network_reads_it(shipped_model):
    import cv2

    from screener.emotions.model import DARK_FACE, lift_dark

    rng = np.random.default_rng(6)
    lit = rng.integers(60, 250, (4, 48, 48), dtype=np.uint8)
    dark = (lit * 0.2).astype(np.uint8)
    assert dark.reshape(4, -1).mean(axis=1).max() < DARK_FACE <= lit.reshape(4, -1).mean(
        axis=1).min()
    lifted = lift_dark(np.concatenate([lit, dark]))
    assert np.array_equal(lifted[:4], lit)  # well-lit faces are read as they are
    assert np.array_equal(lifted[4:], np.stack([cv2.equalizeHist(f) for f in dark]))
    raw = OnnxEmotionModel(VGG, temperature=1.0)
    assert np.allclose(raw.predict(dark), raw.predict(lifted[4:]), atol=1e-6)


def test_a_card_can_ask_for_dark_faces_as_they_are(tmp_path):
    import json
    import shutil

    from screener.emotions.model import preprocess

    dark = (np.random.default_rng(7).integers(60, 250, (3, 48, 48)) * 0.2).astype(np.uint8)
    model = tmp_path / "as_is.onnx"
    shutil.copy(VGG, model)
    model.with_suffix(".json").write_text(json.dumps({"equalise_dark": False}))
    as_is = OnnxEmotionModel(model, temperature=1.0)
    assert "+dark" not in as_is.name
    import onnxruntime as ort

    session = ort.InferenceSession(str(VGG), providers=["CPUExecutionProvider"])
    direct = session.run(None, {session.get_inputs()[0].name: preprocess(dark)})[0]
    assert np.allclose(as_is.predict(dark), direct, atol=1e-5)
