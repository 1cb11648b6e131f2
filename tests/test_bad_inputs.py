"""Bad inputs never stop a scan (issue 4).

Each bad file sits in a folder beside one good video. A bad input is listed as `FAILED <path>:
<reason>` (exit code 1) while the good video is still analysed and stored; an input that is only
unusual (4K, portrait, variable frame rate, HEVC, odd names) is simply analysed (exit code 0).
Never a traceback. Every file is generated here; PyAV, when installed, makes the HEVC and VFR ones.
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import wave
import zipfile
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest

from tests.cli.test_cli import run
from tests.conftest import face_frames, missing, plain_frames, write_video

GOOD_STUDENT, GOOD_SESSION = "good", "good_2026-01-01"


def db_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path}/t.db"


@pytest.fixture
def folder(tmp_path: Path, astronaut: np.ndarray, make_video) -> Path:
    """The scanned folder, holding one good video of the astronaut's face."""
    make_video(f"v/{GOOD_SESSION}.mp4", face_frames(astronaut, 12))
    return tmp_path / "v"


def scan(folder: Path, *extra: str, out: Path | None = None):
    tmp_path = folder.parent
    result = run("scan", folder, "--out", out or tmp_path / "out", "--db", db_url(tmp_path),
                 *extra)
    assert "Traceback" not in result.output, result.output
    return result


def sessions(tmp_path: Path, student: str) -> list[dict]:
    result = run("history", student, "--db", db_url(tmp_path), "--format", "json")
    assert result.exit_code == 0, result.output
    return json.loads(result.output)["sessions"]


def assert_good_video_stored(tmp_path: Path) -> None:
    assert [s["session_id"] for s in sessions(tmp_path, GOOD_STUDENT)] == [GOOD_SESSION]


def failure_reasons(output: str) -> dict[str, str]:
    """File name -> reason, from the `FAILED <path>: <reason>` lines."""
    lines = (re.match(r"FAILED (.*?\.\w+): (.*)$", line) for line in output.splitlines())
    return {Path(m[1]).name: m[2] for m in lines if m}


def assert_only_failure(result, name: str, *words: str) -> str:
    assert result.exit_code == 1, result.output
    assert "1 analysed, 0 unchanged, 1 failed" in result.output, result.output
    reasons = failure_reasons(result.output)
    assert list(reasons) == [name], result.output
    assert all(word in reasons[name] for word in words), reasons[name]
    return reasons[name]


# Makers of bad files: each writes `path`, maybe from the good video's bytes.

def good_bytes(folder: Path) -> bytes:
    return (folder / f"{GOOD_SESSION}.mp4").read_bytes()


def truncated(share: float) -> Callable[[Path, Path], None]:
    def make(path: Path, folder: Path) -> None:
        data = good_bytes(folder)
        path.write_bytes(data[: int(len(data) * share)])

    return make


def random_bytes(path: Path, folder: Path) -> None:
    path.write_bytes(np.random.default_rng(7).integers(0, 256, 50_000, np.uint8).tobytes())


def png_image(path: Path, folder: Path) -> None:
    path.write_bytes(cv2.imencode(".png", np.full((64, 64, 3), 128, np.uint8))[1].tobytes())


def zip_archive(path: Path, folder: Path) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("lesson.txt", "not a video")
    path.write_bytes(buffer.getvalue())


def no_frames(path: Path, folder: Path) -> None:
    """A container with a video track and not one frame."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10, (320, 240))
    assert writer.isOpened()
    writer.release()
    assert path.stat().st_size > 0


def undecodable_frames(path: Path, folder: Path) -> None:
    """A valid container whose frame data is all zeros: it opens, but no frame decodes."""
    data = bytearray(good_bytes(folder))
    at = data.find(b"mdat")
    size = struct.unpack(">I", data[at - 4 : at])[0]
    data[at + 4 : at - 4 + size] = bytes(size - 8)
    path.write_bytes(bytes(data))


def absurd_fps(path: Path, folder: Path) -> None:
    write_video(path, plain_frames(5, (90, 90, 90)), fps=10_000)


def wav_audio(path: Path, folder: Path) -> None:
    with wave.open(str(path), "wb") as audio:
        audio.setnchannels(1)
        audio.setsampwidth(2)
        audio.setframerate(8000)
        audio.writeframes(b"\0\0" * 8000)


def aac_audio_only(path: Path, folder: Path) -> None:
    import av  # a dependency of screener: its absence fails, never skips
    with av.open(str(path), "w") as out:
        stream = out.add_stream("aac", rate=8000)
        tone = (np.sin(np.arange(8000) / 5) * 3000).astype(np.int16)[None, :]
        frame = av.AudioFrame.from_ndarray(tone, format="s16", layout="mono")
        frame.sample_rate, frame.pts = 8000, 0
        for packet in [*stream.encode(frame), *stream.encode()]:
            out.mux(packet)


def named_pipe(path: Path, folder: Path) -> None:
    os.mkfifo(path)  # reading it would block forever


def unreadable(path: Path, folder: Path) -> None:
    path.write_bytes(good_bytes(folder)[:1000])
    path.chmod(0)


@pytest.mark.parametrize(
    ("name", "make", "words"),
    [
        ("zero_bytes.mp4", lambda path, folder: path.write_bytes(b""), ["empty file"]),
        ("cut_at_30_percent.mp4", truncated(0.3), ["cannot be opened as a video", "truncated"]),
        ("cut_at_90_percent.mp4", truncated(0.9), ["cannot be opened as a video", "truncated"]),
        ("notes.mp4", lambda path, folder: path.write_text("lesson notes\n" * 40),
         ["cannot be opened as a video"]),
        ("noise.mkv", random_bytes, ["cannot be opened as a video"]),
        ("noise.avi", random_bytes, ["cannot be opened as a video"]),
        ("picture.mov", png_image, ["not a video", "PNG image"]),
        ("archive.mov", zip_archive, ["not a video", "ZIP archive"]),
        ("no_frames.mp4", no_frames, ["cannot be opened as a video"]),
        ("undecodable.mp4", undecodable_frames, ["no frame could be decoded"]),
        ("fast.mp4", absurd_fps, ["frame rate", "10000 fps"]),
        ("sound.mp4", wav_audio, ["not a video", "WAV audio"]),
        ("sound_aac.mp4", aac_audio_only, ["cannot be opened as a video", "no video track"]),
        ("pipe.mp4", named_pipe, ["not a regular file"]),
    ],
)
def test_a_bad_file_is_listed_with_its_reason_and_the_good_video_is_stored(folder, name, make,
                                                                          words):
    make(folder / name, folder)
    result = scan(folder)
    assert_only_failure(result, name, *words)
    assert_good_video_stored(folder.parent)


def scan_without_root_powers(folder: Path) -> subprocess.CompletedProcess:
    """Root reads any file or folder, so as root (CI) the scan runs in a process without the
    capabilities that bypass file permissions, as an ordinary user's cron job would."""
    tmp_path = folder.parent
    command = [sys.executable, "-m", "screener", "scan", str(folder), "--out",
               str(tmp_path / "out"), "--db", db_url(tmp_path)]
    if os.geteuid() == 0:
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            missing("setpriv", "running as root without setpriv: chmod 000 does not stop root")
        caps = "-dac_override,-dac_read_search"
        command = [setpriv, f"--bounding-set={caps}", f"--inh-caps={caps}", *command]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    if result.stderr.startswith("setpriv:"):
        missing("setpriv", f"cannot drop capabilities here: {result.stderr.strip()}")
    return result


def test_an_unreadable_file_is_listed_and_the_good_video_is_stored(folder, tmp_path):
    """chmod 000. Root reads any file, so as root (CI) the scan runs in a process without the
    capabilities that bypass file permissions, as an ordinary user's cron job would."""
    unreadable(folder / "locked.mp4", folder)
    result = scan_without_root_powers(folder)
    assert result.returncode == 1, result.stderr
    assert failure_reasons(result.stderr) == {"locked.mp4": "cannot read: Permission denied"}
    assert "1 analysed, 0 unchanged, 1 failed" in result.stdout
    assert "Traceback" not in result.stderr + result.stdout
    assert_good_video_stored(tmp_path)


def test_an_unreadable_folder_is_named_as_a_failure_and_the_good_video_is_stored(folder,
                                                                                 tmp_path):
    locked = folder / "class2"
    locked.mkdir()
    write_video(locked / "kim_2026-01-02.mp4", face_frames(np.zeros((512, 512, 3), np.uint8), 5))
    locked.chmod(0)
    try:
        result = scan_without_root_powers(folder)
    finally:
        locked.chmod(0o755)
    assert result.returncode == 1, result.stderr
    failed = [line for line in result.stderr.splitlines() if line.startswith("FAILED")]
    assert failed == [f"FAILED {locked}: cannot open folder: Permission denied"]
    assert "1 analysed, 0 unchanged, 1 failed" in result.stdout
    assert_good_video_stored(tmp_path)


def test_a_linked_folder_is_followed_once_even_when_it_links_back(tmp_path, astronaut):
    """`class2 -> /nas/class2`, the only thing in the folder scanned; a link inside it back to
    itself or above it is no endless loop."""
    nas = tmp_path / "nas" / "class2"
    nas.mkdir(parents=True)
    write_video(nas / "kim_2026-01-02.mp4", face_frames(astronaut, 12))
    (nas / "again").symlink_to(nas, target_is_directory=True)
    (nas / "up").symlink_to("..", target_is_directory=True)
    folder = tmp_path / "v"
    folder.mkdir()
    (folder / "class2").symlink_to(nas, target_is_directory=True)
    result = scan(folder)
    assert result.exit_code == 0, result.output
    assert "1 analysed, 0 unchanged, 0 failed" in result.output
    assert [s["session_id"] for s in sessions(tmp_path, "kim")] == ["kim_2026-01-02"]


def test_symlink_loops_and_broken_links_are_reported_and_the_scan_ends(folder):
    (folder / "a.mp4").symlink_to("b.mp4")
    (folder / "b.mp4").symlink_to("a.mp4")
    (folder / "gone.mp4").symlink_to("no_such_video.mp4")
    (folder / "up").symlink_to("..", target_is_directory=True)  # a folder that contains itself
    result = scan(folder)
    assert result.exit_code == 1, result.output
    assert failure_reasons(result.output) == {
        "a.mp4": "symbolic link loop",
        "b.mp4": "symbolic link loop",
        "gone.mp4": "broken symbolic link (its target does not exist)",
    }
    assert "1 analysed, 0 unchanged, 3 failed" in result.output
    assert_good_video_stored(folder.parent)


def test_debug_shows_the_traceback_of_an_analysis_failure(folder, astronaut, tmp_path):
    """An unexpected error in one video's analysis: one line, and the traceback with --debug."""
    write_video(folder / "other_2026-01-02.mp4", face_frames(astronaut, 12, seed=2))

    def scan_in_a_process(*extra: str) -> subprocess.CompletedProcess:
        # One worker: the fault is patched into this process, not into spawned workers.
        return subprocess.run(
            [sys.executable, "-c", FAIL_ON_OTHER, "scan", str(folder), "--out",
             str(tmp_path / "out"), "--db", db_url(tmp_path), "--force", "--workers", "1",
             *extra],
            capture_output=True, text=True, timeout=120,
        )

    plain = scan_in_a_process()
    assert plain.returncode == 1, plain.stderr
    assert failure_reasons(plain.stderr) == {
        "other_2026-01-02.mp4": "analysis failed: ZeroDivisionError: boom"}
    assert "Traceback" not in plain.stderr + plain.stdout
    debug = scan_in_a_process("--debug")
    assert debug.returncode == 1, debug.stderr
    assert "Traceback" in debug.stderr and "ZeroDivisionError: boom" in debug.stderr
    assert_good_video_stored(tmp_path)


FAIL_ON_OTHER = """
import screener.scanning.analysis as analysis
from screener.cli import main

analyze = analysis.Analyzer.analyze

def failing_analyze(self, job, *args):
    if job.student_id == "other":
        raise ZeroDivisionError("boom")
    return analyze(self, job, *args)

analysis.Analyzer.analyze = failing_analyze
main()
"""


# Inputs that are unusual but fine: analysed, exit code 0.

def face_canvas(astronaut: np.ndarray, width: int, height: int, count: int) -> list[np.ndarray]:
    """The astronaut's face filling most of the width of a `width` x `height` frame."""
    side = min(width, height) * 3 // 4
    face = cv2.resize(astronaut[20:300, 110:390], (side, side), interpolation=cv2.INTER_AREA)
    frames = []
    for i in range(count):
        canvas = np.full((height, width, 3), 90, np.uint8)
        x0, y0 = (width - side) // 2 + 4 * (i % 3), (height - side) // 3
        canvas[y0 : y0 + side, x0 : x0 + side] = face
        frames.append(canvas)
    return frames


def assert_analysed(folder: Path, result, student: str, count: int = 2) -> list[dict]:
    assert result.exit_code == 0, result.output
    assert f"{count} analysed, 0 unchanged, 0 failed" in result.output, result.output
    assert_good_video_stored(folder.parent)
    stored = sessions(folder.parent, student)
    assert len(stored) == 1 and stored[0]["frames_analysed"] >= 1
    return stored


def test_a_one_frame_video_is_analysed(folder, astronaut):
    write_video(folder / "blink_2026-01-02.mp4", face_frames(astronaut, 1))
    assert_analysed(folder, scan(folder), "blink")


def test_a_4k_video_is_analysed(folder, astronaut):
    # 10 frames at 5 fps: 2 s of 3840x2160, written one frame at a time to keep memory small.
    frame = face_canvas(astronaut, 3840, 2160, 1)[0]
    writer = cv2.VideoWriter(str(folder / "uhd_2026-01-02.mp4"), cv2.VideoWriter_fourcc(*"mp4v"),
                             5, (3840, 2160))
    for i in range(10):
        writer.write(np.roll(frame, 4 * i, axis=1))
    writer.release()
    [stored] = assert_analysed(folder, scan(folder), "uhd")
    assert stored["faces_found"] >= 1


def test_a_portrait_video_is_analysed_and_its_face_found(folder, astronaut):
    write_video(folder / "tall_2026-01-02.mp4", face_canvas(astronaut, 720, 1280, 12))
    [stored] = assert_analysed(folder, scan(folder), "tall")
    assert stored["faces_found"] >= 1 and stored["face_coverage"] > 0


def mp4_with_frame_duration(data: bytes, timescale: int, delta: int) -> bytes:
    """An OpenCV-written mp4 whose track says each frame lasts `delta / timescale` seconds."""
    data = bytearray(data)
    stts = data.find(b"stts") + 4  # version+flags, entry count, then (count, delta)
    count = struct.unpack(">I", data[stts + 8 : stts + 12])[0]
    data[stts + 12 : stts + 16] = struct.pack(">I", delta)
    mdhd = data.find(b"mdhd") + 4 + 12  # after version+flags, creation and modification times
    data[mdhd : mdhd + 8] = struct.pack(">II", timescale, count * delta)
    edts = data.find(b"edts")  # its edit list would cut the longer track back to 1.2 s
    data[edts : edts + 4] = b"free"
    return bytes(data)


def test_a_video_of_one_frame_per_1000_seconds_is_analysed(folder):
    """An absurdly low frame rate in the metadata: every frame is decoded, times follow it."""
    slow = folder / "slow_2026-01-02.mp4"
    slow.write_bytes(mp4_with_frame_duration(good_bytes(folder), timescale=1, delta=1000))
    assert cv2.VideoCapture(str(slow)).get(cv2.CAP_PROP_FPS) == pytest.approx(0.001)
    [stored] = assert_analysed(folder, scan(folder), "slow")
    assert stored["frames_analysed"] == 12


def test_an_avi_without_a_frame_rate_is_analysed(folder, astronaut):
    """Frame rate 0 in the AVI headers: FFmpeg assumes 25 fps."""
    video = folder / "norate_2026-01-02.avi"
    write_video(video, face_frames(astronaut, 12))
    data = bytearray(video.read_bytes())
    rate = data.find(b"strh") + 8 + 20 + 4  # fccType, handler, flags, priority+language, initial
    assert struct.unpack("<I", data[rate : rate + 4])[0] == 10
    data[rate : rate + 4] = bytes(4)
    avih = data.find(b"avih") + 8  # microseconds per frame
    data[avih : avih + 4] = bytes(4)
    video.write_bytes(bytes(data))
    assert_analysed(folder, scan(folder), "norate")


def encode_with_pyav(path: Path, frames: list[np.ndarray], codec: str,
                     times_ms: list[int] | None = None,
                     container_options: dict[str, str] | None = None) -> Path:
    """Encode `frames` with PyAV; `times_ms` gives each frame's time (a variable frame rate)."""
    from fractions import Fraction

    import av  # a dependency of screener: its absence fails, never skips

    with av.open(str(path), "w", options=container_options or {}) as out:
        stream = out.add_stream(codec, rate=10)
        stream.height, stream.width = frames[0].shape[:2]
        stream.pix_fmt = "yuv420p"
        if codec == "libx265":
            stream.options = {"x265-params": "log-level=error"}
        if times_ms is not None:
            stream.codec_context.time_base = Fraction(1, 1000)
        for i, image in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(image, format="bgr24")
            if times_ms is not None:
                frame.pts, frame.time_base = times_ms[i], Fraction(1, 1000)
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


def test_a_variable_frame_rate_webm_is_analysed_on_its_real_times(folder, astronaut):
    """Like a browser's MediaRecorder: irregular frame times in a webm."""
    times = [0, 40, 80, 300, 340, 900, 1000, 1040, 1600, 1700, 2500, 2540, 3900, 3950]
    encode_with_pyav(folder / "vfr_2026-01-02.webm", face_frames(astronaut, len(times)),
                     "libvpx", times)
    [stored] = assert_analysed(folder, scan(folder), "vfr")
    assert stored["frames_analysed"] == 4  # one per second of real time: 0-1, 1-2, 2-3, 3-4 s


def test_a_half_copied_mp4_with_its_index_first_is_refused_and_the_complete_one_stored(
    folder, astronaut
):
    """Cron may run while a file is still being copied. A "faststart" mp4 (index first, as
    web tools write them) then opens and decodes, but only partly: it must not be filed."""
    complete = encode_with_pyav(folder / "staging.mp4", face_frames(astronaut, 40), "libx264",
                                container_options={"movflags": "faststart"})
    data = complete.read_bytes()
    complete.unlink()
    assert data[4:8] == b"ftyp" and data.find(b"moov") < data.find(b"mdat")
    copying = folder / "copying_2026-01-02.mp4"
    copying.write_bytes(data[: len(data) * 3 // 4])  # the I-frame is most of the first half
    assert cv2.VideoCapture(str(copying)).read()[0]  # opens, and decodes some frames
    assert_only_failure(scan(folder), copying.name, "still being copied", "of the 4.0 s")
    history = run("history", "copying", "--db", db_url(folder.parent))
    assert history.exit_code == 2 and "no sessions for student 'copying'" in history.output
    assert_good_video_stored(folder.parent)
    copying.write_bytes(data)
    result = scan(folder)
    assert result.exit_code == 0 and "1 analysed, 1 unchanged, 0 failed" in result.output
    [stored] = sessions(folder.parent, "copying")
    assert stored["frames_analysed"] == 4  # 40 frames at 10 fps, one key frame a second


def test_an_hevc_video_is_analysed(folder, astronaut):
    target = encode_with_pyav(folder / "hevc_2026-01-02.mov", face_frames(astronaut, 12),
                              "libx265")
    capture = cv2.VideoCapture(str(target))
    codec = int(capture.get(cv2.CAP_PROP_FOURCC)).to_bytes(4, "little")
    capture.release()
    assert codec in {b"hevc", b"hev1", b"hvc1"}
    assert_analysed(folder, scan(folder), "hevc")


@pytest.mark.parametrize(
    ("file_name", "student", "escaped"),
    [
        ("two words_2026-01-02.mp4", "two words", "two words"),
        ("o'neil_2026-01-02.mp4", "o'neil", "o&#39;neil"),
        ('say "hi"_2026-01-02.mp4', 'say "hi"', "say &#34;hi&#34;"),
        ("Zoë_2026-01-02.mp4", "Zoë", "Zoë"),
        ("<script>alert(1)<_script>_2026-01-02.mp4", "<script>alert(1)<_script>",
         "&lt;script&gt;alert(1)&lt;_script&gt;"),
    ],
)
def test_odd_file_names_are_analysed_and_escaped_in_the_reports(folder, astronaut, file_name,
                                                                student, escaped):
    write_video(folder / file_name, face_frames(astronaut, 12, seed=3))
    assert_analysed(folder, scan(folder), student)
    pages = {p.name: p.read_text(encoding="utf-8") for p in (folder.parent / "out").glob("*.html")}
    assert escaped in pages["index.html"]
    assert sum(escaped in html for html in pages.values()) == 2  # the index and the student's
    if student != escaped:
        assert not any(student in html for html in pages.values())


@pytest.mark.parametrize(
    ("relative", "pattern", "student", "escaped"),
    [
        ("sub/file.mp4", r"(?P<student>sub/.*)\.mp4", "sub/file", "sub/file"),
        ("a../x.mp4", r"(?P<student>\.\./x)", "../x", "../x"),
        ("a../<b>.mp4", r"(?P<student>\.\./<b>)", "../<b>", "../&lt;b&gt;"),
    ],
)
def test_student_ids_that_look_like_paths_keep_reports_inside_out(folder, astronaut, relative,
                                                                  pattern, student, escaped):
    """`--pattern` can make an id with `/` or `..`: its report still goes inside --out."""
    tmp_path = folder.parent
    video = folder / relative
    video.parent.mkdir(parents=True, exist_ok=True)
    write_video(video, face_frames(astronaut, 12, seed=4))
    out = tmp_path / "deep" / "out"
    before = set(tmp_path.rglob("*"))
    result = scan(folder, "--pattern", pattern, out=out)
    assert_analysed(folder, result, student)
    written = set(tmp_path.rglob("*")) - before
    outside = {p for p in written if out not in p.parents and p not in (out, out.parent)}
    assert all(p.parent == tmp_path and p.name.startswith("t.db") for p in outside), outside
    pages = {p.name: p.read_text(encoding="utf-8") for p in out.glob("*.html")}
    assert len(pages) == 3  # the index, the good student, this student
    assert escaped in pages["index.html"]
    assert sum(escaped in html for html in pages.values()) == 2
    if student != escaped:
        assert not any(student in html for html in pages.values())


def test_a_damaged_video_reads_the_same_with_one_worker_or_several_and_says_so(folder, astronaut,
                                                                             caplog):
    """Worker processes decode with one thread, `--workers 1` with several: the damaged
    file must still give one session, and say how much of it could not be decoded."""
    from tests.video.test_decoders import with_packet_zeroed

    # A zeroed packet: every decode meets it (FFmpeg may conceal flipped bytes unnoticed).
    clean = write_video(folder.parent / "clean.mp4", face_frames(astronaut, 60))
    with_packet_zeroed(clean, 30, folder / "damaged_2026-01-02.mp4")
    stored = {}
    for workers in ("1", "2"):
        db = f"sqlite:///{folder.parent}/workers{workers}.db"
        result = run("scan", folder, "--out", folder.parent / f"out{workers}", "--db", db,
                     "--workers", workers)
        assert result.exit_code == 0 and "Traceback" not in result.output, result.output
        warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
        assert any("damaged_2026-01-02.mp4: " in w and "could not be decoded" in w
                   for w in warnings), warnings  # said as the scan goes, not only in the report
        caplog.clear()
        history = run("history", "damaged", "--db", db, "--format", "json")
        stored[workers] = json.loads(history.output)["sessions"]
        from screener.reports.report import student_slug

        page = (folder.parent / f"out{workers}" / f"{student_slug('damaged')}.html").read_text()
        assert "Data quality:</strong> 1" in page and "could not be decoded" in page
    assert stored["1"] == stored["2"]
    [session] = stored["1"]
    assert session["data_quality"] and "could not be decoded" in session["data_quality"][0]


def test_a_video_garbled_throughout_fails_with_a_reason(folder, astronaut):
    from tests.video.test_decoders import write_h264

    video = write_h264(folder / "garbled_2026-01-02.mp4", face_frames(astronaut, 60), fps=10,
                       bframes=2, x264_threads=1)
    data = bytearray(video.read_bytes())
    mdat = data.find(b"mdat")
    end = mdat - 4 + struct.unpack(">I", data[mdat - 4 : mdat])[0]
    for start in range(mdat + 64, end - 100, 500):
        data[start : start + 64] = bytes(b ^ 0x5A for b in data[start : start + 64])
    video.write_bytes(bytes(data))
    assert_only_failure(scan(folder), video.name, "mostly undecodable", "frames are damaged")


def test_names_with_terminal_escapes_are_printed_escaped(folder, astronaut, tmp_path):
    """A name that clears the screen and retitles the terminal, as a broken file (a WARNING
    line and a FAILED line) and as a student whose history is printed."""
    evil = "\x1b[2J\x1b]0;owned\x07"
    (folder / f"broken{evil}.mp4").write_bytes(b"\x00not a video" * 100)
    write_video(folder / f"mallory{evil}_2026-01-03.mp4", face_frames(astronaut, 12, seed=5))
    db = db_url(tmp_path)
    command = [sys.executable, "-m", "screener"]
    scanned = subprocess.run([*command, "scan", str(folder), "--out", str(tmp_path / "out"),
                              "--db", db], capture_output=True, text=True, timeout=300)
    history = subprocess.run([*command, "history", f"mallory{evil}", "--db", db],
                             capture_output=True, text=True, timeout=120)
    unknown = subprocess.run([*command, "history", f"nobody{evil}", "--db", db],
                             capture_output=True, text=True, timeout=120)
    assert scanned.returncode == 1 and history.returncode == 0 and unknown.returncode == 2
    printed = "".join(r.stdout + r.stderr for r in (scanned, history, unknown))
    assert "\x1b" not in printed and "\x07" not in printed
    escaped = "\\x1b[2J\\x1b]0;owned\\x07"
    assert f"FAILED {folder}/broken{escaped}.mp4: " in scanned.stderr
    assert f"mallory{escaped}_2026-01-03" in history.stdout
    assert f"error: no sessions for student 'nobody{escaped}'" in unknown.stderr


def test_a_right_to_left_override_in_a_name_is_isolated_in_the_reports(folder, astronaut,
                                                                       tmp_path):
    """U+202E reverses what follows it: isolated, it cannot reorder the rest of the page."""
    write_video(folder / "eve\u202egpj.exe_2026-01-03.mp4", face_frames(astronaut, 12, seed=6))
    assert scan(folder).exit_code == 0
    from screener.reports.report import student_slug

    index = (tmp_path / "out" / "index.html").read_text()
    assert "<bdi>eve\u202egpj.exe</bdi>" in index
    page = (tmp_path / "out" / (student_slug("eve\u202egpj.exe") + ".html")).read_text()
    assert "<bdi>eve\u202egpj.exe</bdi>" in page
    assert "<title>\u2068eve\u202egpj.exe\u2069 · screener report</title>" in page
    assert "<bdi>eve\u202egpj.exe_2026-01-03</bdi>" in page  # the session, in the table


@pytest.mark.parametrize("decoder", ["pyav", "opencv"])
def test_a_portrait_phone_recording_is_analysed_upright(folder, astronaut, tmp_path, decoder):
    """Like a phone held upright: sideways pixels and a display matrix saying "turn a quarter
    clockwise" (what `ffmpeg -vf transpose=1` then `-metadata:s:v rotate=90` gives)."""
    from tests.video.test_decoders import sideways, write_h264

    display = (-90, False, False)  # rotate=90: a quarter clockwise, as players show it
    upright = face_canvas(astronaut, 360, 640, 20)
    stored = [sideways(frame, display) for frame in upright]
    assert stored[0].shape[:2] == (360, 640)  # landscape pixels, as the sensor records
    write_h264(folder / "phone_2026-01-02.mp4", stored, fps=10, bframes=2, display=display)
    config = tmp_path / "decoder.toml"
    config.write_text(f'[keyframes]\ndecoder = "{decoder}"\n')
    [session] = assert_analysed(folder, scan(folder, "--config", config), "phone")
    assert session["frames_analysed"] == 2 and session["face_coverage"] == 1.0


def test_a_webm_without_duration_is_filed_only_once_it_stopped_changing(folder, astronaut):
    """A browser's MediaRecorder writes no duration, so a half-copied webm looks whole: one
    still changing is left for the next scan, with a line saying so, and never filed half."""
    import av

    class Pipe(io.RawIOBase):  # unseekable: the muxer cannot go back to write a duration
        def __init__(self, handle) -> None:
            self.handle = handle

        def writable(self) -> bool:
            return True

        def write(self, data) -> int:
            return self.handle.write(data)

    recording = folder / "rec_2026-01-02.webm"
    with open(recording, "wb") as handle, av.open(Pipe(handle), "w", format="webm") as out:
        stream = out.add_stream("libvpx", rate=10)
        stream.height, stream.width, stream.pix_fmt = 240, 320, "yuv420p"
        for image in face_frames(astronaut, 30):
            out.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="bgr24")))
        out.mux(stream.encode())
    with av.open(str(recording)) as container:
        assert container.duration is None
    result = scan(folder)
    assert result.exit_code == 0, result.output
    assert "1 analysed, 0 unchanged, 1 skipped, 0 failed" in result.output
    [note] = [line for line in result.output.splitlines() if recording.name in line]
    assert "states no duration" in note and "left for the next scan" in note
    assert run("history", "rec", "--db", db_url(folder.parent)).exit_code == 2
    quiet_since = recording.stat().st_mtime - 120
    os.utime(recording, (quiet_since, quiet_since))
    result = scan(folder)
    assert result.exit_code == 0 and "1 analysed, 1 unchanged, 0 failed" in result.output
    assert len(sessions(folder.parent, "rec")) == 1
