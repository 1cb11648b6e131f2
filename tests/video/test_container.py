from types import SimpleNamespace

import av

from screener.video.container import best_video_stream

Disposition = av.stream.Disposition


def stream(width: int, height: int, disposition: int = 0) -> SimpleNamespace:
    return SimpleNamespace(codec_context=SimpleNamespace(width=width, height=height),
                           disposition=Disposition(disposition))


def container(*streams: SimpleNamespace) -> SimpleNamespace:
    return SimpleNamespace(streams=SimpleNamespace(video=list(streams)))


def test_cover_art_is_never_the_video_even_when_larger():
    cover = stream(3000, 3000, Disposition.attached_pic)
    video = stream(640, 360)
    assert best_video_stream(container(cover, video)) is video
    assert best_video_stream(container(cover)) is None


def test_the_most_pixels_win_and_a_default_stream_counts_five_megapixels_more():
    small, large = stream(640, 360), stream(1280, 720)
    assert best_video_stream(container(small, large)) is large
    default_small = stream(640, 360, Disposition.default)
    assert best_video_stream(container(default_small, large)) is default_small
    assert best_video_stream(container(default_small, stream(3840, 2160))).codec_context.width \
        == 3840
    first, second = stream(640, 360), stream(640, 360)
    assert best_video_stream(container(first, second)) is first
