"""Record what the emotion model gets wrong, for the corrected session estimates.

    python scripts/record_error_profile.py [--model models/emotion_minixception.onnx]
        [--data ../shared/datasets/fer2013]

Predicts every FER2013 `val` face as scans run the model (flip margin, calibration) and writes
`error_profile` into the model's .json: the confusion matrix (true class x top label) and the
mean probability vector each true class receives (`mean_probabilities`), which
screener/estimate.py inverts to estimate a session's true emotion mix. Re-run it whenever the
model, its flip margin or its calibration changes: the profile must describe the probabilities
scans actually produce (`model` records which ones it does).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from screener.emotions import OnnxEmotionModel
from screener.estimate import ErrorProfile
from screener.fer_data import load_split
from screener.settings import Settings

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=Settings().model_path)
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared/datasets/fer2013")
    args = parser.parse_args()

    margin = Settings().emotions.flip_margin
    model = OnnxEmotionModel(args.model, 64, flip_margin=margin)
    val = load_split(args.data, "val")
    profile = ErrorProfile.measure(model.predict(val.images), val.labels)
    meta_path = args.model.with_suffix(".json")
    meta = json.loads(meta_path.read_text(encoding="utf-8")) if meta_path.is_file() else {}
    meta["error_profile"] = {
        "model": model.name,
        "measured_on": f"FER2013 val, {len(val)} images",
        "flip_margin": margin,
        "confusion": profile.confusion.astype(int).tolist(),
        "mean_probabilities": [[round(float(x), 5) for x in row]
                               for row in profile.mean_probabilities],  # type: ignore[union-attr]
    }
    meta_path.write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    print(f"{meta_path}: error profile of {model.name} on {len(val)} val images")


if __name__ == "__main__":
    main()
