"""The independent statement of the sequential rule (tests/sequential_rule.py) and its exact error rates.

The exact figures themselves are asserted beside the claims they replace (test_campaign, test_escalation,
test_budget); here: the restated rule gives the engine's verdict at every count the computation sums
over, the computation agrees with a simulation of the rule, and it sees what the per-look split is for.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from pytest_agentops import stats
from pytest_agentops.expect import Expectation, evaluate
from pytest_agentops.metrics import MetricData

import sequential_rule as sr

CASES = {
    "completion_rate >= 0.90 at 400": (sr.Rate(">=", 0.90), "completion_rate", ">= 0.90", 400),
    "time_to_escalation_s.p95 <= 30 at 120": (sr.Quantile(0.95, "<=", 30.0), "time_to_escalation_s.p95", "<= 30",
                                              120),
    "budget_exceeded_rate <= 0.05 at 200": (sr.Rate("<=", 0.05), "budget_exceeded_rate", "<= 0.05", 200),
    "tokens_per_task.p90 >= 1000 at 100": (sr.Quantile(0.90, ">=", 1000.0), "tokens_per_task.p90", ">= 1000", 100),
    "escalation_rate > 0.2 at 60": (sr.Rate(">", 0.2), "escalation_rate", "> 0.2", 60),
}


def _data(rule, metric: str, n: int, events: int) -> MetricData:
    """The metric data of n trials of which ``events`` count (successes of a rate, misses of a quantile)."""
    if isinstance(rule, sr.Rate):
        return MetricData(metric, "rate", events, n)
    miss = math.inf if rule.op in ("<=", "<") else -math.inf
    samples = (rule.threshold,) * (n - events) + (miss,) * events  # at the threshold: within it
    return MetricData(metric, "distribution", 0, n, samples)


@pytest.mark.parametrize("case", list(CASES))
def test_the_restated_rule_gives_the_engines_verdict_at_every_count_the_computation_sums_over(case):
    """For every look and every number of events there, ``expect.evaluate`` at the engine's per-look confidence
    (final at the last look) gives the verdict the restated rule gives: the exact computation sums over the
    engine's own decision regions."""
    rule, key, expression, max_trials = CASES[case]
    looks = sr.looks(max_trials)
    assert looks == stats.look_schedule(max_trials)
    conf = sr.look_confidence(0.95, len(looks))
    assert conf == pytest.approx(1 - stats.per_look_alpha(0.05, len(looks)), abs=1e-15)
    expectation = Expectation.parse(key, expression)
    decided = 0
    for n in looks:
        table = rule.table(n, conf)
        for events in range(n + 1):
            verdict = evaluate(expectation, _data(rule, key.partition(".")[0], n, events), conf,
                               final=n == max_trials)
            assert verdict.verdict == sr.NAMES[int(table[events])], (n, events)
            decided += verdict.decided
    assert decided  # the regions are not empty


@pytest.mark.parametrize(("case", "p"), [("completion_rate >= 0.90 at 400", 0.90),
                                         ("time_to_escalation_s.p95 <= 30 at 120", 0.07),
                                         ("budget_exceeded_rate <= 0.05 at 200", 0.05)])
def test_the_exact_computation_agrees_with_a_simulation_of_the_rule(case, p):
    """40,000 simulated campaigns of the rule itself (events drawn between the looks, stopped at the first
    look where the verdict is decided): verdict and stopping frequencies within 5 standard errors of the
    dynamic programme's probabilities."""
    rule, _, _, max_trials = CASES[case]
    m = 40_000
    looks = sr.looks(max_trials)
    conf = sr.look_confidence(0.95, len(looks))
    rng = np.random.default_rng(20240601)
    events = np.cumsum(rng.binomial(np.diff((0, *looks)), p, size=(m, len(looks))), axis=1)
    verdict = np.full(m, -1)
    stop = np.zeros(m, dtype=int)
    for column, n in enumerate(looks):
        running = verdict == -1
        codes = rule.table(n, conf)[events[:, column]]
        ends = running & ((codes != sr.INCONCLUSIVE) | (n == max_trials))
        verdict[ends], stop[ends] = codes[ends], n
    exact = sr.exact_outcome(rule, p, max_trials)
    pairs = [(exact.passed, np.mean(verdict == sr.PASS)), (exact.failed, np.mean(verdict == sr.FAIL)),
             (exact.inconclusive, np.mean(verdict == sr.INCONCLUSIVE))]
    pairs += [(exact.stop_at[n], np.mean(stop == n)) for n in looks]
    for probability, frequency in pairs:
        assert abs(frequency - probability) <= 5 * math.sqrt(probability * (1 - probability) / m) + 1e-9, pairs
    assert sum(exact.stop_at.values()) == pytest.approx(1.0)


def test_the_exact_computation_sees_what_the_per_look_split_is_for():
    """At the boundary of >= 0.90 (an agent at exactly 0.90, the worst case) judging each of the 5 looks at
    the full 95% would pass ~9% of campaigns; the Bonferroni split keeps it under 5%, as does one look."""
    rule = sr.Rate(">=", 0.90)
    split = sr.exact_outcome(rule, 0.90, 400)
    unsplit = sr.exact_outcome(rule, 0.90, 400, split=False)
    single = sr.exact_outcome(rule, 0.90, 400, early_stop=False)
    print(f"P(pass) at p = 0.90: split {split.passed:.4f}, unsplit {unsplit.passed:.4f}, "
          f"one look {single.passed:.4f}")
    assert split.passed <= sr.ALPHA < unsplit.passed
    assert single.passed <= sr.ALPHA
    assert split.expected_trials < single.expected_trials == pytest.approx(400)


def test_replay_refuses_a_sequence_shorter_than_the_rule_needs():
    with pytest.raises(ValueError, match="looks at 50 trials; only 30 were observed"):
        sr.replay([sr.Rate(">=", 0.9)], [[True] * 27 + [False] * 3], 400)
    assert sr.replay([sr.Rate(">=", 0.9)], [[False] * 25], 400) == sr.Replayed(25, True, ("fail",))
