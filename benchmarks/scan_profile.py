"""Where a scan's CPU time goes: each part of the pipeline run on its own, in sequence, on
one thread each (FFmpeg, OpenCV, ONNX Runtime), timed in CPU seconds.

    python benchmarks/scan_profile.py [--video PATH]    # default: the scan benchmark's clip

A real scan overlaps these parts in three threads (decoding, key frames, faces), so its wall
time is less than their sum; the sum is what one video costs the machine, which is what
bounds `--workers`. Prints a Markdown table for docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

import cv2

from screener.emotions.joined import load_emotion_model
from screener.faces import FaceTracker, make_detector
from screener.scanning.analysis import BatchedClassifier, StageClock
from screener.settings import KeyframeSettings, Settings
from screener.video.decoders.pyav import PyAvDecoder
from screener.video.keyframes import KeyframeReader

DECODING = "decoding (FFmpeg, non-reference frames skipped)"
COPIES = "analysis copies (256 px BGR from the YUV planes)"
KEY_FRAMES = "key frames: cuts, sharpness, full-size BGR of key frames"
CLIP = Path(__file__).resolve().parent / ".cache" / "clip_3min.mp4"


def profile(video: Path) -> dict[str, float]:
    cv2.setNumThreads(1)
    keyframes = KeyframeSettings(decoder_threads=1)
    settings = Settings(keyframes=keyframes)
    cpu: dict[str, float] = defaultdict(float)

    def timed(part: str, started: float) -> float:
        now = time.process_time()
        cpu[part] += now - started
        return now

    import av

    started = time.process_time()
    with av.open(str(video)) as container:
        stream = container.streams.video[0]
        stream.codec_context.thread_count = 1
        stream.codec_context.skip_frame = "NONREF"
        decoded = sum(1 for _ in container.decode(stream))
    timed(DECODING, started)

    PyAvDecoder.read_ahead = 0  # every part in this thread, so that each can be timed
    decoder = PyAvDecoder(video, keyframes)
    started = time.process_time()
    analysed = sum(1 for frame in decoder if frame.small is not None)
    cpu[COPIES] = time.process_time() - started - cpu[DECODING]

    reader = KeyframeReader(video, keyframes)
    tracker = FaceTracker(make_detector(settings.faces), settings.faces)
    model = load_emotion_model(settings.model_path, settings.emotions.batch_size, threads=1)
    classifier = BatchedClassifier(model, settings.emotions.batch_size, StageClock())
    key_frames = 0
    started = time.process_time()
    for frame in reader:
        started = timed(KEY_FRAMES, started)
        key_frames += 1
        faces = tracker.faces(frame)
        started = timed("faces (YuNet, tracking)", started)
        classifier.add(faces)
        started = timed("emotions (ONNX Runtime)", started)
    classifier.finish()
    timed("emotions (ONNX Runtime)", started)
    cpu[KEY_FRAMES] -= cpu[DECODING] + cpu[COPIES]  # the reader decodes again
    print(f"{decoded} frames decoded, {analysed} analysed, {key_frames} key frames",
          file=sys.stderr)
    cpu["start-up of `screener scan` on an empty folder (imports, model, database)"] = startup()
    return cpu


def startup() -> float:
    import resource
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        # An empty folder is exit 1 ("no video found") since the hardening issue: still a
        # whole start-up, which is what is timed; any other code is a real failure.
        done = subprocess.run([sys.executable, "-m", "screener", "scan", tmp, "--out",
                               f"{tmp}/out", "--db", f"sqlite:///{tmp}/s.db", "--quiet"],
                              stderr=subprocess.PIPE, text=True)
        if done.returncode not in (0, 1) or "no video found" not in done.stderr:
            raise RuntimeError(f"scan start-up failed ({done.returncode}): {done.stderr}")
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--video", type=Path, default=CLIP)
    args = parser.parse_args()
    if not args.video.is_file():
        parser.error(f"{args.video} is missing: run scan_benchmark.py first or pass --video")
    cpu = profile(args.video)
    total = sum(cpu.values())
    print(f"| part (one thread each, `{args.video.name}`) | CPU seconds | share |")
    print("|---|---|---|")
    for part, seconds in sorted(cpu.items(), key=lambda item: -item[1]):
        print(f"| {part} | {seconds:.2f} | {seconds / total:.0%} |")
    print(f"| all | {total:.2f} | 100% |")


if __name__ == "__main__":
    main()
