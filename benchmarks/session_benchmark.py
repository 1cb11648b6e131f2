"""What a counsellor reads, measured on synthetic student sessions whose truth is known.

    python benchmarks/session_benchmark.py --tag haar      # full run: JSON in benchmarks/results/
    python benchmarks/session_benchmark.py --smoke         # one short session, checks it all works
    python benchmarks/session_benchmark.py --minutes 10 --seed 24   # 12 other ten-minute sessions

Each session is a video of segments a few seconds long: one labelled FER2013 `val` face (never
anything else labelled) at a varied size and position, drifting and tilting a little, under
varied lighting, blur and background, or no face at all. Students differ in their mix of
emotions; some have sustained negative stretches. The real pipeline (`Analyzer.analyze`, default
settings unless `--config` says otherwise) reads each video, and the result is scored against the
truth: face recall, false faces, the label that wins each segment, the negative share, and the
level, against the level the default rules give on the true labels (one observation per second).

Twelve sessions cannot resolve a 90% target: benchmarks/session_pool.py pools several seeds'
results with Wilson intervals.

`build_sessions` and `score` are importable, so other benchmarks and tests can reuse them.
Videos are cached in benchmarks/.cache/sessions/ (regenerated when `VERSION` changes).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any

import av
import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.synthetic_scenes import labelled_faces, segment_frames, still_predictions  # noqa: E402
from screener.domain import (  # noqa: E402
    EMOTIONS,  # noqa: E402
    Box,
    Observation,
    SessionResult,
    VideoJob,
)
from screener.faces import faces_version  # noqa: E402
from screener.session.aggregate import session_metrics, with_smoothing  # noqa: E402
from screener.session.error_profile import ErrorProfile  # noqa: E402
from screener.session.rules import RuleSet, load_rules  # noqa: E402
from screener.settings import Settings, load_settings  # noqa: E402

CACHE = ROOT / "benchmarks" / ".cache" / "sessions"
RESULTS = ROOT / "benchmarks" / "results"
SHARED = Path(os.environ.get("SCREENER_SHARED", ROOT.parent / "shared"))
FER_VAL = SHARED / "datasets" / "fer2013" / "val"
VERSION = "1"
DEFAULT_SEED = 23
"""The draw of the default twelve sessions; results written before `--seed` existed used it."""
"""Bump when the generator changes, so cached videos are rebuilt."""

FPS = 10
SEGMENT_S = 4
NEGATIVE = ("angry", "sad", "fear")
OTHER = ("happy", "neutral", "surprise", "disgust")


@dataclass(frozen=True)
class Segment:
    start_s: float
    end_s: float
    label: str | None
    """The FER2013 label of the face shown, None for a segment without a face."""
    image: str | None = None


@dataclass
class SessionTruth:
    name: str
    path: Path
    size: tuple[int, int]
    segments: list[Segment]
    metrics: dict[str, Any]
    """The session metrics of the true labels, one observation per second."""
    level: str
    """The level the default rules give on those metrics."""


@dataclass(frozen=True)
class Profile:
    """A kind of student: how likely each segment is negative, and how negatives cluster."""

    name: str
    negative: float
    run: int
    """Negative segments come in runs of this many (a run of 3 is 12 s)."""
    size: tuple[int, int] = (640, 360)


PROFILES = (
    Profile("calm-a", 0.1, 1), Profile("calm-b", 0.15, 1, (1280, 720)),
    Profile("calm-c", 0.2, 2), Profile("recurring-a", 0.2, 2),
    Profile("recurring-b", 0.25, 2, (960, 540)), Profile("scattered-a", 0.45, 1),
    Profile("scattered-b", 0.5, 1), Profile("sustained-a", 0.35, 3),
    Profile("sustained-b", 0.4, 4, (1280, 720)), Profile("sustained-c", 0.45, 3),
    Profile("sustained-d", 0.35, 4), Profile("long-stretch", 0.3, 5),
)
"""Seed 23 gives 4 Low, 3 Moderate and 5 High sessions on the true labels."""
SMOKE = (Profile("smoke", 0.5, 1, (480, 270)),)


# Building sessions ----------------------------------------------------------------------------


def build_sessions(
    smoke: bool = False, cache: Path = CACHE, fer_val: Path = FER_VAL, seed: int = DEFAULT_SEED,
    segments: int = 15, negative_weights: Sequence[float] = (1.0, 1.0, 1.0), reuse: int = 1,
) -> list[SessionTruth]:
    """The benchmark's sessions, encoded (H.264) or taken from the cache, with their truth.
    `smoke` gives one session of three short segments. `fer_val`: any folder of
    `<emotion>/*.jpg` square faces; `negative_weights` draws angry, sad and fear (a source
    with almost no fearful faces draws few); `reuse` lets each image be shown that many times
    (a small source)."""
    if not fer_val.is_dir():
        raise FileNotFoundError(f"FER2013 val not found at {fer_val}")
    rng = np.random.default_rng(seed)
    pool = _image_pool(fer_val, rng, reuse)
    rules = load_rules("default")
    profiles, count = (SMOKE, 3) if smoke else (PROFILES, segments)
    sessions = []
    for profile in profiles:
        plan = _plan(profile, count, rng, pool, negative_weights)
        key = hashlib.sha256(json.dumps([VERSION, profile.size, [asdict(s) for s in plan]])
                             .encode()).hexdigest()[:12]
        path = cache / f"{profile.name}-{key}.mp4"
        if not path.is_file():
            path.parent.mkdir(parents=True, exist_ok=True)
            _render(plan, profile.size, path, np.random.default_rng(int(key, 16) % 2**32))
        metrics, level = truth_level(plan, rules)
        sessions.append(SessionTruth(profile.name, path, profile.size, plan, metrics, level))
    return sessions


def truth_level(plan: Sequence[Segment], rules: RuleSet) -> tuple[dict[str, Any], str]:
    """What the rules say when every second of face shows its true label."""
    observations = []
    for segment in plan:
        for k in range(int(segment.start_s), int(segment.end_s)):
            t = k + 0.5
            if segment.label is None:
                observations.append(Observation(t, k, None, None, None))
            else:
                certain = tuple(float(e == segment.label) for e in EMOTIONS)
                observations.append(Observation(t, k, _TRUE_BOX, certain, segment.label))
    observations = with_smoothing(observations, rules.smoothing_window)
    metrics = session_metrics(observations, rules.negative, rules.min_run, 1.0,
                              duration_s=plan[-1].end_s if plan else 0.0)
    # The truth needs no correction: whichever share the rules read is the true share.
    exact = metrics["negative_share"] if metrics["face_frames"] else None
    metrics.update(negative_share_est=exact, negative_share_low=exact, negative_share_high=exact)
    return metrics, rules.assess(metrics).level


_TRUE_BOX = Box(0, 0, 1, 1)


class ImagePool(dict):
    """Image files by label, each list drawn from its end; `lent` keeps every list whole, to
    start again from when a source has fewer faces of a label than its sessions show."""

    def __init__(self, files: dict[str, list[Path]]) -> None:
        super().__init__({label: list(paths) for label, paths in files.items()})
        self.lent = files


def _image_pool(fer_val: Path, rng: np.random.Generator, reuse: int = 1) -> ImagePool:
    files = {}
    for folder in sorted(p for p in fer_val.iterdir() if p.is_dir()):
        found = sorted(folder.glob("*.jpg")) + sorted(folder.glob("*.png"))
        files[folder.name] = [found[i] for _ in range(reuse)
                              for i in rng.permutation(len(found))]
    return ImagePool(files)


def _plan(profile: Profile, count: int, rng: np.random.Generator,
          pool: ImagePool, negative_weights: Sequence[float] = (1.0, 1.0, 1.0)
          ) -> list[Segment]:
    kinds: list[str] = []
    while len(kinds) < count:
        if rng.random() < 0.15 and kinds and kinds[-1] != "none":
            kinds.append("none")
        elif rng.random() < profile.negative:
            kinds.extend(["negative"] * profile.run)
        else:
            kinds.append("other")
    if count >= 3 and "none" not in kinds[:count]:
        kinds[count // 2] = "none"
    plan = []
    for i, kind in enumerate(kinds[:count]):
        label = None
        if kind != "none":
            choices = NEGATIVE if kind == "negative" else OTHER
            weights = np.array([0.4, 0.4, 0.2, 0.02] if kind == "other" else negative_weights,
                               float)
            label = str(rng.choice(choices, p=weights[: len(choices)] / weights.sum()))
        if label and not pool[label]:  # a small source lends its faces again, in turn
            pool[label].extend(pool.lent[label])
        image = str(pool[label].pop()) if label else None
        plan.append(Segment(i * SEGMENT_S, (i + 1) * SEGMENT_S, label, image))
    return plan


def _render(plan: Sequence[Segment], size: tuple[int, int], out: Path,
            rng: np.random.Generator) -> None:
    width, height = size
    tmp = out.with_suffix(".part.mp4")
    with av.open(str(tmp), "w") as container:
        stream = container.add_stream("libx264", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"preset": "veryfast", "crf": "23"}
        for segment in plan:
            seconds = segment.end_s - segment.start_s
            for image in segment_frames(segment.image, seconds, FPS, size, rng):
                for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="bgr24")):
                    container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    tmp.replace(out)


# Scoring --------------------------------------------------------------------------------------


def analyse(sessions: Sequence[SessionTruth], settings: Settings,
            profile: str = "shipped", cache: Path = CACHE) -> list[SessionResult]:
    """Each session as a scan analyses it. The session estimates correct for an error profile:
    `shipped` is the model's own (measured on every `val` image, these sessions' images
    among them); `clean` and `pipeline` are measured without the sessions' images, on the
    48x48 originals or on synthetic stills read through the detector and crop
    (`held_out_profile`)."""
    from screener.scanning.analysis import Analyzer

    analyzer = Analyzer.from_settings(settings)
    if profile != "shipped":
        analyzer = replace(analyzer, error_profile=held_out_profile(
            sessions, analyzer, profile, cache.parent / "stills"))
    return [analyzer.analyze(VideoJob(s.path, s.name, s.name, datetime(2026, 1, 1)))
            for s in sessions]


def held_out_profile(sessions: Sequence[SessionTruth], analyzer: Any, crops: str,
                     cache: Path, fer_val: Path = FER_VAL) -> ErrorProfile:
    """The model's error profile on the `val` images that no session shows: `clean` reads the
    48x48 originals, `pipeline` synthetic stills through the detector and crop. Stills'
    answers are cached per model and framing version."""
    used = {g.image for s in sessions for g in s.segments if g.image}
    every_path, every_label = labelled_faces(fer_val)
    held_out = np.array([str(p) not in used for p in every_path], dtype=bool)
    paths = [p for p, keep in zip(every_path, held_out, strict=True) if keep]
    labels = every_label[held_out]
    if crops == "clean":
        images = np.stack([cv2.imread(str(p), cv2.IMREAD_GRAYSCALE) for p in paths])
        return ErrorProfile.measure(analyzer.model.predict(images), labels,
                                    source=f"clean crops, {len(paths)} held-out val images")
    probabilities, found = _cached_stills(paths, analyzer, cache)
    return ErrorProfile.measure(probabilities[found], labels[found],
                                source=f"pipeline stills, {int(found.sum())} held-out val faces")


def _cached_stills(paths: Sequence[Path], analyzer: Any,
                   cache: Path) -> tuple[np.ndarray, np.ndarray]:
    version = f"{analyzer.model.name}+{faces_version(analyzer.settings.faces)}"
    key = hashlib.sha256(f"{VERSION}|{version}".encode()).hexdigest()[:12]
    file = cache / f"stills-{key}.npz"
    known: dict[str, tuple[np.ndarray, bool]] = {}
    if file.is_file():
        stored = np.load(file)
        known = {str(n): (p, bool(f)) for n, p, f in
                 zip(stored["names"], stored["probabilities"], stored["found"], strict=True)}
    missing = [p for p in paths if str(p) not in known]
    if missing:
        probabilities, found = still_predictions(missing, analyzer.detector, analyzer.model,
                                                 analyzer.settings.faces)
        known.update({str(p): (q, bool(f)) for p, q, f in zip(missing, probabilities, found,
                                                             strict=True)})
        file.parent.mkdir(parents=True, exist_ok=True)
        names = sorted(known)
        np.savez(file, names=np.array(names), found=np.array([known[n][1] for n in names]),
                 probabilities=np.stack([known[n][0] for n in names]))
    return (np.stack([known[str(p)][0] for p in paths]),
            np.array([known[str(p)][1] for p in paths]))


def clean_accuracy(sessions: Sequence[SessionTruth], settings: Settings) -> float:
    """The model's accuracy on the very FER2013 images the face segments show, read as the
    48x48 originals: what the pipeline would score with a perfect detector and crop, on this
    benchmark's mix of emotions (its `val` accuracy is on another mix)."""
    from screener.domain import EMOTIONS
    from screener.emotions.joined import load_emotion_model

    model = load_emotion_model(settings.model_path, flip_margin=settings.emotions.flip_margin)
    segments = [g for s in sessions for g in s.segments if g.image]
    images = np.stack([cv2.imread(g.image, cv2.IMREAD_GRAYSCALE) for g in segments])
    labels = [EMOTIONS[i] for i in model.predict(images).argmax(axis=1)]
    return sum(p == g.label for p, g in zip(labels, segments, strict=True)) / len(segments)


def score(results: Sequence[SessionResult], sessions: Sequence[SessionTruth],
          rules: RuleSet | None = None) -> dict[str, Any]:
    """Scores analysed results against their sessions' truth (paired by video path).
    `rules` (default: the default rule set) tells which levels are borderline."""
    rules = rules or load_rules("default")
    by_path = {s.path.resolve(): s for s in sessions}
    rows = [_score_one(r, by_path[Path(r.job.path).resolve()], rules) for r in results]
    face_segments = sum(r["face_segments"] for r in rows)
    found = sum(r["segments_found"] for r in rows)
    labelled = sum(r["segments_labelled_right"] for r in rows)
    truth_high = [r for r in rows if r["true_level"] == "high"]
    totals: dict[str, Any] = {
        "sessions": len(rows),
        "face_segments": face_segments,
        "segment_face_recall": found / face_segments if face_segments else 0.0,
        "keyframe_face_recall": _ratio(rows, "face_keyframes_found", "face_keyframes"),
        "no_face_segments": sum(r["no_face_segments"] for r in rows),
        "no_face_segments_with_faces": sum(r["no_face_segments_with_faces"] for r in rows),
        "false_face_keyframes": sum(r["false_face_keyframes"] for r in rows),
        "segment_label_accuracy": labelled / found if found else 0.0,
        "keyframe_label_accuracy": _ratio(rows, "keyframes_labelled_right",
                                          "face_keyframes_found"),
        "negative_share_mae": float(np.mean([r["negative_share_error"] for r in rows])),
        "level_agreement": sum(r["level"] == r["true_level"] for r in rows),
        "true_high": len(truth_high),
        "high_caught": sum(r["level"] == "high" for r in truth_high),
        "false_high": sum(r["level"] == "high" and r["true_level"] != "high" for r in rows),
        "borderline": sum(r["borderline"] for r in rows),
        "wrong_levels_borderline": sum(r["borderline"] for r in rows
                                       if r["level"] != r["true_level"]),
    }
    estimates = [r["negative_share_est_error"] for r in rows if "negative_share_est_error" in r]
    if estimates:
        totals["negative_share_est_mae"] = float(np.mean(estimates))
        covered = [r["truth_in_interval"] for r in rows if "truth_in_interval" in r]
        totals["interval_coverage"] = sum(covered) / len(covered)
        totals["interval_width"] = float(np.mean([h - lo for lo, h in
                                                  (r["negative_share_interval"] for r in rows
                                                   if "negative_share_interval" in r)]))
    return {"totals": totals, "sessions": rows}


def _ratio(rows: list[dict[str, Any]], part: str, whole: str) -> float:
    total = sum(r[whole] for r in rows)
    return sum(r[part] for r in rows) / total if total else 0.0


def _score_one(result: SessionResult, truth: SessionTruth, rules: RuleSet) -> dict[str, Any]:
    row: dict[str, Any] = {"session": truth.name, "size": f"{truth.size[0]}x{truth.size[1]}"}
    counts = Counter()
    for segment in truth.segments:
        inside = [o for o in result.observations if segment.start_s <= o.t_s < segment.end_s]
        faces = [o for o in inside if o.label is not None]
        if segment.label is None:
            counts["no_face_segments"] += 1
            counts["no_face_segments_with_faces"] += bool(faces)
            counts["false_face_keyframes"] += len({o.frame_index for o in faces})
            continue
        counts["face_segments"] += 1
        counts["face_keyframes"] += len({o.frame_index for o in inside})
        counts["face_keyframes_found"] += len({o.frame_index for o in faces})
        counts["keyframes_labelled_right"] += sum(o.label == segment.label for o in faces)
        if faces:
            counts["segments_found"] += 1
            winner = Counter(o.label for o in faces).most_common(1)[0][0]
            counts["segments_labelled_right"] += winner == segment.label
    for key in ("face_segments", "face_keyframes", "face_keyframes_found", "segments_found",
                "segments_labelled_right", "keyframes_labelled_right", "no_face_segments",
                "no_face_segments_with_faces", "false_face_keyframes"):
        row[key] = counts[key]
    true_share = float(truth.metrics["negative_share"])
    row["true_negative_share"] = round(true_share, 4)
    row["negative_share"] = round(float(result.metrics["negative_share"]), 4)
    row["negative_share_error"] = abs(row["negative_share"] - true_share)
    if result.metrics.get("negative_share_est") is not None:  # None: no face to estimate on
        estimate = float(result.metrics["negative_share_est"])
        row["negative_share_est"] = round(estimate, 4)
        row["negative_share_est_error"] = abs(estimate - true_share)
        low, high = (float(result.metrics[k]) for k in ("negative_share_low",
                                                         "negative_share_high"))
        row["negative_share_interval"] = [round(low, 4), round(high, 4)]
        row["truth_in_interval"] = low - 1e-9 <= true_share <= high + 1e-9
    row["true_level"], row["level"] = truth.level, result.level
    row["borderline"] = len(rules.levels_within_interval(result.metrics)) > 1
    return row


# Command line ---------------------------------------------------------------------------------


def summary(totals: dict[str, Any]) -> str:
    t = totals
    lines = [
        f"face recall: {t['segment_face_recall']:.1%} of {t['face_segments']} face segments "
        f"({t['keyframe_face_recall']:.1%} of key frames)",
        f"false faces: {t['no_face_segments_with_faces']} of {t['no_face_segments']} no-face "
        f"segments ({t['false_face_keyframes']} key frames)",
        f"label accuracy: {t['segment_label_accuracy']:.1%} of segments found "
        f"({t['keyframe_label_accuracy']:.1%} of faces)"
        + (f"; the model on the same images' clean crops: {t['clean_crop_accuracy']:.1%}"
           if "clean_crop_accuracy" in t else ""),
        f"negative share error: {t['negative_share_mae']:.3f} mean absolute"
        + (f" (negative_share_est {t['negative_share_est_mae']:.3f})"
           if "negative_share_est_mae" in t else ""),
        *([f"90% interval: holds the true share in {t['interval_coverage']:.0%} of sessions, "
           f"{t['interval_width']:.2f} wide on average"] if "interval_coverage" in t else []),
        f"level agreement: {t['level_agreement']} of {t['sessions']}; High caught "
        f"{t['high_caught']} of {t['true_high']}; false High {t['false_high']}",
        f"borderline (another level within the interval): {t['borderline']} sessions, "
        f"{t['wrong_levels_borderline']} of the {t['sessions'] - t['level_agreement']} "
        f"with a wrong level",
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="one short session")
    parser.add_argument("--config", type=Path, help="settings TOML (default settings otherwise)")
    parser.add_argument("--tag", default="", help="names the results file")
    parser.add_argument("--out", type=Path, help="results JSON (default benchmarks/results/"
                        "session_benchmark[_TAG].json; none for --smoke without --out)")
    parser.add_argument("--cache", type=Path, default=CACHE)
    parser.add_argument("--minutes", type=float, default=1.0,
                        help="minutes per session (default %(default)s)")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED,
                        help="draws the sessions' faces and timelines: another seed gives 12 "
                        "new sessions of the same kinds, to measure beyond the default 12 "
                        "(default %(default)s)")
    parser.add_argument("--profile", choices=("shipped", "clean", "pipeline"),
                        default="shipped", help="which error profile the estimates correct "
                        "for: the model's own, or one measured without the sessions' images")
    args = parser.parse_args(argv)
    settings = load_settings(args.config)
    started = time.perf_counter()
    sessions = build_sessions(smoke=args.smoke, cache=args.cache, seed=args.seed,
                              segments=max(3, round(args.minutes * 60 / SEGMENT_S)))
    built = time.perf_counter()
    results = analyse(sessions, settings, args.profile, args.cache)
    analysed = time.perf_counter()
    scored = score(results, sessions)
    scored["totals"]["clean_crop_accuracy"] = clean_accuracy(sessions, settings)
    scored["run"] = {
        "tag": args.tag, "config": str(args.config) if args.config else None,
        "faces": asdict(settings.faces), "minutes": args.minutes, "seed": args.seed,
        "profile": args.profile,
        "build_s": round(built - started, 1),
        "analyse_s": round(analysed - built, 1), "smoke": args.smoke,
        "date": datetime.now().isoformat(timespec="seconds"),
        "note": "machine shared: times are indicative only",
    }
    print(summary(scored["totals"]))
    for row in scored["sessions"]:
        estimate = row.get("negative_share_est")
        print(f"  {row['session']:<13} {row['size']:>9} true {row['true_level']:<12} "
              f"got {row['level']:<12} neg {row['true_negative_share']:.2f} -> raw "
              f"{row['negative_share']:.2f}, est "
              f"{'none' if estimate is None else f'{estimate:.2f}'}"
              f"{' (borderline)' if row['borderline'] else ''}  faces "
              f"{row['segments_found']}/{row['face_segments']}")
    out = args.out
    if out is None and not args.smoke:
        out = RESULTS / f"session_benchmark{'_' + args.tag if args.tag else ''}.json"
    if out:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(scored, indent=1, default=str) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
