"""Decoding with PyAV (FFmpeg): the stream FFmpeg would pick, frames no other frame refers to
skipped on request, the analysis copy scaled from the YUV planes, damage counted."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from functools import partial
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from screener.errors import first_line
from screener.settings import KeyframeSettings
from screener.video.container import best_video_stream, declared_video_seconds, stream_choice_note
from screener.video.discover import has_surrogates
from screener.video.frames import (
    CANNOT_OPEN,
    DamagedWhileThreaded,
    DecodedFrame,
    VideoDecoder,
    VideoReadError,
    analysis_size,
    downscale_to,
)
from screener.video.orientation import UPRIGHT, Steps, steps_from_matrix, swaps_sides, upright


class PyAvDecoder(VideoDecoder):
    def __init__(self, path: Path, settings: KeyframeSettings) -> None:
        self._resources = ExitStack()
        try:
            self._open(path, settings)
        except BaseException:
            self._resources.close()
            raise

    def _open(self, path: Path, settings: KeyframeSettings) -> None:
        import av

        try:
            source: Any = str(path)
            if has_surrogates(source):
                # FFmpeg cannot open such a name; a file object reads a little slower.
                source = self._resources.enter_context(path.open("rb"))
            self._container = self._resources.enter_context(
                av.open(source, metadata_errors="ignore"))
        except av.FFmpegError as exc:
            raise VideoReadError(CANNOT_OPEN) from exc
        except OSError as exc:
            raise VideoReadError(f"cannot open: {exc.strerror or exc}") from exc
        stream = self._stream = best_video_stream(self._container)
        if stream is None:
            raise VideoReadError(CANNOT_OPEN)
        self.notes = stream_choice_note(self._container, stream)
        rate = stream.average_rate or stream.guessed_rate or stream.base_rate
        if not rate:
            raise VideoReadError("no frame rate in the file's metadata")
        self._set_rate(float(rate), settings)
        context = stream.codec_context
        self._threads = settings.decoder_threads
        if settings.decoder_threads:
            context.thread_count = settings.decoder_threads
        if settings.decoder_threads != 1:
            # Frame threads mark the frames they could not decode whole ("corrupt"); slice
            # threads, PyAV's default, do not, so a damaged file would go unnoticed.
            stream.thread_type = "AUTO"
        if settings.skip_nonref:
            context.skip_frame = "NONREF"
        if settings.skip_deblocking:
            context.options = {"skip_loop_filter": "all"}
        self.width, self.height = context.width, context.height
        self._steps: Steps | None = None
        self._time_base = stream.time_base
        self._start = stream.start_time or 0
        self.declared_s = declared_video_seconds(self._container, stream)
        self._judge_by_all_streams = self.declared_s is None
        if self.declared_s is None:
            self.declared_s = (self._container.duration or 0) / 1_000_000

    def _frames(self) -> Iterator[DecodedFrame]:
        import av

        slot, decoded, failed = -1, 0, 0
        damaged: Exception | None = None
        try:
            for packet in self._container.demux():
                self._reach(packet)
                if packet.stream is not self._stream:
                    continue
                try:
                    frames = packet.decode()
                except av.FFmpegError as exc:
                    # A damaged packet costs its frames, not the video, as with OpenCV.
                    damaged, failed = exc, failed + 1
                    self._damage()
                    continue
                for frame in frames:
                    if frame.pts is None:
                        continue
                    if frame.is_corrupt:
                        self._damage()
                    if self._steps is None:
                        self._orient(frame)
                    t = max(0.0, float((frame.pts - self._start) * self._time_base))
                    index = round(t * self.fps)
                    decoded += 1
                    if index // self.stride == slot:
                        yield DecodedFrame(t, index, None, None)
                        continue
                    slot = index // self.stride
                    yield DecodedFrame(t, index, self._small(frame),
                                       partial(self._full, frame))
        except av.FFmpegError as exc:
            raise VideoReadError(f"decoding failed after {decoded} frames: "
                                 f"{first_line(exc)}") from exc
        finally:
            self._resources.close()
        if decoded == 0 and damaged is not None:
            raise VideoReadError(f"no frame could be decoded ({first_line(damaged)})")
        self._check_damage(decoded + failed)

    def _damage(self) -> None:
        self.undecodable += 1
        if self._threads != 1:
            # How FFmpeg conceals damage depends on how many frames it decodes at once, so
            # only a one-thread decode reads a damaged file the same in every mode.
            raise DamagedWhileThreaded("damaged video decoded with several threads")

    def _reach(self, packet: Any) -> None:
        """How far the file's data goes, over all streams: a container's duration can only be
        checked against what its streams hold (audio may outlast the video)."""
        if packet.pts is None or not packet.time_base:
            return
        end = float((packet.pts + (packet.duration or 0)) * packet.time_base)
        start = packet.stream.start_time
        if start is not None and packet.stream.time_base:
            end -= float(start * packet.stream.time_base)
        self._reached_s = max(self._reached_s, end)

    def reached_s(self, decoded_s: float) -> float:
        return max(decoded_s, self._reached_s) if self._judge_by_all_streams else decoded_s

    def _orient(self, frame: Any) -> None:
        import av

        matrix = frame.side_data.get(av.sidedata.sidedata.Type.DISPLAYMATRIX)
        self._steps = steps_from_matrix(bytes(matrix) if matrix is not None else None)
        if swaps_sides(self._steps):
            self.width, self.height = self.height, self.width

    def _full(self, frame: Any) -> np.ndarray:
        return upright(frame.to_ndarray(format="bgr24"), self._steps or UPRIGHT)

    def _small(self, frame: Any) -> np.ndarray:
        """The analysis copy, scaled from the YUV planes before the colour conversion: a
        quarter of the cost of converting the whole frame, then scaling it."""
        steps = self._steps or UPRIGHT
        if swaps_sides(steps):  # `analysis_width` is the width as displayed
            height, width = analysis_size(frame.height, frame.width, self._analysis_width)
        else:
            width, height = analysis_size(frame.width, frame.height, self._analysis_width)
        if frame.format.name not in ("yuv420p", "yuvj420p") or (width, height) == (
                frame.width, frame.height):
            return upright(downscale_to(frame.to_ndarray(format="bgr24"), width, height), steps)
        planes = []
        for plane, scale in zip(frame.planes, (1, 2, 2), strict=True):
            pixels = np.frombuffer(plane, np.uint8).reshape(plane.height, plane.line_size)
            planes.append(cv2.resize(pixels[:, : plane.width], (width // scale, height // scale),
                                     interpolation=cv2.INTER_LINEAR).reshape(-1))
        i420 = np.concatenate(planes).reshape(height * 3 // 2, width)
        return upright(cv2.cvtColor(i420, cv2.COLOR_YUV2BGR_I420), steps)
