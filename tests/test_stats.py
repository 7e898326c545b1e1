"""Tests for ryot.stats against numbers computed by hand."""

import json
import math
import statistics

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ryot.judge.stats import (
    Estimate,
    aa_noise,
    difference_estimate,
    improvement_estimate,
    non_inferior,
    ratio_improvements,
    speedup_estimate,
    speedups,
    time_to_loss,
    tost_equivalent,
)

# Student-t 0.975 quantile for df=2; closed form (2p - 1) / sqrt(2p(1 - p)) at p = 0.975.
T_975_DF2 = 4.302652729749462
T_975_DF3 = 3.1824463052837078


def test_t_quantile_literal_matches_closed_form():
    p = 0.975
    assert T_975_DF2 == pytest.approx((2 * p - 1) / math.sqrt(2 * p * (1 - p)), rel=1e-15)


# --- per-pair values ---------------------------------------------------------------


def test_speedups_per_pair_exact():
    assert speedups([10, 12, 8], [5, 9, 6]) == [0.5, 0.25, 0.25]


def test_ratio_improvements_per_pair_exact():
    assert ratio_improvements([100, 200, 50], [150, 200, 100]) == [0.5, 0.0, 1.0]


# --- speedup_estimate ----------------------------------------------------------------


def test_speedup_zero_spread_is_exact_point():
    est = speedup_estimate([10, 10, 10], [6, 6, 6])
    assert est.values == (0.4, 0.4, 0.4)
    assert est.point == est.low == est.high == 0.4
    assert est.n == 3
    assert est.level == 0.95
    assert est.method == "t on log ratios"


def test_speedup_ci_matches_hand_computation():
    est = speedup_estimate([10, 12, 8], [5, 9, 6])
    x = [math.log(5 / 10), math.log(9 / 12), math.log(6 / 8)]
    m, sd = statistics.mean(x), statistics.stdev(x)
    half = T_975_DF2 * sd / math.sqrt(3)
    assert est.values == (0.5, 0.25, 0.25)
    # The geometric mean of the ratios 0.5, 0.75, 0.75 (the centre of the log interval), not
    # the median 0.25 of the speedups.
    assert est.point == pytest.approx(1 - (0.5 * 0.75 * 0.75) ** (1 / 3), rel=1e-12)
    assert est.point == pytest.approx(0.3448147, abs=1e-7)
    # 1 - exp(x) is decreasing, so the upper log bound is the lower speedup bound.
    assert est.low == pytest.approx(1 - math.exp(m + half), rel=1e-12)
    assert est.high == pytest.approx(1 - math.exp(m - half), rel=1e-12)
    assert est.low < est.point < est.high


def test_speedup_ci_level_90_uses_its_own_quantile():
    # df=2 closed form at p = 0.95.
    p = 0.95
    t90 = (2 * p - 1) / math.sqrt(2 * p * (1 - p))
    est = speedup_estimate([10, 12, 8], [5, 9, 6], level=0.90)
    x = [math.log(0.5), math.log(0.75), math.log(0.75)]
    m, sd = statistics.mean(x), statistics.stdev(x)
    assert est.level == 0.90
    assert est.low == pytest.approx(1 - math.exp(m + t90 * sd / math.sqrt(3)), rel=1e-12)
    assert est.high == pytest.approx(1 - math.exp(m - t90 * sd / math.sqrt(3)), rel=1e-12)
    wide = speedup_estimate([10, 12, 8], [5, 9, 6])
    assert wide.low < est.low and est.high < wide.high


def test_speedup_n1_has_no_interval():
    est = speedup_estimate([10], [7])
    assert est.point == pytest.approx(0.3, abs=1e-15)
    assert est.low == -math.inf and est.high == math.inf
    assert est.method == "t on log ratios (n=1: no interval)"
    imp = improvement_estimate([10], [7])
    assert (imp.low, imp.high) == (-math.inf, math.inf)
    assert est.to_dict()["low"] is None and est.to_dict()["high"] is None


def test_speedup_even_n_point_is_the_geometric_mean():
    est = speedup_estimate([10, 10, 10, 10], [5, 6, 7, 8])
    # Not the median of the speedups, (0.4 + 0.3) / 2 = 0.35.
    assert est.point == pytest.approx(1 - (0.5 * 0.6 * 0.7 * 0.8) ** 0.25, rel=1e-12)
    assert est.point == pytest.approx(0.3597828, abs=1e-7)
    x = [math.log(r) for r in (0.5, 0.6, 0.7, 0.8)]
    half = T_975_DF3 * statistics.stdev(x) / 2
    assert est.low == pytest.approx(1 - math.exp(statistics.mean(x) + half), rel=1e-12)
    assert est.high == pytest.approx(1 - math.exp(statistics.mean(x) - half), rel=1e-12)


# --- improvement_estimate ------------------------------------------------------------


def test_improvement_zero_spread():
    est = improvement_estimate([100, 50], [150, 75])
    assert est.values == (0.5, 0.5)
    assert est.point == est.low == est.high == 0.5


def test_improvement_ci_matches_hand_computation():
    est = improvement_estimate([100, 200, 50], [150, 200, 100])
    x = [math.log(1.5), math.log(1.0), math.log(2.0)]
    m, sd = statistics.mean(x), statistics.stdev(x)
    half = T_975_DF2 * sd / math.sqrt(3)
    assert est.values == (0.5, 0.0, 1.0)
    assert est.point == pytest.approx(3 ** (1 / 3) - 1, rel=1e-12)  # geomean(1.5, 1, 2) - 1
    assert est.low == pytest.approx(math.exp(m - half) - 1, rel=1e-12)
    assert est.high == pytest.approx(math.exp(m + half) - 1, rel=1e-12)


# --- difference_estimate -------------------------------------------------------------


def test_difference_ci_matches_hand_computation():
    est = difference_estimate([2.0, 2.5, 3.0], [2.5, 2.5, 4.0])
    d = [0.5, 0.0, 1.0]
    half = T_975_DF2 * statistics.stdev(d) / math.sqrt(3)
    assert est.values == tuple(d)
    assert est.point == 0.5
    assert est.low == pytest.approx(0.5 - half, rel=1e-12)
    assert est.high == pytest.approx(0.5 + half, rel=1e-12)
    assert est.method == "t on paired differences"


def test_difference_point_is_the_mean_not_the_median():
    est = difference_estimate([0.0, 0.0, 0.0], [0.0, 0.1, 0.5])
    assert est.point == pytest.approx(0.2, abs=1e-15)  # the median would be 0.1


def test_difference_allows_negative_and_zero_values():
    est = difference_estimate([0.0, -1.0], [-0.25, -1.25])
    assert est.values == (-0.25, -0.25)
    assert est.point == est.low == est.high == -0.25


def test_difference_n1():
    est = difference_estimate([1.0], [0.5])
    assert (est.point, est.low, est.high) == (-0.5, -math.inf, math.inf)
    assert est.method == "t on paired differences (n=1: no interval)"


# --- aa_noise ------------------------------------------------------------------------


def test_aa_noise_is_the_median_step_ratio():
    assert aa_noise([10.0], [11.0]) == pytest.approx(0.1, abs=1e-15)
    assert aa_noise([10.0], [9.0]) == pytest.approx(0.1, abs=1e-15)
    assert aa_noise([4.0, 2.0], [4.0, 2.0]) == 0.0
    # ratios 1.0, 1.02, 1.04: the median is 1.02
    assert aa_noise([1.0, 1.0, 1.0], [1.0, 1.02, 1.04]) == pytest.approx(0.02, abs=1e-12)


def test_aa_noise_one_stalled_step_cannot_move_it():
    base = [0.5] * 20
    aa = [0.51] * 19 + [6.5]  # a 6 s stall in one step of the A/A run
    assert aa_noise(base, aa) == pytest.approx(0.02, abs=1e-12)
    assert abs(1 - sum(aa) / sum(base)) > 0.5  # what one end-to-end draw would have read


def test_aa_noise_compares_the_common_prefix():
    # The A/A run stops early: only the steps both took are compared.
    assert aa_noise([1.0, 1.0, 9.0, 9.0], [1.1, 1.1]) == pytest.approx(0.1, abs=1e-12)


def test_aa_noise_leaves_out_a_step_taken_whole_off_the_clock():
    # a 5 ms step the stall monitor charged whole to the machine has no time to compare
    assert aa_noise([1.0, 0.0, 1.0], [1.1, 1.0, 1.1]) == pytest.approx(0.1, abs=1e-12)
    assert aa_noise([0.0], [1.0]) == math.inf  # nothing left: no evidence of a quiet machine


def test_aa_noise_rejects_bad_times():
    with pytest.raises(ValueError, match=r"aa_steps\[0\] = -1\.0"):
        aa_noise([1.0], [-1.0])
    with pytest.raises(ValueError, match=r"base_steps\[0\] = inf"):
        aa_noise([math.inf], [1.0])
    with pytest.raises(ValueError, match="empty"):
        aa_noise([], [1.0])


# --- time_to_loss --------------------------------------------------------------------


def test_time_to_loss_interpolates_the_first_crossing():
    # 5.0 at 10 s, 3.0 at 20 s: 4.0 is crossed half-way, at 15 s; the later dip is ignored.
    clock, losses = [0.0, 10.0, 20.0, 30.0], [7.0, 5.0, 3.0, 2.0]
    assert time_to_loss(clock, losses, 4.0) == pytest.approx(15.0, abs=1e-12)
    assert time_to_loss(clock, losses, 4.5) == pytest.approx(12.5, abs=1e-12)
    assert time_to_loss(clock, losses, 5.0) == 10.0  # reached exactly at a point
    assert time_to_loss([0.0, 4.0, 8.0], [6.0, 3.0, 6.0], 5.0) == pytest.approx(4 / 3)


def test_time_to_loss_is_monotone_a_rise_cannot_lose_time():
    # The curve dips to 3.0 at 10 s, rises to 3.6 and ends at 3.2: 3.2 was first reached on
    # the way down to the dip (running minimum), not at the end.
    clock, losses = [0.0, 10.0, 20.0, 30.0], [5.0, 3.0, 3.6, 3.2]
    assert time_to_loss(clock, losses, 3.2) == pytest.approx(9.0, abs=1e-12)
    # Interpolation runs on the running minimum: after a rise (4.0 -> 4.5) the segment to the
    # next point starts from the best so far (4.0), not from the rise.
    clock, losses = [0.0, 10.0, 20.0, 30.0], [6.0, 4.0, 4.5, 3.0]
    assert time_to_loss(clock, losses, 3.5) == pytest.approx(20.0 + 10.0 * 0.5, abs=1e-12)


def test_time_to_loss_first_point_already_there():
    assert time_to_loss([2.5, 5.0], [3.0, 2.0], 3.0) == 2.5
    assert time_to_loss([2.5, 5.0], [1.0, 2.0], 3.0) == 2.5


def test_time_to_loss_at_the_final_loss_is_reached_by_construction():
    clock, losses = [0.0, 5.0, 9.0, 10.0], [7.0, 3.0, 2.71, 2.70]
    assert time_to_loss(clock, losses, losses[-1]) == 10.0


def test_time_to_loss_never_reached_is_infinite():
    assert time_to_loss([0.0, 1.0, 2.0], [7.0, 6.0, 5.01], 5.0) == math.inf
    assert time_to_loss([], [], 5.0) == math.inf


def test_time_to_loss_skips_points_without_a_loss():
    # The None and NaN points neither reach the loss nor anchor the interpolation.
    clock, losses = [0.0, 10.0, 20.0, 30.0], [6.0, None, math.nan, 2.0]
    assert time_to_loss(clock, losses, 4.0) == pytest.approx(15.0, abs=1e-12)
    assert time_to_loss([0.0, 1.0], [None, math.nan], 4.0) == math.inf


@pytest.mark.parametrize(
    "clock, losses, loss, pattern",
    [
        ([0.0, 2.0, 1.0], [3.0, 2.0, 1.0], 1.5, r"clock_s\[2\] = 1\.0"),
        ([0.0, math.nan], [3.0, 2.0], 1.5, r"clock_s\[1\] = nan"),
        ([0.0, 1.0], [3.0], 1.5, "2 points but losses has 1"),
        ([0.0, 1.0], [3.0, 2.0], math.nan, "loss = nan"),
    ],
)
def test_time_to_loss_rejects_bad_curves(clock, losses, loss, pattern):
    with pytest.raises(ValueError, match=pattern):
        time_to_loss(clock, losses, loss)


# --- non_inferior --------------------------------------------------------------------


def test_non_inferior_needs_the_upper_bound_below_the_margin():
    assert non_inferior(_delta(0.02, 0.09), 0.1)
    assert not non_inferior(_delta(0.02, 0.1), 0.1)  # strictly below
    assert non_inferior(_delta(-0.5, -0.2), 0.1)  # learns more: no failure of quality
    assert not non_inferior(_delta(-0.5, math.inf), 0.1)
    assert not non_inferior(_delta(math.nan, math.nan), 0.1)
    with pytest.raises(ValueError, match="margin must be positive"):
        non_inferior(_delta(0.0, 0.0), 0.0)


# --- tost_equivalent -----------------------------------------------------------------


def _delta(low, high):
    return Estimate((low + high) / 2, low, high, 0.95, 3, "m", (0.0, 0.0, 0.0))


def test_tost_needs_the_whole_ci_inside_the_margin():
    assert tost_equivalent(_delta(-0.05, 0.08), 0.1)
    assert not tost_equivalent(_delta(-0.05, 0.12), 0.1)  # the point 0.035 alone would pass
    assert not tost_equivalent(_delta(-0.11, 0.02), 0.1)
    assert not tost_equivalent(_delta(-0.1, 0.0), 0.1)  # the margin itself is not inside


def test_tost_unbounded_or_missing_ci_is_not_equivalence():
    assert not tost_equivalent(difference_estimate([1.0], [1.0]), 0.1)  # n = 1: no interval
    assert not tost_equivalent(Estimate.empty(0.95), 0.1)
    with pytest.raises(ValueError, match="margin"):
        tost_equivalent(_delta(-0.05, 0.05), 0.0)


def test_tost_on_a_real_estimate():
    tight = difference_estimate([5.0, 5.1, 4.9], [5.01, 5.12, 4.93])
    wide = difference_estimate([5.0, 5.1, 4.9], [5.09, 5.02, 4.98])
    assert abs(tight.point) < 0.1 and abs(wide.point) < 0.1
    assert tost_equivalent(tight, 0.1)
    assert not tost_equivalent(wide, 0.1)


# --- validation ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "base, opt, pattern",
    [
        ([10, -1, 8], [5, 9, 6], r"base_times\[1\] = -1\.0"),
        ([10, 12, 8], [5, 9, 0], r"opt_times\[2\] = 0\.0"),
        ([10, math.nan], [5, 9], r"base_times\[1\] = nan"),
        ([math.inf], [5], r"base_times\[0\] = inf"),
        ([10, 12], [5], r"2 values .* 1"),
        ([], [], r"empty"),
    ],
)
def test_speedup_rejects_bad_input(base, opt, pattern):
    with pytest.raises(ValueError, match=pattern):
        speedup_estimate(base, opt)
    with pytest.raises(ValueError, match=pattern):
        speedups(base, opt)


def test_improvement_rejects_bad_rates():
    with pytest.raises(ValueError, match=r"opt_rates\[0\] = -3\.0"):
        improvement_estimate([1.0], [-3.0])
    with pytest.raises(ValueError, match=r"base_rates\[0\] = 0\.0"):
        ratio_improvements([0.0], [1.0])


def test_difference_rejects_bad_input():
    with pytest.raises(ValueError, match=r"opt_values\[1\] = nan"):
        difference_estimate([1.0, 2.0], [1.0, math.nan])
    with pytest.raises(ValueError, match="values but"):
        difference_estimate([1.0, 2.0], [1.0])


@pytest.mark.parametrize("level", [0.0, 1.0, 95, -0.5])
def test_rejects_bad_level(level):
    with pytest.raises(ValueError, match="level"):
        speedup_estimate([10, 12], [5, 9], level=level)


# --- Estimate.to_dict ----------------------------------------------------------------


def test_to_dict_is_json_ready():
    est = Estimate(0.25, -math.inf, math.nan, 0.95, 1, "m", (0.25, math.inf))
    d = est.to_dict()
    assert d == {
        "point": 0.25,
        "low": None,
        "high": None,
        "level": 0.95,
        "n": 1,
        "method": "m",
        "values": [0.25, None],
    }
    json.dumps(d, allow_nan=False)


def test_estimate_is_frozen():
    est = speedup_estimate([10], [6])
    with pytest.raises(AttributeError):
        est.point = 0.0


def test_empty_estimate_has_no_numbers():
    d = Estimate.empty(0.9, "no complete pair").to_dict()
    assert d == {"point": None, "low": None, "high": None, "level": 0.9, "n": 0,
                 "method": "no complete pair", "values": []}  # fmt: skip


# --- properties ----------------------------------------------------------------------

_time = st.floats(min_value=1e-3, max_value=1e3, allow_nan=False, allow_infinity=False)
_pairs = st.lists(st.tuples(_time, _time), min_size=2, max_size=8)


def _close(a, b):
    return a == pytest.approx(b, rel=1e-9, abs=1e-9)


@given(_pairs, st.sampled_from([0.8, 0.9, 0.95, 0.99]))
def test_property_interval_ordered(pairs, level):
    base, opt = [b for b, _ in pairs], [o for _, o in pairs]
    for est in (
        speedup_estimate(base, opt, level),
        improvement_estimate(base, opt, level),
        difference_estimate(base, opt, level),
    ):
        assert est.low <= est.high
        # The point is the interval's own centre, so it never falls outside it.
        assert est.low - 1e-12 <= est.point <= est.high + 1e-12
        assert est.n == len(pairs)
        assert not math.isnan(est.low) and not math.isnan(est.high)  # may be unbounded


@given(_pairs, st.floats(min_value=1e-3, max_value=1e3))
def test_property_scaling_all_times_leaves_estimate_unchanged(pairs, c):
    base, opt = [b for b, _ in pairs], [o for _, o in pairs]
    a = speedup_estimate(base, opt)
    b = speedup_estimate([c * x for x in base], [c * x for x in opt])
    assert _close(a.point, b.point)
    assert _close(a.low, b.low)
    assert _close(a.high, b.high)


# Narrower range so 1 - 1/(1 - s) stays well conditioned at the interval ends.
_mild = st.floats(min_value=1.0, max_value=2.0)


@given(st.lists(st.tuples(_mild, _mild), min_size=2, max_size=8))
def test_property_swapping_arms_inverts_speedup(pairs):
    base, opt = [b for b, _ in pairs], [o for _, o in pairs]
    forward, backward = speedups(base, opt), speedups(opt, base)
    for s, s_swapped in zip(forward, backward, strict=True):
        assert _close(s_swapped, 1 - 1 / (1 - s))
    # The log interval is symmetric, so the swapped interval is the mapped one, reversed.
    a, b = speedup_estimate(base, opt), speedup_estimate(opt, base)
    assert _close(b.low, 1 - 1 / (1 - a.high))
    assert _close(b.high, 1 - 1 / (1 - a.low))
