"""From a training run's best epoch to a model scans can ship: the ONNX export, its accuracy on
`val` as scans run it, its calibration and its card (.json, confusion matrix, reliability
diagram). Kept apart from `training.py`, which fits the network, because the two can happen on
different machines: a GPU machine without TensorFlow trains, and the export waits for one
with the train extra (`ExportDeferred`). `screener ensemble` measures and describes its
joined models with the same functions.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from screener.domain import EMOTIONS, INPUT_SIZE
from screener.emotions.model import OnnxEmotionModel
from screener.emotions.temperature import apply_temperature
from screener.lab.calibration import Calibration, fit_calibration, store_calibration
from screener.lab.evaluation import (
    Evaluation,
    draw_confusion,
    draw_reliability,
    evaluate_probabilities,
)
from screener.lab.fer_data import LabelledImages
from screener.lab.networks import architecture
from screener.lab.train_settings import TrainSettings
from screener.settings import EmotionSettings

EXPORT_PACKAGES = ("tensorflow", "tf2onnx", "onnx")


class ExportDeferred(RuntimeError):
    """Training ended, but this machine cannot export to ONNX: the same command, run again
    where the train extra is installed, exports, measures and calibrates the best epoch."""


def missing_packages(names: Sequence[str]) -> list[str]:
    import importlib

    missing = []
    for name in names:
        try:
            importlib.import_module(name)
        except ImportError:
            missing.append(name)
    return missing


@dataclass
class TrainResult:
    model_path: Path
    onnx_path: Path
    epochs_run: int
    best_epoch: int
    wall_s: float
    evaluation: Evaluation
    """On `val` as scans run the model: flip margin `EmotionSettings.flip_margin`."""
    parameters: int
    accuracy_by_flip_margin: dict[float, float]


def trained_on(backend: str) -> str:
    """Where a run trains, for its model card: the Keras backend and its accelerator, since
    a run may train on a GPU machine and be exported on another."""
    try:
        if backend == "jax":
            import jax

            device = ", ".join(sorted({d.device_kind for d in jax.devices()}))
        elif backend == "torch":
            import torch

            device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "CPU"
        else:
            import tensorflow as tf

            gpus = tf.config.list_physical_devices("GPU")
            device = f"{len(gpus)} GPU(s)" if gpus else "CPU"
    except Exception:  # noqa: BLE001 - a card without the device is better than no run
        device = "unknown device"
    return f"Keras on {backend}, {device}, {os.cpu_count()} CPU cores"


def ship_checkpoint(
    checkpoint_dir: Path, out_path: Path, val_data: LabelledImages, settings: TrainSettings
) -> TrainResult:
    """Copy the best epoch so far to `out_path`, export it to ONNX, and measure it on `val`.

    Also usable on a run still in progress, to ship its best checkpoint."""
    missing = missing_packages(EXPORT_PACKAGES)
    if missing:
        raise ExportDeferred(
            f"the best epoch is in {checkpoint_dir / 'best.keras'}; exporting it to ONNX needs "
            f"{', '.join(missing)}: run the same command where the train extra is installed "
            "(it does not train again) to export, measure and calibrate it"
        )
    import keras

    state = json.loads((checkpoint_dir / "state.json").read_text())
    best = keras.models.load_model(checkpoint_dir / "best.keras", compile=False)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    best.save(out_path)
    onnx_path = out_path.with_suffix(".onnx")
    export_onnx(best, onnx_path)
    # Measured as scans will read it: the card says now how its faces are prepared (written
    # whole below), so no card left from an earlier export can say otherwise.
    onnx_path.with_suffix(".json").write_text(json.dumps({"equalise": settings.equalise}) + "\n")
    measured = measure_on_val(onnx_path, val_data)
    parameters = int(best.count_params())
    write_model_card_json(out_path, settings, measured.evaluations, measured.flip_margin, state,
                          parameters)
    store_calibration(onnx_path, measured.calibration)
    return TrainResult(
        out_path, onnx_path, int(state["epochs_run"]), int(state["best_epoch"]),
        float(state.get("wall_s", 0.0)), measured.evaluation, parameters,
        {m: e.accuracy for m, e in measured.evaluations.items()},
    )


def export_onnx(model: Any, path: Path) -> None:
    """Convert the Keras model to ONNX so that scans run it with ONNX Runtime alone."""
    import onnx
    import tensorflow as tf
    import tf2onnx

    spec = (tf.TensorSpec((None, INPUT_SIZE, INPUT_SIZE, 1), tf.float32, name="faces"),)
    proto, _ = tf2onnx.convert.from_keras(float32_copy(model), input_signature=spec, opset=17)
    flush_tiny_weights(proto)
    onnx.save(proto, str(path))


def float32_copy(model: Any) -> Any:
    """The same network and weights computing in float32. A model trained in mixed bfloat16
    keeps float32 weights but computes in bfloat16, which ONNX Runtime's CPU kernels mostly
    lack and which would round every face's probabilities."""
    import keras

    if all(layer.dtype_policy.compute_dtype == "float32" for layer in model.layers):
        return model

    def in_float32(layer: Any) -> Any:
        config = layer.get_config()
        config["dtype"] = "float32"
        return layer.__class__.from_config(config)

    copy = keras.models.clone_model(model, clone_function=in_float32)
    copy.set_weights(model.get_weights())
    return copy


def flush_tiny_weights(proto: Any, below: float = 1e-10) -> None:
    """Set to zero the weights that L2 decay has driven near it. They change no prediction,
    but their products with small activations are subnormal floats, which the CPU computes
    slowly: a third of the 100-epoch mini-Xception's weights were under 1e-30, and it ran at 5,900
    faces/s instead of 7,500 until they were zeroed."""
    from onnx import numpy_helper

    for tensor in proto.graph.initializer:
        weights = numpy_helper.to_array(tensor)
        if weights.dtype == np.float32:
            flushed = np.where(np.abs(weights) < below, 0.0, weights).astype(np.float32)
            tensor.CopyFrom(numpy_helper.from_array(flushed, tensor.name))


def evaluate_onnx(onnx_path: Path, data: LabelledImages, flip_margin: float = 0.0) -> Evaluation:
    """Accuracy and the uncalibrated ECE (any stored calibration is a previous model's)."""
    model = OnnxEmotionModel(onnx_path, flip_margin=flip_margin, temperature=1.0)
    return evaluate_probabilities(data.labels, model.predict(data.images))


@dataclass(frozen=True)
class ValMeasurement:
    evaluations: dict[float, Evaluation]
    """Uncalibrated, at flip margins 0, 1 and the one scans use."""
    flip_margin: float
    calibration: Calibration

    @property
    def evaluation(self) -> Evaluation:
        return self.evaluations[self.flip_margin]


def measure_on_val(onnx_path: Path, data: LabelledImages) -> ValMeasurement:
    """Measure a model about to ship on `val` at each flip margin, draw its confusion matrix,
    and fit its temperature on the probabilities at the margin scans use, so each margin's
    pass over `val` runs once. `val` also chose the best epoch, a mild reuse the model card
    states."""
    margin = EmotionSettings().flip_margin
    raw = {
        m: OnnxEmotionModel(onnx_path, flip_margin=m, temperature=1.0).predict(data.images)
        for m in sorted({0.0, margin, 1.0})
    }
    evaluations = {m: evaluate_probabilities(data.labels, p) for m, p in raw.items()}
    draw_confusion(evaluations[margin], onnx_path.with_name(onnx_path.stem + "_confusion.png"))
    calibration = fit_calibration(raw[margin], data.labels, margin)
    draw_reliability(
        {
            "uncalibrated": (raw[margin], data.labels),
            f"temperature {calibration.temperature:.3f}": (
                apply_temperature(raw[margin], calibration.temperature), data.labels
            ),
        },
        onnx_path.with_name(onnx_path.stem + "_reliability.png"),
        title=f"{onnx_path.stem}, val, flip margin {margin:g}",
    )
    return ValMeasurement(evaluations, margin, calibration)


def measured_on_val(evaluations: dict[float, Evaluation], flip_margin: float) -> dict[str, Any]:
    """The card's fields every shipped model has, trained or joined: what it reads and how
    accurate it is on `val` at each flip margin measured (the headline at `flip_margin`)."""
    evaluation = evaluations[flip_margin]
    return {
        "classes": list(EMOTIONS),
        "input": "48x48 grey, scaled to [-1, 1]",
        "val_accuracy": round(evaluation.accuracy, 4),
        "flip_margin": flip_margin,
        "val_accuracy_by_flip_margin": {
            f"{margin:g}": round(e.accuracy, 4) for margin, e in evaluations.items()
        },
        "val_images": evaluation.count,
    }


def write_model_card_json(
    out_path: Path,
    settings: TrainSettings,
    evaluations: dict[float, Evaluation],
    flip_margin: float,
    state: dict[str, Any],
    parameters: int,
) -> None:
    """Metadata the scan path reads (name, measured accuracy) without TensorFlow. The headline
    accuracy and evaluation are at the flip margin scans use by default; the others let a
    scan at another margin state its own."""
    evaluation = evaluations[flip_margin]
    meta = {
        "name": out_path.stem,
        "architecture": architecture(settings),
        "parameters": int(parameters),
        **measured_on_val(evaluations, flip_margin),
        "epochs_run": int(state.get("epochs_run", 0)),
        "best_epoch": int(state.get("best_epoch", 0)),
        "train_wall_s": round(float(state.get("wall_s", 0.0)), 1),
        **({"trained_on": state["trained_on"]} if "trained_on" in state else {}),
        "settings": asdict(settings),
        "equalise": settings.equalise,
        "evaluation": evaluation.to_dict(),
        "description": (
            f"{'VGG' if settings.arch == 'vgg' else 'mini-Xception'} trained by screener on "
            f"FER2013; accuracy {evaluation.accuracy:.1%} "
            f"on the {evaluation.count} FER2013 PublicTest (val) images, mirroring the faces "
            f"it is unsure of (flip margin {flip_margin:g})"
        ),
    }
    out_path.with_suffix(".json").write_text(json.dumps(meta, indent=2) + "\n")


