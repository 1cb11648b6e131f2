"""The session benchmark on web photographs of held-out persons, rendered as videos.

benchmarks/domain_benchmark.py simulates sessions of web faces from per-face probabilities;
this renders them as the session benchmark renders FER2013 faces (varied size, position,
drift, tilt, lighting, blur, background, H.264) and runs the real pipeline on each video. The
faces are the held-out half of `datasets/wild`'s persons (never trained or tuned on): each
photograph in which YuNet finds a face, in grey (they are square and tightly framed, as
FER2013's are).

The held-out persons have 56 angry, 57 sad and 3 fearful photographs: negatives are drawn
angry or sad (fear rarely), and each photograph may appear in several sessions. Calm
students' sessions (`calm-*`) are mostly happy and neutral faces, people talking among them:
none may read High.

    python benchmarks/wild_sessions.py --minutes 10 [--out FILE] [--config FILE]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict
from datetime import datetime
from pathlib import Path

import cv2

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.session_benchmark import (  # noqa: E402
    CACHE,
    DEFAULT_SEED,
    RESULTS,
    SEGMENT_S,
    SHARED,
    analyse,
    build_sessions,
    score,
    summary,
)
from screener.domain import EMOTIONS  # noqa: E402
from screener.lab.face_sources import load_wild  # noqa: E402
from screener.settings import load_settings  # noqa: E402

WILD = SHARED / "datasets" / "wild"
FACES = CACHE.parent / "wild_held_out_faces"
SIDE = 128
NEGATIVE_WEIGHTS = (1.0, 1.0, 0.05)
REUSE = 8


def held_out_faces(root: Path = WILD, out: Path = FACES) -> Path:
    """`out/<emotion>/<photo>.jpg`: each held-out person's photograph with a face, grey and
    128 px square, made once."""
    done = out / ".complete"
    if done.is_file():
        return out
    wild = load_wild(root, half="held_out")  # the photographs in which a face is found
    for path, label in zip(wild.paths, wild.labels, strict=True):
        image = cv2.imread(str(root / path))
        crop = cv2.resize(cv2.cvtColor(image, cv2.COLOR_BGR2GRAY), (SIDE, SIDE),
                          interpolation=cv2.INTER_AREA)
        target = out / EMOTIONS[label] / Path(path).name
        target.parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(target), crop)
    done.write_text("")
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--config", type=Path, help="settings TOML (default settings otherwise)")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    if not (WILD / "labels.csv").is_file():
        sys.exit(f"error: {WILD} is missing: this benchmark reads ../shared")
    settings = load_settings(args.config)
    started = time.perf_counter()
    sessions = build_sessions(cache=CACHE / "wild", fer_val=held_out_faces(), seed=args.seed,
                              segments=max(3, round(args.minutes * 60 / SEGMENT_S)),
                              negative_weights=NEGATIVE_WEIGHTS, reuse=REUSE)
    built = time.perf_counter()
    results = analyse(sessions, settings, "shipped")
    scored = score(results, sessions)
    calm = [r for r in scored["sessions"] if r["session"].startswith("calm")]
    scored["totals"]["calm_called_high"] = sum(r["level"] == "high" for r in calm)
    scored["totals"]["calm_sessions"] = len(calm)
    scored["run"] = {
        "model": str(settings.model_path), "faces": asdict(settings.faces),
        "minutes": args.minutes, "seed": args.seed, "source": "wild held-out persons",
        "build_s": round(built - started, 1),
        "analyse_s": round(time.perf_counter() - built, 1),
        "date": datetime.now().isoformat(timespec="seconds"),
    }
    print(summary(scored["totals"]))
    print(f"calm students called High: {scored['totals']['calm_called_high']} of {len(calm)}")
    for row in scored["sessions"]:
        estimate = row.get("negative_share_est")
        print(f"  {row['session']:<13} true {row['true_level']:<9} got {row['level']:<9} "
              f"neg {row['true_negative_share']:.2f} -> raw {row['negative_share']:.2f}, est "
              f"{'none' if estimate is None else f'{estimate:.2f}'}")
    out = args.out or RESULTS / f"wild_sessions_{args.minutes:g}min.json"
    out.write_text(json.dumps(scored, indent=1, default=str) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
