"""Record what the emotion model gets wrong, for the corrected session estimates.

    python scripts/record_error_profile.py [--crops clean|pipeline]
        [--model models/emotion_vgg.onnx] [--data ../shared/datasets/fer2013]

Predicts every FER2013 `val` face as scans run the model (flip margin, calibration) and writes
`error_profile` into the model's .json: the confusion matrix (true class x top label) and the
mean probability vector each true class receives (`mean_probabilities`), which
screener/session/estimate.py inverts to estimate a session's true emotion mix.

`--crops clean` (the default, and what ships) reads the 48x48 originals. `--crops pipeline`
reads each face as a scan does: pasted into a synthetic frame (benchmarks/synthetic_scenes.py:
varied size, position, tilt, lighting, blur, JPEG loss), found by the face detector and cut by
the aligned crop; faces the detector misses are left out. On 84 of the session benchmark's
videos the pipeline profile removed the clean one's low bias but called more Moderate sessions
High and agreed on fewer levels, so the clean one, which rests on no synthetic rendering, is
kept (docs/benchmarks.md, "Session benchmark": "Which error profile").

`--sources` (run it after the main profile) also writes `error_profiles`: one profile per face
source that benchmarks/domain_benchmark.py caches (FER2013 `val` on its own and on FER+ labels,
degraded blurred, dark, compressed and small, web photographs of other people), read through
`load_emotion_model`, so a joined model is measured the same way. The session interval spans
what they imply (screener/session/estimate.py). `wild_held_out` is left out by default, so
that benchmarks/source_coverage.py keeps a source the shipped profiles never saw.

Re-run it whenever the model, its flip margin or calibration, or the face detector or crop
changes: the profile must describe the probabilities scans actually produce (`model` and
`faces` record which ones it does).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


from benchmarks.synthetic_scenes import labelled_faces, still_predictions  # noqa: E402
from screener.emotions.joined import load_emotion_model  # noqa: E402
from screener.emotions.model import OnnxEmotionModel  # noqa: E402
from screener.faces import faces_version, make_detector  # noqa: E402
from screener.lab.fer_data import load_split  # noqa: E402
from screener.session.error_profile import ErrorProfile  # noqa: E402
from screener.settings import Settings  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--crops", choices=("clean", "pipeline"), default="clean")
    parser.add_argument("--model", type=Path, default=Settings().model_path)
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared/datasets/fer2013")
    parser.add_argument("--sources", action="store_true",
                        help="write `error_profiles` of the domain benchmark's face sources")
    parser.add_argument("--leave-out", action="append", default=None, metavar="SOURCE",
                        help="a source not to record (repeatable; default: wild_held_out)")
    args = parser.parse_args()
    if args.sources:
        record_sources(args.model, args.leave_out or ["wild_held_out"])
        return

    settings = Settings()
    margin = settings.emotions.flip_margin
    model = OnnxEmotionModel(args.model, 64, flip_margin=margin)
    if args.crops == "clean":
        val = load_split(args.data, "val")
        probabilities, labels = model.predict(val.images), val.labels
        measured_on = f"FER2013 val, {len(val)} images, clean 48x48 crops"
    else:
        paths, labels = labelled_faces(args.data / "val")
        probabilities, found = still_predictions(
            paths, make_detector(settings.faces), model, settings.faces)
        probabilities, labels = probabilities[found], labels[found]
        measured_on = (f"FER2013 val, {int(found.sum())} of {len(paths)} faces found in "
                       f"synthetic stills (benchmarks/synthetic_scenes.py), pipeline crops")
    profile = ErrorProfile.measure(probabilities, labels)
    meta_path = args.model.with_suffix(".json")
    meta = json.loads(meta_path.read_text(encoding="utf-8")) if meta_path.is_file() else {}
    meta["error_profile"] = profile.record(
        model.name, measured_on,
        faces=faces_version(settings.faces) if args.crops == "pipeline" else "clean",
        flip_margin=margin,
        accuracy=round(float((probabilities.argmax(axis=1) == labels).mean()), 4))
    meta_path.write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    print(f"{meta_path}: error profile of {model.name} on {measured_on}")


def record_sources(model_path: Path, leave_out: list[str]) -> None:
    from benchmarks.domain_benchmark import cached_sources

    settings = Settings()
    model = load_emotion_model(model_path, 64, flip_margin=settings.emotions.flip_margin)
    profiles = {}
    for source in cached_sources(smoke=False):
        if source.name in leave_out:
            continue
        probabilities = model.predict(source.grey, source.aligned)
        profile = ErrorProfile.measure(probabilities, source.labels, source.name)
        profiles[source.name] = profile.record(
            model.name, f"{source.note}, {len(source.labels)} faces",
            accuracy=round(float((probabilities.argmax(axis=1) == source.labels).mean()), 4))
        print(f"{source.name}: {len(source.labels)} faces")
    meta_path = model_path.with_suffix(".json")
    meta = json.loads(meta_path.read_text(encoding="utf-8")) if meta_path.is_file() else {}
    meta["error_profiles"] = profiles
    meta_path.write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    print(f"{meta_path}: error profiles of {model.name} on {', '.join(profiles)}")


if __name__ == "__main__":
    main()
