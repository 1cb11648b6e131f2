"""From a best epoch to a shipped model (screener/lab/shipping.py): the ONNX export, and a run
whose export waits for a machine with TensorFlow."""

import json
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import import_or_missing

import_or_missing("tensorflow", "tensorflow")

from screener.emotions.model import OnnxEmotionModel  # noqa: E402
from screener.lab.networks import build_mini_xception  # noqa: E402
from screener.lab.shipping import export_onnx  # noqa: E402
from screener.lab.train_settings import TrainSettings  # noqa: E402
from screener.lab.training import train  # noqa: E402
from tests.lab.test_training import stripes  # noqa: E402


def test_export_zeroes_the_weights_decay_left_near_zero_and_keeps_the_predictions(tmp_path):
    import onnx
    from onnx import numpy_helper

    model = build_mini_xception(TrainSettings(blocks=(8, 16)))
    weights = model.get_weights()
    weights[0] = np.where(np.arange(weights[0].size).reshape(weights[0].shape) % 3, weights[0],
                          1e-32).astype(np.float32)
    model.set_weights(weights)
    export_onnx(model, tmp_path / "m.onnx")
    graph = onnx.load(str(tmp_path / "m.onnx")).graph
    exported = [numpy_helper.to_array(t) for t in graph.initializer]
    values = np.concatenate([w.ravel() for w in exported if w.dtype == np.float32])
    assert not np.any((values != 0) & (np.abs(values) < 1e-10))
    assert np.count_nonzero(values == 0) >= weights[0].size // 3
    crops = stripes(8, 3).images
    expected = model.predict(crops[..., None] / 127.5 - 1.0, verbose=0)
    got = OnnxEmotionModel(tmp_path / "m.onnx").predict(crops)
    assert np.allclose(got, expected, atol=1e-5)


@pytest.mark.slow
def test_where_onnx_export_is_missing_training_stops_after_fit_and_the_command_finishes_later(
    tmp_path: Path, monkeypatch
):
    """As on a GPU machine with PyTorch or JAX but no TensorFlow: the run trains, keeps its
    best epoch and says how to finish; the same command on a machine with the train extra
    exports without training again."""
    import screener.lab.shipping as shipping

    real_missing = shipping.missing_packages
    monkeypatch.setattr(shipping, "missing_packages",
                        lambda names: [n for n in names if n == "tf2onnx"])
    settings = TrainSettings(epochs=2, batch_size=16, augment=False, l2=0.0)
    out, checkpoints = tmp_path / "m.keras", tmp_path / "ckpt"
    with pytest.raises(shipping.ExportDeferred, match="needs tf2onnx: run the same command"):
        train(stripes(64, 1), stripes(16, 2), out, settings, checkpoints, log=lambda _: None)
    state = json.loads((checkpoints / "state.json").read_text())
    assert state["epochs_run"] == 2 and state["finished_epochs"] == 2
    assert (checkpoints / "best.keras").is_file() and not out.with_suffix(".onnx").exists()

    monkeypatch.setattr(shipping, "missing_packages", real_missing)
    messages: list[str] = []
    result = train(stripes(64, 1), stripes(16, 2), out, settings, checkpoints,
                   log=messages.append)
    assert any("has finished" in m for m in messages)
    assert result.epochs_run == 2 and out.with_suffix(".onnx").is_file()
