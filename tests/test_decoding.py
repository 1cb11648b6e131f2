import os
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from screener.decoding import (
    DamagedWhileThreaded,
    OpenCvDecoder,
    PyAvDecoder,
    VideoReadError,
    _analysis_size,
    open_decoder,
)
from screener.keyframes import KeyframeReader
from screener.settings import KeyframeSettings
from tests import test_bad_inputs as bad
from tests.conftest import face_frames, plain_frames

DECODERS = ["pyav", "opencv"]


def write_h264(path: Path, frames: list[np.ndarray], fps: int, bframes: int,
               crf: int = 23) -> Path:
    """H.264 whose B-frames are never references: I B B P B B P ... for bframes=2."""
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=fps)
        stream.height, stream.width = frames[0].shape[:2]
        stream.pix_fmt = "yuv420p"
        stream.options = {"x264-params": f"bframes={bframes}:b-adapt=0:b-pyramid=none:"
                                         "keyint=300:scenecut=0", "crf": str(crf)}
        for i, image in enumerate(frames):
            picture = av.VideoFrame.from_ndarray(image, format="bgr24")
            picture.pts, picture.time_base = i, Fraction(1, fps)
            for packet in stream.encode(picture):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


def moving(count: int) -> list[np.ndarray]:
    rng = np.random.default_rng(4)
    base = rng.integers(0, 255, (120, 160, 3), dtype=np.uint8)
    return [np.roll(base, i, axis=1) for i in range(count)]


def test_both_decoders_give_the_same_frames(make_video):
    video = make_video("plain.mp4", moving(30), fps=10)
    frames = {name: list(open_decoder(video, KeyframeSettings(
        analysis_fps=5, decoder=name))) for name in DECODERS}
    pyav, opencv = frames["pyav"], frames["opencv"]
    assert [(f.index, f.t_s) for f in pyav] == [(f.index, f.t_s) for f in opencv]
    assert [f.index for f in pyav] == list(range(30))
    analysed = [f for f in pyav if f.small is not None]
    assert [f.index for f in analysed] == list(range(0, 30, 2))  # 10 fps / 5 analysed per s
    assert [f.index for f in opencv if f.small is not None] == [f.index for f in analysed]
    for a, b in zip(analysed, (f for f in opencv if f.small is not None), strict=True):
        assert a.small.shape == b.small.shape == (120, 160, 3)  # narrower than analysis_width
        assert np.abs(a.full().astype(int) - b.full()).mean() < 2


def test_skipping_non_reference_frames_decodes_a_third_and_analyses_the_same_frames(tmp_path):
    video = write_h264(tmp_path / "b.mp4", moving(60), fps=30, bframes=2)
    settings = KeyframeSettings(analysis_fps=10)  # stride 3
    skipping = list(open_decoder(video, settings))
    everything = list(open_decoder(video, KeyframeSettings(analysis_fps=10, skip_nonref=False)))
    assert [f.index for f in everything] == list(range(60))
    # x264 ends the stream on a P-frame, so the last frame (59) is decoded too.
    assert [f.index for f in skipping] == [*range(0, 60, 3), 59]
    assert [f.t_s for f in skipping] == pytest.approx([i / 30 for i in [*range(0, 60, 3), 59]])
    analysed = [f.index for f in skipping if f.small is not None]
    assert analysed == [f.index for f in everything if f.small is not None] == [*range(0, 60, 3)]


def test_key_frames_from_a_skipping_decoder_cover_every_window(tmp_path):
    video = write_h264(tmp_path / "b.mp4", moving(90), fps=30, bframes=2)
    reader = KeyframeReader(video, KeyframeSettings(every_s=1.0, cut_threshold=255))
    keyframes = list(reader)
    assert [int(f.t_s) for f in keyframes] == [0, 1, 2]
    assert all(f.image.shape == (120, 160, 3) for f in keyframes)
    assert reader.info.duration_s == pytest.approx(3.0, abs=0.05)
    assert reader.info.frame_count == 90


def test_the_analysis_copy_is_small_and_close_to_the_full_frame_scaled(tmp_path, astronaut):
    import cv2

    frames = [cv2.resize(astronaut, (640, 360))] * 6
    video = write_h264(tmp_path / "big.mp4", frames, fps=10, bframes=0)
    first = next(iter(open_decoder(video, KeyframeSettings(analysis_width=256))))
    assert first.small.shape == (144, 256, 3)
    scaled = cv2.resize(first.full(), (256, 144), interpolation=cv2.INTER_LINEAR)
    assert np.abs(first.small.astype(int) - scaled).mean() < 3


def test_skipping_deblocking_decodes_the_same_frames_blockier(tmp_path, astronaut):
    """Coarse quantisation makes block edges that the loop filter would smooth: without it the
    pictures differ, and are further from what was encoded."""
    import cv2

    source = [cv2.resize(np.roll(astronaut, 4 * i, axis=1), (320, 320)) for i in range(12)]
    video = write_h264(tmp_path / "coarse.mp4", source, fps=10, bframes=0, crf=45)
    plain, blocky = (list(open_decoder(video, KeyframeSettings(analysis_fps=10,
                                                                skip_deblocking=skip)))
                     for skip in (False, True))
    assert [f.index for f in plain] == [f.index for f in blocky] == list(range(12))

    def error(frames: list) -> float:
        return float(np.mean([np.abs(f.full().astype(int) - s).mean()
                              for f, s in zip(frames, source, strict=True)]))

    assert any(np.any(a.full() != b.full()) for a, b in zip(plain, blocky, strict=True))
    assert error(plain) < error(blocky)


@pytest.mark.parametrize(("size", "width", "expected"), [
    ((1280, 720), 256, (256, 144)),
    ((1920, 1080), 255, (254, 142)),
    ((200, 100), 256, (200, 100)),
    ((1001, 3), 256, (256, 2)),
])
def test_analysis_sizes_are_even_and_never_larger(size, width, expected):
    assert _analysis_size(*size, width) == expected


def test_a_damaged_packet_costs_its_frames_not_the_video(make_video, tmp_path):
    video = make_video("plain.mp4", moving(20), fps=10)
    with av.open(str(video)) as container:
        packets = [(p.pos, p.size) for p in container.demux(video=0) if p.size]
    data = bytearray(video.read_bytes())
    pos, size = packets[10]
    data[pos : pos + size] = bytes(size)
    damaged = tmp_path / "damaged.mp4"
    damaged.write_bytes(bytes(data))
    decoder = open_decoder(damaged, KeyframeSettings(decoder_threads=1))
    frames = list(decoder)
    assert 10 <= len(frames) < 20
    assert frames[0].index == 0 and frames[-1].index == 19
    assert decoder.undecodable >= 1
    with pytest.raises(DamagedWhileThreaded):  # the analysis starts again with one thread
        list(open_decoder(damaged, KeyframeSettings(decoder_threads=2)))


@pytest.mark.parametrize("decoder", DECODERS)
@pytest.mark.parametrize(("make", "words"), [
    (bad.truncated(0.5), "cannot be opened as a video"),
    (bad.random_bytes, "cannot be opened as a video"),
    (bad.no_frames, "cannot be opened as a video"),
    (bad.undecodable_frames, "no frame could be decoded"),
    (bad.absurd_fps, "implausible frame rate (10000 fps)"),
    (bad.aac_audio_only, "cannot be opened as a video"),
])
def test_both_decoders_refuse_a_bad_file_with_the_same_reason(tmp_path, astronaut, make_video,
                                                              decoder, make, words):
    make_video(f"{bad.GOOD_SESSION}.mp4", face_frames(astronaut, 12))
    path = tmp_path / "bad.mp4"
    make(path, tmp_path)
    with pytest.raises(VideoReadError, match=words.replace("(", r"\(").replace(")", r"\)")):
        list(KeyframeReader(path, KeyframeSettings(decoder=decoder)))


def test_a_worker_decodes_with_one_thread(make_video, monkeypatch):
    video = make_video("plain.mp4", plain_frames(4, (90, 90, 90)), fps=10)
    one = PyAvDecoder(video, KeyframeSettings(decoder_threads=1))
    assert one._stream.codec_context.thread_count == 1
    default = PyAvDecoder(video, KeyframeSettings())
    assert default._stream.thread_type in ("AUTO", av.codec.context.ThreadType.AUTO)
    monkeypatch.delenv("OPENCV_FFMPEG_THREADS", raising=False)
    OpenCvDecoder(video, KeyframeSettings(decoder="opencv", decoder_threads=1))
    assert os.environ["OPENCV_FFMPEG_THREADS"] == "1"


def test_an_unknown_decoder_is_a_settings_error():
    from screener.settings import SettingsError

    with pytest.raises(SettingsError, match="decoder"):
        KeyframeSettings(decoder="gstreamer")
    with pytest.raises(SettingsError, match="decoder_threads"):
        KeyframeSettings(decoder_threads=-1)
