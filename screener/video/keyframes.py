"""Representative frames of a video, found in one sequential decode pass.

PySceneDetect's ContentDetector splits the video into scenes (a webcam lesson is often a single
shot, so cuts alone are not enough); inside each scene, every `every_s` seconds opens a window
and the sharpest frame of the window (variance of the Laplacian) represents it. Only the best
frame of the open window is held, so memory does not grow with the video's length. Frames are
read in order because seeking in H.264 costs about a full decode.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np

from screener.domain import Frame, VideoInfo
from screener.settings import KeyframeSettings
from screener.video.decoders import open_decoder
from screener.video.frames import DecodedFrame, VideoReadError

__all__ = ["KeyframeReader", "VideoReadError", "sharpness"]


def sharpness(grey: np.ndarray) -> float:
    return float(cv2.Laplacian(grey, cv2.CV_32F).var())


class KeyframeReader:
    """Iterate once to get the key frames; `info` is complete after the iteration."""

    def __init__(self, path: Path, settings: KeyframeSettings) -> None:
        from scenedetect.detector import FlashFilter
        from scenedetect.detectors import ContentDetector

        # Importing scenedetect resets its logger; our own reason says why a file failed.
        logging.getLogger("pyscenedetect").setLevel(logging.ERROR)
        self.path, self.settings = path, settings
        self._decoder = open_decoder(path, settings)
        self.fps = self._decoder.fps
        self.stride = self._decoder.stride
        self._detector = ContentDetector(
            threshold=settings.cut_threshold,
            min_scene_len=max(1, round(settings.min_scene_s * self.fps)),
            filter_mode=FlashFilter.Mode.SUPPRESS,
        )
        self.info = VideoInfo(fps=self.fps, frame_count=0, duration_s=0.0,
                              width=self._decoder.width, height=self._decoder.height, scenes=0)

    def __iter__(self) -> Iterator[Frame]:
        from scenedetect import FrameTimecode

        every = self.settings.every_s
        scene, scene_start, frame_count, last_t = 0, 0.0, 0, 0.0
        window: tuple[int, int] | None = None
        best: DecodedFrame | None = None
        best_scene, best_score = 0, 0.0
        for decoded in self._decoder:
            t, index, small = decoded.t_s, decoded.index, decoded.small
            frame_count, last_t = max(frame_count, index + 1), t
            if small is None:
                continue
            if self._detector.process_frame(FrameTimecode(index, self.fps), small) and index:
                scene, scene_start = scene + 1, t
            key = (scene, int((t - scene_start) // every))
            if key != window:
                if best is not None:
                    yield _key_frame(best, best_scene, best_score)
                window, best = key, None
            score = sharpness(cv2.cvtColor(small, cv2.COLOR_BGR2GRAY))
            if best is None or score > best_score:
                best, best_scene, best_score = decoded, scene, score
        if best is not None:
            yield _key_frame(best, best_scene, best_score)
        if frame_count == 0:
            raise VideoReadError("no frame could be decoded")
        decoded_s = last_t + 1.0 / self.fps
        declared_s = self._decoder.declared_s
        reached_s = self._decoder.reached_s(decoded_s)
        if reached_s < declared_s * _SHORTEST_COMPLETE_SHARE:
            # An mp4 with its index first ("faststart") opens fine when cut short, e.g. while
            # still being copied; storing it would file a partial session under a hash that
            # the complete file will not have, so it is refused and retried next scan.
            raise VideoReadError(
                f"truncated or still being copied: decoded {reached_s:.1f} s of the "
                f"{declared_s:.1f} s its index declares"
            )
        undecodable = self._decoder.undecodable
        damage = (f"{undecodable} frame{'s' if undecodable != 1 else ''} could not be "
                  "decoded (damaged file)",) if undecodable else ()
        self.info = VideoInfo(
            fps=self.fps,
            frame_count=frame_count,
            duration_s=round(decoded_s, 3),
            width=self._decoder.width,
            height=self._decoder.height,
            scenes=scene + 1,
            undecodable_frames=undecodable,
            notes=damage + self._decoder.notes,
        )


_SHORTEST_COMPLETE_SHARE = 0.9
"""Below this share of the duration a container declares, a video is taken as cut short; above
it, the gap is a container's rounding (edit lists, variable frame rates)."""


def _key_frame(decoded: DecodedFrame, scene: int, score: float) -> Frame:
    assert decoded.full is not None
    return Frame(t_s=decoded.t_s, index=decoded.index, image=decoded.full(), scene=scene,
                 sharpness=score)
