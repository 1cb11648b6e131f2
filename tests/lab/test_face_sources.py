"""Face sources beyond FER2013's labels: FER+ votes, and web photographs split by person."""

import numpy as np

from screener.domain import EMOTIONS
from screener.lab.face_sources import ferplus_votes, load_wild, wild_half
from tests.conftest import SHARED, missing


def test_a_person_always_falls_in_the_same_half_and_both_halves_are_used():
    people = [f"Person_{i}" for i in range(400)]
    halves = [wild_half(p) for p in people]
    assert halves == [wild_half(p) for p in people]
    assert 150 < halves.count("held_out") < 250 and set(halves) == {"fit", "held_out"}


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
