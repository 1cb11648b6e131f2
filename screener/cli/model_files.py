"""The commands that make one shippable model file from trained ones: `ensemble` joins
several, `quantize` stores one in int8. Both measure, calibrate and describe what they write
on `val`, as `train` does, so the file ships or is set as `[emotions] model_path` like any
model. Kept apart from `cli.model` because they read ONNX files, never TensorFlow.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from screener.cli.app import app, fail, say
from screener.cli.options import DataOption


@app.command()
def ensemble(
    members: Annotated[
        list[Path],
        typer.Argument(metavar="MODEL.onnx...", show_default=False,
                       help="Two or more models made by `screener train`."),
    ],
    data: DataOption,
    out: Annotated[
        Path,
        typer.Option("--out", metavar="FILE.onnx", show_default=False,
                     help="Where to write the joined model; its .json, confusion matrix and "
                     "reliability diagram go beside it."),
    ],
    unsure_zooms: Annotated[
        str,
        typer.Option(metavar="Z,Z,...",
                     help="Also run the faces it is unsure of (those run mirrored) at these "
                     "zooms, each straight and mirrored, and average all; e.g. 1.1,0.9."),
    ] = "",
    int8: Annotated[
        bool,
        typer.Option("--int8", help="Store and run the ensemble in 8-bit integers, calibrated "
                     "on training faces: about three times the faces/s and a quarter of the file, "
                     "so more members fit the speed budget; its accuracy is measured as usual."),
    ] = False,
) -> None:
    """Join trained models into one ONNX file that averages their probabilities (needs the
    "train" extra, for the onnx package).

    The ensemble is measured on `val` as scans run it, calibrated there, and described in its
    .json like a trained model, so it can be shipped or set as `[emotions] model_path`. It
    runs the members one after another, so it costs their summed time per face.
    """
    import importlib.util

    from screener.emotions.model import ZOOMS
    from screener.lab.ensemble import EnsembleError, build_ensemble
    from screener.lab.fer_data import DatasetError, load_split
    from screener.lab.quantization import calibration_faces

    if out.suffix != ".onnx":
        raise fail(f"--out must end in .onnx, not {out.name}")
    if importlib.util.find_spec("onnx") is None:
        raise fail('joining models needs the onnx package: pip install "screener[train]"')
    try:
        zooms = tuple(float(z) for z in unsure_zooms.split(",") if z.strip())
    except ValueError:
        raise fail(
            f"--unsure-zooms must be comma-separated numbers, not {unsure_zooms!r}"
        ) from None
    if any(not ZOOMS[0] <= z <= ZOOMS[1] for z in zooms):
        raise fail(f"--unsure-zooms must be between {ZOOMS[0]:g} and {ZOOMS[1]:g}, "
                   f"not {unsure_zooms}")
    try:
        val_data = load_split(data, "val")
        faces = calibration_faces(load_split(data, "train").images) if int8 else None
        say("joining the models"
            + (f", quantizing them to int8 on {len(faces)} train faces" if faces is not None
               else "")
            + f", then measuring and calibrating them on {len(val_data)} val images "
            "(a minute or more)")
        result = build_ensemble(members, out, val_data, zooms, faces)
    except (EnsembleError, DatasetError) as exc:
        raise fail(str(exc)) from None
    except OSError as exc:
        raise fail(f"cannot write: {exc}") from None
    for name, accuracy in result.member_accuracy.items():
        say(f"member {name}: val accuracy {accuracy:.4f} alone, one pass")
    say(
        f"ensemble of {len(result.members)}{' in int8' if int8 else ''}: val accuracy "
        f"{result.evaluation.accuracy:.4f} as "
        f"scans run it, {result.accuracy_by_flip_margin[0.0]:.4f} without flip averaging; "
        f"wrote {out} and {out.with_suffix('.json')}"
    )


@app.command()
def quantize(
    model: Annotated[
        Path, typer.Argument(metavar="MODEL.onnx", show_default=False,
                             help="A float32 model made by `screener train`.")
    ],
    data: DataOption,
    out: Annotated[
        Path,
        typer.Option("--out", metavar="FILE.onnx", show_default=False,
                     help="Where to write the int8 model; its .json, confusion matrix and "
                     "reliability diagram go beside it."),
    ],
) -> None:
    """Store a trained model in 8-bit integers, calibrated on 512 training faces: about three
    times the faces/s and a quarter of the file, so a larger network fits the speed budget
    (needs the "train" extra). The int8 model is measured and calibrated on `val` as scans run
    it, and its .json keeps the float model's training record."""
    import importlib.util

    from screener.lab.fer_data import DatasetError, load_split
    from screener.lab.quantization import QuantizationError, float_model_card, quantize_model

    if out.suffix != ".onnx":
        raise fail(f"--out must end in .onnx, not {out.name}")
    if not model.is_file():
        raise fail(f"no model at {model}")
    if importlib.util.find_spec("onnx") is None:
        raise fail('quantizing needs the onnx package: pip install "screener[train]"')
    try:
        float_model_card(model, out)
        val_data = load_split(data, "val")
        train_images = load_split(data, "train").images
        say(f"quantizing {model.name} to int8, then measuring and calibrating it on "
            f"{len(val_data)} val images (a minute or more)")
        result = quantize_model(model, out, val_data, train_images)
    except (QuantizationError, DatasetError) as exc:
        raise fail(str(exc)) from None
    except OSError as exc:
        raise fail(f"cannot write: {exc}") from None
    was = (f" (float32: {result.float_accuracy:.4f})"
           if result.float_accuracy is not None else "")
    say(f"int8: val accuracy {result.evaluation.accuracy:.4f} as scans run it{was}, "
        f"{result.accuracy_by_flip_margin[0.0]:.4f} without flip averaging; wrote {out} and "
        f"{out.with_suffix('.json')}")
