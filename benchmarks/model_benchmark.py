"""Accuracy of an emotion model on FER2013 `val` and its batched speed in faces/s.

    python benchmarks/model_benchmark.py [--model models/emotion_minixception.onnx]
        [--data ../shared/datasets/fer2013] [--flip] [--ensemble OTHER.onnx ...]
        [--out benchmarks/results/model.json]

Accuracy belongs here, not in unit tests: it needs the full data set and takes a while.
`--flip` also measures test-time flip averaging (mean of the image and its mirror);
`--ensemble` the mean of this model's and the other models' probabilities, and the speed of
running them all.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np

from screener.emotions import OnnxEmotionModel
from screener.evaluation import evaluate_predictions
from screener.fer_data import load_split
from screener.settings import Settings


def faces_per_second(model: OnnxEmotionModel, images: np.ndarray, repeats: int = 3) -> float:
    model.predict(images[:256])
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        model.predict(images)
        best = min(best, time.perf_counter() - started)
    return len(images) / best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=Settings().model_path)
    parser.add_argument("--data", type=Path,
                        default=Path(__file__).resolve().parents[2] / "shared/datasets/fer2013")
    parser.add_argument("--flip", action="store_true")
    parser.add_argument("--ensemble", type=Path, nargs="+", default=[])
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()

    val = load_split(args.data, "val")
    model = OnnxEmotionModel(args.model, batch_size=64)
    probabilities = model.predict(val.images)
    result = evaluate_predictions(val.labels, probabilities.argmax(axis=1))
    record = {
        "model": model.name,
        "val_images": result.count,
        "val_accuracy": round(result.accuracy, 4),
        "per_class_f1": {k: round(v.f1, 3) for k, v in result.per_class.items()},
        "faces_per_s": round(faces_per_second(model, val.images)),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.python_version()}",
    }
    if args.flip:
        mirrored = model.predict(val.images[:, :, ::-1])
        flipped = evaluate_predictions(val.labels, (probabilities + mirrored).argmax(axis=1))
        record["val_accuracy_flip_tta"] = round(flipped.accuracy, 4)
    if args.ensemble:
        members = [model, *(OnnxEmotionModel(path, batch_size=64) for path in args.ensemble)]
        mean = sum((m.predict(val.images) for m in members[1:]), probabilities)
        together = evaluate_predictions(val.labels, mean.argmax(axis=1))
        seconds = len(val.images) / record["faces_per_s"] + sum(
            len(val.images) / faces_per_second(m, val.images) for m in members[1:])
        record["ensemble"] = {
            "members": [m.name for m in members],
            "val_accuracy": round(together.accuracy, 4),
            "faces_per_s": round(len(val.images) / seconds),
        }
    print(json.dumps(record, indent=2))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(record, indent=2) + "\n")


if __name__ == "__main__":
    main()
