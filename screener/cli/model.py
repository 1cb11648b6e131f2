"""The model commands of `screener`: `train`, `evaluate` and `calibrate` the emotion
classifier (`ensemble` and `quantize` are in `cli.model_files`).

Kept apart from the scan commands because they deal with labelled images and TensorFlow, not
videos; they register themselves on the same Typer app.
"""

from __future__ import annotations

import json
from functools import partial
from pathlib import Path
from typing import Annotated

import typer

from screener.cli.app import app, fail, say
from screener.cli.options import DataOption

DEFAULT_TRAIN_OUT = "emotion_minixception.keras"

@app.command()
def train(
    data: DataOption,
    out: Annotated[
        Path | None,
        typer.Option("--out", metavar="FILE", show_default=False,
                     help="Where to write the .keras model (the .onnx goes beside it) [default: "
                     f"{DEFAULT_TRAIN_OUT} in the current folder; never the shipped model]."),
    ] = None,
    epochs: Annotated[int, typer.Option(help="Most epochs to run.")] = 100,
    batch_size: Annotated[int, typer.Option(help="Batch size, a multiple of 4.")] = 64,
    patience: Annotated[int, typer.Option(help="Early stopping patience on val accuracy.")] = 20,
    learning_rate: Annotated[float, typer.Option(help="Adam learning rate.")] = 1e-3,
    width: Annotated[int, typer.Option(help="Filter multiplier (1 = original).")] = 1,
    arch: Annotated[
        str, typer.Option(help='"minixception" or "vgg" (larger, slower, more accurate).')
    ] = "minixception",
    blocks: Annotated[
        str | None,
        typer.Option(
            metavar="N,N,...",
            help="Filters of the residual blocks (VGG: of the stages), comma-separated. "
            "Default: 16,32,64,128 (mini-Xception), 32,64,128,256 (VGG).",
            show_default=False,
        ),
    ] = None,
    dropout: Annotated[float, typer.Option(help="VGG dropout after each stage.")] = 0.3,
    dense: Annotated[int, typer.Option(help="VGG hidden dense units.")] = 512,
    l2: Annotated[float, typer.Option(help="L2 weight decay of the convolutions.")] = 0.01,
    schedule: Annotated[
        str, typer.Option(metavar="plateau|cosine",
                          help='"plateau" (halve on a stalled val loss) or "cosine".')
    ] = "plateau",
    label_smoothing: Annotated[float, typer.Option(help="Label smoothing, 0 to 0.3.")] = 0.0,
    class_weights: Annotated[bool, typer.Option(help="Weight rare classes up.")] = False,
    augment: Annotated[bool, typer.Option(help="Rotate, shift, zoom and flip.")] = True,
    crop_jitter: Annotated[
        bool,
        typer.Option(
            help="Also vary faces as the scan's crops vary: wider framing jitter, blur, low "
            "resolution, lighting and contrast."
        ),
    ] = False,
    equalise: Annotated[
        bool,
        typer.Option(
            help="Train on histogram-equalised faces, as most FER2013 images are; the model's "
            "card says so, and scans then equalise the faces they give it."
        ),
    ] = False,
    cutout: Annotated[
        float, typer.Option(help="Share of images that lose a random square (0 to 1).")
    ] = 0.0,
    teacher: Annotated[
        list[Path] | None,
        typer.Option(metavar="MODEL.onnx",
                     help="An ONNX model to distil from; repeat for an ensemble of teachers."),
    ] = None,
    distill: Annotated[
        float, typer.Option(help="Share of each target taken from the teachers (0 to 1).")
    ] = 0.5,
    consistent: Annotated[
        bool,
        typer.Option(
            help="Teachers label each augmented batch as the student sees it, every epoch, "
            "instead of each clean image once (slower)."
        ),
    ] = False,
    mixup: Annotated[
        float,
        typer.Option(help="Mixup: blend image pairs by a Beta(ALPHA, ALPHA) share; 0 = off."),
    ] = 0.0,
    precision: Annotated[
        str,
        typer.Option(metavar="float32|bfloat16",
                     help='"bfloat16": mixed precision, 15% less time an epoch on a CPU with '
                     "AVX-512 BF16 (more on a GPU); the exported model is float32 either way."),
    ] = "float32",
    seed: Annotated[int, typer.Option(help="Random seed (runs repeat exactly).")] = 1337,
    init_from: Annotated[
        Path | None,
        typer.Option(metavar="MODEL.keras|MODEL.onnx", show_default=False,
                     help="Start from this trained model's weights (same architecture) instead "
                     "of random ones: a second learning-rate cycle for a finished run. A VGG's "
                     "exported .onnx file (float32 or int8, as shipped) works too."),
    ] = None,
    checkpoints: Annotated[
        Path | None,
        typer.Option(metavar="DIR", show_default=False,
                     help="Checkpoint folder; training resumes from it [default: beside --out, "
                     "named after it; in the current folder when --out is in screener's own "
                     "models folder]."),
    ] = None,
) -> None:
    """Train the emotion model on FER2013 (needs the "train" extra, TensorFlow).

    Keeps the epoch with the best `val` accuracy, exports it to ONNX beside the .keras file and
    writes its metrics and calibration (.json), confusion matrix (_confusion.png) and
    reliability diagram (_reliability.png). Interrupted runs resume
    from the checkpoint folder when started again with the same command.
    """
    from screener.emotions.model import ModelError
    from screener.lab.fer_data import DatasetError, load_split
    from screener.lab.train_settings import VGG_BLOCKS, TrainSettings
    from screener.resources import is_shipped
    from screener.settings import SettingsError

    if out is None:
        out = Path(DEFAULT_TRAIN_OUT)
        if is_shipped(out):
            raise fail(f"{out.resolve()} is screener's shipped model: give --out FILE")
    if checkpoints is None and is_shipped(out):
        checkpoints = Path(f"{out.stem}.checkpoints")
    if blocks is None:
        blocks = ",".join(map(str, VGG_BLOCKS if arch == "vgg" else TrainSettings().blocks))
    try:
        block_filters = tuple(int(f) for f in blocks.split(","))
    except ValueError:
        raise fail(f"--blocks must be comma-separated integers, not {blocks!r}") from None
    settings = TrainSettings(
        epochs=epochs, batch_size=batch_size, patience=patience, learning_rate=learning_rate,
        width=width, blocks=block_filters, l2=l2, schedule=schedule,
        label_smoothing=label_smoothing, class_weights=class_weights, augment=augment,
        cutout=cutout, teachers=tuple(str(t) for t in teacher or ()), distill=distill,
        consistent=consistent, mixup=mixup, crop_jitter=crop_jitter, equalise=equalise,
        arch=arch,
        dropout=dropout, dense=dense, precision=precision, seed=seed,
        init_from=str(init_from) if init_from else None,
    )
    try:
        settings.validate()
        for path in teacher or ():
            if not path.is_file():
                raise SettingsError(f"teacher model not found: {path}")
        if init_from is not None and not init_from.is_file():
            raise SettingsError(f"model to start from not found: {init_from}")
    except SettingsError as exc:
        raise fail(str(exc)) from None
    from screener.lab.shipping import ExportDeferred
    from screener.lab.training import missing_training_packages
    from screener.lab.training import train as run_training

    missing = missing_training_packages()
    if missing:
        raise fail(f"training needs the train extra (missing: {', '.join(missing)}): "
                   'pip install "screener[train]"')
    try:
        train_data = load_split(data, "train")
        val_data = load_split(data, "val")
    except DatasetError as exc:
        raise fail(str(exc)) from None
    say(f"training on {len(train_data)} images, validating on {len(val_data)}")
    try:
        result = run_training(train_data, val_data, out, settings, checkpoints)
    except ModelError as exc:
        raise fail(str(exc)) from None
    except ExportDeferred as exc:
        say(f"trained; {exc}")
        return
    say(
        f"best epoch {result.best_epoch} of {result.epochs_run}: val accuracy "
        f"{result.evaluation.accuracy:.4f} as scans run it, "
        f"{result.accuracy_by_flip_margin[0.0]:.4f} without flip averaging; wrote "
        f"{result.model_path} and {result.onnx_path} in {result.wall_s / 60:.1f} min"
    )


@app.command()
def evaluate(
    data: DataOption,
    model: Annotated[
        Path | None, typer.Option(metavar="FILE", help="ONNX model (default: the shipped one).")
    ] = None,
    split: Annotated[str, typer.Option(metavar="train|val|test",
                                       help="Split to read from a CSV or split folder.")] = "val",
    detect_faces: Annotated[
        bool, typer.Option(help="Crop each image with the face detector first (portraits).")
    ] = False,
    confusion_png: Annotated[
        Path | None,
        typer.Option("--confusion", metavar="FILE.png",
                     help="Write the confusion matrix as a PNG."),
    ] = None,
    flip_margin: Annotated[
        float | None,
        typer.Option(
            help="Also run mirrored, and average, each face whose two likeliest emotions are "
            "closer than this: 0 never, 1 every face (twice the cost). Default: what scans use.",
            show_default=False,
        ),
    ] = None,
    probabilities_csv: Annotated[
        Path | None,
        typer.Option(
            "--probabilities",
            help="Write each image's path, true label and seven probabilities as CSV.",
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON document.")] = False,
) -> None:
    """Accuracy, calibration error (ECE), per-class precision/recall/F1 and the confusion
    matrix on labelled images, with the probabilities scans would give."""
    from screener.domain import EMOTIONS
    from screener.emotions.joined import load_emotion_model
    from screener.emotions.model import ModelError
    from screener.faces import DetectorError
    from screener.lab.evaluation import draw_confusion, evaluate_probabilities, write_probabilities
    from screener.lab.fer_data import DatasetError, load_split
    from screener.settings import Settings

    settings = Settings()
    if split not in ("train", "val", "test"):
        raise fail("--split must be train, val or test")
    if confusion_png and not confusion_png.parent.is_dir():
        raise fail(f"cannot write {confusion_png}: no folder {confusion_png.parent}")
    try:
        margin = settings.emotions.flip_margin if flip_margin is None else flip_margin
        classifier = load_emotion_model(model or settings.model_path, flip_margin=margin)
        cropper = None
        if detect_faces:
            from screener.faces import largest_face_crop, make_detector

            cropper = partial(
                largest_face_crop, make_detector(settings.faces), settings=settings.faces
            )
        data_set = load_split(data, split, cropper)
    except (ModelError, DetectorError, DatasetError) as exc:
        raise fail(str(exc)) from None
    probabilities = classifier.predict(data_set.images)
    result = evaluate_probabilities(data_set.labels, probabilities)
    try:
        if confusion_png:
            draw_confusion(result, confusion_png)
        if probabilities_csv:
            write_probabilities(probabilities_csv, data_set.paths, data_set.labels, probabilities)
    except OSError as exc:
        raise fail(f"cannot write: {exc}") from None
    if as_json:
        say(json.dumps(result.to_dict(), indent=2))
        return
    say(f"accuracy {result.accuracy:.4f} on {result.count} images ({classifier.name})")
    say(f"expected calibration error {result.ece:.4f} (15 confidence bins)")
    say(f"{'class':<10}{'precision':>10}{'recall':>10}{'f1':>10}{'support':>10}")
    for name in EMOTIONS:
        m = result.per_class[name]
        say(f"{name:<10}{m.precision:>10.3f}{m.recall:>10.3f}{m.f1:>10.3f}{m.support:>10}")
    say("confusion (rows true, columns predicted): " + ", ".join(EMOTIONS))
    for name, row in zip(EMOTIONS, result.confusion, strict=True):
        say(f"{name:<10}" + "".join(f"{v:>7}" for v in row))


@app.command()
def calibrate(
    data: DataOption,
    model: Annotated[
        Path | None,
        typer.Option(help="ONNX model whose .json receives the temperature: a copy, never "
                     "the shipped model, which is refused.", show_default=False),
    ] = None,
    split: Annotated[
        str, typer.Option(help="Held-out split to fit on: never one the model trained on.")
    ] = "val",
    diagram: Annotated[
        Path | None,
        typer.Option(help="Write a reliability diagram PNG (before and after) here."),
    ] = None,
) -> None:
    """Fit the model's temperature on held-out images, as scans run it, and store it in the
    model's .json: every later scan and evaluation then gives calibrated probabilities."""
    from screener.emotions.joined import load_emotion_model
    from screener.emotions.model import ModelError
    from screener.emotions.temperature import apply_temperature
    from screener.lab.calibration import fit_calibration, store_calibration
    from screener.lab.evaluation import draw_reliability
    from screener.lab.fer_data import DatasetError, load_split
    from screener.resources import is_shipped
    from screener.settings import Settings

    settings = Settings()
    if split not in ("train", "val", "test"):
        raise fail("--split must be train, val or test")
    path = model or settings.model_path
    if is_shipped(path):  # every scan reads the shipped model's .json: never rewritten here
        raise fail(f"calibrate will not write into the shipped model ({path.name}): copy it "
                   "with its .json and pass the copy as --model")
    margin = settings.emotions.flip_margin
    try:
        raw = load_emotion_model(path, flip_margin=margin, temperature=1.0)
        data_set = load_split(data, split)
    except (ModelError, DatasetError) as exc:
        raise fail(str(exc)) from None
    probabilities = raw.predict(data_set.images)
    result = fit_calibration(
        probabilities, data_set.labels, margin, fitted_on=f"{data.name} {split}"
    )
    try:
        store_calibration(path, result)
        if diagram:
            calibrated = apply_temperature(probabilities, result.temperature)
            draw_reliability(
                {
                    "uncalibrated": (probabilities, data_set.labels),
                    f"temperature {result.temperature:.3f}": (calibrated, data_set.labels),
                },
                diagram,
                title=f"{path.stem}, {split}, flip margin {margin:g}",
            )
    except OSError as exc:
        raise fail(f"cannot write: {exc}") from None
    say(
        f"temperature {result.temperature:.4f} fitted on {result.images} images; ECE "
        f"{result.ece_before:.4f} before, {result.ece_after:.4f} after, "
        f"{result.ece_cross_fitted:.4f} cross-fitted (2 folds); stored in "
        f"{path.with_suffix('.json')}"
    )
