"""Tests for pytest_agentops.stats: scipy as the independent reference, simulation for error rates.

Every simulation uses a fixed numpy seed, so it is deterministic; its tolerance is still stated
as SLACK_SE binomial standard errors of the simulated fraction, so that a correct formula
passes for (almost) any seed and a wrong one (two-sided instead of one-sided, off-by-one rank,
Wilson instead of exact) lands well outside it.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import re
from fractions import Fraction

import numpy as np
import pytest
import scipy.stats
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_agentops.stats import (
    RateBounds,
    binom_cdf,
    binom_sf,
    clopper_pearson_lower,
    clopper_pearson_upper,
    look_schedule,
    min_trials_for_quantile_bound,
    per_look_alpha,
    quantile,
    quantile_lower_bound,
    quantile_upper_bound,
    rate_bounds,
    trials_to_decide,
    wilson_lower,
    wilson_upper,
    zero_violation_upper,
)

SLACK_SE = 3.0  # simulation tolerance, in binomial standard errors of the simulated fraction
# The hypothesis examples are cheap, but CI machines are slow: no deadline, bounded example counts.
PROPERTY = settings(max_examples=150, deadline=None)

# Bounded strategies. n <= 2000 keeps each scipy reference call and each of our root finds
# well under a millisecond, so 150 examples stay cheap; larger n is covered by the fixed grid.
small_n = st.integers(min_value=1, max_value=2000)
# Confidence in [0.5, 0.9999]: the range gates use; below 0.5 a "lower" bound is above k/n, and
# beyond 0.9999 scipy's beta.ppf itself loses the 1e-9 accuracy we compare at.
confidences = st.floats(min_value=0.5, max_value=0.9999)
# Quantile levels away from 0 and 1, where order-statistic bounds need n in the tens of thousands.
quantile_levels = st.floats(min_value=0.01, max_value=0.99)


def sim_slack(p: float, m: int) -> float:
    """SLACK_SE standard errors of a fraction estimated from m simulated campaigns at true value p."""
    return SLACK_SE * math.sqrt(p * (1.0 - p) / m)


# Bound computations repeat for the same (k, n) across thousands of simulated campaigns.
cp_lower = functools.lru_cache(maxsize=None)(clopper_pearson_lower)
cp_upper = functools.lru_cache(maxsize=None)(clopper_pearson_upper)
w_lower = functools.lru_cache(maxsize=None)(wilson_lower)
w_upper = functools.lru_cache(maxsize=None)(wilson_upper)


def apply_cached(func, ks: np.ndarray, n: int, confidence: float) -> np.ndarray:
    """func(k, n, confidence) for each k in ks, computed once per distinct k."""
    values = {int(k): func(int(k), n, confidence) for k in np.unique(ks)}
    return np.array([values[int(k)] for k in ks])


def ref_cp(k: int, n: int, confidence: float) -> tuple[float, float]:
    """One-sided Clopper-Pearson bounds from scipy's beta quantiles (the textbook definition)."""
    lower = 0.0 if k == 0 else float(scipy.stats.beta.ppf(1 - confidence, k, n - k + 1))
    upper = 1.0 if k == n else float(scipy.stats.beta.ppf(confidence, k + 1, n - k))
    return lower, upper


def exact_coverage(bound, n: int, p: float, confidence: float, side: str) -> float:
    """Exact coverage P(bound covers p) under Binom(n, p), summing the pmf (scipy) over covering k."""
    ks = np.arange(n + 1)
    values = apply_cached(bound, ks, n, confidence)
    covers = values <= p if side == "lower" else values >= p
    return float(scipy.stats.binom.pmf(ks, n, p)[covers].sum())


# ----------------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: clopper_pearson_lower(1, 10, 1.5), "confidence=1.5 must be in (0, 1)"),
        (lambda: clopper_pearson_upper(1, 10, 0.0), "confidence=0.0 must be in (0, 1)"),
        (lambda: wilson_lower(1, 10, 1.0), "confidence=1.0 must be in (0, 1)"),
        (lambda: rate_bounds(1, 10, float("nan")), "confidence=nan must be in (0, 1)"),
        (lambda: clopper_pearson_lower(11, 10), "k=11 must be in [0, n=10]"),
        (lambda: wilson_upper(-1, 10), "k=-1 must be in [0, n=10]"),
        (lambda: binom_cdf(3, -1, 0.5), "n=-1 must be >= 0"),
        (lambda: zero_violation_upper(-2), "n=-2 must be >= 0"),
        (lambda: binom_sf(3, 5, 1.5), "p=1.5 must be in [0, 1]"),
        (lambda: quantile([1.0, 2.0], 1.0), "q=1.0 must be in (0, 1)"),
        (lambda: quantile_upper_bound([1.0], 0.0), "q=0.0 must be in (0, 1)"),
        (lambda: min_trials_for_quantile_bound(0.95, 2.0), "confidence=2.0 must be in (0, 1)"),
        (lambda: quantile([], 0.5), "empty"),
        (lambda: quantile([1.0, float("nan")], 0.5), "NaN"),
        (lambda: trials_to_decide(5, 10, 0.9, ">"), "direction='>' must be one of"),
        (lambda: trials_to_decide(5, 10, 1.2, ">="), "threshold=1.2 must be in [0, 1]"),
        (lambda: look_schedule(0), "max_trials=0 must be >= 1"),
        (lambda: look_schedule(100, first=0), "first=0 must be >= 1"),
        (lambda: per_look_alpha(0.05, 0), "looks=0 must be >= 1"),
        (lambda: per_look_alpha(1.5, 3), "alpha=1.5 must be in (0, 1)"),
    ],
)
def test_invalid_arguments_raise_value_error(call, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        call()


# ------------------------------------------------------------------------- binomial tails

# Edge cases: k = 0 and k = n, n = 1, n = 5000 and 100_000 (log-space stability), extreme p.
TAIL_GRID = [
    (0, 1, 0.3),
    (1, 1, 0.3),
    (0, 10, 0.5),
    (10, 10, 0.5),
    (3, 10, 1e-9),
    (9, 10, 1 - 1e-9),
    (0, 5000, 0.001),
    (2500, 5000, 0.5),
    (4900, 5000, 0.99),
    (4999, 5000, 0.999),
    (5000, 5000, 0.999),
    (100, 5000, 0.05),  # far lower tail, ~1e-70
    (400, 5000, 0.05),  # far upper tail
    (50_000, 100_000, 0.5),
    (49_000, 100_000, 0.5),  # ~6 sd below the mean
    (99_000, 100_000, 0.99),
    (98_500, 100_000, 0.99),  # ~16 sd below: ~1e-55
    (0, 100_000, 1e-6),
    (1, 100_000, 1e-6),
]


@pytest.mark.parametrize(("k", "n", "p"), TAIL_GRID)
def test_binom_tails_match_scipy_on_grid(k, n, p):
    assert binom_cdf(k, n, p) == pytest.approx(scipy.stats.binom.cdf(k, n, p), rel=1e-10, abs=1e-300)
    assert binom_sf(k, n, p) == pytest.approx(scipy.stats.binom.sf(k, n, p), rel=1e-10, abs=1e-300)


@PROPERTY
@given(data=st.data(), n=st.integers(min_value=0, max_value=5000), p=st.floats(min_value=0.0, max_value=1.0))
def test_binom_tails_match_scipy_property(data, n, p):
    # n <= 5000: large enough for the summation window to be exercised, small enough to be fast.
    k = data.draw(st.integers(min_value=0, max_value=n))
    cdf, sf = binom_cdf(k, n, p), binom_sf(k, n, p)
    # Tails below 1e-250 are compared absolutely: scipy itself is not accurate that far out.
    assert cdf == pytest.approx(scipy.stats.binom.cdf(k, n, p), rel=1e-9, abs=1e-250)
    assert sf == pytest.approx(scipy.stats.binom.sf(k, n, p), rel=1e-9, abs=1e-250)
    assert cdf + sf == pytest.approx(1.0, abs=1e-12)


def test_binom_tails_edge_probabilities():
    assert binom_cdf(0, 0, 0.5) == 1.0
    assert binom_sf(0, 0, 0.5) == 0.0
    assert binom_cdf(2, 5, 0.0) == 1.0 and binom_sf(2, 5, 0.0) == 0.0
    assert binom_cdf(4, 5, 1.0) == 0.0 and binom_sf(4, 5, 1.0) == 1.0
    assert binom_cdf(5, 5, 1.0) == 1.0 and binom_sf(5, 5, 1.0) == 0.0


# ------------------------------------------------------------------------ Clopper-Pearson

CP_GRID = [
    (0, 1),
    (1, 1),
    (0, 5),
    (5, 5),
    (1, 5),
    (4, 5),
    (0, 200),
    (1, 200),
    (197, 200),
    (199, 200),
    (200, 200),
    (0, 5000),
    (1, 5000),
    (2500, 5000),
    (4999, 5000),
    (5000, 5000),
    (3, 100_000),
    (99_990, 100_000),
    (500_000, 1_000_000),
]


@pytest.mark.parametrize("confidence", [0.8, 0.95, 0.99])
@pytest.mark.parametrize(("k", "n"), CP_GRID)
def test_clopper_pearson_matches_scipy_beta_on_grid(k, n, confidence):
    lower, upper = ref_cp(k, n, confidence)
    assert clopper_pearson_lower(k, n, confidence) == pytest.approx(lower, abs=1e-9, rel=1e-9)
    assert clopper_pearson_upper(k, n, confidence) == pytest.approx(upper, abs=1e-9, rel=1e-9)


@pytest.mark.parametrize(("k", "n"), [(0, 1), (1, 1), (0, 20), (7, 20), (20, 20), (180, 200), (2500, 5000)])
def test_clopper_pearson_matches_scipy_binomtest(k, n):
    # One-sided at c is the matching half of scipy's two-sided interval at 2c - 1 ...
    two_sided = scipy.stats.binomtest(k, n).proportion_ci(confidence_level=2 * 0.95 - 1, method="exact")
    assert clopper_pearson_lower(k, n, 0.95) == pytest.approx(two_sided.low, abs=1e-9)
    assert clopper_pearson_upper(k, n, 0.95) == pytest.approx(two_sided.high, abs=1e-9)
    # ... and scipy's own one-sided intervals at c.
    greater = scipy.stats.binomtest(k, n, alternative="greater").proportion_ci(0.95, method="exact")
    less = scipy.stats.binomtest(k, n, alternative="less").proportion_ci(0.95, method="exact")
    assert clopper_pearson_lower(k, n, 0.95) == pytest.approx(greater.low, abs=1e-9)
    assert clopper_pearson_upper(k, n, 0.95) == pytest.approx(less.high, abs=1e-9)


@PROPERTY
@given(data=st.data(), n=small_n, confidence=confidences)
def test_clopper_pearson_matches_scipy_beta_property(data, n, confidence):
    k = data.draw(st.integers(min_value=0, max_value=n))
    lower, upper = ref_cp(k, n, confidence)
    got_lower, got_upper = clopper_pearson_lower(k, n, confidence), clopper_pearson_upper(k, n, confidence)
    assert got_lower == pytest.approx(lower, abs=1e-9, rel=1e-9)
    assert got_upper == pytest.approx(upper, abs=1e-9, rel=1e-9)
    assert 0.0 <= got_lower <= k / n <= got_upper <= 1.0


def test_clopper_pearson_edges():
    assert clopper_pearson_lower(0, 10) == 0.0
    assert clopper_pearson_upper(10, 10) == 1.0
    assert clopper_pearson_lower(0, 0) == 0.0 and clopper_pearson_upper(0, 0) == 1.0
    assert clopper_pearson_lower(10, 10) == pytest.approx(0.05 ** (1 / 10), rel=1e-14)
    # Tighter with more confidence lost: the 99% lower bound is below the 95% one.
    assert clopper_pearson_lower(90, 100, 0.99) < clopper_pearson_lower(90, 100, 0.95)


# --------------------------------------------------------------------------------- Wilson


@PROPERTY
@given(data=st.data(), n=small_n, confidence=confidences)
def test_wilson_matches_scipy_property(data, n, confidence):
    k = data.draw(st.integers(min_value=0, max_value=n))
    # scipy's one-sided Wilson (no continuity correction) uses z = ndtri(confidence) like ours
    # and pins the bound to 0 at k = 0 (1 at k = n), as we do.
    greater = scipy.stats.binomtest(k, n, alternative="greater").proportion_ci(confidence, method="wilson")
    less = scipy.stats.binomtest(k, n, alternative="less").proportion_ci(confidence, method="wilson")
    assert wilson_lower(k, n, confidence) == pytest.approx(greater.low, abs=1e-12)
    assert wilson_upper(k, n, confidence) == pytest.approx(less.high, abs=1e-12)


@pytest.mark.parametrize(("k", "n"), [(0, 1), (1, 1), (0, 30), (3, 30), (30, 30), (268, 268), (2500, 5000)])
def test_wilson_matches_closed_form_and_two_sided(k, n):
    z = scipy.stats.norm.ppf(0.95)
    center = (k + z * z / 2) / (n + z * z)
    half = z / (n + z * z) * math.sqrt(k * (n - k) / n + z * z / 4)
    expected_lower = 0.0 if k == 0 else center - half
    expected_upper = 1.0 if k == n else center + half
    assert wilson_lower(k, n) == pytest.approx(expected_lower, abs=1e-12)
    assert wilson_upper(k, n) == pytest.approx(expected_upper, abs=1e-12)
    two_sided = scipy.stats.binomtest(k, n).proportion_ci(confidence_level=0.90, method="wilson")
    assert wilson_lower(k, n) == pytest.approx(two_sided.low, abs=1e-12)
    assert wilson_upper(k, n) == pytest.approx(two_sided.high, abs=1e-12)


# ------------------------------------------------------------------- zero-violation bound


@pytest.mark.parametrize("n", [1, 2, 10, 59, 300, 100_000])
@pytest.mark.parametrize("confidence", [0.9, 0.95, 0.99])
def test_zero_violation_upper_is_exact_bound_at_zero(n, confidence):
    bound = zero_violation_upper(n, confidence)
    assert bound == pytest.approx(1 - (1 - confidence) ** (1 / n), rel=1e-12)
    assert bound == pytest.approx(float(scipy.stats.beta.ppf(confidence, 1, n - 0)), rel=1e-9)
    assert bound == clopper_pearson_upper(0, n, confidence)


def test_zero_violation_upper_edges_and_rule_of_three():
    assert zero_violation_upper(0) == 1.0
    assert zero_violation_upper(1_000_000) * 1_000_000 == pytest.approx(-math.log(0.05), rel=1e-5)


@pytest.mark.parametrize("n", [30, 100])
def test_zero_violation_upper_error_rate_at_the_boundary(n):
    # Claiming "rate <= u(n)" after 0 of n violations is wrong only when the true rate exceeds
    # u(n). At exactly p = u(n) the chance of seeing zero violations is exactly alpha, so the
    # false-claim rate at the boundary must be alpha (not below: the bound is tight, not loose),
    # and just above the boundary it must be below alpha.
    rng = np.random.default_rng(20240531 + n)
    m = 20_000
    bound = zero_violation_upper(n)
    at_boundary = np.mean(rng.binomial(n, bound, size=m) == 0)
    assert abs(at_boundary - 0.05) <= sim_slack(0.05, m)
    above = np.mean(rng.binomial(n, min(1.0, bound * 1.5), size=m) == 0)
    assert above <= 0.05 - sim_slack(0.05, m)


# ------------------------------------------------------------------------------ quantiles


def test_quantile_is_inverted_cdf_observed_value():
    rng = np.random.default_rng(7)
    samples = rng.exponential(size=101)
    for q in (0.05, 0.5, 0.9, 0.95, 0.99):
        value = quantile(samples, q)
        assert value == float(np.quantile(samples, q, method="inverted_cdf"))
        assert value in samples
    assert quantile([3.0, 1.0, 2.0], 0.5) == 2.0
    assert quantile(iter([5.0]), 0.99) == 5.0


def test_min_trials_for_quantile_bound_known_values():
    assert min_trials_for_quantile_bound(0.95) == 59
    assert min_trials_for_quantile_bound(0.99) == 299
    assert min_trials_for_quantile_bound(0.5) == 5  # 1 - 0.5**5 = 0.969 >= 0.95 > 1 - 0.5**4


@pytest.mark.parametrize("q", [0.5, 0.9, 0.95, 0.99, 0.999])
@pytest.mark.parametrize("confidence", [0.9, 0.95, 0.99])
def test_min_trials_for_quantile_bound_is_the_threshold(q, confidence):
    n = min_trials_for_quantile_bound(q, confidence)
    # The bound exists iff the sample max qualifies: 1 - q**n >= confidence (scipy's cdf).
    assert scipy.stats.binom.cdf(n - 1, n, q) >= confidence > scipy.stats.binom.cdf(n - 2, n - 1, q)
    assert quantile_upper_bound(np.arange(n, dtype=float), q, confidence) is not None
    assert quantile_upper_bound(np.arange(n - 1, dtype=float), q, confidence) is None


def test_quantile_upper_bound_needs_59_samples_for_p95():
    rng = np.random.default_rng(11)
    samples = rng.exponential(size=59)
    assert quantile_upper_bound(samples[:58], 0.95) is None
    assert quantile_upper_bound(samples, 0.95) == samples.max()  # r = n = 59 at the threshold
    assert quantile_upper_bound([], 0.95) is None
    assert quantile_lower_bound(samples[:58], 0.05) is None  # mirror image of the above
    assert quantile_lower_bound(samples, 0.05) == samples.min()


@PROPERTY
@given(data=st.data(), n=st.integers(min_value=1, max_value=1500), q=quantile_levels, confidence=confidences)
def test_quantile_bound_ranks_match_scipy_binom(data, n, q, confidence):
    # Samples 0, 1, ..., n-1 in shuffled order: the returned value is the 0-based rank.
    samples = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1))).permutation(n).astype(float)
    upper = quantile_upper_bound(samples, q, confidence)
    lower = quantile_lower_bound(samples, q, confidence)
    # Upper: smallest r with P(Binom(n, q) <= r-1) >= confidence, i.e. r - 1 = binom.ppf(confidence).
    # Near-ties (|cdf - confidence| < 1e-12) may legitimately round either way, so check the
    # defining inequalities with scipy's cdf rather than ppf's own rounding.
    cdf = functools.partial(scipy.stats.binom.cdf, n=n, p=q)
    if upper is None:
        assert cdf(n - 1) < confidence + 1e-12
    else:
        r = int(upper) + 1
        assert cdf(r - 1) >= confidence - 1e-12
        assert r == 1 or cdf(r - 2) < confidence + 1e-12
        if abs(cdf(r - 1) - confidence) > 1e-9 and abs(cdf(r - 2) - confidence) > 1e-9:
            assert r - 1 == scipy.stats.binom.ppf(confidence, n, q)
    # Lower: largest r with P(Binom(n, q) >= r) >= confidence.
    sf = functools.partial(scipy.stats.binom.sf, n=n, p=q)  # sf(r - 1) = P(X >= r)
    if lower is None:
        assert sf(0) < confidence + 1e-12
    else:
        r = int(lower) + 1
        assert sf(r - 1) >= confidence - 1e-12
        assert r == n or sf(r) < confidence + 1e-12


def _exponential_p95_coverage(bound_func, n: int, m: int, seed: int) -> float:
    """Fraction of m campaigns of n Exp(1) samples where the bound covers the true p95 = ln 20."""
    true_p95 = math.log(20.0)  # F(x) = 1 - exp(-x) = 0.95  =>  x = ln 20
    samples = np.random.default_rng(seed).exponential(size=(m, n))
    covered = 0
    for row in samples:
        value = bound_func(row, 0.95, 0.95)
        covered += value >= true_p95 if bound_func is quantile_upper_bound else value <= true_p95
    return covered / m


def test_quantile_upper_bound_coverage_simulation():
    n, m = 100, 2000
    # Exact coverage of the order-statistic bound for a continuous law is P(Binom(n, q) <= r-1).
    r = int(scipy.stats.binom.ppf(0.95, n, 0.95)) + 1
    exact = float(scipy.stats.binom.cdf(r - 1, n, 0.95))
    assert 0.95 <= exact < 0.97  # the parameters make an off-by-one rank visible either way
    one_rank_too_high = float(scipy.stats.binom.cdf(r, n, 0.95))
    assert one_rank_too_high - sim_slack(one_rank_too_high, m) > exact + sim_slack(exact, m)
    coverage = _exponential_p95_coverage(quantile_upper_bound, n, m, seed=95)
    assert coverage >= 0.95 - sim_slack(0.95, m)
    assert coverage <= exact + sim_slack(exact, m)


def test_quantile_lower_bound_coverage_simulation():
    n, m = 100, 2000
    coverage = _exponential_p95_coverage(quantile_lower_bound, n, m, seed=96)
    r = int(scipy.stats.binom.ppf(0.05, n, 0.95))  # largest r with P(X >= r) >= 0.95 (no tie here)
    exact = float(scipy.stats.binom.sf(r - 1, n, 0.95))
    assert 0.95 <= exact < 0.98
    assert coverage >= 0.95 - sim_slack(0.95, m)
    assert coverage <= exact + sim_slack(exact, m)


# ------------------------------------------------------------------- rate-bound simulation


@pytest.mark.parametrize(
    ("side", "p", "n"),
    [
        # p = 0.99, n = 500: the lower bound excludes p only at k >= 499; exact coverage 0.960,
        # while a two-sided 95% interval's lower end (one-sided 97.5%) covers 0.993.
        ("lower", 0.99, 500),
        ("lower", 0.90, 300),  # exact 0.954; a two-sided interval's lower end would give 0.983
        ("upper", 0.95, 300),  # exact 0.951; a two-sided interval's upper end would give 0.983
    ],
)
def test_clopper_pearson_one_sided_coverage_simulation(side, p, n):
    m = 10_000  # cheap (bounds cached per k) and needed to separate 0.954 from 0.983 by 3 SE each
    bound = cp_lower if side == "lower" else cp_upper
    exact = exact_coverage(bound, n, p, 0.95, side)
    exact_two_sided = exact_coverage(bound, n, p, 0.975, side)
    # Parameters where the test can fail both ways: near-nominal exact coverage, and a
    # two-sided-at-95% bound (one-sided 97.5%) that would exceed the upper acceptance limit.
    ceiling = 0.975
    assert exact < ceiling - sim_slack(exact, m)
    assert exact_two_sided > ceiling + sim_slack(exact_two_sided, m)

    ks = np.random.default_rng(1000 + n).binomial(n, p, size=m)
    values = apply_cached(bound, ks, n, 0.95)
    coverage = float(np.mean(values <= p if side == "lower" else values >= p))
    assert coverage >= 0.95 - sim_slack(0.95, m)
    assert coverage <= ceiling


def test_wilson_lower_bound_undercovers_near_099():
    # DESIGN.md: decide with Clopper-Pearson, only show Wilson. At p = 0.99, n = 268 the
    # one-sided Wilson lower bound covers only ~93.2% (exact, asserted below): agents just
    # under 0.99 would pass a Wilson ">= 0.99" gate ~7% of the time instead of at most 5%.
    p, n, m = 0.99, 268, 20_000
    ks = np.random.default_rng(268).binomial(n, p, size=m)
    wilson_coverage = float(np.mean(apply_cached(w_lower, ks, n, 0.95) <= p))
    cp_coverage = float(np.mean(apply_cached(cp_lower, ks, n, 0.95) <= p))
    assert exact_coverage(w_lower, n, p, 0.95, "lower") < 0.935
    assert wilson_coverage + sim_slack(wilson_coverage, m) < 0.94
    assert cp_coverage >= 0.95 - sim_slack(0.95, m)


@pytest.mark.parametrize(("n", "worst"), [(22, 0.85), (66, 0.89)])
def test_wilson_upper_bound_undercovers_near_099(n, worst):
    # The one-sided Wilson upper bound at p = 0.99 is the "fails good agents" side of
    # DESIGN.md's 82-93%: an agent at exactly 0.99 gets upper < 0.99 ("decisively worse")
    # 18% of the time at n = 22 and 14% at n = 66, instead of 5%. Clopper-Pearson holds 95%.
    p, m = 0.99, 20_000
    ks = np.random.default_rng(99 + n).binomial(n, p, size=m)
    wilson_coverage = float(np.mean(apply_cached(w_upper, ks, n, 0.95) >= p))
    cp_coverage = float(np.mean(apply_cached(cp_upper, ks, n, 0.95) >= p))
    assert wilson_coverage + sim_slack(wilson_coverage, m) < worst
    assert cp_coverage >= 0.95 - sim_slack(0.95, m)


# ---------------------------------------------------------------------- sequential stopping


def test_look_schedule():
    assert look_schedule(400) == (25, 50, 100, 200, 400)
    assert look_schedule(401) == (25, 50, 100, 200, 400, 401)
    assert look_schedule(200) == (25, 50, 100, 200)
    assert look_schedule(26) == (25, 26)
    assert look_schedule(25) == (25,)
    assert look_schedule(10) == (10,)
    assert look_schedule(1) == (1,)
    assert look_schedule(100, first=10) == (10, 20, 40, 80, 100)


def test_per_look_alpha_is_bonferroni():
    assert per_look_alpha(0.05, 5) == pytest.approx(0.01)
    assert per_look_alpha(0.05, 1) == 0.05


def _sequential_pass_rate(p: float, threshold: float, alpha_per_look: float, m: int, seed: int) -> float:
    """Fraction of m campaigns declared pass at any look of look_schedule(400) (launch order)."""
    looks = look_schedule(400)
    rng = np.random.default_rng(seed)
    # Successes accrued between looks, then cumulative at each look: one row per campaign.
    increments = rng.binomial(np.diff((0, *looks)), p, size=(m, len(looks)))
    successes = np.cumsum(increments, axis=1)
    passed = np.zeros(m, dtype=bool)
    for column, n in enumerate(looks):
        lower = apply_cached(cp_lower, successes[:, column], n, 1.0 - alpha_per_look)
        passed |= lower >= threshold
    return float(passed.mean())


def test_sequential_stopping_bad_agent_rarely_passes():
    m = 2000
    alpha = per_look_alpha(0.05, len(look_schedule(400)))
    assert _sequential_pass_rate(0.85, 0.90, alpha, m, seed=85) <= 0.05 + sim_slack(0.05, m)


def test_sequential_stopping_needs_the_per_look_split_at_the_boundary():
    # The worst case for a ">= 0.90" gate is an agent at exactly 0.90. With the Bonferroni
    # split the chance of a pass at any of the 5 looks stays <= 5%; testing each look at the
    # full 5% compounds to roughly 9%, which this must detect (else the test proves nothing).
    m = 4000
    looks = len(look_schedule(400))
    with_split = _sequential_pass_rate(0.90, 0.90, per_look_alpha(0.05, looks), m, seed=90)
    without_split = _sequential_pass_rate(0.90, 0.90, 0.05, m, seed=90)
    assert with_split <= 0.05 + sim_slack(0.05, m)
    assert without_split > 0.05 + sim_slack(0.05, m)


# ------------------------------------------------------------------------ trials_to_decide


def _decides(k: int, n: int, total: int, threshold: float, direction: str) -> bool:
    """Independent restatement: project round(k/n * total) successes (halves up) and test the bounds."""
    successes = math.floor(Fraction(k * total, n) + Fraction(1, 2))
    lower, upper = ref_cp(successes, total, 0.95)
    if direction == ">=":
        return lower >= threshold or upper < threshold
    return upper <= threshold or lower > threshold


@pytest.mark.parametrize(
    ("k", "n", "threshold", "direction"),
    [
        (91, 100, 0.90, ">="),  # slightly above: needs a few thousand trials to pass
        (95, 100, 0.90, ">="),
        (85, 100, 0.90, ">="),  # below: decides as a fail
        (19, 20, 0.90, ">="),
        (1, 10, 0.05, "<="),
        (0, 10, 0.05, "<="),  # zero violations: 59 trials for the 1 - alpha**(1/n) bound
        (3, 40, 0.05, "<="),
        (9, 100, 0.05, "<="),
    ],
)
def test_trials_to_decide_result_decides_and_one_fewer_does_not(k, n, threshold, direction):
    total = trials_to_decide(k, n, threshold, direction)
    assert total is not None and total >= n
    assert _decides(k, n, total, threshold, direction)
    if total > n:
        assert not _decides(k, n, total - 1, threshold, direction)


def test_trials_to_decide_known_and_degenerate_cases():
    assert trials_to_decide(0, 10, 0.05, "<=") == 59
    # Already decisive: the current n is returned.
    assert trials_to_decide(200, 200, 0.9, ">=") == 200
    # p-hat equal to the threshold never decides.
    assert trials_to_decide(90, 100, 0.9, ">=") is None
    assert trials_to_decide(5, 100, 0.05, "<=") is None
    # Too far for max_n, and no estimate at all.
    assert trials_to_decide(901, 1000, 0.9, ">=", max_n=10_000) is None
    assert trials_to_decide(0, 0, 0.9, ">=") is None
    # Close to the threshold needs many more trials than far from it.
    assert trials_to_decide(91, 100, 0.9, ">=") > trials_to_decide(95, 100, 0.9, ">=")


# ---------------------------------------------------------------------------- RateBounds


def test_rate_bounds_fields_and_repr():
    bounds = rate_bounds(197, 200)
    assert isinstance(bounds, RateBounds)
    assert bounds.estimate == 197 / 200
    assert bounds.lower == clopper_pearson_lower(197, 200)
    assert bounds.upper == clopper_pearson_upper(197, 200)
    assert bounds.wilson_lower == wilson_lower(197, 200)
    assert bounds.wilson_upper == wilson_upper(197, 200)
    assert bounds.lower < bounds.estimate < bounds.upper
    assert repr(bounds).startswith("RateBounds(k=197, n=200, estimate=0.985, lower=0.96")
    assert len(repr(bounds)) < 160
    with pytest.raises(dataclasses.FrozenInstanceError):
        bounds.k = 3  # type: ignore[misc]
    assert not hasattr(bounds, "__dict__")  # slots


def test_rate_bounds_empty():
    bounds = rate_bounds(0, 0, 0.9)
    assert math.isnan(bounds.estimate)
    assert (bounds.lower, bounds.upper, bounds.wilson_lower, bounds.wilson_upper) == (0.0, 1.0, 0.0, 1.0)
    assert bounds.confidence == 0.9
