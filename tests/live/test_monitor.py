"""The live loop (`screener/live/monitor.py`, `live_source.py`, `live_alerts.py`, `overlay.py`,
`recording.py`) on generated videos and reader stubs, headless."""

from __future__ import annotations

import threading
import time

import cv2
import numpy as np
import pytest

from screener.domain import EMOTIONS, Box, Observation
from screener.live.alerts import SeedAlerts, WindowLevel
from screener.live.monitor import LiveAnalyzer, open_grabber, run_live
from screener.live.overlay import EMOTION_COLOURS, draw_annotations
from screener.live.recording import VideoRecorder
from screener.live.source import FrameGrabber, SourceError, SourceSpec, parse_source
from screener.scanning.analysis import Analyzer
from screener.session.rules import load_rules
from screener.settings import Settings
from tests.conftest import brightness_model, face_frames


def observation(t_s: float, label: str | None) -> Observation:
    probabilities = None if label is None else tuple(float(e == label) for e in EMOTIONS)
    box = None if label is None else Box(0, 0, 10, 10)
    return Observation(t_s, int(t_s * 10), box, probabilities, label, label)


def test_seed_alerts_speak_as_the_original_program():
    seed = SeedAlerts(load_rules("seed"))
    messages = []
    labels = (["sad"] * 6 + ["happy"] * 2) * 4 + ["fear"] * 4 + ["angry"] * 5
    for i, label in enumerate(labels):
        messages += [a.message for a in seed.on_frame(observation(i / 10, label))]
    assert messages == ["Sad Emotion Detected"] * 3 + [
        "Sad Emotion Detected", "Less Stress or Depression Detected",
        "Angry Emotion Detected",  # fear held 4 frames only: one short of a detection
    ]
    assert seed.detections == {"angry": 1}  # the conclusion restarted the counts


def test_frames_without_a_face_neither_extend_nor_break_a_seed_run():
    seed = SeedAlerts(load_rules("seed"))
    labels = ["angry", "angry", None, None, "angry", "angry", None, "angry"]
    found = [a for i, lb in enumerate(labels) for a in seed.on_frame(observation(i, lb))]
    assert [a.message for a in found] == ["Angry Emotion Detected"]
    assert found[0].t_s == 7


def test_window_level_is_announced_when_it_changes_and_forgets_old_frames():
    level = WindowLevel(load_rules("default"), window_s=20, step_s=1.0)
    alerts = []
    for t in range(60):
        label = "sad" if t < 30 else "happy"
        alerts += level.on_key_frame(observation(float(t), label))
    assert [(a.t_s, a.level) for a in alerts] == [(9.0, "high"), (40.0, "low")]  # 9 of 20 sad
    # 9 s in, the 20-s window holds 9 s: the message says what the level covers.
    assert "over the last 9 s" in alerts[0].message
    assert "over the last 20 s" in alerts[1].message


class StubReader:
    """Frames numbered by their brightness; raises after `fail_after` frames when set."""

    def __init__(self, count: int, fail_after: int | None = None, fps: float | None = None):
        self.count, self.fail_after, self.fps, self.sent = count, fail_after, fps, 0

    def read(self):
        if self.fail_after is not None and self.sent >= self.fail_after:
            raise OSError("connection reset by peer")
        if self.sent >= self.count:
            return None
        self.sent += 1
        return np.full((24, 32, 3), self.sent % 256, np.uint8)

    def close(self) -> None:
        pass


def take_all(grabber: FrameGrabber, delay_s: float = 0.0) -> list[int]:
    taken = []
    while (frame := grabber.next(1.0)) is not None or not grabber.ended:
        if frame is not None:
            taken.append(frame.index)
            time.sleep(delay_s)
    return taken


def test_a_slow_analysis_drops_frames_and_counts_them_never_queues():
    grabber = FrameGrabber(lambda: StubReader(300), source_fps=100, paced=True).start()
    taken = take_all(grabber, delay_s=0.05)
    assert grabber.frames_read == 300
    assert grabber.dropped > 100
    assert len(taken) + grabber.dropped == 300
    assert taken == sorted(taken) and taken[-1] == 299  # always the newest, the last included


def test_fast_reading_waits_for_the_analysis_and_drops_nothing():
    grabber = FrameGrabber(lambda: StubReader(50), source_fps=10, wait_for_reader=True).start()
    assert take_all(grabber, delay_s=0.002) == list(range(50))
    assert grabber.dropped == 0


def test_a_paced_file_is_delivered_at_its_frame_rate():
    started = time.perf_counter()
    grabber = FrameGrabber(lambda: StubReader(20), source_fps=20, paced=True).start()
    frames = take_all(grabber)
    assert frames[-1] == 19
    assert time.perf_counter() - started >= 19 / 20 - 0.02


def test_a_source_that_stops_is_reconnected_then_given_up():
    readers = [StubReader(100, fail_after=5), StubReader(100, fail_after=3)]

    def reopen():
        if not readers:
            raise SourceError("cannot open stream rtsp://cam: no answer")
        return readers.pop(0)

    grabber = FrameGrabber(reopen, reconnects=2, reconnect_delay_s=0.01).start()
    taken = take_all(grabber)
    assert grabber.frames_read == 8 and grabber.reconnections == 1
    assert taken[-1] == 7
    assert "no answer (after 2 reconnection attempts)" in grabber.lost


@pytest.fixture(scope="module")
def analyzer(tmp_path_factory) -> Analyzer:
    """The default detector with a model whose answers are known: bright faces happy, dark sad."""
    model = brightness_model(tmp_path_factory.mktemp("model") / "brightness.onnx")
    settings = Settings(rules="seed")
    settings = settings.replace(emotions=settings.emotions.__class__(model_path=model))
    return Analyzer.from_settings(settings, threads=1)


def test_a_live_session_that_loses_its_source_keeps_what_was_seen(analyzer, astronaut):
    frames = face_frames(astronaut, 30)

    class FaceReader(StubReader):
        def read(self):
            image = super().read()
            return None if image is None else frames[self.sent - 1].copy()

    reader = FaceReader(30, fail_after=12)

    def reopen():
        raise SourceError("camera 0 stopped sending frames")

    spec = SourceSpec("camera", 0, "camera 0")
    grabber = FrameGrabber(reopen, reconnects=1, reconnect_delay_s=0.01,
                           wait_for_reader=True, first_reader=reader).start()
    summary = run_live(grabber, LiveAnalyzer(analyzer, background_faces=False), spec)
    assert summary.stopped == "lost" and "stopped sending" in summary.reason
    assert summary.frames == summary.analysed_frames == 12
    faces = [o for o in summary.result.observations if o.label]
    assert faces and all(o.label == "happy" for o in faces)
    assert summary.result.metrics["live_frames_read"] == 12
    assert summary.result.job.source == "live: camera 0"


def test_background_face_search_labels_every_frame_with_the_latest_boxes(analyzer, astronaut,
                                                                       make_video):
    video = make_video("face.mp4", face_frames(astronaut, 40), fps=20)
    spec = parse_source(str(video))
    grabber = open_grabber(spec, analyzer.settings, fast=True)
    live = LiveAnalyzer(analyzer, background_faces=True)
    summary = run_live(grabber, live, spec)
    assert summary.analysed_frames == 40 and summary.dropped_frames == 0
    assert len(summary.box_ages) == 40  # the first frame waits for its faces; none goes without
    assert 1 <= summary.face_searches <= 40


def test_the_overlay_draws_a_box_in_the_emotions_colour_and_the_bars():
    image = np.zeros((240, 320, 3), np.uint8)
    sad = Observation(0.0, 0, Box(40, 60, 80, 80), (0, 0, 0, 0, 1.0, 0, 0), "sad", "sad")
    draw_annotations(image, [sad], ["Sad Emotion Detected"])
    assert tuple(image[100, 40]) == EMOTION_COLOURS["sad"]  # the box's left edge
    assert tuple(image[60, 80]) == EMOTION_COLOURS["sad"]  # its top edge
    assert image[100, 80].sum() == 0  # not filled
    assert (image[:, 240:, 0] == 255).sum() > 20  # the sad bar, top right
    assert (image[10:40, :200, 2] > 200).sum() > 20  # the alert, in red


def test_recording_writes_h264_at_the_session_times(tmp_path):
    import av

    path = tmp_path / "out.mp4"
    recorder = VideoRecorder(path, 161, 121, fps=10)
    for i in range(10):
        recorder.write(np.full((121, 161, 3), i * 20, np.uint8), i / 10)
    recorder.write(np.zeros((121, 161, 3), np.uint8), 0.9)  # a repeated time is skipped
    recorder.close()
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264"
        assert (stream.width, stream.height) == (160, 120)
        frames = [f.to_ndarray(format="bgr24") for f in container.decode(video=0)]
    assert len(frames) == 10
    assert abs(int(frames[-1].mean()) - 180) < 8


def test_sources_are_told_apart_and_passwords_never_shown(tmp_path):
    video = tmp_path / "clip.mp4"
    video.write_bytes(b"x")
    assert parse_source("0") == SourceSpec("camera", 0, "camera 0")
    assert parse_source(str(video)).kind == "file"
    stream = parse_source("rtsp://admin:secret@cam.local:554/live")
    assert stream.kind == "stream" and stream.target.endswith("secret@cam.local:554/live")
    assert stream.label == "rtsp://admin:***@cam.local:554/live"
    assert parse_source("http://cam.local/feed.mjpg").label == "http://cam.local/feed.mjpg"
    with pytest.raises(SourceError, match="no such file or camera device"):
        parse_source(str(tmp_path / "absent.mp4"))
    with pytest.raises(SourceError, match="not a video file"):
        parse_source(str(tmp_path))


def test_a_camera_that_is_absent_is_a_source_error():
    from screener.live.source import CaptureReader

    with pytest.raises(SourceError, match="cannot open camera 57"):
        CaptureReader(SourceSpec("camera", 57, "camera 57"))


def test_stopping_the_grabber_ends_its_thread_while_paced():
    grabber = FrameGrabber(lambda: StubReader(10_000), source_fps=5, paced=True).start()
    assert grabber.next(2.0) is not None
    stopper = threading.Timer(0.05, grabber.stop)
    stopper.start()
    take_all(grabber)
    stopper.join()
    assert grabber.ended and grabber.frames_read < 10


def test_q_or_esc_in_the_window_ends_the_session(analyzer, astronaut, make_video, monkeypatch):
    from screener.live import output as live_output

    keys = iter([-1, -1, ord("q")])
    monkeypatch.setattr(cv2, "namedWindow", lambda *a: None)
    monkeypatch.setattr(cv2, "imshow", lambda *a: None)
    monkeypatch.setattr(cv2, "waitKey", lambda *a: next(keys, 27))
    monkeypatch.setattr(cv2, "getWindowProperty", lambda *a: 1.0)
    monkeypatch.setattr(cv2, "destroyWindow", lambda *a: None)
    video = make_video("face.mp4", face_frames(astronaut, 20), fps=20)
    spec = parse_source(str(video))
    grabber = open_grabber(spec, analyzer.settings, fast=True)
    summary = run_live(grabber, LiveAnalyzer(analyzer, background_faces=False), spec,
                       [live_output.Window()])
    assert summary.stopped == "key" and summary.analysed_frames == 3
