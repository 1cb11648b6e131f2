"""An emotion model stored and run in 8-bit integers, so that more networks fit the budget.

The emotions stage must stay a small part of a scan (issue 20: at least about 500 faces/s
batched here). In float32 that budget holds two networks; an ensemble of more, which is where
accuracy comes from on a CPU, does not fit. Static int8 quantization (ONNX Runtime's QDQ
format: weights per output channel, activations with ranges measured on training faces)
measured on the shipped two-network ensemble: about three times the faces/s, a quarter of
the file, and the same `val` accuracy within a tenth of a point (models/README.md). Small
depthwise networks gain nothing (the mini-Xception alone, session 9): it pays on full
convolutions.

Weights use 7 of their 8 bits (`reduce_range`): CPUs without VNNI multiply 8-bit pairs in
16-bit sums that can saturate, so full-range weights would answer differently on them than
on the machine the model was measured on; with 7 bits every x86 CPU gives the same answers.
Building needs the `onnx` package (the `train` extra); running needs only ONNX Runtime.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from screener.emotions import preprocess

CALIBRATION_FACES = 512
CALIBRATION_SEED = 2026
SCHEME = ("int8, static (QDQ): weights per output channel in 7 bits (reduce_range), "
          "activations uint8")


def calibration_faces(images: np.ndarray, count: int = CALIBRATION_FACES) -> np.ndarray:
    """A fixed sample of training faces, preprocessed as scans preprocess, whose activations
    set each layer's int8 range; the same data and seed give the same model."""
    rng = np.random.default_rng(CALIBRATION_SEED)
    chosen = rng.choice(len(images), size=min(count, len(images)), replace=False)
    return preprocess(images[np.sort(chosen)])


def quantize_int8(model_path: Path, faces: np.ndarray, batch: int = 64) -> None:
    """Replace the float32 model at `model_path` by its int8 version, calibrated on `faces`
    (already preprocessed, NHWC)."""
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    if len(faces) == 0:
        raise ValueError("int8 calibration needs at least one face")

    class Faces(CalibrationDataReader):
        def __init__(self, input_name: str) -> None:
            self._batches = iter(
                {input_name: np.ascontiguousarray(faces[i : i + batch], dtype=np.float32)}
                for i in range(0, len(faces), batch)
            )

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self._batches, None)

    with tempfile.TemporaryDirectory(prefix=".int8-", dir=model_path.parent) as scratch:
        prepared = Path(scratch) / "prepared.onnx"
        quant_pre_process(str(model_path), str(prepared))
        input_name, softmax_nodes = _name_nodes(prepared)
        quantized = Path(scratch) / "int8.onnx"
        quantize_static(
            str(prepared), str(quantized), Faces(input_name), nodes_to_exclude=softmax_nodes,
            quant_format=QuantFormat.QDQ, per_channel=True, reduce_range=True,
            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
        )
        quantized.replace(model_path)


def _name_nodes(model_path: Path) -> tuple[str, list[str]]:
    """The model's input and its Softmax nodes, naming every unnamed node first (the quantizer
    picks nodes by name, and one empty name would exclude every unnamed node).

    Probabilities stay float: in uint8 they would come in steps of 1/255, small ones rounded
    to nothing, which calibration and the session estimates would then read."""
    import onnx

    model = onnx.load(str(model_path))
    for index, node in enumerate(model.graph.node):
        node.name = node.name or f"screener_unnamed_{index}_{node.op_type}"
    onnx.save(model, str(model_path))
    softmax = [node.name for node in model.graph.node if node.op_type == "Softmax"]
    return model.graph.input[0].name, softmax
