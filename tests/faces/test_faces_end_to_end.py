"""The face detector setting through the `screener` command: Haar still works end to end, a
bad detector setting or file is a one-line usage error, and the level does not depend on the
video's resolution."""

import json
from pathlib import Path

import av
import pytest
from typer.testing import CliRunner

from screener.cli import app
from tests.conftest import face_frames

runner = CliRunner()


def _analyze(*args) -> tuple[int, str]:
    result = runner.invoke(app, ["analyze", *map(str, args)], catch_exceptions=False)
    return result.exit_code, result.output


def _config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "settings.toml"
    path.write_text(text)
    return path


@pytest.mark.parametrize("detector", ["haar", "yunet"])
def test_each_detector_analyses_a_video_end_to_end(tmp_path, astronaut, make_video, detector):
    video = make_video("gil.mp4", face_frames(astronaut, 30))
    code, output = _analyze(video, "--json", "--every", "0.5", "--config",
                            _config(tmp_path, f'[faces]\ndetector = "{detector}"\n'))
    assert code == 0, output
    doc = json.loads(output)
    assert doc["metrics"]["face_frames"] == doc["metrics"]["frames_analysed"] == 6


@pytest.mark.parametrize(("text", "words"), [
    ('[faces]\ndetector = "dlib"\n', 'faces.detector must be "yunet" or "haar"'),
    ('[faces]\ndetector_model = "/no/such/yunet.onnx"\n', "face detector model not found"),
    ("[faces]\nscore_threshold = 0\n", "score_threshold must be between 0 and 1"),
])
def test_bad_detector_settings_are_one_line_usage_errors(tmp_path, astronaut, make_video,
                                                         text, words):
    video = make_video("hal.mp4", face_frames(astronaut, 10))
    code, output = _analyze(video, "--config", _config(tmp_path, text))
    assert code == 2
    assert words in output and "Traceback" not in output
    assert len(output.strip().splitlines()) == 1


def test_an_unloadable_detector_file_is_a_one_line_usage_error(tmp_path, astronaut, make_video):
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"\x00" * 64)
    video = make_video("ivy.mp4", face_frames(astronaut, 10))
    code, output = _analyze(video, "--config",
                            _config(tmp_path, f'[faces]\ndetector_model = "{junk}"\n'))
    assert code == 2 and "cannot load face detector model" in output
    assert len(output.strip().splitlines()) == 1


def _scaled(source: Path, out: Path, height: int, seconds: float) -> Path:
    """The first `seconds` of `source` at `height` lines, 10 fps, H.264."""
    with av.open(str(source)) as src, av.open(str(out), "w") as dst:
        stream = dst.add_stream("libx264", rate=10)
        stream.height = height
        stream.width = round(height * 16 / 9 / 2) * 2
        stream.pix_fmt = "yuv420p"
        stream.options = {"preset": "ultrafast", "crf": "20"}
        rate = float(src.streams.video[0].average_rate)
        for i, frame in enumerate(src.decode(video=0)):
            if i / rate >= seconds:
                break
            if int(i * 10 / rate) == int((i - 1) * 10 / rate) and i:
                continue  # keep about 10 frames a second
            image = frame.to_ndarray(width=stream.width, height=height, format="bgr24")
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="bgr24")):
                dst.mux(packet)
        for packet in stream.encode():
            dst.mux(packet)
    return out


@pytest.mark.slow
def test_the_negative_share_does_not_depend_on_the_resolution(shared_videos, tmp_path):
    """One clip at 360p, 720p, 1080p and 4K: crops framed relative to the face give the same
    negative share (pixel margins gave moderate at 360p and 4K, high at 720p and 1080p)."""
    shares = {}
    for height in (360, 720, 1080, 2160):
        video = _scaled(shared_videos / "WolfgangLanger_Pexels.mp4",
                        tmp_path / f"clip_{height}.mp4", height, seconds=12)
        code, output = _analyze(video, "--json", "--every", "0.25")
        assert code == 0, output
        metrics = json.loads(output)["metrics"]
        assert metrics["face_frames"] >= 40
        shares[height] = metrics["negative_share"]
    assert max(shares.values()) - min(shares.values()) <= 0.05, shares
