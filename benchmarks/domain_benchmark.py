"""How the emotion model reads faces from several sources, not only FER2013's.

Per face source: accuracy, expected calibration error (ECE: how far the stated confidence is
from how often the model is right), and the three shares a screener lives by: negative faces
(angry, sad, fear) read negative, neutral faces read negative, other faces read negative.

Sources (all from ../shared, cut as a scan cuts faces where the source is a photograph):
- `fer_val`: FER2013 `val` (PublicTest) on its own labels; `fer_val_ferplus`: the same images
  on which most of the ten FER+ crowd voters agree, on that majority;
- `wild_held_out`: web photographs of the persons in the held-out half of `datasets/wild`
  (never trained or tuned on); `wild_fit`: the other half, which the model lab may tune on,
  reported apart and marked so;
- `fer_blur`, `fer_dark`, `fer_jpeg`, `fer_small`: FER2013 `val` degraded as video degrades
  faces (defocus, low light and noise, heavy compression, a face 24 px wide), found by the
  detector in a larger frame.

    python benchmarks/domain_benchmark.py [--model PATH ...] [--smoke] [--out FILE]

`--smoke` reads 40 faces a source, for CI. Results: benchmarks/results/domain_*.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks import estimator_benchmark as simulated  # noqa: E402
from screener.domain import EMOTIONS, NEGATIVE_EMOTIONS  # noqa: E402
from screener.emotions.joined import load_emotion_model  # noqa: E402
from screener.emotions.temperature import TINY  # noqa: E402
from screener.faces import make_detector, model_crop, student_face, to_grey  # noqa: E402
from screener.faces.crop import aligned_crop  # noqa: E402
from screener.lab.evaluation import expected_calibration_error  # noqa: E402
from screener.lab.face_sources import ferplus_votes, load_wild  # noqa: E402
from screener.lab.fer_data import load_split  # noqa: E402
from screener.session.aggregate import session_metrics  # noqa: E402
from screener.session.error_profile import ErrorProfile  # noqa: E402
from screener.session.rules import RuleSet, load_rules  # noqa: E402
from screener.settings import FaceSettings, Settings  # noqa: E402

SHARED = ROOT.parent / "shared"
CACHE = ROOT / "benchmarks" / ".cache" / "domain"
NEGATIVE = [EMOTIONS.index(e) for e in sorted(NEGATIVE_EMOTIONS)]
NEUTRAL = EMOTIONS.index("neutral")
SMOKE_FACES = 40
SESSION_SOURCES = ("fer_val", "wild_held_out")
"""Sources with enough faces of every kind to build sessions from."""
SESSION_SECONDS = 600


@dataclass
class Source:
    name: str
    grey: np.ndarray
    aligned: list[np.ndarray | None]
    labels: np.ndarray
    note: str = ""


def degrade(image: np.ndarray, how: str, rng: np.random.Generator) -> np.ndarray:
    """A 48x48 grey FER face as a poor video would show it, in a 160x160 frame."""
    face = cv2.resize(image, (96, 96), interpolation=cv2.INTER_CUBIC)
    if how == "blur":
        face = cv2.GaussianBlur(face, (0, 0), 2.5)
    elif how == "dark":
        face = np.clip(face.astype(np.float32) * 0.25 + rng.normal(0, 4, face.shape), 0, 255)
        face = face.astype(np.uint8)
    elif how == "jpeg":
        _, encoded = cv2.imencode(".jpg", face, [cv2.IMWRITE_JPEG_QUALITY, 12])
        face = cv2.imdecode(encoded, cv2.IMREAD_GRAYSCALE)
    elif how == "small":
        face = cv2.resize(cv2.resize(face, (24, 24), interpolation=cv2.INTER_AREA), (96, 96),
                          interpolation=cv2.INTER_LINEAR)
    return cv2.copyMakeBorder(face, 32, 32, 32, 32, cv2.BORDER_REPLICATE)


def through_detector(images: list[np.ndarray], settings: FaceSettings
                     ) -> tuple[np.ndarray, list[np.ndarray | None], np.ndarray]:
    """Each image's crops as a scan cuts them; `found` marks the images with a face."""
    detector = make_detector(settings)
    grey, aligned, found = [], [], []
    for image in images:
        face = student_face(detector.detect(image))
        found.append(face is not None)
        if face is None:
            continue
        grey.append(model_crop(to_grey(image), face, settings))
        aligned.append(aligned_crop(image, face.landmarks) if face.landmarks else None)
    return np.array(grey, np.uint8).reshape(-1, 48, 48), aligned, np.array(found, bool)


def fer_sources(limit: int | None) -> list[Source]:
    val = load_split(SHARED / "datasets/fer2013", "val")
    pick = np.arange(len(val))
    if limit:
        pick = np.random.default_rng(0).choice(len(val), limit, replace=False)
    images, labels = val.images[pick], val.labels[pick]
    paths = [val.paths[i] for i in pick]
    settings = Settings().faces
    # The grey member reads the FER image itself, as `screener evaluate` does; the aligned
    # member needs landmarks, found on the image enlarged as a video frame would show it.
    enlarged = [cv2.resize(cv2.copyMakeBorder(i, 24, 24, 24, 24, cv2.BORDER_REPLICATE),
                           (192, 192), interpolation=cv2.INTER_CUBIC) for i in images]
    _, aligned_found, found = through_detector(enlarged, settings)
    aligned: list[np.ndarray | None] = [None] * len(images)
    for slot, face in zip(np.flatnonzero(found), aligned_found, strict=True):
        aligned[slot] = face
    sources = [Source("fer_val", images, aligned, labels,
                      "FER2013 val on its own labels (the grey member reads the image itself)")]
    votes = ferplus_votes(SHARED / "datasets/fer2013/ferplus.csv", paths)
    ordered = np.sort(np.nan_to_num(votes), axis=1)
    clear = ~np.isnan(votes).any(axis=1) & (ordered[:, -1] > 0.5)
    sources.append(Source("fer_val_ferplus", images[clear],
                          [aligned[i] for i in np.flatnonzero(clear)],
                          np.nan_to_num(votes[clear]).argmax(axis=1),
                          "FER2013 val on the FER+ majority, where most of the ten voters agree"))
    rng = np.random.default_rng(1)
    for how in ("blur", "dark", "jpeg", "small"):
        frames = [cv2.cvtColor(degrade(i, how, rng), cv2.COLOR_GRAY2BGR) for i in images]
        grey, aligned_faces, found = through_detector(frames, settings)
        sources.append(Source(f"fer_{how}", grey, aligned_faces, labels[found],
                              f"FER2013 val degraded ({how}), through the detector: "
                              f"{int(found.sum())} of {len(found)} faces found"))
    return sources


def wild_sources(limit: int | None) -> list[Source]:
    sources = []
    for half, note in (("held_out", "web photographs, held-out persons (never tuned on)"),
                       ("fit", "web photographs, the persons the model lab may tune on")):
        wild = load_wild(SHARED / "datasets/wild", Settings().faces, half=half, limit=limit)
        sources.append(Source(f"wild_{half}", wild.grey, list(wild.aligned), wild.labels,
                              note))
    return sources


def cached_sources(smoke: bool) -> list[Source]:
    path = CACHE / ("smoke.npz" if smoke else "sources.npz")
    if path.is_file():
        stored = np.load(path, allow_pickle=True)
        return [Source(**fields) for fields in stored["sources"]]
    limit = SMOKE_FACES if smoke else None
    sources = fer_sources(limit) + wild_sources(limit)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, sources=np.array([vars(s) for s in sources], dtype=object))
    return sources


def screener_shares(probabilities: np.ndarray, labels: np.ndarray) -> dict[str, float | None]:
    read_negative = np.isin(probabilities.argmax(axis=1), NEGATIVE)
    negative, neutral = np.isin(labels, NEGATIVE), labels == NEUTRAL
    other = ~negative & ~neutral

    def share(mask: np.ndarray) -> float | None:
        return round(float(read_negative[mask].mean()), 4) if mask.any() else None

    return {"negative_read_negative": share(negative), "neutral_read_negative": share(neutral),
            "other_read_negative": share(other)}


def source_scores(probabilities: np.ndarray, labels: np.ndarray) -> dict:
    """Accuracy, ECE and the screener's shares of one source's reading."""
    return {"accuracy": round(float((probabilities.argmax(axis=1) == labels).mean()), 4),
            "ece": round(expected_calibration_error(probabilities, labels), 4),
            **screener_shares(probabilities, labels)}


def negative_bias(probabilities: np.ndarray, bias: float) -> np.ndarray:
    """The reading with the negative emotions' log-probabilities raised by `bias`: another
    operating point of the same model, trading neutral faces read negative for negative ones
    read negative."""
    z = np.log(np.maximum(probabilities, TINY))
    z[:, NEGATIVE] += bias
    z = np.exp(z - z.max(axis=1, keepdims=True))
    return z / z.sum(axis=1, keepdims=True)


def bias_curve(probabilities: np.ndarray, labels: np.ndarray, biases: list[float]) -> dict:
    """The screener's shares at each negative bias: how good the model's ranking of negative
    against neutral faces is, apart from where its operating point sits."""
    return {f"{bias:g}": screener_shares(negative_bias(probabilities, bias), labels)
            for bias in biases}


def simulated_sessions(probabilities: np.ndarray, labels: np.ndarray, rules: RuleSet,
                       profile: ErrorProfile | None, count: int, calm: bool,
                       seed: int = 2026) -> dict:
    """Ten-minute sessions built from one source's faces (estimator_benchmark's students:
    segments of 3-30 s of one emotion, 1-3 images a segment, one face a second), read by the
    real metrics and rules. `calm`: students who show no negative affect but by chance, mostly
    neutral (on web photographs: talking, stern, concentrating faces)."""
    rng = np.random.default_rng(seed)
    pools = [np.flatnonzero(labels == c) for c in range(len(EMOTIONS))]
    for c, pool in enumerate(pools):  # a class a source lacks borrows its group's faces
        group = NEGATIVE if c in NEGATIVE else [k for k in range(len(EMOTIONS))
                                                  if k not in NEGATIVE]
        if not len(pool):
            pools[c] = np.flatnonzero(np.isin(labels, group)) if np.isin(labels, group).any() \
                else np.arange(len(labels))
    counts = {"sessions": 0, "levels_agree": 0, "high": 0, "high_caught": 0,
              "low_called_high": 0, "not_high_called_high": 0, "called_high": 0,
              "called_moderate_or_high": 0}
    for _ in range(count):
        if calm:
            student = simulated.Student(0.0, np.ones(3) / 3, np.array([0.05, 0.25, 0.1, 0.6]))
        else:
            student = simulated.make_student(rng)
        classes, images = simulated.simulate_session(rng, student, pools, False,
                                                     seconds=SESSION_SECONDS)
        true = simulated.label_metrics(classes, rules)
        truth = simulated.level_of(rules, true["negative_share"], true["longest_negative_run_s"],
                                   int(true["negative_episodes"]))
        observations = simulated.as_observations(probabilities[images], rules.smoothing_window)
        metrics = session_metrics(observations, rules.negative, rules.min_run, 1.0,
                                  error_profile=profile)
        level = rules.assess(metrics).level
        counts["sessions"] += 1
        counts["levels_agree"] += level == truth
        counts["high"] += truth == "high"
        counts["high_caught"] += truth == level == "high"
        counts["low_called_high"] += truth == "low" and level == "high"
        counts["not_high_called_high"] += truth != "high" and level == "high"
        counts["called_high"] += level == "high"
        counts["called_moderate_or_high"] += level in ("moderate", "high")
    return counts


def measure(model_path: Path, sources: list[Source], flip_margin: float,
            sessions: int = 0, biases: list[float] | None = None) -> dict:
    model = load_emotion_model(model_path, flip_margin=flip_margin)
    rules = load_rules("default")
    profile = ErrorProfile.for_model(model_path)
    rows = {}
    for source in sources:
        started = time.perf_counter()
        probabilities = model.predict(source.grey, source.aligned)
        seconds = time.perf_counter() - started
        rows[source.name] = {
            "faces": int(len(source.labels)),
            **source_scores(probabilities, source.labels),
            "faces_per_s": round(len(source.labels) / max(seconds, 1e-9), 1),
            "note": source.note,
        }
        if biases:
            rows[source.name]["negative_bias"] = bias_curve(probabilities, source.labels, biases)
        if sessions and source.name in SESSION_SOURCES:
            rows[f"{source.name}_sessions"] = {
                "mixed": simulated_sessions(probabilities, source.labels, rules, profile,
                                            sessions, calm=False),
                "calm": simulated_sessions(probabilities, source.labels, rules, profile,
                                           sessions, calm=True),
            }
    return {"model": str(model_path.relative_to(ROOT) if model_path.is_relative_to(ROOT)
                         else model_path),
            "model_version": model.name, "flip_margin": flip_margin, "sources": rows}


def speed(model_path: Path, sources: list[Source], flip_margin: float,
          faces: int = 512, repeats: int = 3) -> dict:
    """Faces a second as scans run the model (batches of 64, a model's own threads), best of
    `repeats` on web faces, which have both crops: wall time, and per second of CPU time (all
    threads: steadier on a busy machine)."""
    model = load_emotion_model(model_path, 64, flip_margin=flip_margin)
    source = next(s for s in sources if s.name == "wild_fit")
    grey, aligned = source.grey[:faces], source.aligned[:faces]
    model.predict(grey[:64], aligned[:64])
    wall, cpu = float("inf"), float("inf")
    for _ in range(repeats):
        started, cpu_started = time.perf_counter(), time.process_time()
        model.predict(grey, aligned)
        wall = min(wall, time.perf_counter() - started)
        cpu = min(cpu, time.process_time() - cpu_started)
    return {"faces": len(grey), "faces_per_s": round(len(grey) / wall, 1),
            "faces_per_cpu_s": round(len(grey) / cpu, 1)}


def print_table(result: dict) -> None:
    print(f"\n{result['model']} ({result['model_version']})")
    print(f"{'source':18s} {'faces':>6s} {'acc':>6s} {'ECE':>6s} {'neg>neg':>8s} "
          f"{'neu>neg':>8s} {'oth>neg':>8s}")
    for name, row in result["sources"].items():
        if name.endswith("_sessions"):
            mixed, calm = row["mixed"], row["calm"]
            print(f"  {name}: ten-minute sessions: levels {mixed['levels_agree']} of "
                  f"{mixed['sessions']}, High caught {mixed['high_caught']} of {mixed['high']}, "
                  f"other called High {mixed['not_high_called_high']}; calm students called "
                  f"High {calm['called_high']} of {calm['sessions']}, Moderate or High "
                  f"{calm['called_moderate_or_high']}")
            continue
        cells = [row[k] for k in ("negative_read_negative", "neutral_read_negative",
                                  "other_read_negative")]
        shown = " ".join(f"{c:8.3f}" if c is not None else f"{'-':>8s}" for c in cells)
        print(f"{name:18s} {row['faces']:6d} {row['accuracy']:6.3f} {row['ece']:6.3f} {shown}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, action="append",
                        help="a model to measure (repeatable); default: the shipped one")
    parser.add_argument("--smoke", action="store_true", help=f"{SMOKE_FACES} faces a source")
    parser.add_argument("--out", type=Path, help="write the results here (JSON)")
    parser.add_argument("--speed", action="store_true",
                        help="measure faces a second only (give the machine to it alone)")
    parser.add_argument("--sessions", type=int, default=200,
                        help="simulated ten-minute sessions per kind and source (0: none)")
    parser.add_argument("--negative-bias", type=float, action="append", metavar="B",
                        help="also the shares with the negative emotions' log-probabilities "
                             "raised by B (repeatable): the model's trade-off curve")
    args = parser.parse_args()
    if not (SHARED / "datasets/wild/labels.csv").is_file():
        sys.exit(f"error: {SHARED}/datasets is missing: the domain benchmark reads ../shared")
    settings = Settings()
    sources = cached_sources(args.smoke)
    if args.speed:
        rows = {str(path): speed(path, sources, settings.emotions.flip_margin)
                for path in (args.model or [settings.model_path])}
        for path, row in rows.items():
            print(f"{path}: {row['faces_per_s']} faces/s, {row['faces_per_cpu_s']} per CPU s")
        if args.out:
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(json.dumps({"speed": rows}, indent=2) + "\n")
        return
    sessions = min(args.sessions, 10) if args.smoke else args.sessions
    results = [measure(path, sources, settings.emotions.flip_margin, sessions,
                       args.negative_bias)
               for path in (args.model or [settings.model_path])]
    for result in results:
        print_table(result)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"smoke": args.smoke, "results": results}, indent=2)
                            + "\n")


if __name__ == "__main__":
    main()
