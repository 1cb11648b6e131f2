"""How the crop's framing changes what the model reads on real faces (no labels needed):
the astronaut's smile and the key frames of the real clips in ../shared/videos, per crop scale.

    python benchmarks/crop_framing.py

The session benchmark scores framings against known labels, but its faces are FER2013 crops
pasted into frames, which lack the context (hair, neck, background) of a real face; this checks
that a framing chosen there does not misread whole faces in real video. Printed, not stored.
"""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np

from screener.domain import EMOTIONS
from screener.emotions.joined import load_emotion_model
from screener.faces import make_detector
from screener.faces.crop import face_crop, to_grey
from screener.settings import FaceSettings, Settings
from screener.video.keyframes import KeyframeReader

ROOT = Path(__file__).resolve().parents[1]
VIDEOS = Path(os.environ.get("SCREENER_SHARED", ROOT.parent / "shared")) / "videos"
SCALES = (0.7, 0.8, 0.9, 1.0, 1.1, 1.2, 1.3)


def main() -> None:
    from skimage import data

    settings = Settings()
    model = load_emotion_model(settings.model_path, flip_margin=settings.emotions.flip_margin)
    detector = make_detector(FaceSettings())
    sources = {"astronaut": [cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)]}
    for clip in ("WolfgangLanger_Pexels.mp4", "single_face.mp4", "face_noface.mov"):
        if (VIDEOS / clip).is_file():
            sources[clip] = [f.image for f in KeyframeReader(VIDEOS / clip, settings.keyframes)]
    print("| faces | " + " | ".join(f"{s:g}x" for s in SCALES) + " |")
    print("|---|" + "---|" * len(SCALES))
    happy = EMOTIONS.index("happy")
    negative = [EMOTIONS.index(e) for e in ("angry", "sad", "fear")]
    for name, images in sources.items():
        faces = [(to_grey(im), max(found, key=lambda d: d.box.area))
                 for im in images if (found := detector.detect(im))]
        cells = []
        for scale in SCALES:
            p = model.predict(np.stack([face_crop(g, d, scale) for g, d in faces]))
            if name == "astronaut":
                cells.append(f"P(happy) {p[0, happy]:.2f}")
            else:
                labels = p.argmax(axis=1)
                cells.append(f"neg {np.isin(labels, negative).mean():.2f}, "
                             f"conf {p.max(axis=1).mean():.2f}")
        print(f"| {name} ({len(faces)}) | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
