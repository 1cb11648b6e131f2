"""Decoding with OpenCV through PySceneDetect's stream, every frame, as screener first did."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import cv2

from screener.errors import first_line
from screener.settings import KeyframeSettings
from screener.video.container import probe
from screener.video.discover import has_surrogates
from screener.video.frames import CANNOT_OPEN, DecodedFrame, VideoDecoder, VideoReadError, downscale
from screener.video.orientation import UPRIGHT, swaps_sides, upright


class OpenCvDecoder(VideoDecoder):
    def __init__(self, path: Path, settings: KeyframeSettings) -> None:
        from scenedetect import open_video
        from scenedetect.video_stream import FrameRateUnavailable, VideoOpenFailure

        if settings.decoder_threads:
            os.environ["OPENCV_FFMPEG_THREADS"] = str(settings.decoder_threads)
        try:
            with _opencv_safe_path(path) as safe:
                self._video = open_video(str(safe), backend="opencv")
        except OSError as exc:
            raise VideoReadError(f"cannot open: {exc.strerror or exc}") from exc
        except FrameRateUnavailable as exc:
            raise VideoReadError("no frame rate in the file's metadata") from exc
        except VideoOpenFailure as exc:
            raise VideoReadError(CANNOT_OPEN) from exc
        except Exception as exc:
            raise VideoReadError(f"cannot open as a video: {first_line(exc)}") from exc
        self._set_rate(float(self._video.frame_rate or 0), settings)
        self.declared_s = float(self._video.duration.seconds or 0.0)
        self.width, self.height = self._video.frame_size
        self._steps = UPRIGHT
        probed = probe(path)
        if probed is not None:
            # OpenCV turns quarter turns itself but ignores mirrors: the same steps as PyAV.
            self._video.capture.set(cv2.CAP_PROP_ORIENTATION_AUTO, 0)
            self._steps, video_s = probed
            if video_s is not None:  # OpenCV's own is the container's, audio included
                self.declared_s = video_s
            width = int(self._video.capture.get(cv2.CAP_PROP_FRAME_WIDTH))
            height = int(self._video.capture.get(cv2.CAP_PROP_FRAME_HEIGHT))
            swap = swaps_sides(self._steps)
            self.width, self.height = (height, width) if swap else (width, height)

    def _frames(self) -> Iterator[DecodedFrame]:
        count = 0
        try:
            while True:
                analyse = count % self.stride == 0
                image = self._video.read(decode=analyse)
                if image is False or image is None:
                    break
                t = float(self._video.position.seconds)
                if analyse:
                    image = upright(image, self._steps)
                    small = downscale(image, self._analysis_width)
                    yield DecodedFrame(t, count, small, image.view)
                else:
                    yield DecodedFrame(t, count, None, None)
                count += 1
        except Exception as exc:
            raise VideoReadError(f"decoding failed after {count} frames: "
                                 f"{first_line(exc)}") from exc
        self.undecodable = int(self._video.decode_failures)
        self._check_damage(count + self.undecodable)


@contextmanager
def _opencv_safe_path(path: Path) -> Iterator[Path]:
    """A path OpenCV can take. OpenCV crashes the process on a str that is not valid UTF-8
    (a file name with non-UTF-8 bytes), so such a file is opened through a temporary symlink;
    the link can go once the file is open."""
    if has_surrogates(str(path)):
        with tempfile.TemporaryDirectory(prefix="screener-") as folder:
            link = Path(folder) / f"video{path.suffix.encode('ascii', 'ignore').decode()}"
            os.symlink(os.fsencode(path.resolve()), os.fsencode(link))
            yield link
    else:
        yield path
