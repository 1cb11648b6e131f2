"""What the pages say in words, tested as text."""

from dataclasses import replace
from datetime import datetime

import pytest

from screener.emotions.model import ModelCard
from screener.reports.wording import (
    RAW_SHARE_CAVEAT,
    ShareFigures,
    calibration_sentence,
    level_meaning,
    quality_warnings,
    share_figures,
    uncertainty_sentence,
)
from screener.storage.store import StoredSession

SESSION = StoredSession(
    pk=1, student_id="ana", session_id="s", video_path="/v.mp4", video_sha256="0" * 64,
    recorded_at=datetime(2026, 3, 1), duration_s=30.0, frames_analysed=30, faces_found=30,
    face_coverage=1.0, negative_share=0.4, level="moderate", fired_rule="r", explanation="e",
    evidence={}, metrics={}, model_version="m@1", rules_version="default@1",
    processed_at=datetime(2026, 3, 1),
)


def test_figures_come_from_the_named_metrics_and_ignore_anything_else():
    session = replace(SESSION, metrics={"negative_share_est": 0.55, "negative_share_low": 0.4,
                                        "negative_share_high": 0.7,
                                        "negative_share_vs_baseline": True})
    assert share_figures(session) == ShareFigures(0.4, 0.55, 0.4, 0.7, None)
    assert share_figures(SESSION) == ShareFigures(0.4)
    assert share_figures(SESSION).best == 0.4 and share_figures(session).best == 0.55


@pytest.mark.parametrize(("low", "high", "uncertain"), [(0.4, 0.7, False), (0.3, 0.75, True)])
def test_the_interval_in_words_and_when_it_makes_the_level_uncertain(low, high, uncertain):
    text = uncertainty_sentence(ShareFigures(0.4, 0.55, low, high))
    assert f"between {low:.0%} and {high:.0%}" in text and "raw share" in text
    assert ("level is uncertain" in text) == uncertain


def test_without_an_estimate_the_sentence_says_why_the_raw_share_is_biased():
    assert uncertainty_sentence(ShareFigures(0.4)) == RAW_SHARE_CAVEAT
    assert uncertainty_sentence(ShareFigures(0.4, 0.5)) == RAW_SHARE_CAVEAT  # no interval


def test_calibration_is_said_only_when_measured():
    assert calibration_sentence(ModelCard("m", 0.66)) == ""
    assert "off by 1.6 points on average" in calibration_sentence(ModelCard("m", 0.66, ece=0.0159))


def test_every_level_has_a_meaning_and_a_custom_one_is_named():
    for level in ("high", "moderate", "low", "insufficient"):
        assert level_meaning(level).lower().startswith(level)
    assert "custom rule set" in level_meaning("severe")


def test_data_quality_notes_become_sentences_only_when_recorded():
    assert quality_warnings(SESSION) == []
    damaged = replace(SESSION, metrics={"data_quality": ["12 frames could not be decoded "
                                                         "(damaged file)"]})
    assert quality_warnings(damaged) == ["12 frames could not be decoded (damaged file)."]
