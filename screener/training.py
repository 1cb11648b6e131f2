"""Train the emotion classifier (mini-Xception, Arriaga et al. 2017, or a VGG) on FER2013.

TensorFlow is imported only inside these functions: it is an optional install (`.[train]`)
that scanning never needs. Training resumes by itself from the checkpoint folder after an
interruption; the best `val` epoch is kept and exported to ONNX for the scan path.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from screener.augmentation import augment_batch, mixup
from screener.calibration import (
    Calibration,
    apply_temperature,
    fit_calibration,
    store_calibration,
)
from screener.emotions import EMOTIONS, INPUT_SIZE, EmotionModel, OnnxEmotionModel, preprocess
from screener.evaluation import (
    Evaluation,
    draw_confusion,
    draw_reliability,
    evaluate_probabilities,
)
from screener.fer_data import LabelledImages
from screener.networks import architecture, build_model
from screener.settings import EmotionSettings, TrainSettings

TRAINING_PACKAGES = ("tensorflow", "keras", "tf2onnx", "onnx")
EXPORT_PACKAGES = ("tensorflow", "tf2onnx", "onnx")
OTHER_BACKENDS = ("jax", "torch")
"""Keras backends that can train without TensorFlow (`KERAS_BACKEND`), as on a GPU machine
that has PyTorch or JAX but no TensorFlow; the ONNX export then waits for a machine with the
train extra (`ExportDeferred`)."""


class ExportDeferred(RuntimeError):
    """Training ended, but this machine cannot export to ONNX: the same command, run again
    where the train extra is installed, exports, measures and calibrates the best epoch."""


def missing_training_packages() -> list[str]:
    """The training extra's packages that cannot be imported: checked before FER2013 is
    loaded, which takes a while, rather than failing after it. Under a `KERAS_BACKEND` of
    `OTHER_BACKENDS`, Keras and that backend are enough to train."""
    backend = os.environ.get("KERAS_BACKEND", "tensorflow")
    needed = ("keras", backend) if backend in OTHER_BACKENDS else TRAINING_PACKAGES
    return _missing(needed)


def _missing(names: Sequence[str]) -> list[str]:
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


def _batches_class(keras: Any) -> type:
    class AugmentedBatches(keras.utils.PyDataset):
        """Shuffled, augmented batches with each image's target (its one-hot label, or the mix
        from `training_targets`); the last partial batch is dropped (see
        `TrainSettings.batch_size`). Seeded per epoch and batch, so runs repeat exactly.

        With `teachers`, the target is mixed here instead, from the teachers' predictions on
        the augmented images the student sees (consistent distillation); with mixup as well,
        the teachers label the blended images (function matching, Beyer et al. 2022)."""

        def __init__(
            self,
            data: LabelledImages,
            settings: TrainSettings,
            weights: np.ndarray,
            targets: np.ndarray,
            teachers: Sequence[EmotionModel] = (),
        ):
            super().__init__()
            self.data, self.settings, self.weights, self.targets = data, settings, weights, targets
            self.teachers = teachers
            self.epoch = 0
            self._order = self._shuffle()

        def _shuffle(self) -> np.ndarray:
            rng = np.random.default_rng([self.settings.seed, self.epoch])
            return rng.permutation(len(self.data))

        def __len__(self) -> int:
            return len(self.data) // self.settings.batch_size

        def __getitem__(self, index: int) -> tuple[np.ndarray, ...]:
            size, seed = self.settings.batch_size, self.settings.seed
            rows = self._order[index * size : (index + 1) * size]
            images = self.data.images[rows]
            if self.settings.augment:
                rng = np.random.default_rng([seed, self.epoch, index])
                images = augment_batch(
                    images, rng, self.settings.cutout, self.settings.crop_jitter
                )
            labels = self.data.labels[rows]
            targets = one_hot(labels) if self.teachers else self.targets[rows]
            weights = self.weights[labels]
            if self.settings.mixup:
                rng = np.random.default_rng([seed, self.epoch, index, 1])
                images, targets, weights = mixup(images, targets, weights, self.settings.mixup, rng)
            if self.teachers:
                soft = teachers_mean(self.teachers, images)
                targets = mix_targets(targets, self.settings.distill, soft)
            return preprocess(images), targets, weights

        def on_epoch_end(self) -> None:
            self.epoch += 1
            self._order = self._shuffle()

    return AugmentedBatches


def training_targets(
    data: LabelledImages, distill: float, teachers: Sequence[EmotionModel] = ()
) -> np.ndarray:
    """One target distribution per training image: its one-hot label, mixed with the mean of
    the teachers' predictions when there are teachers.

    The teachers see each image once, un-augmented, and average it with its mirror image: the
    augmentation (small shifts, turns and flips) does not change an expression, so the target
    of the clean image holds for every augmented copy, and training pays for the teachers once
    instead of every epoch."""
    if not teachers:
        return one_hot(data.labels)
    return mix_targets(one_hot(data.labels), distill, teachers_mean(teachers, data.images))


def teachers_mean(teachers: Sequence[EmotionModel], images: np.ndarray) -> np.ndarray:
    return np.mean([teacher.predict(images) for teacher in teachers], axis=0)


def one_hot(labels: np.ndarray) -> np.ndarray:
    return np.eye(len(EMOTIONS), dtype=np.float32)[labels]


def mix_targets(hard: np.ndarray, distill: float, soft: np.ndarray) -> np.ndarray:
    return ((1.0 - distill) * hard + distill * soft).astype(np.float32)


def load_teachers(paths: Sequence[str], flip_margin: float = 1.0) -> list[EmotionModel]:
    """Teachers give their raw probabilities (temperature 1), as when the shipped model was
    distilled, whatever calibration they were shipped with."""
    return [
        OnnxEmotionModel(Path(path), flip_margin=flip_margin, spin=False, temperature=1.0)
        for path in paths
    ]


def class_weights(labels: np.ndarray, balanced: bool) -> np.ndarray:
    if not balanced:
        return np.ones(len(EMOTIONS), dtype=np.float32)
    counts = np.bincount(labels, minlength=len(EMOTIONS)).astype(np.float64)
    weights = len(labels) / (len(EMOTIONS) * np.maximum(counts, 1))
    return np.sqrt(weights).astype(np.float32)


def learning_rate(settings: TrainSettings, steps_per_epoch: int) -> Any:
    """A number for the plateau schedule (a callback changes it), else a cosine decay; the
    decay counts optimizer steps, which BackupAndRestore restores, so a resumed run goes on
    where it stopped."""
    if settings.schedule == "plateau":
        return settings.learning_rate
    import keras

    return keras.optimizers.schedules.CosineDecay(
        settings.learning_rate, decay_steps=settings.epochs * steps_per_epoch
    )


def plateau_callbacks(keras: Any, settings: TrainSettings) -> list[Any]:
    if settings.schedule != "plateau":
        return []
    return [
        keras.callbacks.ReduceLROnPlateau(
            monitor="val_loss", factor=0.5, patience=settings.lr_patience, min_lr=1e-5
        )
    ]


def train(
    train_data: LabelledImages,
    val_data: LabelledImages,
    out_path: Path,
    settings: TrainSettings,
    checkpoint_dir: Path | None = None,
    log: Callable[[str], None] = print,
) -> TrainResult:
    """Train, keep the best `val` epoch at `out_path` (.keras), and export it to ONNX beside it."""
    settings.validate()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras

    keras.utils.set_random_seed(settings.seed)
    checkpoint_dir = checkpoint_dir or out_path.with_name(out_path.stem + ".checkpoints")
    checkpoint_dir.mkdir(parents=True, exist_ok=True)
    best_path = checkpoint_dir / "best.keras"
    state_path = checkpoint_dir / "state.json"
    state = json.loads(state_path.read_text()) if state_path.is_file() else {}
    if state:
        log(f"resuming from {checkpoint_dir} (best val accuracy so far {state['best']:.4f})")

    if state.get("finished_epochs") == settings.epochs:
        log(f"this run has finished ({state['epochs_run']} epochs): shipping its best epoch")
        return ship_checkpoint(checkpoint_dir, out_path, val_data, settings)
    model = build_model(settings)
    if settings.teachers:
        log(f"distilling from {len(settings.teachers)} teacher(s): {', '.join(settings.teachers)}")
    weights = class_weights(train_data.labels, settings.class_weights)
    if settings.mixup:
        log(f"mixup: image pairs blended by a Beta({settings.mixup:g}, {settings.mixup:g}) share")
    if settings.consistent:
        log("the teachers label every augmented batch (consistent distillation)")
        teachers = load_teachers(settings.teachers, flip_margin=0.0)
        targets = one_hot(train_data.labels)
        batches = _batches_class(keras)(train_data, settings, weights, targets, teachers)
    else:
        targets = training_targets(train_data, settings.distill, load_teachers(settings.teachers))
        batches = _batches_class(keras)(train_data, settings, weights, targets)
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate(settings, len(batches))),
        loss=keras.losses.CategoricalCrossentropy(label_smoothing=settings.label_smoothing),
        metrics=["accuracy"],
    )
    val_x = preprocess(val_data.images)
    val_y = np.eye(len(EMOTIONS), dtype=np.float32)[val_data.labels]

    class KeepBest(keras.callbacks.Callback):
        """Saves the best epoch and the run's state after every epoch, the training time
        included, so that a run interrupted and resumed still reports its whole cost."""

        def on_epoch_begin(self, epoch: int, logs: dict[str, float] | None = None) -> None:
            self.started = time.perf_counter()
            state.setdefault("trained_on", trained_on(keras.backend.backend()))

        def on_epoch_end(self, epoch: int, logs: dict[str, float] | None = None) -> None:
            accuracy = float((logs or {}).get("val_accuracy", 0.0))
            if accuracy > state.get("best", -1.0):
                state.update(best=accuracy, best_epoch=epoch + 1)
                self.model.save(best_path)
            seconds = time.perf_counter() - self.started
            state["epochs_run"] = epoch + 1
            state["wall_s"] = state.get("wall_s", 0.0) + seconds
            state["last_epoch_s"] = round(seconds, 2)
            state_path.write_text(json.dumps(state))

        def on_train_end(self, logs: dict[str, float] | None = None) -> None:
            # Keras deletes its backup at the end of a run, so the same command run again
            # (to export elsewhere, say) must know not to start over.
            state["finished_epochs"] = settings.epochs
            state_path.write_text(json.dumps(state))

    model.fit(
        batches,
        validation_data=(val_x, val_y),
        epochs=settings.epochs,
        verbose=2,
        callbacks=[
            keras.callbacks.BackupAndRestore(str(checkpoint_dir / "backup")),
            KeepBest(),
            *plateau_callbacks(keras, settings),
            keras.callbacks.EarlyStopping(
                monitor="val_accuracy", mode="max", patience=settings.patience
            ),
        ],
    )
    return ship_checkpoint(checkpoint_dir, out_path, val_data, settings)


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
    missing = _missing(EXPORT_PACKAGES)
    if missing:
        raise ExportDeferred(
            f"the best epoch is in {checkpoint_dir / 'best.keras'}; exporting it to ONNX needs "
            f"{', '.join(missing)}: run the same command where the train extra is installed "
            "(it does not train again) to export, measure and calibrate it"
        )
    import keras

    state = json.loads((checkpoint_dir / "state.json").read_text())
    best = keras.models.load_model(checkpoint_dir / "best.keras")
    out_path.parent.mkdir(parents=True, exist_ok=True)
    best.save(out_path)
    onnx_path = out_path.with_suffix(".onnx")
    export_onnx(best, onnx_path)
    margin = EmotionSettings().flip_margin
    evaluations = {m: evaluate_onnx(onnx_path, val_data, m) for m in sorted({0.0, margin, 1.0})}
    draw_confusion(evaluations[margin], out_path.with_name(out_path.stem + "_confusion.png"))
    calibration = calibrate_onnx(onnx_path, val_data, margin)
    wall_s = float(state.get("wall_s", 0.0))
    write_model_card_json(
        out_path, settings, evaluations, margin, state, wall_s, best.count_params()
    )
    store_calibration(onnx_path, calibration)
    return TrainResult(
        out_path, onnx_path, int(state["epochs_run"]), int(state["best_epoch"]), wall_s,
        evaluations[margin], int(best.count_params()),
        {m: e.accuracy for m, e in evaluations.items()},
    )


def export_onnx(model: Any, path: Path) -> None:
    """Convert the Keras model to ONNX so that scans run it with ONNX Runtime alone."""
    import onnx
    import tensorflow as tf
    import tf2onnx

    spec = (tf.TensorSpec((None, INPUT_SIZE, INPUT_SIZE, 1), tf.float32, name="faces"),)
    proto, _ = tf2onnx.convert.from_keras(model, input_signature=spec, opset=17)
    flush_tiny_weights(proto)
    onnx.save(proto, str(path))


def flush_tiny_weights(proto: Any, below: float = 1e-10) -> None:
    """Set to zero the weights that L2 decay has driven near it. They change no prediction,
    but their products with small activations are subnormal floats, which the CPU computes
    slowly: a third of the session-8 model's weights were under 1e-30, and it ran at 5,900
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


def calibrate_onnx(onnx_path: Path, data: LabelledImages, flip_margin: float) -> Calibration:
    """Fit the temperature on `val` as scans run the model, and draw its reliability diagram.
    `val` also chose the best epoch, a mild reuse the model card states."""
    model = OnnxEmotionModel(onnx_path, flip_margin=flip_margin, temperature=1.0)
    raw = model.predict(data.images)
    calibration = fit_calibration(raw, data.labels, flip_margin)
    calibrated = apply_temperature(raw, calibration.temperature)
    draw_reliability(
        {
            "uncalibrated": (raw, data.labels),
            f"temperature {calibration.temperature:.3f}": (calibrated, data.labels),
        },
        onnx_path.with_name(onnx_path.stem + "_reliability.png"),
        title=f"{onnx_path.stem}, val, flip margin {flip_margin:g}",
    )
    return calibration


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
    wall_s: float,
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
        "train_wall_s": round(wall_s, 1),
        **({"trained_on": state["trained_on"]} if "trained_on" in state else {}),
        "settings": asdict(settings),
        "evaluation": evaluation.to_dict(),
        "description": (
            f"{'VGG' if settings.arch == 'vgg' else 'mini-Xception'} trained by screener on "
            f"FER2013; accuracy {evaluation.accuracy:.1%} "
            f"on the {evaluation.count} FER2013 PublicTest (val) images, mirroring the faces "
            f"it is unsure of (flip margin {flip_margin:g})"
        ),
    }
    out_path.with_suffix(".json").write_text(json.dumps(meta, indent=2) + "\n")


