"""Train screener's network on more than FER2013's labels: FER+ crowd votes on FER2013's faces,
and web photographs (`datasets/wild`, the `fit` half of its persons only) labelled half by
their crowd label and half by OpenCV Zoo's expression model, which reads real-world faces far
better than a network trained on FER2013 alone (lab/models/README.md).

The network starts from the shipped model's weights; every target is fixed before training,
so the teacher runs once. Needs the `train` extra and ../shared.

    python scripts/train_cross_domain.py --out runs/cross_domain/emotion_vgg_xd.keras
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from screener.domain import EMOTIONS, NEGATIVE_EMOTIONS  # noqa: E402
from screener.emotions.aligned import AlignedOnnxModel  # noqa: E402
from screener.lab.calibration import fit_temperature  # noqa: E402
from screener.lab.face_sources import ferplus_votes, load_wild  # noqa: E402
from screener.lab.fer_data import LabelledImages, load_split  # noqa: E402
from screener.lab.train_settings import TrainSettings  # noqa: E402
from screener.lab.training import one_hot, prior_offsets, train  # noqa: E402

SHARED = ROOT.parent / "shared"
ZOO = ROOT / "lab" / "models" / "fer_mobilefacenet" / "fer_mobilefacenet.onnx"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "runs/cross_domain/emotion_vgg_xd.keras")
    parser.add_argument("--fer", type=Path, default=SHARED / "datasets/fer2013")
    parser.add_argument("--wild", type=Path, default=SHARED / "datasets/wild")
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--votes", type=float, default=0.5,
                        help="share of a FER2013 image's target taken from its FER+ votes")
    parser.add_argument("--teacher", type=float, default=0.5,
                        help="share of a web photo's target taken from the zoo model")
    parser.add_argument("--wild-repeats", type=int, default=4,
                        help="times each web photo is seen per epoch")
    parser.add_argument("--negative-repeats", type=int, default=1,
                        help="times more often a web photo labelled angry, disgust, fear or "
                             "sad is seen, taught by its crowd label alone (the teacher misses "
                             "most of them)")
    parser.add_argument("--prior-adjust", action="store_true",
                        help="add the web photos' label prior, relative to FER2013 train's, to "
                             "their log-probabilities in the loss (logit adjustment), so the "
                             "network reads web faces with FER2013's prior instead of learning "
                             "that their labellers mostly chose neutral")
    parser.add_argument("--fit-fold", type=int, choices=(0, 1),
                        help="train on the web photos of this fold of the fit persons only "
                             "(cross-fitting: the other fold then measures the member)")
    parser.add_argument("--init-from", default=str(ROOT / "models/emotion_vgg.onnx"))
    parser.add_argument("--learning-rate", type=float, default=3e-4)
    parser.add_argument("--equalise", action="store_true",
                        help="train on histogram-equalised faces (scans then equalise too)")
    parser.add_argument("--seed", type=int, default=2032)
    args = parser.parse_args()

    fer_train = load_split(args.fer, "train")
    fer_val = load_split(args.fer, "val")
    votes = ferplus_votes(args.fer / "ferplus.csv", fer_train.paths)
    voted = ~np.isnan(votes).any(axis=1)
    fer_targets = one_hot(fer_train.labels)
    fer_targets[voted] = (1 - args.votes) * fer_targets[voted] + args.votes * votes[voted]
    print(f"FER2013 train: {len(fer_train)} images, {int(voted.sum())} with FER+ votes")

    wild = load_wild(args.wild, half="fit")
    if args.fit_fold is not None:
        wild = wild.fold(args.fit_fold)
    zoo = AlignedOnnxModel(ZOO, temperature=1.0)
    logits = zoo.logits(wild.aligned)
    temperature = fit_temperature(_softmax(logits), wild.labels)
    teacher = _softmax(logits / temperature)
    wild_targets = (1 - args.teacher) * one_hot(wild.labels) + args.teacher * teacher
    print(f"wild fit half: {len(wild.labels)} faces ({wild.missed} photos without one); "
          f"teacher temperature {temperature:.3f}")

    repeats = np.full(len(wild.labels), args.wild_repeats)
    if args.negative_repeats > 1:
        taught = NEGATIVE_EMOTIONS | {"disgust"}
        negative = np.isin(wild.labels, [EMOTIONS.index(e) for e in taught])
        repeats[negative] *= args.negative_repeats
        wild_targets[negative] = one_hot(wild.labels[negative])
    images = np.concatenate([fer_train.images, np.repeat(wild.grey, repeats, axis=0)])
    labels = np.concatenate([fer_train.labels, np.repeat(wild.labels, repeats)])
    targets = np.concatenate([fer_targets, np.repeat(wild_targets, repeats, axis=0)])
    paths = fer_train.paths + [p for p, n in zip(wild.paths, repeats, strict=True)
                               for _ in range(n)]
    data = LabelledImages(images, labels, paths)
    offsets = None
    if args.prior_adjust:
        web = prior_offsets(wild.labels, fer_train.labels)
        offsets = np.zeros_like(targets)
        offsets[len(fer_train.labels):] = web
        print("web photos' logit offsets: " + ", ".join(
            f"{e} {o:+.2f}" for e, o in zip(EMOTIONS, web, strict=True)))

    settings = replace(
        TrainSettings(), arch="vgg", blocks=(64, 128, 256, 512), dropout=0.1, dense=512,
        l2=1e-4, schedule="cosine", learning_rate=args.learning_rate, epochs=args.epochs,
        patience=args.epochs, crop_jitter=True, precision="bfloat16", seed=args.seed,
        init_from=args.init_from, teachers=(), distill=0.0, equalise=args.equalise,
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    (args.out.parent / "recipe.json").write_text(json.dumps({
        "votes": args.votes, "teacher": args.teacher, "equalise": args.equalise,
        "teacher_temperature": temperature,
        "wild_repeats": args.wild_repeats, "negative_repeats": args.negative_repeats,
        "prior_adjust": args.prior_adjust, "fit_fold": args.fit_fold,
        "wild_fit_faces": int(len(wild.labels)),
        "fer_images_with_votes": int(voted.sum()), "classes": list(EMOTIONS),
    }, indent=2))
    train(data, fer_val, args.out, settings, targets=targets.astype(np.float32), offsets=offsets)


def _softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


if __name__ == "__main__":
    main()
