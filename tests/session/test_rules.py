import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from screener.session.aggregate import metric_names
from screener.session.rules import (
    LEVELS,
    Condition,
    RulesError,
    builtin_rule_sets,
    load_rules,
    parse_rules,
)

FALLBACK = '[[rule]]\nlevel = "low"\n'


def metrics(**values: float) -> dict[str, float]:
    """Every metric at 0, with the given ones set."""
    base: dict[str, float] = dict.fromkeys(metric_names(), 0.0)
    base.update(values)
    return base


def write(tmp_path, text: str, name: str = "bad.toml"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def rules_error(tmp_path, text: str, name: str = "bad.toml") -> tuple[str, str]:
    path = write(tmp_path, text, name)
    with pytest.raises(RulesError) as info:
        load_rules(str(path))
    return str(info.value), str(path)


# --- the shipped rule sets -------------------------------------------------------------------


@pytest.mark.parametrize("name", ["default", "seed"])
def test_shipped_rule_sets_load(name):
    rules = load_rules(name)
    assert rules.name == name
    assert rules.negative == ("angry", "sad", "fear")
    assert rules.min_run == 5
    assert rules.smoothing_window == 10
    assert len(rules.rules) >= 2
    assert all(r.level in LEVELS for r in rules.rules)
    assert rules.rules[-1].conditions == ()
    assert all(r.conditions for r in rules.rules[:-1])
    assert len(rules.version) == 10
    assert name in builtin_rule_sets()


def test_default_rules_on_hand_made_metrics():
    rules = load_rules("default")
    cases = [
        (metrics(face_frames=5, negative_share_est=0.9, longest_negative_run_s=60), "insufficient",
         "too-few-faces"),
        (metrics(face_frames=20, negative_share_est=0.6, longest_negative_run_s=12), "high",
         "sustained-negative"),
        (metrics(face_frames=20, negative_share_est=0.5, longest_negative_run_s=10), "high",
         "sustained-negative"),
        (metrics(face_frames=20, negative_share_est=0.6, longest_negative_run_s=4), "moderate",
         "mostly-negative"),
        (metrics(face_frames=20, negative_share_est=0.35, negative_episodes=2), "moderate",
         "recurring-negative"),
        (metrics(face_frames=20, negative_share_est=0.35, negative_episodes=1), "low",
         "no-negative-pattern"),
        (metrics(face_frames=20, negative_share_est=0.1, negative_episodes=9), "low",
         "no-negative-pattern"),
    ]
    for values, level, rule in cases:
        assessment = rules.assess(values)
        assert (assessment.level, assessment.rule) == (level, rule), values


@pytest.mark.parametrize(
    ("face_frames", "share", "longest_s", "episodes", "level", "rule"),
    [
        (9, 0.9, 60, 5, "insufficient", "too-few-faces"),
        (10, 0.9, 60, 5, "high", "sustained-negative"),
        (0, 0.0, 0, 0, "insufficient", "too-few-faces"),
        (10, 0.50, 10, 0, "high", "sustained-negative"),
        (10, 0.49, 10, 0, "low", "no-negative-pattern"),
        (10, 0.50, 9.99, 0, "moderate", "mostly-negative"),
        (10, 0.49, 9.99, 2, "moderate", "recurring-negative"),
        (10, 0.30, 0, 2, "moderate", "recurring-negative"),
        (10, 0.29, 0, 2, "low", "no-negative-pattern"),
        (10, 0.30, 0, 1, "low", "no-negative-pattern"),
        (10, 0.0, 0, 0, "low", "no-negative-pattern"),
    ],
)
def test_default_rules_at_each_documented_boundary(face_frames, share, longest_s, episodes,
                                                   level, rule):
    """The README's default rule set, one step either side of each threshold: 10 faces,
    shares of 30% and 50%, a 10 s stretch, 2 episodes. The share is given under both names a
    rule may read (the labelled share and its corrected estimate), so the table holds whichever
    the shipped file uses."""
    values = {
        **metrics(face_frames=face_frames, longest_negative_run_s=longest_s,
                  negative_episodes=episodes),
        "negative_share": share,
        "negative_share_est": share,
    }
    assessment = load_rules("default").assess(values)
    assert (assessment.level, assessment.rule) == (level, rule)


def test_first_matching_rule_wins_and_evidence_holds_only_its_metrics():
    rules = load_rules("default")
    # Both "sustained-negative" and "mostly-negative" hold; the first one fires.
    a = rules.assess(metrics(face_frames=30, negative_share_est=0.6, longest_negative_run_s=12,
                             negative_episodes=3))
    assert a.rule == "sustained-negative"
    assert a.evidence == {"negative_share_est": 0.6, "longest_negative_run_s": 12.0}
    assert a.rules_version == f"default@{rules.version}"


def test_explanation_mentions_the_numbers_that_fired():
    a = load_rules("default").assess(
        metrics(face_frames=30, negative_share_est=0.6, longest_negative_run_s=12)
    )
    assert a.explanation.startswith("Negative expressions")
    assert ("the estimated share of negative expressions is 60% (at least 50%)"
            in a.explanation)
    assert "the longest negative stretch is 12.0 s (at least 10.0 s)" in a.explanation


def test_fallback_rule_has_no_evidence_and_no_because():
    a = load_rules("default").assess(metrics(face_frames=30, negative_share_est=0.1))
    assert a.level == "low"
    assert a.evidence == {}
    assert "This level because" not in a.explanation


def test_seed_rules_follow_the_original_order():
    rules = load_rules("seed")
    assert rules.assess(metrics(faces_found=0, episodes_angry=9)).level == "insufficient"
    assert rules.assess(metrics(faces_found=10, episodes_angry=4)).rule == "angry-repeated"
    assert rules.assess(metrics(faces_found=10, episodes_angry=4)).level == "high"
    assert rules.assess(metrics(faces_found=10, episodes_angry=3)).rule == "no-negative-pattern"
    # angry and fear both repeated: angry comes first.
    both = rules.assess(metrics(faces_found=10, episodes_angry=4, episodes_fear=4))
    assert both.level == "high"
    assert both.evidence == {"episodes_angry": 4.0}
    assert rules.assess(metrics(faces_found=10, episodes_fear=5)).level == "moderate"
    sad = rules.assess(metrics(faces_found=10, episodes_sad=4))
    assert (sad.level, sad.rule) == ("low", "sad-repeated")


def test_a_minimal_rules_file_gets_the_documented_defaults(tmp_path):
    """Only rules given: negative emotions angry, sad, fear, episodes of 5, smoothing over 10
    (docs/rules.md, "Rule sets"), the name from the file, no "None" for a missing explain."""
    rules = load_rules(str(write(tmp_path, FALLBACK, "mine.toml")))
    assert (rules.name, rules.negative, rules.min_run, rules.smoothing_window) == (
        "mine", ("angry", "sad", "fear"), 5, 10)
    assessment = rules.assess(metrics())
    assert (assessment.explanation, assessment.rule) == ("", "rule-1")
    named = parse_rules('name = "school"\nmin_run = 1\nsmoothing_window = 1\n' + FALLBACK,
                       str(tmp_path / "other.toml"))
    assert (named.name, named.min_run, named.smoothing_window) == ("school", 1, 1)
    assert named.tag.startswith("school@")


def test_a_bare_number_condition_keeps_the_conditions_after_it():
    rules = parse_rules('[[rule]]\nlevel = "high"\n'
                        'when = { face_frames = 10, negative_share = ">= 0.5" }\n' + FALLBACK)
    assert [str(c) for c in rules.rules[0].conditions] == [
        "face_frames == 10", "negative_share >= 0.5"]
    assert rules.assess(metrics(face_frames=10, negative_share=0.2)).level == "low"


# --- conditions ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("op", "value", "actual", "expected"),
    [
        ("<", 10, 9, True), ("<", 10, 10, False),
        ("<=", 10, 10, True), ("<=", 10, 10.5, False),
        (">", 0.5, 0.6, True), (">", 0.5, 0.5, False),
        (">=", 0.5, 0.5, True), (">=", 0.5, 0.49, False),
        ("==", 3, 3, True), ("==", 3, 4, False),
        ("!=", 3, 4, True), ("!=", 3, 3, False),
    ],
)
def test_condition_operators(op, value, actual, expected):
    assert Condition("x", op, float(value)).holds({"x": actual}) is expected


def test_condition_on_a_missing_or_non_numeric_metric_does_not_hold():
    c = Condition("x", "<", 100.0)
    assert not c.holds({})
    assert not c.holds({"x": None})
    assert not c.holds({"x": "5"})


def test_condition_text():
    assert str(Condition("negative_share", ">=", 0.5)) == "negative_share >= 0.5"
    assert str(Condition("face_frames", "<", 10.0)) == "face_frames < 10"


def test_parsed_conditions_accept_spaces_negatives_and_bare_numbers():
    rules = parse_rules(
        '[[rule]]\nlevel = "high"\nwhen = { valence = "  <   -0.25 ", face_frames = 3 }\n'
        + FALLBACK
    )
    conditions = rules.rules[0].conditions
    assert conditions == (Condition("valence", "<", -0.25), Condition("face_frames", "==", 3.0))
    assert rules.assess(metrics(valence=-0.3, face_frames=3)).level == "high"
    assert rules.assess(metrics(valence=-0.3, face_frames=4)).level == "low"


def test_rule_names_default_to_their_position_and_name_to_the_file_stem():
    rules = parse_rules('[[rule]]\nlevel = "high"\nwhen = { face_frames = "> 1" }\n' + FALLBACK,
                        "/some/where/mine.toml")
    assert rules.name == "mine"
    assert [r.name for r in rules.rules] == ["rule-1", "rule-2"]


# --- errors ----------------------------------------------------------------------------------


def test_unknown_metric_names_file_and_line(tmp_path):
    message, path = rules_error(
        tmp_path,
        '[[rule]]\nlevel = "high"\nwhen = { negative_shar = ">= 0.5" }\n' + FALLBACK,
    )
    assert message.startswith(f"{path}:3:")
    assert "negative_shar" in message


@pytest.mark.parametrize("condition", ['"=> 3"', '">= abc"', '"0.5"', '"~ 2"', '""'])
def test_bad_condition_string_names_file_and_line(tmp_path, condition):
    message, path = rules_error(
        tmp_path,
        f'name = "t"\n[[rule]]\nlevel = "high"\nwhen = {{ negative_share = {condition} }}\n'
        + FALLBACK,
    )
    assert message.startswith(f"{path}:4:")
    assert "bad condition" in message


@pytest.mark.parametrize("condition", ["[1, 2]", "true", "{ a = 1 }"])
def test_condition_of_the_wrong_type_names_file_and_line(tmp_path, condition):
    message, path = rules_error(
        tmp_path,
        f'[[rule]]\nlevel = "high"\nwhen = {{ face_frames = {condition} }}\n' + FALLBACK,
    )
    assert message.startswith(f"{path}:3:")
    assert "must be a string" in message


def test_error_on_a_metric_used_by_an_earlier_rule_points_at_the_later_line(tmp_path):
    message, path = rules_error(
        tmp_path,
        '[[rule]]\nlevel = "high"\nwhen = { negative_share = ">= 0.5" }\n'
        '[[rule]]\nlevel = "moderate"\nwhen = { negative_share = "=> 0.3" }\n' + FALLBACK,
    )
    assert message.startswith(f"{path}:6:")


def test_errors_on_the_first_line_and_in_the_last_rule_name_their_lines(tmp_path):
    message, path = rules_error(tmp_path, 'negative = "sad"\n' + FALLBACK)
    assert message.startswith(f"{path}:1:")
    message, path = rules_error(
        tmp_path, '[[rule]]\nlevel = "high"\nwhen = { face_frames = "< 1" }\n'
        '[[rule]]\nlevel = "severe"\n')
    assert message.startswith(f"{path}:5:")


@pytest.mark.parametrize(
    ("text", "line", "words"),
    [
        ('name = "x"\nsmoothing_window = 0\n' + FALLBACK, 2,
         "smoothing_window must be a positive whole number"),
        ('[[rule]]\nlevel = "high"\nwhen = { face_frames = "< 1" }\n'
         '[[rule]]\nlevel = "high"\nwhen = "always"\n' + FALLBACK, 6, "`when` must be a table"),
    ],
)
def test_structural_errors_name_their_line(tmp_path, text, line, words):
    message, path = rules_error(tmp_path, text)
    assert message.startswith(f"{path}:{line}:") and words in message


def test_unknown_level_names_file_and_line_of_that_rule(tmp_path):
    message, path = rules_error(
        tmp_path,
        '[[rule]]\nlevel = "high"\nwhen = { face_frames = "< 1" }\n'
        '[[rule]]\nlevel = "severe"\nwhen = { face_frames = "< 2" }\n' + FALLBACK,
    )
    assert message.startswith(f"{path}:5:")
    for level in LEVELS:
        assert level in message


def test_unknown_top_level_key_names_file_and_line(tmp_path):
    message, path = rules_error(tmp_path, 'name = "t"\ncolour = "red"\n' + FALLBACK)
    assert message.startswith(f"{path}:2:")
    assert "colour" in message


def test_misspelt_rule_table_names_its_line(tmp_path):
    message, path = rules_error(tmp_path, 'name = "t"\n[[rules]]\nlevel = "low"\n')
    assert message.startswith(f"{path}:2:")


def test_unknown_key_inside_a_rule_names_the_line(tmp_path):
    message, path = rules_error(tmp_path, '[[rule]]\nlevel = "low"\nexplian = "typo"\n')
    assert message.startswith(f"{path}:3:")
    assert "unknown key 'explian' in rule 'rule-1'" in message


def test_last_rule_must_be_unconditional(tmp_path):
    message, path = rules_error(
        tmp_path, '[[rule]]\nlevel = "high"\nwhen = { face_frames = "> 1" }\n'
    )
    assert path in message
    assert "last rule" in message


@pytest.mark.parametrize("text", ['name = "t"\n', 'name = "t"\nrule = []\n'])
def test_no_rules_is_an_error(tmp_path, text):
    message, path = rules_error(tmp_path, text)
    assert path in message
    assert "no [[rule]]" in message


def test_invalid_toml_is_an_error(tmp_path):
    message, path = rules_error(tmp_path, 'name = \n[[rule]]\nlevel = "low"\n')
    assert message.startswith(path)
    assert "invalid TOML" in message


def test_negative_must_list_emotions(tmp_path):
    message, path = rules_error(tmp_path, 'name = "t"\nnegative = ["sad", "bored"]\n' + FALLBACK)
    assert message.startswith(f"{path}:2:")
    assert "bored" in message


def test_negative_that_is_not_a_list_is_a_rules_error(tmp_path):
    with pytest.raises(RulesError):
        load_rules(str(write(tmp_path, "negative = 3\n" + FALLBACK)))


@pytest.mark.parametrize("value", ["0", "-2", "true", '"5"', "2.5"])
def test_min_run_must_be_a_positive_whole_number(tmp_path, value):
    message, path = rules_error(tmp_path, f'name = "t"\nmin_run = {value}\n' + FALLBACK)
    assert message.startswith(f"{path}:2:")
    assert "min_run" in message


def test_unknown_builtin_name_lists_the_shipped_ones():
    with pytest.raises(RulesError) as info:
        load_rules("nonesuch")
    message = str(info.value)
    assert "nonesuch" in message
    assert "default" in message
    assert "seed" in message


def test_missing_rules_file_is_a_rules_error(tmp_path):
    with pytest.raises(RulesError, match="cannot read"):
        load_rules(str(tmp_path / "absent.toml"))


def test_version_follows_the_text(tmp_path):
    text = '[[rule]]\nlevel = "high"\nwhen = { face_frames = "> 1" }\n' + FALLBACK
    first = parse_rules(text)
    assert parse_rules(text).version == first.version
    assert parse_rules(text + "# a comment\n").version != first.version
    assert parse_rules(text.replace("> 1", "> 2")).version != first.version
    assert load_rules(str(write(tmp_path, text, "r.toml"))).version == first.version


# --- property --------------------------------------------------------------------------------

DEFAULT = load_rules("default")


@settings(max_examples=150, deadline=None)
@given(
    face_frames=st.integers(0, 200),
    longest=st.floats(0, 120, allow_nan=False),
    episodes=st.integers(0, 6),
    shares=st.tuples(st.floats(0, 1), st.floats(0, 1)),
)
def test_higher_negative_share_never_lowers_the_default_level(face_frames, longest, episodes,
                                                              shares):
    low_share, high_share = sorted(shares)
    base = {
        "face_frames": face_frames,
        "longest_negative_run_s": longest,
        "negative_episodes": episodes,
    }
    referenced = {c.metric for r in DEFAULT.rules for c in r.conditions}
    assert referenced <= set(base) | {"negative_share_est"}
    lower = DEFAULT.assess({**base, "negative_share_est": low_share}).level
    higher = DEFAULT.assess({**base, "negative_share_est": high_share}).level
    assert LEVELS.index(higher) >= LEVELS.index(lower)


def test_a_level_that_could_differ_within_the_interval_says_so():
    rules = load_rules("default")
    near = metrics(face_frames=60, negative_share_est=0.55, negative_share_low=0.42,
                   negative_share_high=0.70, longest_negative_run_s=20)
    assert rules.levels_within_interval(near) == ["low", "high"]
    assessment = rules.assess(near)
    assert assessment.level == "high"
    assert assessment.explanation.endswith(
        "The share is likely 42% to 70%, and in that range the level could also be low.")

    clear = {**near, "negative_share_est": 0.8, "negative_share_low": 0.7,
             "negative_share_high": 0.9}
    assert rules.levels_within_interval(clear) == ["high"]
    assert "interval" not in rules.assess(clear).explanation

    recurring = {**near, "negative_share_est": 0.45, "negative_share_low": 0.25,
                 "negative_share_high": 0.55, "longest_negative_run_s": 5,
                 "negative_episodes": 2}
    assert rules.levels_within_interval(recurring) == ["low", "moderate"]
    assert rules.assess(recurring).explanation.endswith("could also be low.")

    unknown = {**near, "negative_share_low": None, "negative_share_high": None}
    assert rules.levels_within_interval(unknown) == []
    assert "interval" not in rules.assess(unknown).explanation


def test_a_threshold_inside_the_interval_counts_even_when_both_ends_agree():
    """A band: only the middle of the interval reaches another level."""
    band = parse_rules(
        '[[rule]]\nlevel = "low"\nwhen = { negative_share_est = ">= 0.5" }\n'
        '[[rule]]\nlevel = "moderate"\nwhen = { negative_share_est = ">= 0.4" }\n' + FALLBACK,
        "band")
    values = metrics(negative_share_est=0.3, negative_share_low=0.3, negative_share_high=0.6)
    assert band.assess(values).level == "low"
    assert band.levels_within_interval(values) == ["low", "moderate"]
    assert band.levels_within_interval({**values, "negative_share_high": 0.39}) == ["low"]


def test_the_baseline_metric_moves_with_the_estimate():
    rules = parse_rules(
        '[[rule]]\nlevel = "high"\nwhen = { negative_share_vs_baseline = ">= 20" }\n'
        + FALLBACK, "baseline")
    wide = metrics(negative_share_est=0.5, negative_share_low=0.4, negative_share_high=0.6,
                   negative_share_vs_baseline=25)
    assert rules.levels_within_interval(wide) == ["low", "high"]  # at 40%: 15 points above
    narrow = {**wide, "negative_share_low": 0.46}
    assert rules.levels_within_interval(narrow) == ["high"]  # at 46%: 21 points above


def test_a_baseline_threshold_inside_the_interval_counts():
    """A narrow band on the baseline metric, reached only inside the interval: at 60% the
    session is 20 points above its baseline, at 60.05% 20.05."""
    rules = parse_rules(
        '[[rule]]\nlevel = "low"\nwhen = { negative_share_vs_baseline = ">= 20.05" }\n'
        '[[rule]]\nlevel = "moderate"\nwhen = { negative_share_vs_baseline = ">= 20" }\n'
        + FALLBACK, "baseline band")
    values = metrics(negative_share_est=0.5, negative_share_low=0.35, negative_share_high=0.75,
                     negative_share_vs_baseline=10)
    assert rules.assess(values).level == "low"
    assert rules.levels_within_interval(values) == ["low", "moderate"]
    assert rules.levels_within_interval({**values, "negative_share_high": 0.59}) == ["low"]


def test_a_threshold_exactly_at_an_end_of_the_interval_adds_no_level_beyond_it():
    at_least = parse_rules(
        '[[rule]]\nlevel = "high"\nwhen = { negative_share_est = ">= 0.5" }\n' + FALLBACK, "ge")
    from_threshold = metrics(negative_share_est=0.55, negative_share_low=0.5,
                             negative_share_high=0.6)
    assert at_least.levels_within_interval(from_threshold) == ["high"]
    above = parse_rules(
        '[[rule]]\nlevel = "high"\nwhen = { negative_share_est = "> 0.6" }\n' + FALLBACK, "gt")
    assert above.levels_within_interval(from_threshold) == ["low"]


def test_every_other_level_in_the_interval_is_named():
    wide = metrics(face_frames=60, negative_share_est=0.55, negative_share_low=0.25,
                   negative_share_high=0.7, longest_negative_run_s=20, negative_episodes=2)
    rules = load_rules("default")
    assert rules.levels_within_interval(wide) == ["low", "moderate", "high"]
    assert rules.assess(wide).explanation.endswith(
        "The share is likely 25% to 70%, and in that range the level could also be low or "
        "moderate.")


def test_the_explanation_joins_every_condition_that_fired():
    fired = load_rules("default").assess(
        metrics(face_frames=60, negative_share_est=0.8, longest_negative_run_s=20))
    assert "This level because the estimated share of negative expressions is 80% (at least " \
           "50%) and the longest negative stretch is 20.0 s (at least 10.0 s)." \
           in fired.explanation


def test_a_level_from_too_few_distinct_expressions_is_a_hint_at_the_line_and_not_above():
    from screener.session.rules import MIN_DISTINCT_EXPRESSIONS, too_short

    rules = load_rules("default")
    line = MIN_DISTINCT_EXPRESSIONS
    below = rules.assess(metrics(face_frames=30, negative_share_est=0.1,
                                 distinct_expressions=line - 1))
    at = rules.assess(metrics(face_frames=30, negative_share_est=0.1, distinct_expressions=line))
    assert too_short({"distinct_expressions": line - 1}) == line - 1
    assert too_short({"distinct_expressions": line}) is None and too_short({}) is None
    assert below.level == at.level == "low"
    assert below.explanation.endswith(
        f"Too short to judge reliably: {line - 1} distinct expressions seen. Treat this level "
        "as a hint, not a finding.")
    assert "Too short" not in at.explanation
    few_faces = rules.assess(metrics(face_frames=5, distinct_expressions=1))
    assert few_faces.level == "insufficient" and "Too short" not in few_faces.explanation
