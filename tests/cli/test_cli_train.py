"""`screener train` hands every training choice to the model lab unchanged."""

import cv2
import numpy as np
from typer.testing import CliRunner

from screener.cli import app
from screener.emotions.model import ModelError


def test_train_options_reach_the_training_run(tmp_path, monkeypatch):
    import screener.lab.training as training

    for split in ("train", "val"):
        for label in ("happy", "sad"):
            (tmp_path / "fer" / split / label).mkdir(parents=True)
            cv2.imwrite(str(tmp_path / "fer" / split / label / "0.png"),
                        np.full((48, 48), 120, np.uint8))
    seen = []

    def recording_train(train_data, val_data, out, settings, checkpoints):
        seen.append(settings)
        raise ModelError("stopped by the test")

    monkeypatch.setattr(training, "missing_training_packages", lambda: [])
    monkeypatch.setattr(training, "train", recording_train)
    result = CliRunner().invoke(app, ["train", "--data", str(tmp_path / "fer"), "--out",
                                      str(tmp_path / "m.keras"), "--equalise", "--crop-jitter",
                                      "--arch", "vgg", "--epochs", "3"])
    assert "stopped by the test" in result.output and "Traceback" not in result.output
    [settings] = seen
    assert settings.equalise and settings.crop_jitter
    assert (settings.arch, settings.epochs) == ("vgg", 3)
