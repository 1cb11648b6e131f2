"""What a network costs before it is trained: seconds per training epoch on FER2013 `train`
(extrapolated from a few steps) and, exported to ONNX, batched faces/s and single-face
latency as scans would run it. Chooses which architecture is worth a long training run.

    python benchmarks/architecture_cost.py [--steps 8] [--out benchmarks/results/arch.json]

Faces/s and latency do not depend on the weights, so an untrained network measures them;
the shipped model is measured right after each candidate, on the same crops, so that the
ratio survives a busy machine. Training steps include the augmentation (crop jitter on) and
use batches of 64.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np

from screener.lab.train_settings import TrainSettings
from screener.settings import EmotionSettings, Settings

TRAIN_IMAGES = 28_709
CANDIDATES = {
    "minixception 16,48,128,256 (shipped)": TrainSettings(blocks=(16, 48, 128, 256)),
    "vgg 32,64,128,256 dense 512": TrainSettings(arch="vgg", blocks=(32, 64, 128, 256)),
    "vgg 48,96,192,384 dense 512": TrainSettings(arch="vgg", blocks=(48, 96, 192, 384)),
    "vgg 64,128,256,512 dense 1024": TrainSettings(
        arch="vgg", blocks=(64, 128, 256, 512), dense=1024
    ),
}


def measure(settings: TrainSettings, steps: int, folder: Path) -> dict[str, object]:
    import keras

    from benchmarks.model_benchmark import faces_per_second, single_face_latency_ms
    from screener.emotions.joined import load_emotion_model
    from screener.emotions.model import OnnxEmotionModel, preprocess
    from screener.lab.augmentation import augment_batch
    from screener.lab.networks import build_model
    from screener.lab.shipping import export_onnx

    settings = TrainSettings(**{**vars(settings), "crop_jitter": True})
    model = build_model(settings)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="categorical_crossentropy")
    rng = np.random.default_rng(0)
    size = settings.batch_size
    faces = rng.integers(0, 256, (size, 48, 48), dtype=np.uint8)
    targets = np.eye(7, dtype=np.float32)[rng.integers(0, 7, size)]
    model.train_on_batch(preprocess(augment_batch(faces, rng, crop_jitter=True)), targets)
    started = time.perf_counter()
    for _ in range(steps):
        model.train_on_batch(preprocess(augment_batch(faces, rng, crop_jitter=True)), targets)
    step_s = (time.perf_counter() - started) / steps
    onnx_path = folder / "candidate.onnx"
    export_onnx(model, onnx_path)
    margin = EmotionSettings().flip_margin
    scanning = OnnxEmotionModel(onnx_path, flip_margin=margin)
    crops = rng.integers(0, 256, (2048, 48, 48), dtype=np.uint8)
    faces_per_s = faces_per_second(OnnxEmotionModel(onnx_path), crops)
    shipped = faces_per_second(load_emotion_model(Settings().model_path), crops)
    return {
        "parameters": int(model.count_params()),
        "train_step_s": round(step_s, 3),
        "epoch_min": round(step_s * (TRAIN_IMAGES // size) / 60, 1),
        "faces_per_s_single_pass": round(faces_per_s),
        "shipped_model_faces_per_s_same_run": round(shipped),
        "speed_against_shipped": round(faces_per_s / shipped, 3),
        "single_face_ms": single_face_latency_ms(scanning, crops),
        "shipped_model_single_face_ms_same_run": single_face_latency_ms(
            load_emotion_model(Settings().model_path, flip_margin=margin), crops
        ),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--only", nargs="+", help="Measure only these candidates.")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    record: dict[str, object] = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.python_version()}",
        "note": "faces/s is one pass (flip margin 0) on random crops; latency at the default "
        "flip margin (random crops are mostly unsure, so mostly two passes)",
    }
    with tempfile.TemporaryDirectory() as folder:
        for name, settings in CANDIDATES.items():
            if args.only and not any(o in name for o in args.only):
                continue
            record[name] = measure(settings, args.steps, Path(folder))
            print(name, json.dumps(record[name]), flush=True)
    if args.out:
        earlier = json.loads(args.out.read_text()) if args.out.is_file() else {}
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({**earlier, **record}, indent=2) + "\n")


if __name__ == "__main__":
    main()
