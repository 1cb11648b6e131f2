from pathlib import Path

import cv2
import numpy as np
import pytest

from screener.settings import KeyframeSettings
from screener.video.keyframes import KeyframeReader, VideoReadError, sharpness
from tests.conftest import plain_frames


def test_a_cut_splits_scenes_and_windows_restart_at_the_cut(make_video):
    frames = plain_frames(25, (40, 40, 200)) + plain_frames(25, (200, 200, 40), seed=2)
    video = make_video("cut.mp4", frames, fps=10)
    reader = KeyframeReader(video, KeyframeSettings(every_s=1.0))
    keyframes = list(reader)
    assert reader.info.scenes == 2
    assert reader.info.frame_count == 50
    assert reader.info.fps == pytest.approx(10.0)
    first = [f for f in keyframes if f.scene == 0]
    second = [f for f in keyframes if f.scene == 1]
    assert [f.index < 25 for f in first] == [True] * len(first)
    assert all(f.index >= 25 for f in second)
    assert len(first) == 3 and len(second) == 3  # windows of 1 s: 0-1, 1-2, 2-2.5 s per scene


def test_one_shot_video_is_one_scene_with_a_frame_per_window(make_video):
    video = make_video("still.mp4", plain_frames(40, (90, 120, 60)), fps=10)
    reader = KeyframeReader(video, KeyframeSettings(every_s=0.5))
    keyframes = list(reader)
    assert reader.info.scenes == 1
    assert len(keyframes) == 8
    times = [f.t_s for f in keyframes]
    assert times == sorted(times)
    assert all(int(f.t_s // 0.5) == i for i, f in enumerate(keyframes))


def test_sharpest_frame_of_each_window_is_chosen(make_video):
    rng = np.random.default_rng(3)
    sharp = rng.integers(0, 255, (240, 320, 3), dtype=np.uint8)
    blurred = cv2.GaussianBlur(sharp, (31, 31), 10)
    frames = [blurred.copy() for _ in range(20)]
    frames[6] = sharp
    frames[13] = sharp
    video = make_video("sharp.mp4", frames, fps=10)
    keyframes = list(KeyframeReader(video, KeyframeSettings(every_s=1.0, cut_threshold=255)))
    assert [f.index for f in keyframes] == [6, 13]


def test_sharpness_prefers_detail():
    rng = np.random.default_rng(0)
    detail = rng.integers(0, 255, (64, 64), dtype=np.uint8)
    assert sharpness(detail) > sharpness(cv2.GaussianBlur(detail, (9, 9), 4)) * 5


@pytest.mark.parametrize("content", [b"", b"this is not a video\n" * 50])
def test_files_that_are_not_videos_raise_a_clear_error(tmp_path: Path, content: bytes):
    path = tmp_path / "broken.mp4"
    path.write_bytes(content)
    with pytest.raises(VideoReadError):
        list(KeyframeReader(path, KeyframeSettings()))


def test_real_webcam_style_clip_is_one_scene(shared_videos: Path):
    reader = KeyframeReader(shared_videos / "WolfgangLanger_Pexels.mp4", KeyframeSettings())
    keyframes = list(reader)
    assert reader.info.scenes == 1
    assert abs(len(keyframes) - reader.info.duration_s) <= 1


@pytest.mark.parametrize("decoder", ["pyav", "opencv"])
def test_a_file_name_that_is_not_utf8_is_read(make_video, tmp_path: Path, decoder: str):
    import os

    video = make_video("plain.mp4", plain_frames(12, (30, 90, 160)), fps=10)
    odd = Path(os.fsdecode(bytes(tmp_path) + b"/b\xe9a_2026-01-01.mp4"))
    video.rename(odd)
    reader = KeyframeReader(odd, KeyframeSettings(decoder=decoder))
    assert len(list(reader)) == 2 and reader.info.frame_count == 12


def test_a_missing_file_is_a_read_error(tmp_path: Path):
    with pytest.raises(VideoReadError, match="not a readable file"):
        KeyframeReader(tmp_path / "gone.mp4", KeyframeSettings())


def test_only_every_stride_th_frame_is_analysed_yet_every_frame_is_counted(make_video):
    """At 30 fps and 10 analysed frames/s, key frames come from frames 0, 3, 6, ...; a cut
    between analysed frames is still found, at the first analysed frame after it (33)."""
    frames = plain_frames(31, (40, 40, 200)) + plain_frames(29, (200, 200, 40), seed=2)
    video = make_video("stride.mp4", frames, fps=30)
    reader = KeyframeReader(video, KeyframeSettings(every_s=0.5, analysis_fps=10))
    keyframes = list(reader)
    assert reader.stride == 3
    assert reader.info.frame_count == 60 and reader.info.scenes == 2
    assert all(f.index % 3 == 0 for f in keyframes)
    assert all(f.index < 31 for f in keyframes if f.scene == 0)
    assert all(f.index >= 33 for f in keyframes if f.scene == 1)
    every = KeyframeReader(video, KeyframeSettings(every_s=0.5, analysis_fps=1000))
    assert every.stride == 1 and len(list(every)) == len(keyframes)
    assert every.info.scenes == 2


def test_the_sharpest_analysed_frame_wins_a_window(make_video):
    rng = np.random.default_rng(3)
    sharp = rng.integers(0, 255, (240, 320, 3), dtype=np.uint8)
    blurred = cv2.GaussianBlur(sharp, (31, 31), 10)
    frames = [blurred.copy() for _ in range(20)]
    frames[7], frames[12] = sharp, sharp  # 7 is skipped at stride 2, 12 is analysed
    video = make_video("sharp2.mp4", frames, fps=20)
    reader = KeyframeReader(video, KeyframeSettings(every_s=1.0, cut_threshold=255,
                                                    analysis_fps=10))
    assert [f.index for f in reader] == [12]
