"""The wild-faces session benchmark shows only held-out persons' faces, and sessions drawn
from a small source reuse its photographs rather than run out."""

import zlib

import cv2
import numpy as np

from benchmarks.session_benchmark import Profile, _image_pool, _plan
from benchmarks.wild_sessions import SIDE, held_out_faces


def persons_in_each_half() -> tuple[str, str]:
    names = [f"person_{i}" for i in range(20)]
    held = next(n for n in names if zlib.crc32(n.encode()) % 2)
    fit = next(n for n in names if not zlib.crc32(n.encode()) % 2)
    return held, fit


def test_only_held_out_persons_photos_with_a_face_are_shown(tmp_path, astronaut):
    held, fit = persons_in_each_half()
    root = tmp_path / "wild"
    (root / "happy").mkdir(parents=True)
    face = cv2.resize(astronaut[0:260, 120:380], (350, 350))
    cv2.imwrite(str(root / "happy" / f"{held}_0001.jpg"), face)
    cv2.imwrite(str(root / "happy" / f"{fit}_0001.jpg"), face)
    cv2.imwrite(str(root / "happy" / f"{held}_0002.jpg"), np.full((350, 350, 3), 90, np.uint8))
    (root / "labels.csv").write_text(
        "path,label,person,labeller\n"
        f"happy/{held}_0001.jpg,happy,{held},1\nhappy/{fit}_0001.jpg,happy,{fit},1\n"
        f"happy/{held}_0002.jpg,happy,{held},1\n")

    out = held_out_faces(root, tmp_path / "faces")
    [shown] = list(out.rglob("*.jpg"))  # the fit person's photo and the faceless one are not
    assert shown.name == f"{held}_0001.jpg"
    assert cv2.imread(str(shown), cv2.IMREAD_UNCHANGED).shape == (SIDE, SIDE)


def test_a_small_source_lends_each_photograph_several_times(tmp_path):
    for label in ("angry", "sad", "fear", "happy", "neutral", "surprise", "disgust"):
        (tmp_path / label).mkdir()
        cv2.imwrite(str(tmp_path / label / "a.jpg"), np.full((48, 48), 100, np.uint8))
    pool = _image_pool(tmp_path, np.random.default_rng(0), reuse=3)
    assert all(len(files) == 3 for files in pool.values())
    gloomy = Profile("gloomy", negative=1.0, run=1)
    lent = _image_pool(tmp_path, np.random.default_rng(0), reuse=40)
    plan = _plan(gloomy, 40, np.random.default_rng(1), lent, negative_weights=(1.0, 1.0, 0.0))
    shown = {segment.label for segment in plan} - {None}
    assert shown == {"angry", "sad"}  # no fearful face where the source has almost none


def test_a_source_with_too_few_faces_of_a_kind_shows_them_again(tmp_path):
    for label in ("angry", "sad", "fear", "happy", "neutral", "surprise", "disgust"):
        (tmp_path / label).mkdir()
        cv2.imwrite(str(tmp_path / label / "a.jpg"), np.full((48, 48), 100, np.uint8))
    gloomy = Profile("gloomy", negative=1.0, run=1)
    plan = _plan(gloomy, 30, np.random.default_rng(1),
                 _image_pool(tmp_path, np.random.default_rng(0)))
    assert sum(segment.image is not None for segment in plan) > 7  # one face of each kind
