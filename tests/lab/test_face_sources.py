"""Face sources beyond FER2013's labels: FER+ votes, and web photographs split by person."""

import numpy as np

from screener.domain import EMOTIONS
from screener.lab.face_sources import WildFaces, ferplus_votes, fit_fold, load_wild, wild_half
from tests.conftest import SHARED, missing


def test_a_person_always_falls_in_the_same_half_and_both_halves_are_used():
    people = [f"Person_{i}" for i in range(400)]
    halves = [wild_half(p) for p in people]
    assert halves == [wild_half(p) for p in people]
    assert 150 < halves.count("held_out") < 250 and set(halves) == {"fit", "held_out"}


def test_fit_persons_split_into_two_folds_of_their_own_whatever_their_half():
    people = [f"Person_{i}" for i in range(400)]
    fit = [p for p in people if wild_half(p) == "fit"]
    folds = [fit_fold(p) for p in fit]
    assert folds == [fit_fold(p) for p in fit]
    assert 0.35 < np.mean(folds) < 0.65  # not the same bit as the halves


def test_a_fold_keeps_every_face_of_its_persons_and_nothing_else():
    persons = ["Ann", "Bob", "Ann", "Cyd", "Dee", "Bob"]
    faces = WildFaces(np.arange(6 * 48 * 48, dtype=np.uint8).reshape(6, 48, 48),
                      np.zeros((6, 112, 112, 3), np.uint8), np.arange(6), persons,
                      [f"{i}.jpg" for i in range(6)], missed=1)
    for k in (0, 1):
        fold = faces.fold(k)
        expected = [i for i, p in enumerate(persons) if fit_fold(p) == k]
        assert list(fold.labels) == expected and fold.paths == [f"{i}.jpg" for i in expected]
        assert np.array_equal(fold.grey, faces.grey[expected]) and fold.missed == 1
    assert sorted(len(faces.fold(k).labels) for k in (0, 1)) == [3, 3]


def test_ferplus_votes_become_shares_in_screeners_order_and_untrusted_rows_none(tmp_path):
    table = tmp_path / "ferplus.csv"
    table.write_text(
        "path,neutral,happiness,surprise,sadness,anger,disgust,fear,contempt,unknown,NF,"
        "match_status\n"
        "train/sad/Training_1.jpg,6,0,0,4,0,0,0,0,0,0,unique\n"
        "train/sad/Training_2.jpg,0,0,0,10,0,0,0,0,0,0,duplicate_diff_votes\n"
        "train/sad/Training_3.jpg,0,0,0,0,0,0,0,2,8,0,unique\n")
    shares = ferplus_votes(table, ["/data/fer2013/train/sad/Training_1.jpg",
                                   "/data/fer2013/train/sad/Training_2.jpg",
                                   "/data/fer2013/train/sad/Training_3.jpg",
                                   "/data/fer2013/train/sad/Training_4.jpg"])
    assert shares[0, EMOTIONS.index("neutral")] == np.float32(0.6)
    assert shares[0, EMOTIONS.index("sad")] == np.float32(0.4)
    assert np.isnan(shares[1:]).all()  # votes in doubt, none for an emotion, or none at all


def test_web_photographs_are_cut_as_a_scan_cuts_faces():
    root = SHARED / "datasets" / "wild"
    if not (root / "labels.csv").is_file():
        missing("shared", f"{root} is absent")
    faces = load_wild(root, half="held_out", limit=12)
    assert len(faces.labels) + faces.missed == 12 and len(faces.labels) >= 10
    assert faces.grey.shape[1:] == (48, 48) and faces.aligned.shape[1:] == (112, 112, 3)
    assert {wild_half(p) for p in faces.persons} == {"held_out"}
