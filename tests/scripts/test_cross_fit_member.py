"""Choosing a member's join on fit persons it never saw (scripts/cross_fit_member.py)."""

import importlib.util
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "cross_fit_member.py"
spec = importlib.util.spec_from_file_location("cross_fit_member", SCRIPT)
cross_fit = importlib.util.module_from_spec(spec)
spec.loader.exec_module(cross_fit)


def row(weight: float, negative: float, neutral: float, web: float, fer: float) -> dict:
    return {"grey_weight": weight,
            "web_out_of_fold": {"accuracy": web, "negative_read_negative": negative,
                                "neutral_read_negative": neutral},
            "fer_val": {"accuracy": fer}}


def test_the_weight_that_catches_most_negatives_within_bounds_is_chosen():
    table = [row(0.0, 0.80, 0.25, 0.70, 0.70),  # too many calm faces read negative
             row(0.1, 0.78, 0.19, 0.70, 0.68),  # FER2013 below its floor
             row(0.2, 0.74, 0.18, 0.71, 0.70),
             row(0.3, 0.74, 0.17, 0.73, 0.70),  # the same negatives, more right overall
             row(0.4, 0.70, 0.12, 0.75, 0.71)]
    assert cross_fit.choose(table)["grey_weight"] == 0.3


def test_no_weight_is_chosen_when_every_one_reads_too_many_calm_faces_negative():
    assert cross_fit.choose([row(w / 10, 0.78, 0.35 + w / 100, 0.66, 0.70)
                             for w in range(6)]) is None
