"""Emotion classification of face crops behind a small `EmotionModel` interface.

Scans run the exported ONNX graph with ONNX Runtime, so they never import TensorFlow (seconds
and ~600 MB); the Keras model is only for training and evaluation.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from screener.domain import EMOTIONS, INPUT_SIZE
from screener.emotions.temperature import apply_temperature

ZOOMS = (0.5, 2.0)
"""The zooms a model card's `unsure_zooms` may ask for: beyond them the face leaves the crop."""


class ModelError(RuntimeError):
    """The emotion model file is missing or unusable."""


def preprocess(crops: Sequence[np.ndarray] | np.ndarray) -> np.ndarray:
    """Grey 48x48 uint8 crops to the float input the network was trained on: [-1, 1], NHWC."""
    batch = np.asarray(crops, dtype=np.float32)
    if batch.ndim == 3:
        batch = batch[..., np.newaxis]
    return batch / 127.5 - 1.0


DARK_FACE = 64
"""A grey crop whose mean is below this (a quarter of the range) is underexposed: it is
histogram-equalised before a network reads it. The networks learnt from FER2013's faces, most
of them equalised, and read dark faces' negative expressions as neutral: on FER2013 `val` made
dark and noisy (mean grey about 34), the shipped model read 46% of negative faces negative as
they were and 68% equalised, while no web photograph or FER2013 face changed reading (any
line from 50 to 80 gives the same; benchmarks/domain_benchmark.py)."""


def equalise(crops: Sequence[np.ndarray] | np.ndarray) -> np.ndarray:
    """Each grey crop histogram-equalised, as most FER2013 training images are: a face from
    a dark or washed-out video then reaches the network with the contrast it learnt from."""
    import cv2

    batch = np.asarray(crops, dtype=np.uint8)
    return np.stack([cv2.equalizeHist(np.ascontiguousarray(face)) for face in batch])


def lift_dark(crops: Sequence[np.ndarray] | np.ndarray) -> np.ndarray:
    """The crops with each underexposed one (`DARK_FACE`) equalised, the others as they are."""
    batch = np.asarray(crops, dtype=np.uint8)
    dark = batch.reshape(len(batch), -1).mean(axis=1) < DARK_FACE
    if not dark.any():
        return batch
    lifted = batch.copy()
    lifted[dark] = equalise(batch[dark])
    return lifted


def zoom_faces(batch: np.ndarray, zoom: float) -> np.ndarray:
    """Each (N, 48, 48, 1) face scaled about its centre, edges repeated where it shrinks: the
    framing a slightly tighter or looser crop would have given."""
    import cv2

    centre = (INPUT_SIZE - 1) / 2
    matrix = cv2.getRotationMatrix2D((centre, centre), 0.0, zoom)
    return np.stack([
        cv2.warpAffine(face[..., 0], matrix, (INPUT_SIZE, INPUT_SIZE),
                       flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)[..., np.newaxis]
        for face in batch
    ])


class EmotionModel(Protocol):
    """Anything that turns faces (grey 48x48 crops, and aligned colour ones where the model
    reads them) into probabilities over `EMOTIONS`."""

    name: str
    card: ModelCard
    reads_aligned: bool

    def predict(self, crops: Sequence[np.ndarray] | np.ndarray,
                aligned: Sequence[np.ndarray | None] | None = None) -> np.ndarray:
        """Return an (N, 7) float array of class probabilities. `aligned`: each face's
        112x112 colour crop (None where there is none), for models that read it."""
        ...


@dataclass(frozen=True)
class ModelCard:
    """What the report needs to say about the model: which one, and how reliable it is."""

    name: str
    val_accuracy: float | None
    description: str = ""
    temperature: float = 1.0
    """Calibration temperature fitted on held-out faces (1: uncalibrated)."""
    ece: float | None = None
    """Expected calibration error of its probabilities, when the card records one."""
    equalise: bool = False
    """The network was trained on histogram-equalised crops (`equalise`), so it reads them."""
    equalise_dark: bool = True
    """Underexposed crops are equalised before it reads them (`lift_dark`); a card sets
    `"equalise_dark": false` for a network that must read brightness as it is."""
    unsure_zooms: tuple[float, ...] = ()
    """Zooms at which the faces run mirrored are also run, each straight and mirrored: a
    property of the model, chosen with its accuracy, so every use of it runs it alike."""

    @classmethod
    def for_model(cls, model_path: Path, flip_margin: float = 0.0) -> ModelCard:
        """The accuracy recorded for the flip margin the model runs with. Models record their
        single-pass accuracy and that at a few margins; for a margin they did not record, the
        single-pass figure is the best estimate at hand."""
        meta_path = model_path.with_suffix(".json")
        if not meta_path.is_file():
            return cls(name=model_path.stem, val_accuracy=None)
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        recorded = {
            float(margin): accuracy
            for margin, accuracy in meta.get("val_accuracy_by_flip_margin", {}).items()
        }
        recorded.setdefault(float(meta.get("flip_margin", 0.0)), meta.get("val_accuracy"))
        return cls(
            name=meta.get("name", model_path.stem),
            val_accuracy=recorded.get(flip_margin, recorded.get(0.0)),
            description=meta.get("description", ""),
            temperature=float(meta.get("calibration", {}).get("temperature", 1.0)),
            ece=recorded_ece(meta),
            equalise=bool(meta.get("equalise", False)),
            equalise_dark=bool(meta.get("equalise_dark", True)),
            unsure_zooms=tuple(float(z) for z in meta.get("unsure_zooms", ())),
        )


def recorded_ece(meta: dict) -> float | None:
    """The most honest ECE a model card records: measured on faces the calibration was not
    fitted on when there is one, else after calibration, else as recorded."""
    calibration = meta.get("calibration") or {}
    for value in (calibration.get("ece_cross_fitted"), calibration.get("ece_after"),
                  calibration.get("ece"), meta.get("ece")):
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
    return None


def file_digest(path: Path) -> str:
    """A short content hash, so a retrained model under the same name is a new version."""
    return hashlib.sha256(path.read_bytes()).hexdigest()[:10]


class OnnxEmotionModel:
    """An exported emotion network (or ensemble, one graph) run by ONNX Runtime on the CPU, in
    batches."""

    reads_aligned = False
    """It reads the grey crops alone: scans need not cut aligned colour faces for it."""

    def __init__(
        self,
        path: Path,
        batch_size: int = 64,
        threads: int | None = None,
        flip_margin: float = 0.0,
        spin: bool = True,
        temperature: float | None = None,
    ) -> None:
        """`flip_margin`: a face whose two likeliest emotions are closer than this is also run
        mirrored, and the two answers averaged (0 never, 1 every face). Mirroring only the
        unsure faces buys most of full flip averaging's accuracy at a fraction of its cost
        (lab/models/README.md).

        `spin=False` stops idle threads from busy-waiting for the next batch. Spinning
        makes a lone session faster, but several sessions taking turns (a teachers' ensemble)
        ran 2.5x slower with it: their idle threads stole the cores from the one at work.

        `temperature`: None takes the calibration stored with the model (fitted by
        screener/lab/calibration.py),
        1 gives the network's raw probabilities (what a calibration is fitted on)."""
        if not 0.0 <= flip_margin <= 1.0:
            raise ModelError(f"flip margin must be between 0 and 1, not {flip_margin}")
        try:
            import onnxruntime as ort
        except ImportError as exc:  # pragma: no cover - a dependency of the package
            raise ModelError("onnxruntime is not installed") from exc
        if not path.is_file():
            raise ModelError(f"emotion model not found: {path}")
        options = ort.SessionOptions()
        options.log_severity_level = 3
        if threads:
            options.intra_op_num_threads = threads
        if not spin:
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        try:
            self._session = ort.InferenceSession(
                str(path), sess_options=options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:
            raise ModelError(f"cannot load emotion model {path}: {exc}") from exc
        self._input = self._session.get_inputs()[0].name
        self._batch_size = batch_size
        self._flip_margin = flip_margin
        self.card = ModelCard.for_model(path, flip_margin)
        self.temperature = self.card.temperature if temperature is None else temperature
        if self.temperature <= 0:
            raise ModelError(f"calibration temperature must be positive, not {self.temperature}")
        self.zooms = self.card.unsure_zooms if flip_margin else ()
        if any(not ZOOMS[0] <= zoom <= ZOOMS[1] for zoom in self.zooms):
            raise ModelError(f"unsure_zooms must be between {ZOOMS[0]:g} and {ZOOMS[1]:g}, "
                             f"not {self.zooms}")
        mirrored = f"+flip{flip_margin:g}" if flip_margin else ""
        zoomed = "+zoom" + ",".join(f"{z:g}" for z in self.zooms) if self.zooms else ""
        calibrated = f"+T{self.temperature:.4g}" if self.temperature != 1.0 else ""
        equalised = ("+eq" if self.card.equalise
                     else f"+dark{DARK_FACE}" if self.card.equalise_dark else "")
        self.name = (f"{self.card.name}@{file_digest(path)}{equalised}{mirrored}{zoomed}"
                     f"{calibrated}")

    def predict(self, crops: Sequence[np.ndarray] | np.ndarray,
                aligned: Sequence[np.ndarray | None] | None = None) -> np.ndarray:
        """`aligned` is not read: this network reads the grey crops alone."""
        if len(crops) == 0:
            return np.zeros((0, len(EMOTIONS)), dtype=np.float32)
        if self.card.equalise:
            crops = equalise(crops)
        elif self.card.equalise_dark:
            crops = lift_dark(crops)
        batch = preprocess(crops)
        probabilities = self._run(batch)
        unsure = self.unsure(probabilities)
        if unsure.size:
            faces = batch[unsure]
            views = [faces[:, :, ::-1]]
            for zoom in self.zooms:
                zoomed = zoom_faces(faces, zoom)
                views += [zoomed, zoomed[:, :, ::-1]]
            total = probabilities[unsure] + sum(self._run(view) for view in views)
            probabilities[unsure] = total / (1 + len(views))
        return apply_temperature(probabilities, self.temperature)

    def unsure(self, probabilities: np.ndarray) -> np.ndarray:
        """Indices of the faces to run mirrored as well: decided face by face, so a face's
        answer does not depend on the batch it came in, and on the raw single-pass
        probabilities, so calibration changes no face's answer."""
        if self._flip_margin >= 1.0:
            return np.arange(len(probabilities))
        top_two = np.sort(probabilities, axis=1)[:, -2:]
        return np.flatnonzero(top_two[:, 1] - top_two[:, 0] < self._flip_margin)

    def _run(self, batch: np.ndarray) -> np.ndarray:
        size = self._batch_size
        outputs = [
            self._session.run(None, {self._input: np.ascontiguousarray(batch[i : i + size])})[0]
            for i in range(0, len(batch), size)
        ]
        return np.concatenate(outputs).astype(np.float32)
