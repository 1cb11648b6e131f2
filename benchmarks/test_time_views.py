"""Would more views of each face at test time buy accuracy? Shifted, rotated and zoomed copies
of every `val` face, each also mirrored, averaged with the mirrored pair scans can already run.

    python benchmarks/test_time_views.py [--model models/emotion_vgg.onnx]
        [--out benchmarks/results/test_time_views.json]
    python benchmarks/test_time_views.py --sources [--smoke]
        [--out benchmarks/results/test_time_views_sources.json]

Every face gets every view here (no flip margin, no calibration: argmax is all that counts),
so the figures bound what a cheaper "only the unsure faces" variant could gain. It measures
`val` only: a view that gains there must still be checked on the pipeline's stills
(benchmarks/pipeline_accuracy.py), where zooms once lost what they gained on `val`.

`--sources` runs the shipped model as scans do (every member with its calibration) on the
domain benchmark's face sources (benchmarks/domain_benchmark.py) with the views a model card
can ask for: mirrored images and zooms, of the unsure faces or of every face. Its question is
whether views read web photographs' negative faces better without reading calm ones negative.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.domain_benchmark import cached_sources, screener_shares  # noqa: E402
from benchmarks.result_files import machine_summary, print_and_save  # noqa: E402
from screener.domain import INPUT_SIZE  # noqa: E402
from screener.emotions.joined import load_emotion_model  # noqa: E402
from screener.emotions.model import OnnxEmotionModel, preprocess, zoom_faces  # noqa: E402
from screener.lab.fer_data import load_split  # noqa: E402
from screener.settings import Settings  # noqa: E402

SHIFTS = ((2, 0), (-2, 0), (0, 2), (0, -2))
ANGLES = (6.0, -6.0)
ZOOMS = (1.1, 0.9)
SOURCE_VIEWS = {
    "as shipped (the unsure faces mirrored)": (None, ()),
    "+ the unsure faces zoomed 1.1 and 0.9, each mirrored": (None, ZOOMS),
    "every face mirrored": (1.0, ()),
    "every face mirrored, zoomed 1.1 and 0.9, each mirrored": (1.0, ZOOMS),
}
"""Flip margin (None: the shipped one) and zooms for each row of `--sources`."""
SOURCES = ("fer_val", "fer_val_ferplus", "fer_dark", "fer_small", "wild_fit", "wild_held_out")


def warp(faces: np.ndarray, dx: float = 0, dy: float = 0, angle: float = 0.0) -> np.ndarray:
    """Shifted or turned about the centre; zooms are `zoom_faces`, as scans' `unsure_zooms`."""
    import cv2

    centre = (INPUT_SIZE - 1) / 2
    matrix = cv2.getRotationMatrix2D((centre, centre), angle, 1.0)
    matrix[:, 2] += (dx, dy)
    return np.stack([cv2.warpAffine(face, matrix, (INPUT_SIZE, INPUT_SIZE),
                                    flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
                     for face in faces])


def views_on_sources(smoke: bool) -> dict:
    """Accuracy and the screener's shares of the shipped joined model, per view and source."""
    settings = Settings()
    sources = [s for s in cached_sources(smoke) if s.name in SOURCES]
    rows: dict[str, dict] = {}
    for view, (margin, zooms) in SOURCE_VIEWS.items():
        model = load_emotion_model(settings.model_path, 256,
                                   flip_margin=settings.emotions.flip_margin
                                   if margin is None else margin)
        for member in [m for m, *_ in getattr(model, "members", [(model,)])]:
            if isinstance(member, OnnxEmotionModel):
                member.zooms = zooms
        rows[view] = {}
        for source in sources:
            probabilities = model.predict(source.grey, source.aligned)
            rows[view][source.name] = {
                "accuracy": round(float((probabilities.argmax(axis=1)
                                         == source.labels).mean()), 4),
                **screener_shares(probabilities, source.labels)}
    return {"model": settings.model_path.name, "smoke": smoke, "views": rows,
            "machine": machine_summary()}


def main() -> None:
    import onnxruntime as ort

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=Settings().model_path)
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared/datasets/fer2013")
    parser.add_argument("--sources", action="store_true",
                        help="the shipped model on the domain benchmark's face sources")
    parser.add_argument("--smoke", action="store_true",
                        help="with --sources: the domain benchmark's smoke sources")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    if args.sources:
        print_and_save(views_on_sources(args.smoke), args.out)
        return

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
