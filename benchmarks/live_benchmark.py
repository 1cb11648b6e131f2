"""Is `screener live` real time? Plays a camera-like 640x480, a 720p and a 1080p file at 30 fps
as paced sources (as if live) and reports the share of frames dropped and the latency from a
frame's arrival to its label; then where the time goes, frame by frame (`--fast`).

Target (issue 22): 720p30 with at most 5% of frames dropped and a median latency under 100 ms.

    python benchmarks/live_benchmark.py [--seconds 20] [--json benchmarks/results/live.json]

The clips are made from ../shared/videos/WolfgangLanger_Pexels.mp4 (one face, changing
expressions), scaled and re-timed to 30 fps, H.264, in a temporary folder.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from screener.domain import Frame  # noqa: E402
from screener.faces import FaceTracker  # noqa: E402
from screener.live.monitor import LiveAnalyzer, open_grabber, run_live  # noqa: E402
from screener.live.output import Recording  # noqa: E402
from screener.live.overlay import draw_annotations  # noqa: E402
from screener.live.source import CaptureReader, parse_source  # noqa: E402
from screener.scanning.analysis import Analyzer  # noqa: E402
from screener.settings import Settings  # noqa: E402

SOURCE = REPO.parent / "shared" / "videos" / "WolfgangLanger_Pexels.mp4"
SIZES = {"640x480": (640, 480), "720p": (1280, 720), "1080p": (1920, 1080)}
FPS = 30


def make_clip(folder: Path, name: str, size: tuple[int, int], seconds: float) -> Path:
    """The source clip scaled (and letterboxed to the aspect) to `size`, 30 fps, H.264."""
    import av

    path = folder / f"{name}.mp4"
    source = cv2.VideoCapture(str(SOURCE))
    frames = []
    while True:
        ok, image = source.read()
        if not ok:
            break
        frames.append(image)
    source.release()
    width, height = size
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=Fraction(FPS))
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"preset": "veryfast", "crf": "20"}
        for i in range(round(seconds * FPS)):
            image = frames[i % len(frames)]
            scale = min(width / image.shape[1], height / image.shape[0])
            scaled = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
            canvas = np.zeros((height, width, 3), np.uint8)
            y0, x0 = (height - scaled.shape[0]) // 2, (width - scaled.shape[1]) // 2
            canvas[y0 : y0 + scaled.shape[0], x0 : x0 + scaled.shape[1]] = scaled
            frame = av.VideoFrame.from_ndarray(canvas, format="bgr24")
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


def paced_run(clip: Path, analyzer: Analyzer, record: Path | None = None,
              background_faces: bool = True) -> dict:
    """The clip played live, as `screener live FILE --no-window [--record]` does;
    `background_faces=False` searches each frame for faces before labelling it instead."""
    spec = parse_source(str(clip))
    grabber = open_grabber(spec, analyzer.settings)
    labels = LabelLog()
    sinks = [labels, Recording(record, FPS)] if record else [labels]
    cpu = time.process_time()
    summary = run_live(grabber, LiveAnalyzer(analyzer, background_faces=background_faces), spec,
                       sinks)
    cpu = time.process_time() - cpu
    return {
        "frames": summary.frames, "analysed": summary.analysed_frames,
        "dropped": summary.dropped_frames, "dropped_share": round(summary.dropped_share, 4),
        "fps": round(summary.fps, 2), "wall_s": round(summary.wall_s, 2),
        "clip_s": round(summary.frames / FPS, 2),
        "latency_ms_median": round(summary.latency_ms() or 0, 1),
        "latency_ms_p95": round(summary.latency_ms(0.95) or 0, 1),
        "cpu_cores_used": round(cpu / summary.wall_s, 2),
        "face_searches": summary.face_searches,
        "box_age_frames_median": statistics.median(summary.box_ages) if summary.box_ages else None,
        "level": summary.result.level,
        "negative_share": round(summary.result.metrics["negative_share"], 3),
        "labels": labels.labels,
    }


class LabelLog:
    """A sink that keeps each analysed frame's label, to compare two ways of running."""

    wants_image = False

    def __init__(self) -> None:
        self.labels: dict[int, str | None] = {}

    def show(self, analysed) -> bool:  # noqa: ANN001
        self.labels[analysed.frame.index] = analysed.observations[0].label
        return True

    def idle(self) -> bool:
        return True

    def close(self) -> None:
        pass


def every_frame_labels(clip: Path, analyzer: Analyzer) -> dict[int, str | None]:
    """Each frame searched and labelled, none dropped (`--fast`): the reference."""
    spec = parse_source(str(clip))
    labels = LabelLog()
    run_live(open_grabber(spec, analyzer.settings, fast=True),
             LiveAnalyzer(analyzer, background_faces=False), spec, [labels])
    return labels.labels


def agreement(run: dict, reference: dict[int, str | None]) -> float:
    """Share of the run's analysed frames labelled as the reference labels them."""
    same = [run["labels"][i] == reference[i] for i in run["labels"] if i in reference]
    return round(sum(same) / len(same), 3) if same else 0.0


def stage_costs(clip: Path, analyzer: Analyzer, frames: int = 150) -> dict:
    """Milliseconds per frame of each part, run one after the other on the same frames."""
    reader = CaptureReader(parse_source(str(clip)))
    images, decode = [], time.perf_counter()
    for _ in range(frames):
        image = reader.read()
        if image is None:
            break
        images.append(image)
    decode = (time.perf_counter() - decode) / len(images)
    reader.close()
    settings = analyzer.settings
    tracker = FaceTracker(analyzer.detector, settings.faces)
    detect = classify = draw = 0.0
    found = 0
    analyzer.model.predict(np.zeros((1, 48, 48), np.uint8))  # warm up
    for i, image in enumerate(images):
        started = time.perf_counter()
        faces = tracker.faces(Frame(i / FPS, i, image, 0, 0.0))
        detect += time.perf_counter() - started
        found += bool(faces)
        started = time.perf_counter()
        if faces:
            analyzer.model.predict([f.crop for f in faces])
        classify += time.perf_counter() - started
        started = time.perf_counter()
        draw_annotations(image, [], ["Sad Emotion Detected"], "30 fps")
        draw += time.perf_counter() - started
    full = [analyzer.detector.detect(image) for image in images[:10]]
    started = time.perf_counter()
    for image in images[:20]:
        analyzer.detector.detect(image)
    full_search = (time.perf_counter() - started) / 20
    n = len(images)
    return {
        "decode_ms": round(decode * 1000, 2),
        "faces_tracked_ms": round(detect / n * 1000, 2),
        "full_search_ms": round(full_search * 1000, 2),
        "emotions_ms": round(classify / n * 1000, 2),
        "overlay_ms": round(draw / n * 1000, 2),
        "face_found_share": round(found / n, 3),
        "faces_in_first_frames": sum(bool(f) for f in full),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="Length of each clip.")
    parser.add_argument("--sizes", default=",".join(SIZES), help="Comma-separated: "
                        + ", ".join(SIZES))
    parser.add_argument("--record", action="store_true", help="Also run 720p with --record.")
    parser.add_argument("--search-each-frame", action="store_true",
                        help="Also run 720p searching every frame for faces before labelling it "
                        "(the first design), for comparison.")
    parser.add_argument("--agreement", action="store_true",
                        help="Also label every frame of each clip with --fast, and report the "
                        "share of frames the live run labelled the same.")
    parser.add_argument("--json", type=Path, help="Write the results here.")
    args = parser.parse_args()
    if not SOURCE.is_file():
        sys.exit(f"{SOURCE} is absent: the benchmark needs ../shared/videos")
    analyzer = Analyzer.from_settings(Settings(), threads=1)  # as `screener live` loads it
    results: dict = {
        "machine": {"cpus": os.cpu_count(), "load_average_at_start": os.getloadavg(),
                    "python": platform.python_version(), "opencv": cv2.__version__},
        "seconds": args.seconds, "runs": {},
    }
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for name in args.sizes.split(","):
            clip = make_clip(folder, name, SIZES[name], args.seconds)
            run = paced_run(clip, analyzer)
            run["stages"] = stage_costs(clip, analyzer)
            results["runs"][name] = run
            reference = every_frame_labels(clip, analyzer) if args.agreement else None
            if reference is not None:
                run["agreement"] = agreement(run, reference)
            print(name, json.dumps({k: v for k, v in run.items() if k != "labels"}), flush=True)
            if args.search_each_frame and name == "720p":
                each = paced_run(clip, analyzer, background_faces=False)
                results["runs"]["720p, search each frame"] = each
                if reference is not None:
                    each["agreement"] = agreement(each, reference)
                print("720p, search each frame",
                      json.dumps({k: v for k, v in each.items() if k != "labels"}), flush=True)
            if args.record and name == "720p":
                recorded = paced_run(clip, analyzer, folder / "recorded.mp4")
                results["runs"]["720p --record"] = recorded
                print("720p --record",
                      json.dumps({k: v for k, v in recorded.items() if k != "labels"}), flush=True)
    results["machine"]["load_average_at_end"] = os.getloadavg()
    print(f"load average at start {results['machine']['load_average_at_start']}, "
          f"at end {results['machine']['load_average_at_end']}")
    print("| source (30 fps) | dropped | median latency | p95 latency | analysed fps | wall / clip "
          "| face searches | cores used | negative share | same label as every frame searched |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name, run in results["runs"].items():
        print(f"| {name} | {run['dropped_share']:.1%} | {run['latency_ms_median']} ms "
              f"| {run['latency_ms_p95']} ms | {run['fps']} | {run['wall_s']} / {run['clip_s']} s "
              f"| {run['face_searches']} | {run['cpu_cores_used']} | {run['negative_share']} "
              f"| {run.get('agreement', '')} |")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        for run in results["runs"].values():
            run.pop("labels", None)
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
