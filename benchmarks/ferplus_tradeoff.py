"""Can one model meet both FER2013 targets: its own labels and the FER+ crowd's majority?

On the FER2013 `val` images where most of the ten FER+ voters agree (`fer_val_ferplus` of
benchmarks/domain_benchmark.py), FER2013's label and the majority differ on about a third. A
model names one emotion per face, so on a face where they differ it can be right by one
labelling at most. With `a` the share of faces where they agree and `r` the accuracy there,
accuracy on the majority plus accuracy on FER2013's labels is at most `2 a r + (1 - a)`; this
benchmark records `a`, each model's `r` and how it splits the faces where the labels differ,
and the least `r` that reaching both targets on these faces needs.

    python benchmarks/ferplus_tradeoff.py [--model PATH ...] [--out FILE]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.domain_benchmark import cached_sources  # noqa: E402
from benchmarks.result_files import machine_summary, print_and_save  # noqa: E402
from screener.emotions.joined import load_emotion_model  # noqa: E402
from screener.settings import Settings  # noqa: E402

TARGET_FERPLUS = 0.84
TARGET_OWN = 0.69
MODELS = (Settings().model_path, ROOT / "models/emotion_vgg.onnx",
          ROOT / "models/emotion_vgg_xd.onnx")


def both_labellings() -> tuple[np.ndarray, np.ndarray, np.ndarray, list]:
    """The faces with a FER+ majority: grey crops, FER2013's labels, the majority."""
    sources = {s.name: s for s in cached_sources(smoke=False)}
    fer, plus = sources["fer_val"], sources["fer_val_ferplus"]
    where = {image.tobytes(): i for i, image in enumerate(fer.grey)}
    rows = np.array([where[image.tobytes()] for image in plus.grey])
    return plus.grey, fer.labels[rows], plus.labels, plus.aligned


def least_agreeing_accuracy(agree: float, ferplus: float = TARGET_FERPLUS,
                            own: float = TARGET_OWN) -> float:
    """The accuracy on faces where both labellings agree that reaching both targets needs, if
    every face where they differ is read as one of its two labels."""
    return (ferplus + own - (1.0 - agree)) / (2.0 * agree)


def split(read: np.ndarray, own: np.ndarray, majority: np.ndarray) -> dict:
    agree = own == majority
    differ = ~agree
    return {
        "ferplus_majority": round(float((read == majority).mean()), 4),
        "fer2013_labels": round(float((read == own).mean()), 4),
        "where_they_agree": round(float((read[agree] == own[agree]).mean()), 4),
        "where_they_differ_read_as_ferplus": round(float((read[differ] == majority[differ])
                                                         .mean()), 4),
        "where_they_differ_read_as_fer2013": round(float((read[differ] == own[differ])
                                                         .mean()), 4),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, action="append")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    grey, own, majority, aligned = both_labellings()
    agree = float((own == majority).mean())
    flip = Settings().emotions.flip_margin
    models = {}
    for path in args.model or MODELS:
        model = load_emotion_model(path, 64, flip_margin=flip)
        models[str(path.relative_to(ROOT) if path.is_relative_to(ROOT) else path)] = split(
            model.predict(grey, aligned).argmax(axis=1), own, majority)
    print_and_save({
        "faces": len(own),
        "labels_agree": round(agree, 4),
        "targets": {"ferplus_majority": TARGET_FERPLUS, "fer2013_labels": TARGET_OWN},
        "least_accuracy_where_they_agree_for_both_targets": round(
            least_agreeing_accuracy(agree), 4),
        "models": models,
        "machine": machine_summary(),
    }, args.out)


if __name__ == "__main__":
    main()
