"""An emotion model stored and run in 8-bit integers, so that more networks fit the budget.

The emotions stage must stay a small part of a scan (issue 20: at least about 500 faces/s
batched here). In float32 that budget holds two networks; an ensemble of more, which is where
accuracy comes from on a CPU, does not fit. Static int8 quantization (ONNX Runtime's QDQ
format: weights per output channel, activations with ranges measured on training faces)
measured on an earlier two-network ensemble: about three times the faces/s, a quarter
of the file, and the same `val` accuracy within a tenth of a point (lab/models/README.md); the
same holds for a single VGG, so a wider one can fit the budget. Small depthwise networks gain
nothing (the mini-Xception alone): it pays on full convolutions.

Weights use 7 of their 8 bits (`reduce_range`): CPUs without VNNI multiply 8-bit pairs in
16-bit sums that can saturate, so full-range weights would answer differently on them than
on the machine the model was measured on; with 7 bits every x86 CPU gives the same answers.
Building needs the `onnx` package (the `train` extra); running needs only ONNX Runtime.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from screener.emotions.model import equalise, preprocess
from screener.lab.calibration import store_calibration
from screener.lab.evaluation import Evaluation
from screener.lab.fer_data import LabelledImages
from screener.lab.shipping import measure_on_val, measured_on_val

CALIBRATION_FACES = 512
CALIBRATION_SEED = 2026
SCHEME = ("int8, static (QDQ): weights per output channel in 7 bits (reduce_range), "
          "activations uint8")


REMEASURED = ("name", "description", "evaluation", "calibration", "error_profile", "quantization",
              "val_accuracy", "val_accuracy_by_flip_margin", "flip_margin", "val_images")
"""Card fields that describe the float model's answers: the int8 model measures its own."""


class QuantizationError(ValueError):
    """The model cannot be quantized (already int8, or the same file as the output)."""


@dataclass(frozen=True)
class QuantizedModel:
    onnx_path: Path
    evaluation: Evaluation
    """On `val` at the flip margin scans use."""
    accuracy_by_flip_margin: dict[float, float]
    float_accuracy: float | None
    """What the float model's card recorded at that margin, so the cost of int8 is in view."""


def quantization_record(faces: int) -> dict[str, Any]:
    """How a model card says its model runs in int8."""
    return {"quantization": {"scheme": SCHEME, "calibration": f"{faces} FER2013 train faces"}}


def calibration_faces(images: np.ndarray, count: int = CALIBRATION_FACES,
                      equalised: bool = False) -> np.ndarray:
    """A fixed sample of training faces, preprocessed as scans preprocess (`equalised` for a
    model that reads equalised faces), whose activations set each layer's int8 range; the
    same data and seed give the same model."""
    rng = np.random.default_rng(CALIBRATION_SEED)
    chosen = images[np.sort(rng.choice(len(images), size=min(count, len(images)),
                                       replace=False))]
    return preprocess(equalise(chosen) if equalised else chosen)


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


def float_model_card(model_path: Path, out_path: Path) -> dict[str, Any]:
    """The card of a model about to be quantized, once it is known that it can be: checked
    before anything slow starts, so a refusal comes first."""
    if out_path.resolve() == model_path.resolve():
        raise QuantizationError("--out must be a new file: the float model stays as it is")
    source_card = model_path.with_suffix(".json")
    try:
        source = json.loads(source_card.read_text(encoding="utf-8")) \
            if source_card.is_file() else {}
    except (OSError, ValueError) as exc:
        raise QuantizationError(f"cannot read {source_card}: {exc}") from None
    if "quantization" in source:
        raise QuantizationError(f"{model_path.name} already runs in int8")
    return source


def quantize_model(
    model_path: Path, out_path: Path, val_data: LabelledImages, train_images: np.ndarray
) -> QuantizedModel:
    """A trained model stored in int8 beside its float original, shipped like any model:
    measured on `val` as scans run it, calibrated there, and described by a card that keeps
    the float model's training record (architecture, settings, time), so the int8 file can
    replace the float one without losing how it was made.

    The calibration is fitted again: quantization nudges every probability, and the session
    estimates read the probabilities, not only the top label."""
    source = float_model_card(model_path, out_path)
    faces = calibration_faces(train_images, equalised=bool(source.get("equalise")))
    shutil.copyfile(model_path, out_path)
    quantize_int8(out_path, faces)
    out_path.with_suffix(".json").write_text(
        json.dumps({"unsure_zooms": source.get("unsure_zooms", []),
                    "equalise": bool(source.get("equalise", False)),
                    "equalise_dark": bool(source.get("equalise_dark", True))}) + "\n"
    )
    measured = measure_on_val(out_path, val_data)
    evaluation = measured.evaluation
    kept = {key: value for key, value in source.items() if key not in REMEASURED}
    what = source.get("description", "").split(";")[0] or model_path.stem
    card = {
        "name": out_path.stem,
        **kept,
        **measured_on_val(measured.evaluations, measured.flip_margin),
        **quantization_record(len(faces)),
        "quantized_from": {"model": model_path.name,
                           "val_accuracy": source.get("val_accuracy")},
        "evaluation": evaluation.to_dict(),
        "description": (
            f"{what}, run in int8; accuracy {evaluation.accuracy:.1%} on the "
            f"{evaluation.count} FER2013 PublicTest (val) images, mirroring the faces it is "
            f"unsure of (flip margin {measured.flip_margin:g})"
        ),
    }
    out_path.with_suffix(".json").write_text(json.dumps(card, indent=2) + "\n")
    store_calibration(out_path, measured.calibration)
    float_accuracy = source.get("val_accuracy") \
        if source.get("flip_margin") == measured.flip_margin else None
    return QuantizedModel(
        out_path, evaluation, {m: e.accuracy for m, e in measured.evaluations.items()},
        float_accuracy,
    )
