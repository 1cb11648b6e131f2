"""Face detection speed: YuNet against Haar, a full-frame search against a search near the last
face (the tracker), and the whole analysis against OpenCV `grab()`-ing every frame.

    python benchmarks/face_speed.py               # a 1-minute 720p clip, ~5 min
    python benchmarks/face_speed.py --seconds 20  # shorter

Everything is measured side by side, interleaved, best of `--repeats`: absolute times on a
shared machine mean little, ratios hold. The clip is ../shared/videos/WolfgangLanger_Pexels.mp4
at 1280x720, 30 fps, looped (as the scan benchmark makes it; cached in benchmarks/.cache/).
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path

import cv2
from scan_benchmark import CACHE, ROOT, SOURCE, analyse_in_process, encode_unit, looped

from screener.faces import FaceTracker, make_detector
from screener.settings import FaceSettings, Settings
from screener.video.keyframes import KeyframeReader


def grab_all(path: Path) -> float:
    """Seconds for OpenCV to decode every frame, without converting it to BGR."""
    capture = cv2.VideoCapture(str(path))
    started = time.perf_counter()
    while capture.grab():
        pass
    return time.perf_counter() - started


def per_key_frame_ms(video: Path, faces: FaceSettings) -> tuple[float, float]:
    """Milliseconds per key frame of a full-frame search and of a search near the last face."""
    detector = make_detector(faces)
    frames = [f.image for f in KeyframeReader(video, Settings().keyframes)][:40]
    tracker = FaceTracker(detector, faces)
    started = time.perf_counter()
    boxes = [max(detector.detect(image), key=lambda d: d.box.area, default=None)
             for image in frames]
    full = (time.perf_counter() - started) / len(frames)
    pairs = [(image, found.box) for image, found in zip(frames[1:], boxes, strict=False)
             if found]
    started = time.perf_counter()
    for image, last in pairs:
        tracker._search_near(image, last)
    near = (time.perf_counter() - started) / max(1, len(pairs))
    return full * 1000, near * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    unit = encode_unit(SOURCE, CACHE / "unit_720p30.mp4")
    video = looped(unit, args.seconds, CACHE / f"clip_{args.seconds:g}s.mp4")
    base = Settings()
    choices = {
        "YuNet, tracker (default)": base,
        "YuNet, full search every key frame": base.replace(
            faces=replace(base.faces, full_search_every=0)),
        "Haar, tracker (before)": base.replace(faces=replace(base.faces, detector="haar")),
        "Haar, full search every key frame": base.replace(
            faces=replace(base.faces, detector="haar", full_search_every=0)),
    }
    best: dict[str, float] = {}
    stages: dict[str, dict[str, float]] = {}
    grab = float("inf")
    for _ in range(args.repeats):
        grab = min(grab, grab_all(video))
        for name, settings in choices.items():
            wall, seconds, _ = analyse_in_process(video, settings)
            if wall < best.get(name, float("inf")):
                best[name], stages[name] = wall, seconds
    detectors = {name: per_key_frame_ms(video, FaceSettings(detector=name))
                 for name in ("yunet", "haar")}
    lines = [f"Clip: {video.name} (1280x720, 30 fps, {args.seconds:g} s); best of "
             f"{args.repeats}, interleaved; machine shared.", "",
             "| analysis | seconds | speed vs `grab()` every frame | faces stage s |",
             "|---|---|---|---|", f"| OpenCV `grab()` every frame | {grab:.2f} | 1.00x | |"]
    lines += [f"| {name} | {wall:.2f} | {grab / wall:.2f}x | {stages[name].get('faces', 0):.2f} |"
              for name, wall in best.items()]
    lines += ["", "| detector | full-frame search, ms per key frame | near the last face, ms |",
              "|---|---|---|"]
    lines += [f"| {name} | {full:.1f} | {near:.1f} |" for name, (full, near) in detectors.items()]
    table = "\n".join(lines)
    print(table)
    out = ROOT / "benchmarks" / "results" / "face_speed.json"  # runs kept as face_speed_run*.json
    out.write_text(json.dumps({"grab_s": grab, "analysis_s": best, "stages": stages,
                               "detector_ms": detectors, "seconds": args.seconds},
                              indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
