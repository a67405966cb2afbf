"""The sequential rules (pytest_agentops.stats.sequential) against independent statements of them.

What is checked here, each with scipy and numpy only (not with the package's own dynamic programme):

* the boundaries are the documented tests: with a fail level, the pass and fail regions are the two sides
  of Wald's log likelihood ratio of the threshold against the fail level, cut at one constant each; without
  one, of a mixture of likelihood ratios over the alternatives an SPRT reaches in 10 .. max trials, restated
  here from that definition (scipy's root finder for the alternatives, scipy's binomial pmf for the ratios);
* the exact error rates, by dynamic programming over the trials with scipy's Bernoulli pmf, are within the
  bounds the rule states, at the design points of the issue, and equal the package's own figures;
* the rules cost what docs/verdicts.md says they cost against Wald's SPRT and against the Bonferroni looks
  they replace (the figures the benchmark prints; asserted here as the claims);
* one look (no early stopping) is the one-sided Clopper-Pearson / order-statistic rule;
* a simulation of campaigns agrees with the exact computation.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.optimize
import scipy.stats

from pytest_agentops import stats
from pytest_agentops.expect import Expectation, evaluate
from pytest_agentops.metrics import MetricData
from pytest_agentops.stats import sequential

import sequential_rule as sr


def _regions_cut_by_one_constant(stat, pass_at, fail_at, max_n):
    """Whether, before the last look, ``k >= pass_at[n]`` is exactly {stat(n, k) >= c_pass} for one constant
    c_pass and ``k <= fail_at[n]`` is {-stat(n, k) >= c_fail} (stat increasing in k)."""
    inside_max, pass_min = -math.inf, math.inf
    fail_min, not_fail_max = math.inf, -math.inf
    for n in range(1, max_n):
        a, b = pass_at[n], fail_at[n]
        if a <= n:
            pass_min = min(pass_min, stat(n, a))
        if a - 1 >= 0 and a - 1 <= n:
            inside_max = max(inside_max, stat(n, a - 1))
        if b >= 0:
            fail_min = min(fail_min, -stat(n, b))
        if b + 1 <= n:
            not_fail_max = max(not_fail_max, -stat(n, b + 1))
    return inside_max < pass_min and not_fail_max < fail_min, pass_min, fail_min


@pytest.mark.parametrize(("t", "f", "max_n"), [(0.90, 0.80, 400), (0.95, 0.90, 300), (0.99, 0.95, 600),
                                               (0.90, 0.80, 60)])
def test_with_a_fail_level_the_rule_is_wald_s_likelihood_ratio_test(t, f, max_n):
    rule = stats.rate_rule(t, max_n=max_n, fail_level=f)

    def llr(n, k):  # log P(k of n | t) / P(k of n | f), from scipy
        return float(scipy.stats.binom.logpmf(k, n, t) - scipy.stats.binom.logpmf(k, n, f))

    ok, c_pass, c_fail = _regions_cut_by_one_constant(llr, rule.pass_at, rule.fail_at, max_n)
    assert ok
    # Ville: the constants are never above log(1/beta), log(1/alpha); calibration only tightens them
    assert c_pass <= math.log(1 / 0.05) + 1e-9 and c_fail <= math.log(1 / 0.05) + 1e-9


def _mixture_alternatives(t: float, max_n: int, alpha: float = 0.05) -> tuple[list[float], list[float]]:
    """The alternatives of the default rule, from their definition: KL(q || t) = log(1/alpha) / m for m
    geometric from 10 to max_n (12 points), above and below t (at the edge of [0, 1] when KL cannot reach)."""
    def kl(q):
        return scipy.stats.entropy([q, 1 - q], [t, 1 - t])

    ups, downs = [], []
    for m in np.geomspace(10, max(max_n, 11), 12):
        target = math.log(1 / alpha) / m
        def gap(q, target=target):
            return kl(q) - target

        ups.append(1.0 if gap(1 - 1e-15) <= 0 else scipy.optimize.brentq(gap, t, 1 - 1e-15))
        downs.append(0.0 if gap(1e-15) <= 0 else scipy.optimize.brentq(gap, 1e-15, t))
    return ups, downs


@pytest.mark.parametrize(("t", "max_n"), [(0.90, 400), (0.95, 200), (0.5, 100)])
def test_without_a_fail_level_the_rule_is_a_mixture_of_likelihood_ratios_at_the_threshold(t, max_n):
    rule = stats.rate_rule(t, max_n=max_n)
    ups, downs = _mixture_alternatives(t, max_n)

    def mixture(qs):
        qs = np.clip(qs, 1e-12, 1 - 1e-12)

        def stat(n, k):
            logs = scipy.stats.binom.logpmf(k, n, qs) - scipy.stats.binom.logpmf(k, n, t)
            return float(scipy.special.logsumexp(logs) - math.log(len(qs)))
        return stat

    up, down = mixture(ups), mixture(downs)
    ok_pass, c_pass, _ = _regions_cut_by_one_constant(up, rule.pass_at, np.full(max_n + 1, -1), max_n)
    ok_fail, _, c_fail = _regions_cut_by_one_constant(lambda n, k: -down(n, k), np.arange(1, max_n + 2),
                                                      rule.fail_at, max_n)
    assert ok_pass and ok_fail
    assert c_pass <= math.log(20) + 1e-9 and c_fail <= math.log(20) + 1e-9


DESIGN = [  # (threshold, fail level or None, max trials)
    (0.90, 0.80, 400), (0.95, 0.90, 400), (0.99, 0.95, 1000),
    (0.90, None, 400), (0.95, None, 400), (0.99, None, 600), (0.90, 0.80, 100),
]


@pytest.mark.parametrize(("t", "f", "max_n"), DESIGN)
def test_exact_error_rates_are_within_the_stated_bounds(t, f, max_n):
    """False pass <= 5% at the fail level (the threshold without one), false fail <= 5% at the threshold,
    computed by the independent dynamic programme; the package's own figures agree to 1e-9."""
    rule_spec = sr.Rate(">=", t, f)
    at_fail_level = sr.exact_outcome(rule_spec, f if f is not None else t, max_n)
    at_threshold = sr.exact_outcome(rule_spec, t, max_n)
    print(f"{t} vs {f} at {max_n}: false pass {at_fail_level.passed:.5f}, false fail {at_threshold.failed:.5f}; "
          f"mean trials {at_fail_level.expected_trials:.1f} / {at_threshold.expected_trials:.1f}")
    assert at_fail_level.passed <= 0.05
    assert at_threshold.failed <= 0.05
    assert at_fail_level.passed > 0.03 or max_n < 200  # calibrated: the budget is used, not wasted
    rule = stats.rate_rule(t, max_n=max_n, fail_level=f)
    ours = rule.outcome(f if f is not None else t)
    assert ours.passed == pytest.approx(at_fail_level.passed, abs=1e-9)
    assert ours.expected_n == pytest.approx(at_fail_level.expected_trials, abs=1e-6)


def _wald(t: float, f: float, p: float, alpha: float = 0.05, beta: float = 0.05, horizon: int = 4000) -> float:
    """Mean trials of Wald's SPRT (Wald's constants, untruncated: run to a horizon where no mass is left),
    by its own dynamic programme."""
    log_a, log_b = math.log((1 - beta) / alpha), math.log(beta / (1 - alpha))
    up, down = math.log(t / f), math.log((1 - t) / (1 - f))
    mass = np.array([1.0])
    mean = 0.0
    for n in range(1, horizon + 1):
        mass = np.convolve(mass, [1 - p, p])
        llr = np.arange(n + 1) * up + (n - np.arange(n + 1)) * down
        stop = (llr >= log_a - 1e-12) | (llr <= log_b + 1e-12)
        mean += n * mass[stop].sum()
        mass = np.where(stop, 0.0, mass)
        if mass.sum() < 1e-13:
            break
    return mean


def test_the_rule_with_a_fail_level_needs_no_more_trials_than_wald_s_sprt():
    """0.90 vs 0.80 at alpha = beta = 0.05: Wald's SPRT needs 75.0 / 65.5 trials on average at p = 0.90 / 0.80
    (exact); the truncated, calibrated rule at most 1.1x that, also at p = 0.97 and 0.70."""
    rule = stats.rate_rule(0.90, max_n=400, fail_level=0.80)
    wald = {p: _wald(0.90, 0.80, p) for p in (0.97, 0.90, 0.80, 0.70)}
    assert wald[0.90] == pytest.approx(75.0, abs=0.1) and wald[0.80] == pytest.approx(65.5, abs=0.1)
    for p, reference in wald.items():
        ours = sr.exact_outcome(sr.Rate(">=", 0.90, 0.80), p, 400).expected_trials
        print(f"p={p}: rule {ours:.1f}, Wald's SPRT {reference:.1f}")
        assert ours <= 1.1 * reference
        assert stats.sprt_outcome(0.90, 0.80, p).expected_n == pytest.approx(reference, rel=1e-6)
    assert rule.outcome(0.9).inconclusive < 1e-6  # decided by 400 trials


def _bonferroni_mean_trials(p: float, t: float = 0.90, max_n: int = 400) -> float:
    """Mean trials of the rule this one replaces: Clopper-Pearson at alpha/looks at looks 25, 50, 100, 200, 400."""
    looks = (25, 50, 100, 200, 400)
    conf = 1 - 0.05 / len(looks)
    mass, previous, mean = np.array([1.0]), 0, 0.0
    for n in looks:
        mass = np.convolve(mass, scipy.stats.binom.pmf(np.arange(n - previous + 1), n - previous, p))
        previous = n
        k = np.arange(n + 1)
        decided = (sr.cp_lower(k, n, conf) >= t) | (sr.cp_upper(k, n, conf) < t)
        if n == max_n:
            decided[:] = True
        mean += n * mass[decided].sum()
        mass = np.where(decided, 0.0, mass)
    return mean


def test_the_default_rule_needs_at_most_70_percent_of_the_trials_of_the_bonferroni_looks():
    """Against >= 0.90 with 400 trials the Bonferroni looks needed 134 / 109 trials on average at p = 0.97 / 0.80
    (the issue's measurement; exactly 130.2 / 110.7 by their dynamic programme): the default rule (no fail
    level) at most 0.7x the smaller of the two figures."""
    for p, measured, exact in ((0.97, 134, 130.2), (0.80, 109, 110.7)):
        assert _bonferroni_mean_trials(p) == pytest.approx(exact, abs=0.05)
        ours = sr.exact_outcome(sr.Rate(">=", 0.90), p, 400).expected_trials
        print(f"p={p}: {ours:.1f} trials on average (Bonferroni looks: {exact}, measured {measured})")
        assert ours <= 0.7 * min(measured, exact)


CASES = {
    "completion_rate >= 0.90 at 400": (sr.Rate(">=", 0.90), "completion_rate", ">= 0.90", 400),
    "time_to_escalation_s.p95 <= 30 at 120": (sr.Quantile(0.95, "<=", 30.0), "time_to_escalation_s.p95", "<= 30",
                                              120),
    "budget_exceeded_rate <= 0.05 at 200": (sr.Rate("<=", 0.05), "budget_exceeded_rate", "<= 0.05", 200),
    "tokens_per_task.p90 >= 1000 at 100": (sr.Quantile(0.90, ">=", 1000.0), "tokens_per_task.p90", ">= 1000", 100),
    "escalation_rate > 0.2 at 60": (sr.Rate(">", 0.2), "escalation_rate", "> 0.2", 60),
}


def _data(rule, metric: str, n: int, events: int) -> MetricData:
    """The metric data of n trials of which ``events`` count (events of a rate, misses of a quantile)."""
    if isinstance(rule, sr.Rate):
        return MetricData(metric, "rate", events, n)
    miss = math.inf if rule.op in ("<=", "<") else -math.inf
    samples = (rule.threshold,) * (n - events) + (miss,) * events  # at the threshold: within it
    return MetricData(metric, "distribution", 0, n, samples)


@pytest.mark.parametrize("case", list(CASES))
def test_one_look_is_the_one_sided_exact_rule_at_every_count(case):
    """Without early stopping, ``expect.evaluate`` gives the restated Clopper-Pearson / order-statistic verdict
    at every count of a 1..max look."""
    rule, key, expression, max_trials = CASES[case]
    expectation = Expectation.parse(key, expression)
    decided = 0
    for n in sorted({1, 10, 25, 59, max_trials}):
        table = rule.one_look(n, 0.95)
        for events in range(n + 1):
            verdict = evaluate(expectation, _data(rule, key.partition(".")[0], n, events), 0.95, final=False)
            assert verdict.verdict == sr.NAMES[int(table[events])], (n, events)
            decided += verdict.decided
    assert decided


@pytest.mark.parametrize(("case", "p"), [("completion_rate >= 0.90 at 400", 0.90),
                                         ("time_to_escalation_s.p95 <= 30 at 120", 0.07),
                                         ("budget_exceeded_rate <= 0.05 at 200", 0.05)])
def test_the_exact_computation_agrees_with_a_simulation_of_the_rule(case, p):
    """20,000 simulated campaigns of the rule itself (Bernoulli events, stopped at the first decision):
    verdict frequencies and the mean number of trials within 5 standard errors of the dynamic programme."""
    rule, _, _, max_trials = CASES[case]
    m = 20_000
    rng = np.random.default_rng(20240601)
    success_p = p if isinstance(rule, sr.Rate) and rule.upward else 1 - p
    successes = np.cumsum(rng.random((m, max_trials)) < success_p, axis=1)
    pass_at, fail_at = rule.boundaries(max_trials, 0.95)
    n = np.arange(1, max_trials + 1)
    crossed_up = successes >= pass_at[1:]
    crossed_down = successes <= fail_at[1:]
    first_up = np.where(crossed_up.any(axis=1), crossed_up.argmax(axis=1), max_trials)
    first_down = np.where(crossed_down.any(axis=1), crossed_down.argmax(axis=1), max_trials)
    passed = first_up < first_down
    failed = first_down < first_up
    used = np.minimum(np.minimum(first_up, first_down) + 1, max_trials)
    exact = sr.exact_outcome(rule, p, max_trials)
    for probability, frequency in ((exact.passed, passed.mean()), (exact.failed, failed.mean())):
        assert abs(frequency - probability) <= 5 * math.sqrt(probability * (1 - probability) / m) + 1e-9
    assert used.mean() == pytest.approx(exact.expected_trials, abs=5 * used.std() / math.sqrt(m))
    assert n.size == max_trials


def test_replay_refuses_a_sequence_shorter_than_the_rule_needs():
    with pytest.raises(ValueError, match="looks at 31 trials; only 30 were observed"):
        sr.replay([sr.Rate(">=", 0.9)], [[True] * 27 + [False] * 3], 400)
    assert sr.replay([sr.Rate(">=", 0.9)], [[False] * 3], 400) == sr.Replayed(3, True, ("fail",))


def test_the_default_rule_says_what_it_resolves():
    """Without a fail level the report says where the rule has 95% power within its trials."""
    from pytest_agentops.judge import resolution

    rule = stats.rate_rule(0.90, max_n=400)
    pass_rate, fail_rate = resolution(rule)
    assert 0.90 < pass_rate < 0.97 and 0.80 < fail_rate < 0.90
    assert sr.exact_outcome(sr.Rate(">=", 0.90), fail_rate, 400).failed >= 0.95 - 1e-6
    assert sr.exact_outcome(sr.Rate(">=", 0.90), pass_rate, 400).passed >= 0.95 - 1e-6


def test_constants_past_the_exact_limit_are_ville_s_and_still_valid(monkeypatch):
    monkeypatch.setattr(sequential, "EXACT_LIMIT", 100)  # (it is 1000)
    sequential.rate_rule.cache_clear()
    try:
        rule = stats.rate_rule(0.9, max_n=150)
        assert not rule.exact
        assert rule.outcome(0.9).passed <= 0.05 and rule.outcome(0.9).failed <= 0.05
    finally:
        sequential.rate_rule.cache_clear()


@pytest.mark.parametrize(("key", "expression", "trials"), [("completion_rate", ">= 0.9", 400),
                                                           ("time_to_escalation_s.p95", "<= 30", 120)])
def test_the_resolution_a_rule_states_holds_at_its_printed_figures(key, expression, trials):
    """"fails a share <= 0.832 and passes one >= 0.952 with probability >= 95%": at the printed 0.952 the exact
    chance of a pass was 0.9457 (the figure was 0.95244, rounded down). Printed figures are rounded away from
    the threshold now, and the claim is checked at them with the restated rule's exact programme."""
    import re

    from pytest_agentops.judge import judge

    rule_text = judge(Expectation.parse(key, expression), max_trials=trials, confidence=0.95, sequential=True
                      ).verdict(complete=False).rule
    found = re.search(r"fails a share [a-z ]+ <= ([\d.]+) and passes one >= ([\d.]+) with probability >= 95%",
                      rule_text)
    assert found, rule_text
    fail_share, pass_share = map(float, found.groups())
    rule = sr.rule_for(key, expression)
    upward = isinstance(rule, sr.Rate)  # (a quantile's rule counts the values within: its p is a miss's)
    at_pass = sr.exact_outcome(rule, pass_share if upward else 1 - pass_share, trials)
    assert at_pass.passed >= 0.95 or pass_share >= 1
    at_fail = sr.exact_outcome(rule, fail_share if upward else 1 - fail_share, trials)
    assert at_fail.failed >= 0.95


def _outcome_over(pass_at, fail_at, p: float, max_n: int) -> tuple[float, float, list[float]]:
    """(P(pass), P(fail), P(stop after n) for each n) of the boundaries ``pass_at``/``fail_at`` at rate p: the
    dynamic programme restated with scipy's Bernoulli pmf and a fresh array per trial."""
    step = scipy.stats.bernoulli.pmf([0, 1], p)
    mass = np.array([1.0])
    passed = failed = 0.0
    stop = [0.0] * (max_n + 1)
    for n in range(1, max_n + 1):
        mass = np.convolve(mass, step)
        k = np.arange(n + 1)
        up, down = k >= pass_at[n], k <= fail_at[n]
        stop[n] = float(mass[up].sum()) + float(mass[down].sum())
        passed, failed = passed + float(mass[up].sum()), failed + float(mass[down].sum())
        mass = np.where(up | down, 0.0, mass)
    stop[max_n] += float(mass.sum())
    return passed, failed, stop


@pytest.mark.parametrize(("t", "f", "max_n", "calibrate"), [
    (0.90, None, 333, False), (0.95, None, 1037, False), (0.90, 0.85, 211, False), (0.90, None, 400, True),
    (0.70, 0.50, 57, True), (0.99, None, 45, False),
])
def test_the_package_s_programme_and_its_early_stopping_agree_with_the_restated_one(t, f, max_n, calibrate):
    """The planning searches (``agentops-plan``, a rerun's trial count) ask ``decides_with``, which stops the
    programme as soon as the answer is known; ``outcome`` runs it to the end. Both agree with the restated
    programme: the figures to 1e-12, and every answer of ``decides_with`` at rates around the threshold, for
    each verdict and probability (a figure within 1e-9 of the probability asked is not a fair question)."""
    rule = sequential.rate_rule(t, max_n=max_n, fail_level=f, calibrate=calibrate)
    asked = 0
    for p in (0.0, (f or t) - 0.03, f or t, t, (t + 1) / 2, 1.0):
        passed, failed, stop = _outcome_over(rule.pass_at, rule.fail_at, p, max_n)
        ours = rule.outcome(p)
        assert ours.passed == pytest.approx(passed, abs=1e-12) and ours.failed == pytest.approx(failed, abs=1e-12)
        assert ours.stop == pytest.approx(stop, abs=1e-12)
        for probability in (0.05, 0.5, 0.8, 0.95):
            for verdict, figure in (("pass", passed), ("fail", failed), ("decide", passed + failed)):
                if abs(figure - probability) > 1e-9:
                    asked += 1
                    assert rule.decides_with(p, probability, verdict) == (figure >= probability), (p, verdict)
    assert asked >= 60


def _bound_misses(rule, p: float, confidence: float = 0.95) -> tuple[float, float]:
    """Exactly (dynamic programming over the rule's stops, scipy's beta quantiles for Clopper-Pearson): the
    probability that the fixed-sample bounds shown at the campaign's stop miss the true rate ``p`` (lower bound
    above it, upper bound below it)."""
    n_max = rule.max_n
    mass, ks = np.zeros(n_max + 1), np.arange(n_max + 1)
    mass[0] = 1.0
    miss_lower = miss_upper = 0.0
    for n in range(1, n_max + 1):
        moved = mass * (1 - p)
        moved[1:] += mass[:-1] * p
        mass = moved
        stop = np.ones(n_max + 1, bool)
        if n < n_max:
            stop[:] = False
            stop[rule.pass_at[n]:] = True
            if rule.fail_at[n] >= 0:
                stop[:rule.fail_at[n] + 1] = True
        k, w = ks[:n + 1][stop[:n + 1]], mass[:n + 1][stop[:n + 1]]
        lower = np.where(k > 0, scipy.stats.beta.ppf(1 - confidence, np.maximum(k, 1), n - k + 1), 0.0)
        upper = np.where(k < n, scipy.stats.beta.ppf(confidence, k + 1, np.maximum(n - k, 1)), 1.0)
        miss_lower += w[lower > p].sum()
        miss_upper += w[upper < p].sum()
        mass[stop] = 0.0
    return miss_lower, miss_upper


def test_the_bounds_shown_after_an_early_stop_are_for_reading_not_at_their_confidence():
    """Found by an outside review (docs/statistics.md says so now): the Clopper-Pearson bounds a report shows are
    fixed-sample bounds; at a campaign's data-dependent stop they miss the true rate more often than their
    confidence says (the verdict keeps its error rates), while with one look they keep it."""
    sequential_rule = stats.rate_rule(0.95, max_n=200, alpha=0.05)
    lower_miss, upper_miss = _bound_misses(sequential_rule, 0.935)
    assert 0.155 < upper_miss < 0.160 and 0.05 < lower_miss < 0.065  # (the figures the docs give)
    one_look = stats.rate_rule(0.95, max_n=200, alpha=0.05, sequential=False)
    assert all(miss <= 0.05 for miss in _bound_misses(one_look, 0.935))


def _crossing_restated(bounds, other, p: float, max_n: int, side: int) -> np.ndarray:
    """Per boundary row: the probability of ending on ``side`` (+1: k >= bounds[n]; -1: k <= bounds[n]) before
    the fixed ``other`` boundary stops the walk, one row at a time over every count (no window, no shortcut)."""
    out = []
    for row in np.asarray(bounds):
        mass, ks, hit = np.zeros(max_n + 2), np.arange(max_n + 2), 0.0
        mass[0] = 1.0
        for n in range(1, max_n + 1):
            moved = mass * (1 - p)
            moved[1:] += mass[:-1] * p
            mass = moved
            crossed = ks >= row[n] if side > 0 else ks <= row[n]
            hit += mass[crossed].sum()
            mass[crossed] = 0.0
            mass[ks <= other[n] if side > 0 else ks >= other[n]] = 0.0
        out.append(hit)
    return np.array(out)


def test_the_calibrations_crossing_programme_reads_one_cell_and_gives_the_masks_figures_bit_for_bit(monkeypatch):
    """``_crossing`` (the calibration's inner loop: most of ``agentops-plan``'s time) reads the one count a
    boundary that moves one count at most is crossed at, instead of masking every count: its figures must be the
    general route's bit for bit (the calibrated constants, so every verdict and planning figure, depend on them)
    and the restated programme's to 1e-12, for every boundary the calibrations of real rules ask about, for
    random boundaries of that shape, and a boundary of another shape takes the general route."""
    seen: list[tuple[np.ndarray, np.ndarray, float, int, int]] = []
    real = sequential._crossing

    def spy(bounds, other, p, max_n, side):
        seen.append((bounds.copy(), np.asarray(other).copy(), p, max_n, side))
        return real(bounds, other, p, max_n, side)

    monkeypatch.setattr(sequential, "_crossing", spy)
    for kw in ({"fail_level": 0.8, "max_n": 116}, {"max_n": 59}, {"max_n": 3}, {"fail_level": 0.5, "max_n": 40},
               {"alpha": 0.3, "max_n": 25}):
        sequential.rate_rule.__wrapped__(0.9 if kw.get("fail_level", 0) != 0.5 else 0.7, **kw)
    assert len(seen) >= 24  # (six crossings a calibrated rule)
    rng = np.random.default_rng(7)
    for _ in range(60):
        max_n, rows, side = int(rng.integers(1, 120)), int(rng.integers(1, 17)), int(rng.choice([1, -1]))
        n = np.arange(max_n + 1)
        if side > 0:  # never falling (by up to 3 a unit), at least 1 from n = 1, at most n + 1 ("none")
            steps = rng.choice([0, 0, 1, 1, 2, 3], size=(rows, max_n + 1))
            steps[:, 0] = rng.integers(1, 3, size=rows)
            bounds = np.minimum(np.cumsum(steps, axis=1), n + 1)
            # the fail boundary: at or below counts a candidate may pass at too (zones where both hold)
            other = np.minimum((n * rng.uniform(0.2, 0.8)).astype(np.int64) + rng.integers(-1, 3, size=max_n + 1), n)
        else:  # rising by one at most (and falling), -1 ("none") at n = 0 and at most n
            steps = rng.choice([-2, -1, 0, 1, 1, 1], size=(rows, max_n + 1))
            steps[:, 0] = 0
            bounds = np.minimum(np.maximum(np.cumsum(steps, axis=1) - 1, -1), n)
            other = np.maximum((n * rng.uniform(0.3, 0.9)).astype(np.int64) + rng.integers(-1, 3, size=max_n + 1), 0)
        seen.append((bounds, other, float(rng.uniform(0.05, 0.95)), max_n, side))
    crossing_fails = [b for b, _, _, _, side in seen[-60:] if side < 0]
    assert crossing_fails and np.mean([(b >= 0).mean() for b in crossing_fails]) > 0.3  # (not all "none")
    for bounds, other, p, max_n, side in seen:
        assert sequential._one_cell_crossings(bounds, max_n, side)
        fast = real(bounds, other, p, max_n, side)
        assert fast.tobytes() == sequential._crossing_by_masks(bounds, other, p, max_n, side).tobytes()
        np.testing.assert_allclose(fast, _crossing_restated(bounds, other, p, max_n, side), rtol=0, atol=1e-12)
    # a pass boundary that falls (or a fail boundary that jumps by two) is crossed at more than one count
    falling = np.array([[1, 1, 3, 2, 4], [1, 2, 2, 3, 4]])
    jumping = np.array([[-1, -1, 1, 1, 2]])
    unsigned = np.array([[0, 1, 3, 1]], dtype=np.uint64)  # (its differences wrap: a review's)
    for bounds, side in ((falling, 1), (jumping, -1), (unsigned, 1)):
        assert not sequential._one_cell_crossings(bounds, bounds.shape[1] - 1, side)
        width = bounds.shape[1]
        other = np.full(width, -1) if side > 0 else np.full(width, width + 1)
        np.testing.assert_allclose(real(bounds, other, 0.6, width - 1, side),
                                   _crossing_restated(bounds.astype(np.int64), other, 0.6, width - 1, side),
                                   rtol=0, atol=1e-12)
    # a fence that is not whole counts takes the general route (read as whole counts, 1.5 would absorb count 1
    # at n = 2 and give 0.25: a review's)
    bounds, fence = np.array([[-1, -1, 0, 1]]), np.array([9.0, 9.0, 1.5, 9.0])
    assert real(bounds, fence, 0.5, 3, -1).tolist() == _crossing_restated(bounds, fence, 0.5, 3, -1).tolist() == [0.5]
