"""Several trained emotion networks joined into one ONNX file that averages their answers.

An ensemble of networks that err differently is more accurate than any one of them. Joining
them into one graph, rather than teaching the scan path to run several files, keeps everything
downstream unchanged: one file, one name and version, one calibration, one error profile, and
ONNX Runtime runs the members in the same call. Building one needs the `onnx` package (the
`train` extra); running one needs only ONNX Runtime.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from screener.domain import EMOTIONS, INPUT_SIZE
from screener.lab.calibration import store_calibration
from screener.lab.evaluation import Evaluation
from screener.lab.fer_data import LabelledImages
from screener.lab.quantization import quantization_record, quantize_int8
from screener.lab.shipping import evaluate_onnx, measure_on_val, measured_on_val

INPUT_NAME = "faces"
OUTPUT_NAME = "probabilities"


class EnsembleError(ValueError):
    """The members cannot be joined (unreadable, or not emotion models of the same shape)."""


@dataclass(frozen=True)
class Member:
    """One network of an ensemble, as the model card names it."""

    path: Path
    name: str


@dataclass(frozen=True)
class EnsembleResult:
    onnx_path: Path
    members: list[Member]
    evaluation: Evaluation
    """On `val` at the flip margin scans use."""
    accuracy_by_flip_margin: dict[float, float]
    member_accuracy: dict[str, float]
    """Each member alone on `val`, one pass, so the card shows what joining them bought."""


def build_ensemble(
    members: Sequence[Path], out_path: Path, val_data: LabelledImages,
    unsure_zooms: Sequence[float] = (), int8_faces: np.ndarray | None = None,
) -> EnsembleResult:
    """Join the members, measure the ensemble on `val` as scans run it, fit its calibration
    there, and write its card (.json, confusion matrix, reliability diagram) as `screener
    train` does for one network, so the ensemble ships like any model.

    `unsure_zooms` go in the card first (`ModelCard.unsure_zooms`), so that it is measured and
    calibrated as it will run. With `int8_faces` (preprocessed training faces, not `val`)
    the joined model is quantized to int8 before anything is measured
    (screener/lab/quantization.py)."""
    joined = join_models(members, out_path)
    if int8_faces is not None:
        quantize_int8(out_path, int8_faces)
    out_path.with_suffix(".json").write_text(
        json.dumps({"unsure_zooms": list(unsure_zooms)}) + "\n"
    )
    member_accuracy = {
        member.name: evaluate_onnx(member.path, val_data).accuracy for member in joined
    }
    measured = measure_on_val(out_path, val_data)
    _write_card(out_path, joined, measured.evaluations, measured.flip_margin, member_accuracy,
                unsure_zooms, None if int8_faces is None else len(int8_faces))
    store_calibration(out_path, measured.calibration)
    return EnsembleResult(
        out_path, joined, measured.evaluation,
        {m: e.accuracy for m, e in measured.evaluations.items()}, member_accuracy,
    )


def _write_card(
    out_path: Path,
    members: list[Member],
    evaluations: dict[float, Evaluation],
    flip_margin: float,
    member_accuracy: dict[str, float],
    unsure_zooms: Sequence[float],
    int8_faces: int | None,
) -> None:
    evaluation = evaluations[flip_margin]
    member_cards = [_member_card(member.path) for member in members]
    parameters = [card.get("parameters") for card in member_cards]
    meta = {
        "name": out_path.stem,
        "architecture": "ensemble: mean of the probabilities of "
        + ", ".join(card.get("architecture", member.name)
                    for card, member in zip(member_cards, members, strict=True)),
        "parameters": sum(parameters) if all(isinstance(p, int) for p in parameters) else None,
        "members": [
            {"name": member.name, "val_accuracy_one_pass": round(member_accuracy[member.name], 4),
             "architecture": card.get("architecture"), "parameters": card.get("parameters")}
            for member, card in zip(members, member_cards, strict=True)
        ],
        **measured_on_val(evaluations, flip_margin),
        "unsure_zooms": list(unsure_zooms),
        **(quantization_record(int8_faces) if int8_faces is not None else {}),
        "evaluation": evaluation.to_dict(),
        "description": (
            f"an ensemble of {len(members)} networks trained by screener on FER2013"
            f"{', run in int8' if int8_faces is not None else ''}; accuracy "
            f"{evaluation.accuracy:.1%} on the {evaluation.count} FER2013 PublicTest (val) "
            f"images, running the faces it is unsure of (flip margin {flip_margin:g}) mirrored"
            + (f" and at zooms {', '.join(f'{z:g}' for z in unsure_zooms)}"
               if unsure_zooms else "")
        ),
    }
    out_path.with_suffix(".json").write_text(json.dumps(meta, indent=2) + "\n")


def _member_card(path: Path) -> dict[str, Any]:
    card = path.with_suffix(".json")
    try:
        return json.loads(card.read_text(encoding="utf-8")) if card.is_file() else {}
    except (OSError, ValueError):
        return {}


def join_models(members: Sequence[Path], out_path: Path) -> list[Member]:
    """Write one ONNX graph whose output is the mean of the members' probabilities.

    The mean of probabilities, not of log-probabilities: on FER2013 `val` the two differed by
    a tenth of a point, and the mean keeps each member's calibration roughly intact."""
    import onnx
    from onnx import compose, helper

    if len(members) < 2:
        raise EnsembleError("an ensemble needs at least two models")
    if len({path.resolve() for path in members}) != len(members):
        raise EnsembleError("each member must be a different file")
    if out_path.resolve() in {path.resolve() for path in members}:
        raise EnsembleError(f"{out_path} is one of the members: give another --out")
    loaded = [_load_member(path) for path in members]
    graphs, opsets, joined = [], {}, []
    for index, (path, model) in enumerate(zip(members, loaded, strict=True)):
        for opset in model.opset_import:
            opsets[opset.domain] = max(opsets.get(opset.domain, 0), opset.version)
        prefix = f"m{index}_"
        model = compose.add_prefix(model, prefix)
        graph = model.graph
        # Every member reads the one shared input instead of its own prefixed copy.
        own_input = prefix + INPUT_NAME
        for node in graph.node:
            node.input[:] = [INPUT_NAME if name == own_input else name for name in node.input]
        graphs.append(graph)
        joined.append(Member(path=path, name=path.stem))
    mean = helper.make_node(
        "Mean", [graph.output[0].name for graph in graphs], [OUTPUT_NAME], name="ensemble_mean"
    )
    graph = helper.make_graph(
        nodes=[node for g in graphs for node in g.node] + [mean],
        name="screener_ensemble",
        inputs=[loaded[0].graph.input[0]],
        outputs=[helper.make_tensor_value_info(
            OUTPUT_NAME, onnx.TensorProto.FLOAT, ["batch", len(EMOTIONS)]
        )],
        initializer=[tensor for g in graphs for tensor in g.initializer],
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid(domain, version) for domain, version in opsets.items()],
        producer_name="screener ensemble",
    )
    model.ir_version = min(member.ir_version for member in loaded)
    onnx.checker.check_model(model)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(out_path))
    return joined


def _load_member(path: Path) -> Any:
    """A member must take grey 48x48 faces (NHWC, as `screener train` exports) and give seven
    probabilities: anything else would be averaged into nonsense without an error."""
    import onnx

    if not path.is_file():
        raise EnsembleError(f"model not found: {path}")
    try:
        model = onnx.load(str(path))
    except Exception as exc:
        raise EnsembleError(f"cannot read {path} as ONNX: {exc}") from None
    graph = model.graph
    if len(graph.input) != 1 or len(graph.output) != 1:
        raise EnsembleError(f"{path}: expected one input and one output")
    if graph.input[0].name != INPUT_NAME:
        raise EnsembleError(f"{path}: input is {graph.input[0].name!r}, not {INPUT_NAME!r}")
    input_dims = _dims(graph.input[0])
    output_dims = _dims(graph.output[0])
    if input_dims[1:] != [INPUT_SIZE, INPUT_SIZE, 1] or output_dims[1:] != [len(EMOTIONS)]:
        raise EnsembleError(
            f"{path}: takes {input_dims[1:]} and gives {output_dims[1:]}, not "
            f"[{INPUT_SIZE}, {INPUT_SIZE}, 1] faces and {len(EMOTIONS)} probabilities"
        )
    return model


def _dims(value_info: Any) -> list[int | str]:
    return [
        dim.dim_value if dim.HasField("dim_value") else dim.dim_param
        for dim in value_info.type.tensor_type.shape.dim
    ]
