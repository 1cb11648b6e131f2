"""What a video file's container declares, read with PyAV: which of its video streams to
analyse, how long that stream says it is, and which way up it is shown.

Both decoders use it: OpenCV picks its stream and reads its duration from the container as a
whole (audio included), so the OpenCV decoder asks here too.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from screener.video.orientation import UPRIGHT, Steps, steps_from_matrix


def best_video_stream(container: Any) -> Any | None:
    """The video stream FFmpeg's command line would pick: never cover art (an attached
    picture), else the most pixels, a stream marked default counting 5 megapixels more."""
    streams = [s for s in container.streams.video if not _disposition(s) & _ATTACHED_PIC]
    if not streams:
        return None

    def score(stream: Any) -> int:
        default = bool(_disposition(stream) & _DEFAULT)
        return stream.codec_context.width * stream.codec_context.height + 5_000_000 * default

    return max(streams, key=score)  # the first of equals, as FFmpeg


_DEFAULT, _ATTACHED_PIC = 0x1, 0x400  # FFmpeg's AV_DISPOSITION_* bits


def _disposition(stream: Any) -> int:
    """The stream's AV_DISPOSITION_* bits, whichever way this PyAV exposes them."""
    flags = getattr(stream, "disposition", 0)
    return int(getattr(flags, "value", flags))


def stream_choice_note(container: Any, chosen: Any) -> tuple[str, ...]:
    videos = list(container.streams.video)
    if len(videos) < 2:
        return ()
    ctx = chosen.codec_context
    return (f"video stream {videos.index(chosen) + 1} of {len(videos)} used "
            f"({ctx.width}x{ctx.height}, the one FFmpeg would pick)",)


def declared_video_seconds(container: Any, stream: Any) -> float | None:
    """The video stream's own duration: an mp4 track's, or the DURATION tag Matroska muxers
    (FFmpeg, mkvmerge) write per track; None when the file only states the container's."""
    if stream.duration is not None and stream.time_base:
        return float(stream.duration * stream.time_base)
    tag = next((v for k, v in stream.metadata.items() if k.upper() == "DURATION"), None)
    if tag:
        try:
            hours, minutes, seconds = tag.split(":")
            return int(hours) * 3600 + int(minutes) * 60 + float(seconds)
        except ValueError:
            return None
    return None


def probe(path: Path) -> tuple[Steps, float | None] | None:
    """The display orientation and the video's own duration, read with PyAV (its first frame
    carries the display matrix); None when PyAV cannot read the file."""
    import av

    try:
        with open(path, "rb") as handle, av.open(handle, metadata_errors="ignore") as container:
            stream = best_video_stream(container)
            if stream is None:
                return None
            declared = declared_video_seconds(container, stream)
            for frame in container.decode(stream):
                matrix = frame.side_data.get(av.sidedata.sidedata.Type.DISPLAYMATRIX)
                return steps_from_matrix(bytes(matrix) if matrix is not None else None), declared
    except (av.FFmpegError, OSError):
        return None
    return UPRIGHT, declared


def states_no_duration(path: Path) -> bool:
    """True for a file whose container gives no duration at all, as a browser's MediaRecorder
    leaves a webm (finished or not); such a file cannot be told complete from its contents."""
    import av

    try:
        with open(path, "rb") as handle, av.open(handle, metadata_errors="ignore") as container:
            return container.duration is None and all(
                s.duration is None for s in container.streams)
    except (av.FFmpegError, OSError):
        return False  # the analysis says what is wrong with it
