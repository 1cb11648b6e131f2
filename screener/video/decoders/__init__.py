"""The interchangeable video decoders behind `VideoDecoder` (`screener.video.frames`).

`PyAvDecoder` (the default) can skip the frames no other frame refers to (`skip_nonref`):
in an H.264 stream with B-frames that is about every other frame, a third less decoding, and
the key-frame stage only looks at about 10 frames per second anyway (docs/benchmarks.md).
`OpenCvDecoder` decodes every frame through PySceneDetect's OpenCV stream, as screener first
did. Both convert to BGR only the frames the analysis will look at: the conversion costs about
as much as the decoding.
"""

from __future__ import annotations

from pathlib import Path

from screener.settings import KeyframeSettings
from screener.video.decoders.opencv import OpenCvDecoder
from screener.video.decoders.pyav import PyAvDecoder
from screener.video.frames import VideoDecoder, VideoReadError

__all__ = ["OpenCvDecoder", "PyAvDecoder", "open_decoder"]


def open_decoder(path: Path, settings: KeyframeSettings) -> VideoDecoder:
    if not path.is_file():
        raise VideoReadError("not a readable file")
    refuse_known_non_video(path)
    if settings.decoder == "opencv":
        return OpenCvDecoder(path, settings)
    return PyAvDecoder(path, settings)


_NOT_VIDEO_SIGNATURES = (
    # (offset, bytes, what the file is). OpenCV would open any of these images as a one-frame
    # "video"; audio and archives only get a clearer reason than "cannot be opened".
    (0, b"\x89PNG\r\n\x1a\n", "a PNG image"),
    (0, b"\xff\xd8\xff", "a JPEG image"),
    (0, b"GIF8", "a GIF image"),
    (0, b"BM", "a BMP image"),
    (0, b"II*\0", "a TIFF image"),
    (0, b"MM\0*", "a TIFF image"),
    (8, b"WEBP", "a WebP image"),
    (8, b"WAVE", "WAV audio"),
    (0, b"PK\x03\x04", "a ZIP archive"),
)


def refuse_known_non_video(path: Path) -> None:
    """A clear reason for files that are obviously not videos, whatever their name says."""
    try:
        with path.open("rb") as handle:
            head = handle.read(16)
    except OSError as exc:
        raise VideoReadError(f"cannot read: {exc.strerror or exc}") from exc
    if not head:
        raise VideoReadError("empty file (0 bytes)")
    for offset, magic, kind in _NOT_VIDEO_SIGNATURES:
        if head[offset : offset + len(magic)] == magic:
            raise VideoReadError(f"not a video: the file is {kind}")


