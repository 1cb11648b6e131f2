"""A VGG rebuilt from its exported ONNX file (screener/lab/onnx_weights.py)."""

from pathlib import Path

import numpy as np
import pytest

from tests.conftest import conv_model, import_or_missing

import_or_missing("tensorflow", "tensorflow")

from screener.emotions.model import ModelError, OnnxEmotionModel, preprocess  # noqa: E402
from screener.lab import onnx_weights  # noqa: E402
from screener.lab.networks import build_model  # noqa: E402
from screener.lab.quantization import quantize_int8  # noqa: E402
from screener.lab.shipping import export_onnx  # noqa: E402
from screener.lab.train_settings import TrainSettings  # noqa: E402
from screener.lab.training import train  # noqa: E402
from tests.lab.test_quantization import faces  # noqa: E402
from tests.lab.test_training import stripes  # noqa: E402

SMALL = TrainSettings(arch="vgg", blocks=(8, 16), dense=16, dropout=0.0, l2=0.0)


def trained_looking_vgg(seed: int) -> object:
    """Batch norms with their own scales, shifts and statistics, as after training: the export
    folds them away, and they are what the import has to give back."""
    import keras

    keras.utils.set_random_seed(seed)
    model = build_model(SMALL)
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            size = layer.gamma.shape[0]
            layer.gamma.assign(rng.uniform(0.5, 2.0, size).astype(np.float32))
            layer.beta.assign(rng.normal(0, 0.5, size).astype(np.float32))
            layer.moving_mean.assign(rng.normal(0, 0.3, size).astype(np.float32))
            layer.moving_variance.assign(rng.uniform(0.2, 3.0, size).astype(np.float32))
    classifier = model.layers[-1]
    classifier.kernel.assign(classifier.kernel.numpy() * 20)  # answers that differ by face
    classifier.bias.assign(rng.normal(0, 0.5, 7).astype(np.float32))
    return model


def raw(path: Path, images: np.ndarray) -> np.ndarray:
    return OnnxEmotionModel(path, flip_margin=0.0, temperature=1.0).predict(images)


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("vgg") / "vgg.onnx"
    export_onnx(trained_looking_vgg(3), path)
    return path


def test_the_float_export_comes_back_exactly(exported):
    model = build_model(SMALL)
    onnx_weights.load_into(model, exported, faces(256, seed=1))
    test = faces(100, seed=2)
    expected = raw(exported, test)
    assert expected.std(axis=0).max() > 0.02  # the network tells these faces apart
    assert np.allclose(model.predict(preprocess(test), verbose=0), expected, atol=1e-4)


def test_an_int8_export_comes_back_as_its_dequantized_weights(exported, tmp_path):
    int8 = tmp_path / "int8.onnx"
    int8.write_bytes(exported.read_bytes())
    quantize_int8(int8, preprocess(faces(128, seed=4)))
    for exact, stepped in zip(
        onnx_weights.folded_layers(exported), onnx_weights.folded_layers(int8), strict=True
    ):
        assert not np.array_equal(stepped[0], exact[0])  # kernels in 7-bit steps
        for stepped_part, exact_part in zip(stepped, exact, strict=True):
            assert np.abs(stepped_part - exact_part).max() <= np.abs(exact_part).max() / 64
    model = build_model(SMALL)
    onnx_weights.load_into(model, int8, faces(256, seed=1))
    test = faces(200, seed=2)
    rebuilt = model.predict(preprocess(test), verbose=0)
    # The int8 file also rounds activations, which a float network does not: close, not equal.
    assert np.corrcoef(rebuilt.ravel(), raw(int8, test).ravel())[0, 1] > 0.95


def test_batch_norms_hold_the_measured_statistics_so_training_mode_agrees(exported):
    """Normalised by a batch of the very faces that measured them, training mode must give
    what inference gives; with the folded scales put back at statistics 0 and 1 it would not."""
    model = build_model(SMALL)
    measuring = faces(256, seed=1)
    onnx_weights.load_into(model, exported, measuring)
    x = preprocess(measuring)
    inference = np.asarray(model(x, training=False))
    assert np.allclose(np.asarray(model(x, training=True)), inference, atol=1e-3)

    naive = build_model(SMALL)
    for layer, (kernel, _, _) in zip(
        [w for w in naive.layers if hasattr(w, "kernel")], onnx_weights.folded_layers(exported),
        strict=True,
    ):
        layer.kernel.assign(kernel)
    assert not np.allclose(np.asarray(naive(x, training=True)), inference, atol=1e-2)


def test_other_networks_are_refused_in_a_sentence(exported, tmp_path):
    deeper = build_model(TrainSettings(**{**vars(SMALL), "blocks": (8, 16, 32)}))
    with pytest.raises(ModelError, match="does not fit this architecture"):
        onnx_weights.load_into(deeper, exported, faces(16, seed=1))
    with pytest.raises(ModelError, match="not a VGG exported by screener"):
        onnx_weights.folded_layers(conv_model(tmp_path / "conv.onnx"))
    (tmp_path / "junk.onnx").write_bytes(b"not a model")
    with pytest.raises(ModelError, match="cannot read"):
        onnx_weights.folded_layers(tmp_path / "junk.onnx")


@pytest.mark.slow
def test_a_training_run_starts_from_an_onnx_file(exported, tmp_path):
    """At a vanishing learning rate the run keeps the network it started from."""
    settings = TrainSettings(**{**vars(SMALL), "epochs": 1, "batch_size": 16,
                                "learning_rate": 1e-9, "augment": False,
                                "init_from": str(exported)})
    messages: list[str] = []
    out = tmp_path / "restart.keras"
    train(stripes(96, 1), stripes(32, 2), out, settings, log=messages.append)
    assert any(f"starting from the weights of {exported}" in m for m in messages)
    test = faces(100, seed=2)
    assert np.abs(raw(out.with_suffix(".onnx"), test) - raw(exported, test)).max() < 0.02
