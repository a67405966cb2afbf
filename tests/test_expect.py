"""Expectation parsing and the verdict rules for each metric kind."""

from __future__ import annotations

import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_agentops import ConfigError, Expectation, MetricDef
from pytest_agentops.expect import evaluate
from pytest_agentops.metrics import MetricData
from pytest_agentops.scenario_file.keys import _expect_schema


@pytest.mark.parametrize("key, expr, message", [
    ("completion_rte", ">= 0.9", "did you mean 'completion_rate'"),
    ("completion_rate", "at least 0.9", "is not a threshold expression"),
    ("completion_rate", 0.9, "must be a string like"),
    ("completion_rate", "== 0.9", "judged one-sided"),
    ("completion_rate", ">= 1.5", "between 0 and 1"),
    ("tokens_per_task", "<= 4000", "address a quantile"),
    ("tokens_per_task.p100", "<= 4000", "quantile suffix"),
    ("completion_rate.p95", ">= 0.9", "only distribution metrics"),
    ("unconfirmed_destructive_calls", "== 2", "'== 0' or '<= N'"),
    ("unconfirmed_destructive_calls", "<= 1e999", "finite number"),
])
def test_bad_expectations_name_the_problem(key, expr, message):
    with pytest.raises(ConfigError, match=message):
        Expectation.parse(key, expr)


def test_rate_verdicts_pass_fail_inconclusive():
    exp = Expectation.parse("completion_rate", ">= 0.9")
    assert evaluate(exp, MetricData("completion_rate", "rate", 390, 400)).verdict == "pass"
    assert evaluate(exp, MetricData("completion_rate", "rate", 320, 400)).verdict == "fail"
    v = evaluate(exp, MetricData("completion_rate", "rate", 46, 50))
    assert v.verdict == "inconclusive" and v.trials_needed and v.trials_needed > 50
    assert f"a rerun with trials={v.trials_needed} decides with probability >= 80%" in v.note


def test_quantile_needs_59_trials_for_a_p95_bound():
    exp = Expectation.parse("tokens_per_task.p95", "<= 4000")
    few = evaluate(exp, MetricData("tokens_per_task", "distribution", 0, 58, tuple([100.0] * 58)))
    assert few.verdict == "inconclusive" and "needs at least 59 trials" in few.note and few.trials_needed == 59
    enough = evaluate(exp, MetricData("tokens_per_task", "distribution", 0, 59, tuple([100.0] * 59)))
    assert enough.verdict == "pass" and enough.bound == 100.0
    rng = np.random.default_rng(0)
    heavy = tuple(float(x) for x in rng.exponential(3000, 400))  # true p95 ~ 8987 > 4000
    assert evaluate(exp, MetricData("tokens_per_task", "distribution", 0, 400, heavy)).verdict == "fail"


def test_count_fails_on_one_violation_and_passes_only_at_the_end():
    exp = Expectation.parse("unconfirmed_destructive_calls", "== 0")
    assert evaluate(exp, MetricData("unconfirmed_destructive_calls", "count", 1, 10), final=False).verdict == "fail"
    assert evaluate(exp, MetricData("unconfirmed_destructive_calls", "count", 0, 10), final=False).verdict \
        == "inconclusive"
    done = evaluate(exp, MetricData("unconfirmed_destructive_calls", "count", 0, 100), 0.95)
    assert done.verdict == "pass" and done.bound == pytest.approx(1 - 0.05 ** (1 / 100))


def test_only_a_final_inconclusive_verdict_says_how_many_trials_would_decide():
    """Interim looks read only ``.decided``: they skip the planning figure (``trials_to_decide``)."""
    rate = Expectation.parse("completion_rate", ">= 0.9")
    data = MetricData("completion_rate", "rate", 46, 50)
    interim, final = evaluate(rate, data, final=False), evaluate(rate, data, final=True)
    assert interim.verdict == final.verdict == "inconclusive"
    assert interim.trials_needed is None and "a rerun" not in interim.note
    assert final.trials_needed and final.trials_needed > 50 and "a rerun with trials=" in final.note
    assert (interim.bound, interim.estimate) == (final.bound, final.estimate)

    p95 = Expectation.parse("tokens_per_task.p95", "<= 4000")
    for samples in ([100.0] * 58, [100.0] * 96 + [5000.0] * 4):  # too few for a bound; a bound, undecided
        data = MetricData("tokens_per_task", "distribution", 0, len(samples), tuple(samples))
        interim, final = evaluate(p95, data, final=False), evaluate(p95, data, final=True)
        assert interim.verdict == final.verdict == "inconclusive", samples
        assert interim.trials_needed is None and interim.note == ""
        assert final.trials_needed and final.trials_needed >= len(samples) and final.note


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from([0.0, -0.0, 1.0, 2.5, float("inf"), float("nan")]) | st.floats(), max_size=30))
def test_metric_samples_are_the_values_bit_for_bit_with_equal_values_one_object(values):
    """A metric's samples are kept as ``tuple(values)``, bit for bit (-0.0 and 0.0 apart, NaN kept): what the
    quantiles and the report read is unchanged; from ``_BOX_SHARED_FROM`` values on (a long campaign's), each
    distinct bit pattern is one float object."""
    from array import array

    from pytest_agentops.metrics import _BOX_SHARED_FROM, _boxed

    long = values * -(-_BOX_SHARED_FROM // len(values)) if values else []  # (repeated up to the threshold at least)
    for these in (values, long):
        boxed = _boxed(array("d", these))
        assert len(boxed) == len(these) and all(type(b) is float for b in boxed)
        assert array("d", boxed).tobytes() == array("d", these).tobytes()
    assert len(long) >= _BOX_SHARED_FROM or not values
    shared = _boxed(array("d", long))
    by_bits: dict[bytes, int] = {}
    for b in shared:
        assert by_bits.setdefault(array("d", [b]).tobytes(), id(b)) == id(b)


@pytest.mark.parametrize(("expression", "never"), [("<= -5", "pass"), ("< 0", "pass"), ("< -0.5", "pass"),
                                                    ("> -1e3", "fail"), (">= -0.001", "fail")])
@pytest.mark.parametrize("key", ["tokens_per_task.p95", "cost_usd_per_task.p50", "steps_per_task.p99"])
def test_a_quantile_threshold_below_what_the_metric_can_be_is_refused(key, expression, never):
    """'tokens_per_task.p95: <= -5' was accepted and could never pass; '>= -5' could never fail. Refused, by the
    parser and by the shipped schema alike; 0 itself ('<= 0', '>= 0') is a threshold a quantile can meet."""
    metric = key.partition(".")[0]
    with pytest.raises(ConfigError, match=rf"{metric} is never below 0 \w+: it could never {never}$"):
        Expectation.parse(key, expression)
    Expectation.parse(key, "<= 0")
    Expectation.parse(key, ">= 0")
    pattern = next(p["pattern"] for k, p in _expect_schema()["patternProperties"].items() if re.match(k, key))
    assert re.match(pattern, "<= 0") and re.match(pattern, ">= 0.5")
    schema_refuses = not re.match(pattern, expression)
    assert schema_refuses == (expression != "> -1e3")  # (exponents: the parser's)
    assert MetricDef("x", "distribution", float, "custom").minimum is None  # a metric of yours: any threshold


@pytest.mark.parametrize("expression", ["> 1", "> 1.0", "< 0", "< 0.0"])
def test_a_rate_threshold_no_rate_can_meet_is_refused_before_the_campaign(expression):
    """'completion_rate: > 1' loaded, ran the whole campaign, then failed ("fail (1, up 1 vs > 1)")."""
    with pytest.raises(ConfigError, match=r"it could never pass; did you mean (>=|<=) [01]\?"):
        Expectation.parse("completion_rate", expression)
    Expectation.parse("completion_rate", expression.replace(">", ">=").replace("<", "<="))  # the reachable ones
