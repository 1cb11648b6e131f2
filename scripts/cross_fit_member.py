"""Choose how a member trained on the fit persons' web photos joins the FER2013 network, and
calibrate the join, on web faces that no member has seen: cross-fitting by person.

A member taught the fit persons' photos reads those persons far better than anyone else's, so
neither they nor the held-out persons may choose its weight. Two more members are trained with
the same recipe, each on one fold of the fit persons (`train_cross_domain.py --fit-fold K`);
each fit person's faces are then read by the fold member that never saw them. On those reads
and FER2013 `val` (read by the member trained on every fit person), the FER2013 network's
weight is chosen from `WEIGHTS`: the one that reads most web negatives negative among those
that read at most a fifth of the web neutral faces negative and keep FER2013 `val` at 69%
(ties: the higher summed accuracy); then the per-face temperature is fitted on the same faces,
each source weighing alike, and the joined model's file is written; every weight's numbers go
beside it (`<out>_choice.json`), written even when no weight qualifies.

    python scripts/cross_fit_member.py --member runs/m/emotion_m_int8.onnx \\
        --fold runs/m0/emotion_m0_int8.onnx --fold runs/m1/emotion_m1_int8.onnx \\
        --out runs/m/emotion_joined_cross_fit.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.domain_benchmark import cached_sources, source_scores  # noqa: E402
from screener.emotions.joined import join, pool  # noqa: E402
from screener.emotions.model import OnnxEmotionModel  # noqa: E402
from screener.lab.calibration import fit_member_temperature  # noqa: E402
from screener.lab.evaluation import expected_calibration_error  # noqa: E402
from screener.lab.face_sources import fit_fold, load_wild  # noqa: E402
from screener.settings import Settings  # noqa: E402
from scripts.join_models import member, write_joined  # noqa: E402

SHARED = ROOT.parent / "shared"
WEIGHTS = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5)
"""The FER2013 network's share of the join; the member has the rest."""
NEUTRAL_LIMIT, FER_FLOOR = 0.20, 0.69


def choose(table: list[dict]) -> dict | None:
    allowed = [row for row in table
               if row["web_out_of_fold"]["neutral_read_negative"] <= NEUTRAL_LIMIT
               and row["fer_val"]["accuracy"] >= FER_FLOOR]
    if not allowed:
        return None
    return max(allowed, key=lambda r: (r["web_out_of_fold"]["negative_read_negative"],
                                       r["web_out_of_fold"]["accuracy"]
                                       + r["fer_val"]["accuracy"]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--grey", type=Path, default=ROOT / "models" / "emotion_vgg.onnx")
    parser.add_argument("--member", type=Path, required=True,
                        help="the member trained on every fit person")
    parser.add_argument("--fold", type=Path, action="append", required=True,
                        help="the member trained on fold 0, then the one on fold 1")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    if len(args.fold) != 2:
        raise SystemExit("error: give --fold twice: the fold-0 member, then the fold-1 one")
    margin = Settings().emotions.flip_margin
    grey = OnnxEmotionModel(args.grey, flip_margin=margin)
    full = OnnxEmotionModel(args.member, flip_margin=margin)
    folds = [OnnxEmotionModel(path, flip_margin=margin) for path in args.fold]

    wild = load_wild(SHARED / "datasets/wild", half="fit")
    fold = np.array([fit_fold(p) for p in wild.persons])
    unseen = np.zeros((len(fold), 7), np.float32)
    for k in (0, 1):
        unseen[fold == k] = folds[1 - k].predict(wild.grey[fold == k])
    fer = next(s for s in cached_sources(smoke=False) if s.name == "fer_val")
    reads = {"fer_val": ([grey.predict(fer.grey), full.predict(fer.grey)], fer.labels),
             "web_out_of_fold": ([grey.predict(wild.grey), unseen], wild.labels)}

    table = [{"grey_weight": w,
              **{name: source_scores(pool(members, (w, 1 - w)), labels)
                 for name, (members, labels) in reads.items()}} for w in WEIGHTS]
    for row in table:
        web, fer_row = row["web_out_of_fold"], row["fer_val"]
        print(f"FER2013 network weight {row['grey_weight']:.1f}: web (out of fold) "
              f"{web['accuracy']:.3f} / {web['negative_read_negative']:.3f} / "
              f"{web['neutral_read_negative']:.3f}; FER2013 val {fer_row['accuracy']:.3f}")
    chosen = choose(table)
    record = {"folds": [str(p) for p in args.fold],
              "fold_faces": [int((fold == k).sum()) for k in (0, 1)], "table": table,
              "chosen": chosen}
    args.out.with_name(args.out.stem + "_choice.json").write_text(
        json.dumps(record, indent=2) + "\n")
    if chosen is None:
        raise SystemExit("no weight keeps web neutral faces and FER2013 val within bounds")
    weights = (chosen["grey_weight"], round(1 - chosen["grey_weight"], 1))
    fitted = fit_member_temperature(list(reads.values()), weights)
    calibrated = {name: join(members, weights, fitted) for name, (members, _) in reads.items()}
    calibration = {**fitted.record(),
                   "fitted_on": "fer_val and the fit persons read out of fold, each weighing "
                                "alike",
                   "ece_by_source": {name: round(expected_calibration_error(
                       calibrated[name], labels), 4) for name, (_, labels) in reads.items()}}
    members = [member(f"{args.grey}:{weights[0]}", args.out.parent),
               member(f"{args.member}:{weights[1]}", args.out.parent)]
    write_joined(args.out, "screener's FER2013 network joined with a member taught web "
                 "photographs' crowd labels with their label prior taken out; weight and "
                 "calibration chosen on fit persons read out of fold", members, calibration,
                 pool(reads["fer_val"][0], weights), calibrated["fer_val"], fer.labels)


if __name__ == "__main__":
    main()
