"""Two emotion models that err differently, read together.

screener's own network reads FER2013-style faces well and is confidently wrong on faces unlike
them (talking and stern faces read as anger); OpenCV Zoo's network, trained on real-world
photographs, reads those well and FER2013's poorly. Each is calibrated on its own, and their
log-probabilities are pooled with weights chosen on held-out faces of several sources
(`benchmarks/domain_benchmark.py`), then one temperature calibrates the pooled answer. A face
without landmarks (the Haar detector) has no aligned crop and is read by the grey-crop member
alone.

The joined model is described by a small JSON file naming its members, relative to it:

    {"name": "emotion_joined", "joined": [
        {"model": "emotion_vgg.onnx", "weight": 0.5},
        {"model": "fer_mobilefacenet/fer_mobilefacenet.onnx", "input": "aligned112",
         "weight": 0.5}],
     "calibration": {"temperature": 1.1}, ...the model card's fields...}
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from screener.emotions.aligned import AlignedOnnxModel
from screener.emotions.model import ModelCard, ModelError, OnnxEmotionModel
from screener.emotions.temperature import TINY, apply_temperature


def is_joined(path: Path) -> bool:
    return path.suffix.lower() == ".json"


class JoinedEmotionModel:
    def __init__(self, path: Path, batch_size: int = 64, threads: int | None = None,
                 flip_margin: float = 0.0, temperature: float | None = None) -> None:
        try:
            meta = json.loads(path.read_text(encoding="utf-8"))
            members = meta["joined"]
            grey = next(m for m in members if m.get("input", "grey48") == "grey48")
            aligned = next(m for m in members if m.get("input") == "aligned112")
        except FileNotFoundError:
            raise ModelError(f"emotion model not found: {path}") from None
        except (ValueError, KeyError, StopIteration, TypeError, AttributeError):
            raise ModelError(f"{path}: not a joined emotion model (a \"joined\" list of one "
                             "grey48 and one aligned112 member)") from None
        self.grey = OnnxEmotionModel(path.parent / grey["model"], batch_size, threads,
                                     flip_margin)
        self.aligned = AlignedOnnxModel(path.parent / aligned["model"], batch_size, threads)
        self.weights = (float(grey.get("weight", 0.5)), float(aligned.get("weight", 0.5)))
        if min(self.weights) < 0 or sum(self.weights) <= 0:
            raise ModelError(f"{path}: member weights must be positive")
        self.card = ModelCard.for_model(path, flip_margin)
        self.temperature = self.card.temperature if temperature is None else temperature
        digest = hashlib.sha256(path.read_bytes()).hexdigest()[:10]
        self.name = (f"{self.card.name}@{digest}[{self.grey.name}|{self.aligned.name}"
                     f"|w{self.weights[0]:g}:{self.weights[1]:g}]")

    def predict(self, crops: Sequence[np.ndarray] | np.ndarray,
                aligned: Sequence[np.ndarray | None] | None = None) -> np.ndarray:
        """Probabilities over `EMOTIONS` for each face: `crops` are the 48x48 grey crops,
        `aligned` the 112x112 colour ones (None for a face without)."""
        grey = self.grey.predict(crops)
        if len(grey) == 0:
            return grey
        have = [i for i, face in enumerate(aligned or ()) if face is not None]
        if not have:
            return grey
        colour = self.aligned.predict(np.stack([aligned[i] for i in have]))
        w_grey, w_colour = self.weights
        pooled = (w_grey * np.log(np.maximum(grey[have], TINY))
                  + w_colour * np.log(np.maximum(colour, TINY))) / (w_grey + w_colour)
        pooled = np.exp(pooled - pooled.max(axis=1, keepdims=True))
        pooled /= pooled.sum(axis=1, keepdims=True)
        result = grey.copy()
        result[have] = apply_temperature(pooled.astype(np.float32), self.temperature)
        return result

    def members(self, crops: Sequence[np.ndarray] | np.ndarray,
                aligned: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """Each member's calibrated probabilities, for fitting the weights."""
        return self.grey.predict(crops), self.aligned.predict(np.asarray(aligned))


def load_emotion_model(path: Path, batch_size: int = 64, threads: int | None = None,
                       flip_margin: float = 0.0,
                       temperature: float | None = None) -> OnnxEmotionModel | JoinedEmotionModel:
    """The model a `--model` path names: an exported network (.onnx) or a joined model (.json)."""
    if is_joined(path):
        return JoinedEmotionModel(path, batch_size, threads, flip_margin, temperature)
    return OnnxEmotionModel(path, batch_size, threads, flip_margin, temperature=temperature)

