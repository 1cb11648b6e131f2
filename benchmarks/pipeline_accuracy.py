"""Does a model's accuracy in the pipeline follow its `val` accuracy? Models side by side.

    python benchmarks/pipeline_accuracy.py [MODEL.onnx ...] [--every 4]
        [--data ../shared/datasets/fer2013]

For each ONNX model (default: the shipped one), as scans run it (flip margin from the
settings, the model's own calibration): its accuracy on `val`, and on every `every`-th `val`
face pasted into a synthetic still (benchmarks/synthetic_scenes.py) and read through the face
detector and aligned crop, the way a scan reads a video frame. The detector finds the same
faces for every model, so the models are compared on the same crops. A Keras checkpoint is
exported first with `screener.lab.shipping.export_onnx(keras.models.load_model(path), out)`.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.synthetic_scenes import labelled_faces, still_predictions  # noqa: E402
from screener.emotions.model import OnnxEmotionModel  # noqa: E402
from screener.faces import make_detector  # noqa: E402
from screener.lab.fer_data import load_split  # noqa: E402
from screener.settings import Settings  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="*", type=Path)
    parser.add_argument("--every", type=int, default=4, help="every Nth val face as a still")
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared/datasets/fer2013")
    args = parser.parse_args()

    settings = Settings()
    val = load_split(args.data, "val")
    paths, labels = labelled_faces(args.data / "val")
    paths, labels = paths[:: args.every], labels[:: args.every]
    detector = make_detector(settings.faces)
    for path in args.models or [settings.model_path]:
        model = OnnxEmotionModel(path, 64, flip_margin=settings.emotions.flip_margin)
        on_val = float((model.predict(val.images).argmax(axis=1) == val.labels).mean())
        started = time.perf_counter()
        probabilities, found = still_predictions(paths, detector, model, settings.faces)
        in_pipeline = float((probabilities[found].argmax(axis=1) == labels[found]).mean())
        print(f"{path.name}: val {on_val:.2%}, pipeline stills {in_pipeline:.2%} "
              f"({int(found.sum())} of {len(paths)} faces found), lost "
              f"{100 * (on_val - in_pipeline):.1f} points "
              f"({time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
