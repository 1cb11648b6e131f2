"""The "too short to judge" line is read from the pooled level table by one fixed rule."""

from benchmarks.source_coverage import LEVEL_RIGHT, too_short_line


def band(right: float, sessions: int = 500) -> dict:
    return {"sessions": sessions, "levels_right": right, "median_faces": 100}


def test_the_line_is_the_first_band_from_which_every_band_gets_eight_in_ten_right():
    table = {"1-4": band(0.81), "5-9": band(0.75), "10-14": band(0.78), "15-19": band(0.80),
             "20-29": band(0.79), "30-39": band(0.82), "40-59": band(0.81), "60+": band(0.86)}
    assert too_short_line(table) == 30
    table["20-29"] = band(LEVEL_RIGHT)
    assert too_short_line(table) == 15


def test_a_band_of_few_sessions_neither_sets_nor_blocks_the_line():
    table = {"1-4": band(0.70), "30-39": band(0.82), "40-59": band(0.81), "60+": band(0.5, 24)}
    assert too_short_line(table) == 30


def test_no_band_reaching_eight_in_ten_puts_the_line_at_the_last_band():
    assert too_short_line({"1-4": band(0.7), "60+": band(0.7)}) == 60
