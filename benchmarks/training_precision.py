"""What mixed bfloat16 (`screener train --precision bfloat16`) saves per training step.

    python benchmarks/training_precision.py [--rounds 3] [--steps 12] \
        [--out benchmarks/results/training_precision.json]

The network is the ensemble's VGG member (32-256, dense 512) on batches of 64 with crop jitter,
as trained. Float32 and bfloat16 alternate round by round, so that a machine getting busier
weighs on both alike; the median step of each is compared. Whether a CPU gains depends on
AVX-512 BF16 (or AMX), recorded from /proc/cpuinfo. A whole epoch also runs the teachers and
the augmentation, which do not change: lab/models/README.md gives the measured epoch.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

from screener.lab.train_settings import TrainSettings

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.result_files import machine_summary, print_and_save  # noqa: E402

SETTINGS = TrainSettings(arch="vgg", blocks=(32, 64, 128, 256), dense=512, dropout=0.3,
                         l2=1e-4, crop_jitter=True)


def cpu_bf16_flags() -> list[str]:
    try:
        flags = Path("/proc/cpuinfo").read_text().split()
    except OSError:
        return []
    return sorted({f for f in flags if "bf16" in f or f.startswith("amx")})


def step_seconds(precision: str, steps: int) -> float:
    import keras

    from screener.emotions.model import preprocess
    from screener.lab.augmentation import augment_batch
    from screener.lab.networks import build_model
    from screener.lab.training import precision_policy

    with precision_policy(keras, precision):
        model = build_model(SETTINGS)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="categorical_crossentropy")
    rng = np.random.default_rng(0)
    faces = rng.integers(0, 256, (SETTINGS.batch_size, 48, 48), dtype=np.uint8)
    targets = np.eye(7, dtype=np.float32)[rng.integers(0, 7, SETTINGS.batch_size)]
    batches = [preprocess(augment_batch(faces, rng, crop_jitter=True)) for _ in range(steps)]
    for batch in batches[:2]:
        model.train_on_batch(batch, targets)
    started = time.perf_counter()
    for batch in batches:
        model.train_on_batch(batch, targets)
    return (time.perf_counter() - started) / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    times: dict[str, list[float]] = {"float32": [], "bfloat16": []}
    for round_ in range(args.rounds):
        for precision in times:
            times[precision].append(step_seconds(precision, args.steps))
            print(f"round {round_ + 1} {precision}: {times[precision][-1]:.3f} s a step",
                  flush=True)
    median = {p: statistics.median(t) for p, t in times.items()}
    record = {
        "machine": machine_summary(),
        "cpu_bf16_flags": cpu_bf16_flags(),
        "load_average": [round(v, 2) for v in os.getloadavg()],
        "network": "VGG 32,64,128,256 dense 512, batch 64, crop jitter",
        "step_s": {p: [round(v, 4) for v in t] for p, t in times.items()},
        "median_step_s": {p: round(v, 4) for p, v in median.items()},
        "bfloat16_time_share": round(median["bfloat16"] / median["float32"], 3),
    }
    print_and_save(record, args.out)


if __name__ == "__main__":
    main()
