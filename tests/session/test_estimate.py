import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from screener.domain import EMOTIONS
from screener.session.error_profile import ErrorProfile
from screener.session.estimate import (
    SEED,
    adjusted_count,
    block_length,
    bootstrap_mixes,
    distinct_expressions,
    em_priors,
    estimate_negative_share,
    label_shares,
    probabilistic_adjusted_count,
    project_to_simplex,
    reweighted,
    simplex_least_squares,
    source_spread,
    wilson_interval,
)
from screener.settings import Settings

K = len(EMOTIONS)
NEGATIVE = ("angry", "fear", "sad")
ANGRY, FEAR, HAPPY, SAD, NEUTRAL = (EMOTIONS.index(e) for e in
                                    ("angry", "fear", "happy", "sad", "neutral"))


def two_in_three_rates() -> np.ndarray:
    """A model right 2 times in 3 whose mistakes lean to neutral (every row sums to 1)."""
    rates = np.full((K, K), 0.05)
    np.fill_diagonal(rates, 2 / 3)
    rates[:, NEUTRAL] += 1 - rates.sum(axis=1)
    return rates


def one_hot(classes) -> np.ndarray:
    return np.eye(K)[np.asarray(classes)]


def faces_with_label_shares(mix: np.ndarray, rates: np.ndarray, n: int) -> np.ndarray:
    """n faces whose top labels have exactly the shares `mix` seen through `rates` would give."""
    counts = np.round(mix @ rates * n).astype(int)
    return one_hot(np.repeat(np.arange(K), counts))


def shipped_profile() -> ErrorProfile:
    profile = ErrorProfile.for_model(Settings().model_path)
    assert profile is not None and profile.mean_probabilities is not None
    return profile


# --- recovering a known mix --------------------------------------------------------------------


def test_adjusted_count_recovers_a_known_mix_through_a_known_confusion_matrix():
    rates = two_in_three_rates()
    profile = ErrorProfile(confusion=rates * 300)
    mix = np.zeros(K)
    mix[[SAD, ANGRY, NEUTRAL]] = [0.6, 0.3, 0.1]
    faces = faces_with_label_shares(mix, rates, 10_000)
    assert label_shares(faces)[[ANGRY, SAD]].sum() < 0.7  # the raw count reads far too low
    assert adjusted_count(faces, profile) == pytest.approx(mix, abs=0.002)


def test_soft_adjusted_count_recovers_a_known_mix_from_mean_probabilities():
    rates = two_in_three_rates()
    mean_probabilities = 0.8 * rates + 0.2 / K  # softer than the labels, rows still sum to 1
    profile = ErrorProfile(confusion=rates * 300, mean_probabilities=mean_probabilities)
    mix = np.zeros(K)
    mix[[FEAR, HAPPY, NEUTRAL]] = [0.5, 0.2, 0.3]
    # Faces of each true class get that class's mean probability vector, in the mix's numbers.
    faces = np.repeat(mean_probabilities, np.round(mix * 1000).astype(int), axis=0)
    assert probabilistic_adjusted_count(faces, profile) == pytest.approx(mix, abs=1e-4)
    estimate = estimate_negative_share(faces, NEGATIVE, profile)
    assert estimate.share == pytest.approx(0.5, abs=1e-4)


def test_em_recovers_new_priors_from_calibrated_posteriors():
    """Faces described by one of 7 discrete looks, with exact Bayes posteriors under the
    training priors; a session with other priors shows each look in its expected number."""
    rng = np.random.default_rng(3)
    likelihood = rng.dirichlet(np.ones(K) * 0.7, size=K) + np.eye(K)  # P(look | class), rows
    likelihood /= likelihood.sum(axis=1, keepdims=True)
    training = np.full(K, 1 / K)
    posterior = training[:, None] * likelihood  # (class, look)
    posterior = (posterior / posterior.sum(axis=0)).T  # (look, class)
    truth = np.array([0.4, 0.0, 0.1, 0.05, 0.3, 0.05, 0.1])
    looks = np.round(truth @ likelihood * 20_000).astype(int)
    faces = np.repeat(posterior, looks, axis=0)
    assert em_priors(faces, training, iterations=5000, tolerance=1e-10) == pytest.approx(
        truth, abs=0.01
    )


def test_an_all_neutral_session_stays_near_zero():
    """Truly neutral faces the shipped model partly reads as sad, angry or fear."""
    profile = shipped_profile()
    faces = np.repeat(profile.mean_probabilities[[NEUTRAL]], 300, axis=0)
    labels = faces_with_label_shares(one_hot([NEUTRAL])[0], profile.label_rates, 300)
    assert label_shares(labels)[[ANGRY, FEAR, SAD]].sum() > 0.15  # raw: about a fifth negative
    estimate = estimate_negative_share(faces, NEGATIVE, profile)
    assert estimate.share < 0.02
    assert estimate_negative_share(labels, NEGATIVE, ErrorProfile(profile.confusion)).share < 0.02


def test_an_all_negative_session_reads_far_higher_corrected_than_raw():
    profile = shipped_profile()
    true_mix = np.zeros(K)
    true_mix[[ANGRY, FEAR, SAD]] = [0.3, 0.3, 0.4]
    labels = faces_with_label_shares(true_mix, profile.label_rates, 600)
    assert label_shares(labels)[[ANGRY, FEAR, SAD]].sum() < 0.8  # raw: about three in four
    assert estimate_negative_share(labels, NEGATIVE, ErrorProfile(profile.confusion)).share > 0.97
    faces = np.repeat(profile.mean_probabilities, np.round(true_mix * 600).astype(int), axis=0)
    assert estimate_negative_share(faces, NEGATIVE, profile).share > 0.97


# --- the estimate and its interval -------------------------------------------------------------


def test_without_a_profile_the_estimate_is_the_raw_share_with_an_interval():
    faces = one_hot([SAD] * 30 + [HAPPY] * 70)
    estimate = estimate_negative_share(faces, NEGATIVE, None)
    assert estimate.share == pytest.approx(0.3)
    assert estimate.low < 0.3 < estimate.high


def test_no_faces_no_estimate():
    assert estimate_negative_share(np.zeros((0, K)), NEGATIVE, shipped_profile()) is None


def test_a_session_always_gets_the_same_numbers():
    rng = np.random.default_rng(0)
    faces = rng.dirichlet(np.ones(K), size=200)
    first = estimate_negative_share(faces, NEGATIVE, shipped_profile())
    assert estimate_negative_share(faces, NEGATIVE, shipped_profile()) == first
    assert first.low <= first.share <= first.high
    assert sum(first.mix) == pytest.approx(1.0)


def test_blocks_keep_correlated_faces_together():
    """Ten-second stretches of one emotion: resampling faces one by one would give a narrower,
    overconfident interval than resampling blocks of consecutive faces."""
    faces = one_hot(([SAD] * 10 + [HAPPY] * 10) * 12)
    by_block = estimate_negative_share(faces, NEGATIVE, None, block=20, floor=False)
    by_face = estimate_negative_share(faces, NEGATIVE, None, block=1, floor=False)
    assert by_block.share == by_face.share == 0.5
    # Blocks of 20 each hold one whole stretch of each: no block-to-block variation at all.
    assert by_block.high - by_block.low == pytest.approx(0.0)
    faces = one_hot([SAD] * 30 + [HAPPY] * 90)
    by_block = estimate_negative_share(faces, NEGATIVE, None, block=20, floor=False)
    by_face = estimate_negative_share(faces, NEGATIVE, None, block=1, floor=False)
    assert by_block.high - by_block.low > 1.5 * (by_face.high - by_face.low)


def test_a_short_session_is_cut_into_enough_blocks():
    assert block_length(1800, 30) == 30  # half an hour: 60 blocks of 30 s
    assert block_length(240, 30) == 30  # four minutes: 8 blocks
    assert block_length(60, 30) == 7  # one minute: 8 blocks of 7 s (and one of 4)
    assert block_length(12, 30) == 3  # never under 3 faces: 4 blocks
    assert block_length(60, 1) == 1  # face by face when asked


def test_the_interval_is_widened_for_the_few_blocks_it_resamples():
    """A bootstrap over B blocks spreads a mean by (B-1)/B of its variance; the interval puts
    the missing part back, so with 8 blocks it is sqrt(8/7) as wide about the estimate."""
    sad = (0, 5, 10, 15, 20, 5, 10, 15)  # 80 of 240 faces: 8 blocks of 30
    faces = one_hot([label for n in sad for label in [SAD] * n + [HAPPY] * (30 - n)])
    estimate = estimate_negative_share(faces, NEGATIVE, None, floor=False)
    raw = bootstrap_mixes(faces, None, 30, 400, SEED)[1:, SAD]
    low, high = np.quantile(1 / 3 + np.sqrt(8 / 7) * (raw - 1 / 3), [0.05, 0.95])
    assert (estimate.low, estimate.high) == pytest.approx((low, high))
    assert high - low > np.subtract(*np.quantile(raw, [0.95, 0.05])) * 1.05


def test_the_interval_covers_the_truth_in_most_simulated_sessions():
    """Sessions of segments of one true emotion, each face drawn from the model's behaviour on
    that class (the shipped profile's mean probabilities, blurred per face), with 1-3 looks
    per segment so that faces of a segment share their errors."""
    profile = shipped_profile()
    rng = np.random.default_rng(2021)
    negative_columns = [ANGRY, FEAR, SAD]
    covered, sessions = 0, 120
    for _ in range(sessions):
        share = rng.uniform(0, 1)
        classes, faces = [], []
        while len(classes) < 300:
            c = int(rng.choice(negative_columns)) if rng.random() < share else int(
                rng.choice([HAPPY, NEUTRAL, EMOTIONS.index("surprise")]))
            length = int(rng.integers(3, 25))
            looks = rng.dirichlet(profile.mean_probabilities[c] * 4, size=int(rng.integers(1, 4)))
            classes += [c] * length
            faces += [looks[i * len(looks) // length] for i in range(length)]
        truth = np.isin(classes[:300], negative_columns).mean()
        estimate = estimate_negative_share(np.array(faces[:300]), NEGATIVE, profile)
        covered += estimate.low - 1e-9 <= truth <= estimate.high + 1e-9
    assert covered / sessions >= 0.8


@settings(max_examples=80, deadline=None)
@given(arrays(np.float64, (5, K), elements=st.floats(-3, 3)))
def test_projection_lands_on_the_simplex_and_keeps_points_already_there(v):
    p = project_to_simplex(v)
    assert np.all(p >= 0)
    assert p.sum(axis=1) == pytest.approx(np.ones(5))
    assert project_to_simplex(p) == pytest.approx(p, abs=1e-12)


def _raw_interval(faces: np.ndarray, block: int) -> tuple[float, float]:
    """The shipped interval computed by hand: bootstrap spread about the share, widened by
    sqrt(B/(B-1)), cut to [0, 1]."""
    mixes = bootstrap_mixes(faces, None, block, 400, SEED)
    share, spread = mixes[0, SAD], mixes[1:, SAD] - mixes[0, SAD]
    blocks = -(-len(faces) // block)
    low, high = np.quantile(share + np.sqrt(blocks / (blocks - 1)) * spread, [0.05, 0.95])
    return max(low, 0.0), min(high, 1.0)


def test_a_one_block_session_has_a_point_interval():
    estimate = estimate_negative_share(one_hot([SAD, HAPPY]), NEGATIVE, None, floor=False)
    assert (estimate.low, estimate.share, estimate.high) == (0.5, 0.5, 0.5)


def test_two_blocks_are_widened_by_the_square_root_of_two():
    faces = one_hot([SAD, SAD, HAPPY, SAD, HAPPY, HAPPY])  # blocks of 3: 2/3 and 1/3 sad
    estimate = estimate_negative_share(faces, NEGATIVE, None, floor=False)
    assert (estimate.low, estimate.high) == pytest.approx((0.5 - np.sqrt(2) / 6,
                                                           0.5 + np.sqrt(2) / 6))


def test_a_lopsided_session_keeps_its_skew_and_stays_within_zero_and_one():
    """Seven sad blocks and one happy one: the spread is all on the low side, and widening it
    must neither mirror it nor push the interval past 100%."""
    faces = one_hot([SAD] * 21 + [HAPPY] * 3)  # 8 blocks of 3
    estimate = estimate_negative_share(faces, NEGATIVE, None, floor=False)
    assert estimate.share == 0.875 and estimate.high == 1.0
    assert estimate.low == pytest.approx(_raw_interval(faces, 3)[0]) and estimate.low < 0.7
    mirrored = estimate_negative_share(one_hot([HAPPY] * 21 + [SAD] * 3), NEGATIVE, None,
                                       floor=False)
    assert mirrored.low == 0.0 and mirrored.high == pytest.approx(1 - estimate.low)


def test_every_block_can_be_drawn_the_first_too():
    faces = one_hot([SAD] * 3 + [HAPPY] * 21)  # only the first of 8 blocks is sad
    estimate = estimate_negative_share(faces, NEGATIVE, None, floor=False)
    assert estimate.share == 0.125 and estimate.high > 0.2


def test_without_a_profile_the_top_labels_are_counted_not_the_probabilities():
    unsure = np.tile(np.eye(K)[SAD] * 0.4 + np.eye(K)[HAPPY] * 0.6, (40, 1))
    estimate = estimate_negative_share(unsure, NEGATIVE, None, floor=False)
    assert (estimate.low, estimate.share, estimate.high) == (0.0, 0.0, 0.0)


def test_label_shares_count_every_emotion_even_from_one_face():
    assert label_shares(one_hot([SAD])).tolist() == one_hot([SAD])[0].tolist()
    assert label_shares(one_hot([ANGRY, ANGRY])).shape == (K,)
    assert label_shares(np.zeros((0, K))).tolist() == [0.0] * K


def test_a_profile_without_mean_probabilities_corrects_the_top_labels():
    rates = two_in_three_rates()
    hard = ErrorProfile(confusion=rates * 300)
    mix = np.zeros(K)
    mix[[SAD, HAPPY]] = [0.7, 0.3]
    faces = faces_with_label_shares(mix, rates, 5_000) * 0.6 + 0.4 / K  # soft, same top labels
    assert probabilistic_adjusted_count(faces, hard) == pytest.approx(mix, abs=0.002)
    assert probabilistic_adjusted_count(faces, hard) == pytest.approx(adjusted_count(faces, hard))


def test_em_divides_by_the_training_priors_it_was_given():
    """As above, with posteriors made under uneven training priors: EM must take those priors
    out before it puts the session's in, and it settles within its default iterations."""
    rng = np.random.default_rng(5)
    likelihood = rng.dirichlet(np.ones(K) * 0.7, size=K) + 2 * np.eye(K)
    likelihood /= likelihood.sum(axis=1, keepdims=True)
    training = np.array([0.14, 0.02, 0.14, 0.25, 0.17, 0.11, 0.17])
    posterior = training[:, None] * likelihood
    posterior = (posterior / posterior.sum(axis=0)).T
    truth = np.array([0.3, 0.0, 0.2, 0.05, 0.3, 0.05, 0.1])
    faces = np.repeat(posterior, np.round(truth @ likelihood * 20_000).astype(int), axis=0)
    assert em_priors(faces, training) == pytest.approx(truth, abs=0.01)


def test_an_uneven_last_block_counts_as_a_block_in_the_widening():
    """25 faces in blocks of 3: nine blocks, the last of one face."""
    faces = one_hot([SAD if i % 7 < 3 else HAPPY for i in range(25)])
    assert block_length(25, 30) == 3
    estimate = estimate_negative_share(faces, NEGATIVE, None, floor=False)
    assert (estimate.low, estimate.high) == pytest.approx(_raw_interval(faces, 3), rel=1e-9)


def test_the_simplex_solver_reaches_an_interior_optimum_exactly():
    """A poorly conditioned soft confusion (neighbouring classes alike), as the shipped one."""
    rates = 0.55 * np.eye(K) + 0.35 * np.roll(np.eye(K), 1, axis=1) + 0.1 / K
    truth = np.array([[0.1, 0.05, 0.2, 0.15, 0.25, 0.1, 0.15], [0.3, 0.1, 0.1, 0.1, 0.1, 0.2, 0.1]])
    solved = simplex_least_squares(rates, truth @ rates)
    assert solved == pytest.approx(truth, abs=1e-6)


def test_reweighting_moves_each_posterior_by_the_ratio_of_new_to_training_priors():
    faces = np.array([[0.5, 0, 0, 0.25, 0.25, 0, 0], one_hot([HAPPY])[0]])
    training = np.array([0.2, 0.1, 0.1, 0.25, 0.1, 0.05, 0.2])
    mix = np.array([0.1, 0, 0, 0.1, 0.8, 0, 0])
    weighted = np.array([0.5 * 0.1 / 0.2, 0, 0, 0.25 * 0.1 / 0.25, 0.25 * 0.8 / 0.1, 0, 0])
    moved = reweighted(faces, mix, training)
    assert moved[0] == pytest.approx(weighted / weighted.sum())
    assert moved[1] == pytest.approx(one_hot([HAPPY])[0])  # each face normalised on its own


# --- the interval across face sources, and its floor --------------------------------------------


def _profile(rates: np.ndarray, faces: int = 300) -> ErrorProfile:
    return ErrorProfile(confusion=rates * faces, mean_probabilities=rates)


def test_held_still_faces_count_as_one_expression_and_a_new_label_or_a_big_move_as_another():
    calm = np.eye(K)[NEUTRAL] * 0.7 + 0.3 / K
    nudged = calm + 0.05 * (np.eye(K)[SAD] - np.eye(K)[NEUTRAL])
    moved = calm + 0.3 * (np.eye(K)[SAD] - np.eye(K)[NEUTRAL])  # still neutral on top
    assert distinct_expressions(np.array([calm] * 15)) == 1
    assert distinct_expressions(np.array([calm, nudged] * 7)) == 1
    assert distinct_expressions(np.array([calm, moved, moved, calm])) == 3
    assert distinct_expressions(one_hot([SAD, SAD, HAPPY, SAD])) == 3
    assert distinct_expressions(np.zeros((0, K))) == 0


def test_fifteen_faces_of_one_expression_do_not_give_a_zero_width_interval():
    """The 20-second sample video: one calm face held still. Its share is 0%, but one
    expression cannot pin it to 0-0%."""
    calm = np.tile(np.eye(K)[NEUTRAL] * 0.8 + 0.2 / K, (15, 1))
    estimate = estimate_negative_share(calm, NEGATIVE, _profile(two_in_three_rates()))
    assert estimate.low == 0.0 and estimate.high > 0.5
    many = np.repeat(one_hot([NEUTRAL, HAPPY] * 30) * 0.8 + 0.2 / K, 10, axis=0)
    wide = estimate_negative_share(many, NEGATIVE, _profile(two_in_three_rates()))
    assert 0.0 < wide.high < estimate.high


def test_the_wilson_floor_is_the_textbook_interval():
    low, high = wilson_interval(0.0, 3)
    assert low == 0.0 and high == pytest.approx(1.645 ** 2 / (3 + 1.645 ** 2), abs=1e-3)
    low, high = wilson_interval(0.5, 100)
    assert (low, high) == pytest.approx((0.5 - 0.0805, 0.5 + 0.0805), abs=2e-3)
    assert wilson_interval(0.3, 0) == (0.0, 1.0)


def test_the_interval_spans_the_shares_every_source_profile_implies():
    """A second source whose model reads a sad face as neutral half the time implies a larger
    true sad share for the same answers: the interval reaches it."""
    rates = two_in_three_rates()
    darker = rates.copy()
    darker[SAD] = 0.0
    darker[SAD, [SAD, NEUTRAL]] = 0.5
    faces = np.repeat(one_hot([SAD, NEUTRAL, HAPPY, NEUTRAL] * 15) * 0.9 + 0.1 / K, 10, axis=0)
    main = _profile(rates)
    alone = estimate_negative_share(faces, NEGATIVE, main)
    both = estimate_negative_share(faces, NEGATIVE, main.with_others([_profile(darker)]))
    assert both.share == pytest.approx(alone.share, abs=1e-6)
    under_darker = estimate_negative_share(faces, NEGATIVE, _profile(darker)).share
    assert under_darker > alone.high
    assert both.low <= alone.low and both.high >= under_darker


def test_the_range_reaches_the_models_own_uncorrected_reading():
    """People who see fewer negative faces than every labelling crowd behind the profiles (as
    FER+'s voters do) read a session nearer to what the model itself says than to any
    correction: the range reaches down to the model's mean chance of angry, sad or fear."""
    profile = shipped_profile()
    true_mix = np.zeros(K)
    true_mix[[ANGRY, FEAR, SAD]] = [0.3, 0.3, 0.4]
    faces = np.repeat(profile.mean_probabilities, np.round(true_mix * 600).astype(int), axis=0)
    own = faces[:, [ANGRY, FEAR, SAD]].sum(axis=1).mean()
    corrected = source_spread(faces, [ANGRY, FEAR, SAD], profile, own_reading=False)
    assert own < 0.75 and corrected.share > 0.97 and corrected.interval()[0] > own
    estimate = estimate_negative_share(faces, NEGATIVE, profile, floor=False)
    assert estimate.share == pytest.approx(corrected.share, abs=1e-6)
    assert estimate.low <= own < estimate.share
