import os
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from screener.settings import KeyframeSettings
from screener.video.decoders import OpenCvDecoder, PyAvDecoder, open_decoder
from screener.video.frames import DamagedWhileThreaded, VideoReadError, analysis_size
from screener.video.keyframes import KeyframeReader
from tests import test_bad_inputs as bad
from tests.conftest import face_frames, plain_frames

DECODERS = ["pyav", "opencv"]


def write_h264(path: Path, frames: list[np.ndarray], fps: int, bframes: int,
               crf: int = 23, display: tuple[int, bool, bool] | None = None,
               x264_threads: int = 0) -> Path:
    """H.264 whose B-frames are never references: I B B P B B P ... for bframes=2.
    `display` (degrees counter-clockwise, hflip, vflip) writes a display matrix, as phones do."""
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=fps)
        stream.height, stream.width = frames[0].shape[:2]
        stream.pix_fmt = "yuv420p"
        if display is not None:
            if not hasattr(stream, "set_display_rotation"):
                pytest.skip("this PyAV cannot write a display matrix")
            stream.set_display_rotation(display[0], hflip=display[1], vflip=display[2])
        stream.options = {"x264-params": f"bframes={bframes}:b-adapt=0:b-pyramid=none:"
                                         "keyint=300:scenecut=0"
                                         + (f":threads={x264_threads}" if x264_threads else ""),
                          "crf": str(crf)}
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
    assert analysis_size(*size, width) == expected


def with_packet_zeroed(video: Path, index: int, damaged: Path) -> Path:
    """`video` with its `index`-th video packet's bytes zeroed: a damage every decode meets
    (the packet fails to decode), unlike flipped bytes that FFmpeg may conceal unnoticed."""
    with av.open(str(video)) as container:
        packets = [(p.pos, p.size) for p in container.demux(video=0) if p.size]
    data = bytearray(video.read_bytes())
    pos, size = packets[index]
    data[pos : pos + size] = bytes(size)
    damaged.write_bytes(bytes(data))
    return damaged


def test_a_damaged_packet_costs_its_frames_not_the_video(make_video, tmp_path):
    video = make_video("plain.mp4", moving(20), fps=10)
    damaged = with_packet_zeroed(video, 10, tmp_path / "damaged.mp4")
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
        list(KeyframeReader(path, KeyframeSettings(decoder=decoder, decoder_threads=1)))


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


def pattern(width: int = 96, height: int = 128) -> np.ndarray:
    """Upright and asymmetric: any turn or mirror of it is far from it."""
    image = np.full((height, width, 3), 40, np.uint8)
    image[: height // 4, : width // 3] = (250, 250, 250)  # top left: white
    image[height // 2 :, width // 2 :] = (0, 0, 200)  # bottom right: red
    return image


def sideways(image: np.ndarray, display: tuple[int, bool, bool]) -> np.ndarray:
    """The pixels a camera stores for `image` to be shown upright under `display`: players
    turn the stored picture counter-clockwise by the angle, then mirror it."""
    degrees, hflip, vflip = display
    if hflip:
        image = cv2.flip(image, 1)
    if vflip:
        image = cv2.flip(image, 0)
    for _ in range((degrees // 90) % 4):
        image = cv2.rotate(image, cv2.ROTATE_90_CLOCKWISE)
    return image


DISPLAYS = [(90, False, False), (180, False, False), (-90, False, False), (0, True, False),
            (90, True, False), (0, False, True)]


@pytest.mark.parametrize("decoder", DECODERS)
@pytest.mark.parametrize("display", DISPLAYS)
def test_frames_are_turned_upright_as_the_file_says(tmp_path, decoder, display):
    upright = pattern()
    video = write_h264(tmp_path / "phone.mp4", [sideways(upright, display)] * 6, fps=10,
                       bframes=0, crf=10, display=display)
    reader = open_decoder(video, KeyframeSettings(decoder=decoder, analysis_width=48))
    frames = [f for f in reader if f.small is not None]
    assert (reader.width, reader.height) == (96, 128)
    full = frames[0].full()
    assert full.shape == upright.shape
    assert np.abs(full.astype(int) - upright).mean() < 8
    assert frames[0].small.shape == (64, 48, 3)  # the analysis width is the displayed width
    assert np.abs(cv2.resize(full, (48, 64)).astype(int) - frames[0].small).mean() < 8


@pytest.mark.parametrize("display", DISPLAYS[:3])
def test_quarter_turns_agree_with_opencvs_own_rotation(tmp_path, display):
    """OpenCV applies rotations (not mirrors) itself: an independent reading of the matrix."""
    upright = pattern()
    video = write_h264(tmp_path / "phone.mp4", [sideways(upright, display)] * 3, fps=10,
                       bframes=0, crf=10, display=display)
    ok, opencv_own = cv2.VideoCapture(str(video)).read()
    assert ok and opencv_own.shape == upright.shape
    ours = next(iter(open_decoder(video, KeyframeSettings()))).full()
    assert np.abs(ours.astype(int) - opencv_own).mean() < 4


def test_the_largest_video_stream_is_used_and_named_not_cover_art(tmp_path):
    """Two video streams: a small first one, then the recording; FFmpeg picks the larger."""
    path = tmp_path / "two.mkv"
    small, large = pattern(48, 64), pattern(96, 128)
    with av.open(str(path), "w") as out:
        streams = []
        for image in (small, large):
            stream = out.add_stream("libx264", rate=10)
            stream.height, stream.width = image.shape[:2]
            stream.pix_fmt = "yuv420p"
            streams.append(stream)
        for i in range(10):
            for stream, image in zip(streams, (small, large), strict=True):
                frame = av.VideoFrame.from_ndarray(image, format="bgr24")
                frame.pts, frame.time_base = i, Fraction(1, 10)
                for packet in stream.encode(frame):
                    out.mux(packet)
        for stream in streams:
            for packet in stream.encode():
                out.mux(packet)
    reader = KeyframeReader(path, KeyframeSettings())
    frames = list(reader)
    assert frames[0].image.shape == large.shape
    assert reader.info.notes == ("video stream 2 of 2 used (96x128, the one FFmpeg would pick)",)


def write_with_audio(path: Path, video_s: float, audio_s: float) -> Path:
    """A video track and a longer (or shorter) Opus audio track, as a browser or a screen
    recorder may leave them; the container's duration is the longer of the two."""
    with av.open(str(path), "w") as out:
        video = out.add_stream("libvpx", rate=10)
        video.height, video.width, video.pix_fmt = 120, 160, "yuv420p"
        audio = out.add_stream("libopus", rate=48000)
        images = moving(round(video_s * 10))
        samples = 960
        chunks = round(audio_s * 48000 / samples)
        for i in range(max(len(images), chunks)):
            if i < len(images):
                frame = av.VideoFrame.from_ndarray(images[i], format="bgr24")
                frame.pts, frame.time_base = i, Fraction(1, 10)
                for packet in video.encode(frame):
                    out.mux(packet)
            for j in range(i * 5, min((i + 1) * 5, chunks)):  # 5 x 20 ms per video frame
                sound = av.AudioFrame.from_ndarray(
                    np.zeros((1, samples), np.float32), format="flt", layout="mono")
                sound.sample_rate, sound.pts = 48000, j * samples
                for packet in audio.encode(sound):
                    out.mux(packet)
        for stream in (video, audio):
            for packet in stream.encode():
                out.mux(packet)
    return path


@pytest.mark.parametrize("decoder", DECODERS)
@pytest.mark.parametrize("suffix", ["webm", "mkv"])
def test_audio_that_outlasts_the_video_is_no_truncation(tmp_path, decoder, suffix):
    path = write_with_audio(tmp_path / f"long_audio.{suffix}", video_s=2.0, audio_s=6.0)
    with av.open(str(path)) as container:
        assert container.duration / 1e6 > 5.5  # what made it look "truncated"
    reader = KeyframeReader(path, KeyframeSettings(decoder=decoder))
    assert list(reader) and reader.info.duration_s == pytest.approx(2.0)


@pytest.mark.parametrize("decoder", DECODERS)
@pytest.mark.parametrize("strip_track_durations", [False, True])
def test_a_partial_copy_with_audio_is_still_refused(tmp_path, decoder, strip_track_durations):
    data = write_with_audio(tmp_path / "whole.mkv", video_s=6.0, audio_s=6.0).read_bytes()
    if strip_track_durations:  # only the container's duration is left to judge by
        data = data.replace(b"DURATION", b"XURATION")
    copying = tmp_path / "copying.mkv"
    copying.write_bytes(data[: len(data) // 2])
    with pytest.raises(VideoReadError, match="truncated or still being copied"):
        list(KeyframeReader(copying, KeyframeSettings(decoder=decoder)))
