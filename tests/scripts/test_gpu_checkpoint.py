"""Carrying a run's best epoch back from a GPU machine (scripts/gpu_checkpoint.py)."""

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import import_or_missing

import_or_missing("tensorflow", "tensorflow")

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "gpu_checkpoint.py"
spec = importlib.util.spec_from_file_location("gpu_checkpoint", SCRIPT)
gpu_checkpoint = importlib.util.module_from_spec(spec)
spec.loader.exec_module(gpu_checkpoint)


def _checkpoint(folder: Path, state: dict) -> Path:
    """A small trained model saved as training saves its best epoch: with optimizer state."""
    import keras

    from screener.lab.networks import build_model
    from screener.lab.train_settings import TrainSettings

    model = build_model(TrainSettings(blocks=(8, 16, 32, 64)))
    model.compile(optimizer="adam", loss="categorical_crossentropy")
    x = np.random.default_rng(0).uniform(-1, 1, (8, 48, 48, 1)).astype(np.float32)
    model.fit(x, keras.utils.to_categorical(np.arange(8) % 7, 7), epochs=1, verbose=0)
    folder.mkdir(parents=True)
    model.save(folder / "best.keras")
    (folder / "state.json").write_text(json.dumps(state))
    return folder


@pytest.mark.slow
def test_a_packed_checkpoint_comes_back_in_small_parts_with_the_same_weights(tmp_path):
    import keras

    state = {"best": 0.5, "best_epoch": 3, "epochs_run": 4, "finished_epochs": 4}
    there = _checkpoint(tmp_path / "there", state)
    parts = gpu_checkpoint.pack(there, tmp_path / "out", part_bytes=100_000)
    assert len(parts) > 1 and all(p.stat().st_size <= 100_000 for p in parts)
    packed = sum(p.stat().st_size for p in parts)
    assert packed < (there / "best.keras").stat().st_size  # the optimizer state stayed there

    best = gpu_checkpoint.unpack(tmp_path / "out", tmp_path / "here")
    original = keras.models.load_model(there / "best.keras")
    carried = keras.models.load_model(best)
    for a, b in zip(original.get_weights(), carried.get_weights(), strict=True):
        assert np.array_equal(a, b)
    assert json.loads((tmp_path / "here" / "state.json").read_text()) == state


@pytest.mark.slow
def test_a_run_cut_short_is_marked_finished_where_it_stopped_and_says_so(tmp_path, capsys):
    state = {"best": 0.5, "best_epoch": 2, "epochs_run": 3}
    gpu_checkpoint.pack(_checkpoint(tmp_path / "there", state), tmp_path / "out")
    gpu_checkpoint.unpack(tmp_path / "out", tmp_path / "here")
    assert json.loads((tmp_path / "here" / "state.json").read_text())["finished_epochs"] == 3
    assert "cut short after 3 epochs: run the command with --epochs 3" in capsys.readouterr().err
