"""Would more views of each face at test time buy accuracy? Shifted, rotated and zoomed copies
of every `val` face, each also mirrored, averaged with the mirrored pair scans can already run.

    python benchmarks/test_time_views.py [--model models/emotion_vgg.onnx]
        [--out benchmarks/results/test_time_views.json]

Every face gets every view here (no flip margin, no calibration: argmax is all that counts),
so the figures bound what a cheaper "only the unsure faces" variant could gain. It measures
`val` only: a view that gains there must still be checked on the pipeline's stills
(benchmarks/pipeline_accuracy.py), where zooms once lost what they gained on `val`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.result_files import machine_summary, print_and_save  # noqa: E402
from screener.domain import INPUT_SIZE  # noqa: E402
from screener.emotions.model import preprocess, zoom_faces  # noqa: E402
from screener.lab.fer_data import load_split  # noqa: E402
from screener.settings import Settings  # noqa: E402

SHIFTS = ((2, 0), (-2, 0), (0, 2), (0, -2))
ANGLES = (6.0, -6.0)
ZOOMS = (1.1, 0.9)


def warp(faces: np.ndarray, dx: float = 0, dy: float = 0, angle: float = 0.0) -> np.ndarray:
    """Shifted or turned about the centre; zooms are `zoom_faces`, as scans' `unsure_zooms`."""
    import cv2

    centre = (INPUT_SIZE - 1) / 2
    matrix = cv2.getRotationMatrix2D((centre, centre), angle, 1.0)
    matrix[:, 2] += (dx, dy)
    return np.stack([cv2.warpAffine(face, matrix, (INPUT_SIZE, INPUT_SIZE),
                                    flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
                     for face in faces])


def main() -> None:
    import onnxruntime as ort

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=Settings().model_path)
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared/datasets/fer2013")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()

    val = load_split(args.data, "val")
    session = ort.InferenceSession(str(args.model), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name

    def probabilities(faces: np.ndarray) -> np.ndarray:
        batch = preprocess(faces)
        return np.concatenate([session.run(None, {name: batch[i:i + 256]})[0]
                               + session.run(None, {name: batch[i:i + 256, :, ::-1].copy()})[0]
                               for i in range(0, len(batch), 256)])

    def accuracy(total: np.ndarray) -> float:
        return round(float((total.argmax(axis=1) == val.labels).mean()), 4)

    mirrored = probabilities(val.images)
    groups = {
        "shifts of 2 px": [warp(val.images, dx, dy) for dx, dy in SHIFTS],
        "rotations of 6 degrees": [warp(val.images, angle=a) for a in ANGLES],
        "zooms 1.1 and 0.9": [zoom_faces(val.images[..., np.newaxis], z) for z in ZOOMS],
    }
    extra = {group: sum(probabilities(view) for view in views)
             for group, views in groups.items()}
    rows = {"the face and its mirror image (as --flip-margin 1)": accuracy(mirrored)}
    rows |= {f"+ {group}, each mirrored": accuracy(mirrored + total)
             for group, total in extra.items()}
    rows["+ all of them"] = accuracy(mirrored + sum(extra.values()))
    print_and_save({"model": args.model.name, "val_images": len(val), "val_accuracy": rows,
                    "machine": machine_summary()}, args.out)


if __name__ == "__main__":
    main()
