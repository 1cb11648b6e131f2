"""Write a joined emotion model's file: its members and weights, the temperature that
calibrates their pooled answer, and the error profile the session estimates correct for.

    python scripts/join_models.py --member models/emotion_vgg.onnx:0.5 \\
        --member models/emotion_vgg_xd.onnx:0.5 --out models/emotion_joined.json
    python scripts/record_error_profile.py --model models/emotion_joined.json --sources \\
        --leave-out wild_fit --leave-out wild_held_out

A member is `PATH[:WEIGHT][:aligned112]`. By default one temperature is fitted on FER2013
`val` (the domain benchmark's cached `fer_val`), as for a single network. `--member-temperature`
fits a temperature per face instead (`MemberTemperature`: from the members' disagreement and
each one's confidence; grey members only) on the sources named by `--fit-on` (default
`fer_val` and `wild_fit`, the web photographs' persons the lab may tune on), each weighing
alike; the ECE it reaches on every cached source is recorded beside it. The profile is
measured on FER2013 `val`; the per-source profiles of the likely range come from
`record_error_profile.py --sources`, leaving out the web photographs any member was trained on.

    python scripts/join_models.py --member models/emotion_vgg.onnx:0.5 \\
        --member models/emotion_vgg_xd.onnx:0.5 --member-temperature
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.domain_benchmark import cached_sources  # noqa: E402
from screener.emotions.joined import ALIGNED, GREY, JoinedEmotionModel, join  # noqa: E402
from screener.emotions.temperature import apply_temperature  # noqa: E402
from screener.lab.calibration import fit_member_temperature, fit_temperature  # noqa: E402
from screener.lab.evaluation import expected_calibration_error  # noqa: E402
from screener.session.error_profile import ErrorProfile  # noqa: E402
from screener.settings import Settings  # noqa: E402


def member(text: str, folder: Path) -> dict:
    path, *rest = text.split(":")
    weight = float(rest[0]) if rest else 1.0
    kind = rest[1] if len(rest) > 1 else GREY
    if kind not in (GREY, ALIGNED):
        raise SystemExit(f"error: a member reads {GREY} or {ALIGNED}, not {kind}")
    relative = Path(path).resolve().relative_to(folder.resolve())
    return {"model": str(relative), "input": kind, "weight": weight}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--member", action="append", required=True,
                        help="PATH[:WEIGHT][:aligned112], repeated")
    parser.add_argument("--out", type=Path, default=ROOT / "models" / "emotion_joined.json")
    parser.add_argument("--description", default="")
    parser.add_argument("--member-temperature", action="store_true",
                        help="fit a temperature per face from the members (grey members only)")
    parser.add_argument("--fit-on", action="append", default=None, metavar="SOURCE",
                        help="a cached domain source to fit it on (repeatable; default: "
                             "fer_val and wild_fit)")
    args = parser.parse_args()
    members = [member(text, args.out.parent) for text in args.member]
    margin = Settings().emotions.flip_margin
    args.out.write_text(json.dumps({"name": args.out.stem, "joined": members,
                                    "calibration": {"temperature": 1.0}}))
    model = JoinedEmotionModel(args.out, flip_margin=margin, temperature=1.0)
    sources = {s.name: s for s in cached_sources(smoke=False)}
    fer = sources["fer_val"]
    if args.member_temperature:
        if model.reads_aligned:
            raise SystemExit("error: --member-temperature needs every member to read grey48")
        calibration, raw, calibrated = member_calibration(
            model, sources, args.fit_on or ["fer_val", "wild_fit"])
    else:
        raw = model.predict(fer.grey, fer.aligned)
        temperature = fit_temperature(raw, fer.labels)
        calibrated = apply_temperature(raw, temperature)
        calibration = {"method": "temperature", "temperature": round(temperature, 4),
                       "fitted_on": "FER2013 val"}
    write_joined(args.out, args.description, members, calibration, raw, calibrated, fer.labels)


def write_joined(out: Path, description: str, members: list[dict], calibration: dict,
                 raw: np.ndarray, calibrated: np.ndarray, labels: np.ndarray) -> None:
    """The joined model's file: `raw` and `calibrated` are FER2013 `val` read by the members
    pooled, before and after the calibration; its error profile is measured on them."""
    margin = Settings().emotions.flip_margin
    accuracy = float((calibrated.argmax(axis=1) == labels).mean())
    profile = ErrorProfile.measure(calibrated, labels)
    meta = {
        "name": out.stem,
        "description": description,
        "joined": members,
        "val_accuracy": round(accuracy, 4),
        "flip_margin": margin,
        "val_images": int(len(labels)),
        "calibration": {
            **calibration, "flip_margin": margin, "images": int(len(labels)),
            "ece_before": round(expected_calibration_error(raw, labels), 4),
            "ece_after": round(expected_calibration_error(calibrated, labels), 4),
        },
        "error_profile": profile.record(out.stem, "FER2013 val (the 48x48 images)"),
    }
    out.write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {out}: {accuracy:.2%} of FER2013 val, calibration "
          f"{ {k: v for k, v in calibration.items() if k != 'ece_by_source'} }")


def member_calibration(model: JoinedEmotionModel, sources: dict, fit_on: list[str]
                       ) -> tuple[dict, np.ndarray, np.ndarray]:
    """The fitted per-face temperature as the model's file records it, with the ECE it
    reaches on every cached source (the ones it was not fitted on are the honest figures),
    and FER2013 `val` read by the members pooled, before and after it."""
    unknown = sorted(set(fit_on) - set(sources))
    if unknown:
        raise SystemExit(f"error: no cached source {', '.join(unknown)}")
    reads = {name: [m.predict(s.grey) for m, _, _ in model.members]
             for name, s in sources.items()}
    fitted = fit_member_temperature([(reads[n], sources[n].labels) for n in fit_on],
                                    model.weights)
    calibrated = {name: join(r, model.weights, fitted) for name, r in reads.items()}
    ece = {name: round(expected_calibration_error(p, sources[name].labels), 4)
           for name, p in calibrated.items()}
    return ({**fitted.record(), "fitted_on": " and ".join(fit_on) + ", each weighing alike",
             "ece_by_source": ece}, join(reads["fer_val"], model.weights).astype(np.float32),
            calibrated["fer_val"].astype(np.float32))


if __name__ == "__main__":
    main()
