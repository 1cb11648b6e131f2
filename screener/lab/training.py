"""Train the emotion classifier (mini-Xception, Arriaga et al. 2017, or a VGG) on FER2013.

TensorFlow is imported only inside these functions: it is an optional install (`.[train]`)
that scanning never needs. Training resumes by itself from the checkpoint folder after an
interruption; the best `val` epoch is kept, and `shipping.py` exports it to ONNX for the scan
path, measures it and writes its card.
"""

from __future__ import annotations

import json
import os
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from screener.domain import EMOTIONS
from screener.emotions.model import (
    EmotionModel,
    ModelError,
    OnnxEmotionModel,
    equalise,
    preprocess,
)
from screener.lab import onnx_weights, shipping
from screener.lab.augmentation import augment_batch, mixup
from screener.lab.fer_data import LabelledImages
from screener.lab.networks import build_model
from screener.lab.train_settings import TrainSettings

TRAINING_PACKAGES = ("tensorflow", "keras", "tf2onnx", "onnx")
OTHER_BACKENDS = ("jax", "torch")
"""Keras backends that can train without TensorFlow (`KERAS_BACKEND`), as on a GPU machine
that has PyTorch or JAX but no TensorFlow; the ONNX export then waits for a machine with the
train extra (`ExportDeferred`)."""
IMPORT_IMAGES = 4096
"""Training faces that measure the batch-norm statistics of a network started from ONNX."""


def missing_training_packages() -> list[str]:
    """The training extra's packages that cannot be imported: checked before FER2013 is
    loaded, which takes a while, rather than failing after it. Under a `KERAS_BACKEND` of
    `OTHER_BACKENDS`, Keras and that backend are enough to train."""
    backend = os.environ.get("KERAS_BACKEND", "tensorflow")
    needed = ("keras", backend) if backend in OTHER_BACKENDS else TRAINING_PACKAGES
    return shipping.missing_packages(needed)


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
            self.start_epoch(0)

        def start_epoch(self, epoch: int) -> None:
            """Told by `fit` (`FollowEpochs`) rather than counted here: Keras calls
            `on_epoch_end` once before training to look at a batch, and a resumed run builds a
            new dataset, whose own count would repeat the first epoch's batches. Epoch k draws
            from [seed, k + 1], the numbering that uninterrupted runs have always had."""
            self.epoch = epoch
            self._order = np.random.default_rng(self._seeds()).permutation(len(self.data))

        def _seeds(self, *more: int) -> list[int]:
            return [self.settings.seed, self.epoch + 1, *more]

        def __len__(self) -> int:
            return len(self.data) // self.settings.batch_size

        def __getitem__(self, index: int) -> tuple[np.ndarray, ...]:
            size = self.settings.batch_size
            rows = self._order[index * size : (index + 1) * size]
            images = self.data.images[rows]
            if self.settings.augment:
                rng = np.random.default_rng(self._seeds(index))
                images = augment_batch(
                    images, rng, self.settings.cutout, self.settings.crop_jitter
                )
            if self.settings.equalise:
                images = equalise(images)
            labels = self.data.labels[rows]
            targets = one_hot(labels) if self.teachers else self.targets[rows]
            weights = self.weights[labels]
            if self.settings.mixup:
                rng = np.random.default_rng(self._seeds(index, 1))
                images, targets, weights = mixup(images, targets, weights, self.settings.mixup, rng)
            if self.teachers:
                soft = teachers_mean(self.teachers, images)
                targets = mix_targets(targets, self.settings.distill, soft)
            return preprocess(images), targets, weights

    return AugmentedBatches


@contextmanager
def precision_policy(keras: Any, precision: str) -> Iterator[None]:
    """Layers take their dtype policy when built, so the policy is set only while the network
    is built: nothing else in the process (a test, the teachers, the export) is changed."""
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(
        "mixed_bfloat16" if precision == "bfloat16" else "float32"
    )
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy(previous)


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


def start_from(model: Any, path: Path, images: np.ndarray, log: Callable[[str], None]) -> None:
    """A resumed run's backup is restored over these weights when `fit` begins, so only a
    fresh run really starts from `path`: a .keras model, or a VGG's exported ONNX file (the
    shipped int8 one included), whose batch norms are rebuilt from `images`."""
    try:
        if path.suffix == ".onnx":
            rows = np.random.default_rng(0).permutation(len(images))[:IMPORT_IMAGES]
            onnx_weights.load_into(model, path, images[np.sort(rows)])
        else:
            with warnings.catch_warnings():
                # Keras warns "Skipping nested container ... Affected layers will retain their
                # freshly-initialized weights" only when the file's layers do not match this
                # network's (a matching file loads every weight, tested); such a file is
                # refused below, so the warning becomes that refusal instead of a half-loaded
                # start.
                warnings.filterwarnings("error", message="Skipping nested container",
                                        category=UserWarning)
                model.load_weights(path)
    except (ValueError, KeyError, OSError, UserWarning) as exc:
        raise ModelError(
            f"cannot start from {path}: its layers do not fit this architecture "
            f"(train with the settings it was trained with) [{exc}]"
        ) from None
    log(f"starting from the weights of {path}")


def load_teachers(paths: Sequence[str], flip_margin: float = 1.0) -> list[EmotionModel]:
    """Teachers give their raw probabilities (temperature 1), as when the shipped model was
    distilled, whatever calibration they were shipped with."""
    return [
        OnnxEmotionModel(Path(path), flip_margin=flip_margin, spin=False, temperature=1.0)
        for path in paths
    ]


def prior_offsets(source_labels: np.ndarray, reference_labels: np.ndarray) -> np.ndarray:
    """log(source prior / reference prior) per emotion: added to a source's log-probabilities
    in the loss (logit adjustment, Menon et al. 2021), so the network learns what a face
    shows rather than how often that source's labellers chose each emotion, and reads every
    source with the reference's prior. Each prior counts one more face of every emotion, as a
    source may have none of one."""
    def prior(labels: np.ndarray) -> np.ndarray:
        counts = np.bincount(labels, minlength=len(EMOTIONS)).astype(np.float64) + 1.0
        return counts / counts.sum()

    return np.log(prior(source_labels) / prior(reference_labels)).astype(np.float32)


def adjusted_crossentropy(label_smoothing: float = 0.0) -> Callable[[Any, Any], Any]:
    """Cross-entropy on targets whose rows carry, after the seven class shares, seven logit
    offsets (`prior_offsets`) added to the network's log-probabilities before the loss."""
    from keras import ops

    classes = len(EMOTIONS)

    def loss(y_true: Any, y_pred: Any) -> Any:
        targets, offsets = y_true[:, :classes], y_true[:, classes:]
        if label_smoothing:
            targets = targets * (1.0 - label_smoothing) + label_smoothing / classes
        logits = ops.log(ops.clip(ops.cast(y_pred, "float32"), 1e-7, 1.0)) + offsets
        return -ops.sum(targets * ops.log_softmax(logits, axis=-1), axis=-1)

    return loss


def accuracy(y_true: Any, y_pred: Any) -> Any:
    """Accuracy on the class columns of targets that may carry logit offsets after them."""
    from keras import ops

    truth = ops.argmax(y_true[:, : len(EMOTIONS)], axis=-1)
    return ops.cast(ops.equal(truth, ops.argmax(y_pred, axis=-1)), "float32")


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
    targets: np.ndarray | None = None,
    offsets: np.ndarray | None = None,
) -> shipping.TrainResult:
    """Train, keep the best `val` epoch at `out_path` (.keras), and export it to ONNX beside it.

    `targets`: one row of class shares per training image, made by the caller from what the
    labels alone cannot say (crowd votes, a teacher that reads another crop of the face); they
    replace the labels and the teachers. `offsets`: one row of logit offsets per training
    image (`prior_offsets` of its source; zeros for the reference source), for the loss."""
    settings.validate()
    if offsets is not None and settings.consistent:
        raise ValueError("logit offsets need fixed targets, not teachers labelling each batch")
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
        return shipping.ship_checkpoint(checkpoint_dir, out_path, val_data, settings)
    with precision_policy(keras, settings.precision):
        model = build_model(settings)
    if settings.init_from:
        start_from(model, Path(settings.init_from), train_data.images, log)
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
        if targets is None:
            targets = training_targets(train_data, settings.distill,
                                       load_teachers(settings.teachers))
        if offsets is not None:
            targets = np.concatenate([targets, offsets], axis=1).astype(np.float32)
        batches = _batches_class(keras)(train_data, settings, weights, targets)
    if offsets is None:
        loss = keras.losses.CategoricalCrossentropy(label_smoothing=settings.label_smoothing)
    else:
        loss = adjusted_crossentropy(settings.label_smoothing)
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate(settings, len(batches))),
        loss=loss,
        metrics=["accuracy" if offsets is None else accuracy],
    )
    val_x = preprocess(equalise(val_data.images) if settings.equalise else val_data.images)
    val_y = np.eye(len(EMOTIONS), dtype=np.float32)[val_data.labels]
    if offsets is not None:
        val_y = np.concatenate([val_y, np.zeros_like(val_y)], axis=1)

    class KeepBest(keras.callbacks.Callback):
        """Saves the best epoch and the run's state after every epoch, the training time
        included, so that a run interrupted and resumed still reports its whole cost."""

        def on_train_begin(self, logs: dict[str, float] | None = None) -> None:
            if "trained_on" not in state:  # a resumed run keeps where it began
                state["trained_on"] = shipping.trained_on(keras.backend.backend())

        def on_epoch_begin(self, epoch: int, logs: dict[str, float] | None = None) -> None:
            self.started = time.perf_counter()

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

    class FollowEpochs(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch: int, logs: dict[str, float] | None = None) -> None:
            batches.start_epoch(epoch)

    model.fit(
        batches,
        validation_data=(val_x, val_y),
        epochs=settings.epochs,
        verbose=2,
        callbacks=[
            keras.callbacks.BackupAndRestore(str(checkpoint_dir / "backup")),
            FollowEpochs(),
            KeepBest(),
            *plateau_callbacks(keras, settings),
            keras.callbacks.EarlyStopping(
                monitor="val_accuracy", mode="max", patience=settings.patience
            ),
        ],
    )
    return shipping.ship_checkpoint(checkpoint_dir, out_path, val_data, settings)
