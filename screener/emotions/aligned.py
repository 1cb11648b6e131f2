"""An emotion model that reads 112x112 colour faces aligned on five landmarks.

Models trained on real-world photographs (RAF-DB's, such as OpenCV Zoo's MobileFaceNet) take the
face warped onto a fixed template, in colour, where screener's own network reads a 48x48 grey
crop. Its record (`<model>.json`) names its class order and its calibration temperature; it
outputs logits, so the temperature is applied to them directly.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from screener.domain import EMOTIONS
from screener.emotions.model import ModelError, file_digest


class AlignedOnnxModel:
    """Runs an aligned-face ONNX model in batches; with `mirror`, each face is also seen
    mirrored and the two views' logits averaged (twice the cost)."""

    def __init__(self, path: Path, batch_size: int = 32, threads: int | None = None,
                 temperature: float | None = None, mirror: bool = False) -> None:
        import onnxruntime as ort

        if not path.is_file():
            raise ModelError(f"emotion model not found: {path}")
        meta_path = path.with_suffix(".json")
        meta = json.loads(meta_path.read_text(encoding="utf-8")) if meta_path.is_file() else {}
        labels = tuple(meta.get("labels", EMOTIONS))
        if sorted(labels) != sorted(EMOTIONS):
            raise ModelError(f"{meta_path}: labels must name the seven emotions, not {labels}")
        self._order = [labels.index(emotion) for emotion in EMOTIONS]
        options = ort.SessionOptions()
        options.log_severity_level = 3
        if threads:
            options.intra_op_num_threads = threads
        try:
            self._session = ort.InferenceSession(str(path), sess_options=options,
                                                 providers=["CPUExecutionProvider"])
        except Exception as exc:
            raise ModelError(f"cannot load emotion model {path}: {exc}") from exc
        self._input = self._session.get_inputs()[0].name
        self._batch_size = batch_size
        self._mirror = mirror
        recorded = float(meta.get("calibration", {}).get("temperature", 1.0))
        self.temperature = recorded if temperature is None else temperature
        if self.temperature <= 0:
            raise ModelError(f"calibration temperature must be positive, not {self.temperature}")
        self.name = f"{meta.get('name', path.stem)}@{file_digest(path)}"

    def logits(self, faces: Sequence[np.ndarray] | np.ndarray) -> np.ndarray:
        """(N, 7) logits in `EMOTIONS` order of BGR 112x112 faces."""
        if len(faces) == 0:
            return np.zeros((0, len(EMOTIONS)), np.float32)
        batch = np.asarray(faces, dtype=np.float32)[..., ::-1] / 127.5 - 1.0
        batch = np.ascontiguousarray(batch.transpose(0, 3, 1, 2))
        logits = self._run(batch)
        if self._mirror:
            logits = (logits + self._run(np.ascontiguousarray(batch[..., ::-1]))) / 2
        return logits[:, self._order]

    def predict(self, faces: Sequence[np.ndarray] | np.ndarray) -> np.ndarray:
        logits = self.logits(faces) / self.temperature
        logits -= logits.max(axis=1, keepdims=True)
        exp = np.exp(logits)
        return (exp / exp.sum(axis=1, keepdims=True)).astype(np.float32)

    def _run(self, batch: np.ndarray) -> np.ndarray:
        size = self._batch_size
        return np.concatenate([
            self._session.run(None, {self._input: batch[i : i + size]})[0]
            for i in range(0, len(batch), size)
        ]).astype(np.float32)
