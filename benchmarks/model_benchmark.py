"""Accuracy of an emotion model on FER2013 `val` and its batched speed in faces/s.

    python benchmarks/model_benchmark.py [--model models/emotion_minixception.onnx]
        [--data ../shared/datasets/fer2013] [--margins 0 0.1 0.2 0.3 0.5 1]
        [--ensemble OTHER.onnx ...] [--out benchmarks/results/model.json]

Accuracy belongs here, not in unit tests: it needs the full data set and takes a while.
The headline figures are the model as scans run it, at the default flip margin (faces whose
two likeliest emotions are that close are also run mirrored and averaged); `by_flip_margin`
gives accuracy, share of faces mirrored and faces/s at each of `--margins` (0: one pass, 1:
every face mirrored). `--ensemble` measures the mean of this model's and the other models'
single-pass probabilities, and the speed of running them all.
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
from screener.evaluation import Evaluation, evaluate_predictions
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


def flip_margin_row(
    path: Path, margin: float, single_pass: np.ndarray, images: np.ndarray, labels: np.ndarray
) -> tuple[dict[str, float], Evaluation]:
    model = OnnxEmotionModel(path, batch_size=64, flip_margin=margin)
    evaluation = evaluate_predictions(labels, model.predict(images).argmax(axis=1))
    return {
        "flip_margin": margin,
        "mirrored_share": round(len(model.unsure(single_pass)) / len(images), 3),
        "val_accuracy": round(evaluation.accuracy, 4),
        "faces_per_s": round(faces_per_second(model, images)),
    }, evaluation


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=Settings().model_path)
    parser.add_argument("--data", type=Path,
                        default=Path(__file__).resolve().parents[2] / "shared/datasets/fer2013")
    parser.add_argument("--margins", type=float, nargs="+", default=[0, 0.1, 0.2, 0.3, 0.5, 1])
    parser.add_argument("--ensemble", type=Path, nargs="+", default=[])
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()

    val = load_split(args.data, "val")
    default_margin = Settings().emotions.flip_margin
    model = OnnxEmotionModel(args.model, batch_size=64)
    probabilities = model.predict(val.images)
    measured = {
        margin: flip_margin_row(args.model, margin, probabilities, val.images, val.labels)
        for margin in sorted({*args.margins, default_margin})
    }
    rows = [row for row, _ in measured.values()]
    as_scanned, result = measured[default_margin]
    record = {
        "model": OnnxEmotionModel(args.model, flip_margin=default_margin).name,
        "val_images": result.count,
        "flip_margin": default_margin,
        "val_accuracy": as_scanned["val_accuracy"],
        "per_class_f1": {k: round(v.f1, 3) for k, v in result.per_class.items()},
        "faces_per_s": as_scanned["faces_per_s"],
        "by_flip_margin": rows,
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.python_version()}",
    }
    if args.ensemble:
        members = [model, *(OnnxEmotionModel(path, batch_size=64) for path in args.ensemble)]
        mean = sum((m.predict(val.images) for m in members[1:]), probabilities)
        together = evaluate_predictions(val.labels, mean.argmax(axis=1))
        seconds = sum(len(val.images) / faces_per_second(m, val.images) for m in members)
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
