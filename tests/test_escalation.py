"""The escalation layer: triggers, harness escalation, time to escalation (+inf for never), and its verdict."""

from __future__ import annotations

import contextlib
import json
import math
import time

import pytest
import scipy.stats

from pytest_agentops import (
    Budget,
    ConfigError,
    Escalation,
    FakeLLM,
    Faults,
    ModelFaults,
    Scenario,
    ToolError,
    TrialRecord,
    UnusedSetting,
    run_campaign,
    stats,
)
from pytest_agentops.expect import Expectation, evaluate
from pytest_agentops.harness.escalation import unrecovered_fault_onset
from pytest_agentops.metrics import collect, summarize
from pytest_agentops.records import TraceEvent
from pytest_agentops.report.json_report import write_report
from pytest_agentops.report.terminal import campaign_table

import sequential_rule as sr
from conftest import ORDER_TOOLS, Orders

OUTAGE = Faults(outage=1.0, outage_tools=("lookup_order",))


def _run(agent, escalation=None, *, trials=5, faults=None, **kwargs):
    scenario = Scenario(name=kwargs.pop("name", "esc"), agent=agent, world=Orders, tools=ORDER_TOOLS,
                        faults=faults or Faults.none(), trials=trials, seed=kwargs.pop("seed", 0),
                        early_stop=kwargs.pop("early_stop", False), escalation=escalation, **kwargs)
    return run_campaign(scenario)


# --- settings ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kwargs, message", [
    ({}, "Escalation() needs at least one trigger"),
    ({"after_consecutive_failures": 0}, "after_consecutive_failures=0 must be a whole number >= 1"),
    ({"max_steps": 2.5}, "max_steps=2.5 must be a whole number >= 1"),
    ({"max_steps": True}, "max_steps=True must be a whole number >= 1"),
    ({"budget_fraction": 1.5}, "budget_fraction=1.5 must be a number > 0 and <= 1"),
    ({"min_confidence": "high"}, "min_confidence='high' must be a number > 0 and <= 1"),
])
def test_bad_escalation_settings_name_the_key(kwargs, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        Escalation(**kwargs)


def test_escalation_from_mapping_and_scenario_field_are_checked():
    assert Escalation.from_mapping({"max_steps": 5}) == Escalation(max_steps=5)
    with pytest.raises(ConfigError, match=r"escalation has unknown key\(s\) \['max_step'\]; valid keys: "):
        Escalation.from_mapping({"max_step": 5})
    with pytest.raises(ConfigError, match=r"escalation=\{'max_steps': 3\} must be an Escalation"):
        Scenario(name="x", agent=lambda t, e: None, escalation={"max_steps": 3})
    assert "max_steps=5" in repr(Escalation(max_steps=5))


_YAML = "name: esc\nagent: pytest_agentops.demo:careful_agent\nescalation:\n"


def _schema_accepts(text: str) -> bool:
    import jsonschema
    import yaml

    from pytest_agentops.scenario_file import SCHEMA_PATH

    schema = json.loads(SCHEMA_PATH.read_text())
    return jsonschema.Draft202012Validator(schema).is_valid(yaml.safe_load(text))


def test_escalation_section_of_a_scenario_file():
    from pytest_agentops.scenario_file import load_scenario_text

    text = _YAML + "  after_consecutive_failures: 3\n  min_confidence: 0.5\n"
    (scenario,) = load_scenario_text(text)
    assert scenario.escalation == Escalation(after_consecutive_failures=3, min_confidence=0.5)
    assert _schema_accepts(text)
    assert load_scenario_text(_YAML.replace("escalation:\n", "escalation: null\n"))[0].escalation is None


@pytest.mark.parametrize("section, where, message", [
    ("  max_steps: 0\n", "4:14", "escalation: max_steps=0 must be a whole number >= 1"),
    ("  max_steps: null\n", "4:14", "escalation: max_steps=null: leave the key out to switch this trigger off"),
    ("  max_step: 3\n", "4:3", "escalation: unknown key 'max_step' (did you mean 'max_steps'?)"),
    ("  min_confidence: 1.5\n", "4:19", "escalation: min_confidence=1.5 must be a number > 0 and <= 1"),
    ("  {}\n", "4:3", "escalation: Escalation() needs at least one trigger"),
    (" 3\n", "4:2", "escalation=3 must be a mapping of after_consecutive_failures, max_steps"),
])
def test_bad_escalation_sections_are_located_and_the_schema_agrees(section, where, message):
    from pytest_agentops import ScenarioFileError
    from pytest_agentops.scenario_file import load_scenario_text

    with pytest.raises(ScenarioFileError) as info:
        load_scenario_text(_YAML + section)
    assert str(info.value).startswith(f"<string>:{where}: {message}")
    assert not _schema_accepts(_YAML + section)


# --- triggers ---------------------------------------------------------------------------------------------------


def test_consecutive_failures_trigger_escalates_at_the_next_harness_call():
    def agent(task, env):
        for _ in range(10):
            try:
                env.tools["lookup_order"](42)
            except ToolError:
                time.sleep(5)  # a harness call too: the clock advances, then the harness escalates
        return "gave up"

    result = _run(agent, Escalation(after_consecutive_failures=3), faults=OUTAGE)
    for record in result.records:
        assert record.outcome == "escalated" and record.tool_calls == 3
        assert record.reason == "harness escalated: after_consecutive_failures=3: 3 tool calls in a row failed"
        assert record.escalated_at_s == 15.0 and record.time_to_escalation_s == 15.0
        kinds = [(e.kind, e.name) for e in record.trace]
        assert kinds.index(("escalation_trigger", "consecutive_failures")) < kinds.index(("escalation", "human"))
    # without the layer the same agent gives up and fails
    assert _run(agent, None, faults=OUTAGE, check=lambda w, out: False).outcome_counts == {"failed": 5}


def test_a_successful_call_resets_the_failure_count():
    class Flaky(Orders):
        def __init__(self):
            super().__init__()
            self.script = [False, False, True, False, False, True, False, False, False, True]

    from pytest_agentops import tool

    @tool
    def ping(world) -> str:
        """Fails or answers as the world's script says."""
        if not world.script.pop(0):
            raise ConnectionError("no answer")
        return "pong"

    def agent(task, env):
        for _ in range(10):
            with contextlib.suppress(ConnectionError):
                env.tools["ping"]()
        return "done"

    scenario = Scenario(name="reset", agent=agent, world=Flaky, tools=[ping], faults=Faults.none(), trials=2,
                        seed=0, escalation=Escalation(after_consecutive_failures=3))
    record = run_campaign(scenario).records[0]
    # failures 1-2, ok, 4-5, ok, then 7-8-9 in a row: the 10th call escalates
    assert record.outcome == "escalated" and record.tool_calls == 9 and record.tool_failures == 7
    assert run_campaign(scenario.replace(escalation=Escalation(after_consecutive_failures=4))
                        ).records[0].outcome == "completed"


def test_max_steps_escalates_instead_of_the_step_past_the_limit():
    def agent(task, env):
        while True:
            env.record_usage(input_tokens=100, output_tokens=10)
            env.tools["refund_order"](42)

    result = _run(agent, Escalation(max_steps=5))
    for record in result.records:
        assert record.outcome == "escalated"
        assert "max_steps=5 reached: the agent started step 6 (tool call)" in record.reason
        assert record.tool_calls == 2 and record.input_tokens == 300  # steps: model, tool, model, tool, model
        assert record.unrecovered_fault_s is None and record.time_to_escalation_s is None  # no fault to time


def test_budget_fraction_escalates_before_the_breaker_trips():
    def agent(task, env):
        while True:
            env.record_usage(input_tokens=250, output_tokens=50)
            env.tools["lookup_order"](42)

    budget = Budget(per_task_tokens=1000)
    result = _run(agent, Escalation(budget_fraction=0.8), budget=budget)
    for record in result.records:
        assert record.outcome == "escalated" and record.tokens == 900  # 900 >= 80% of 1000: the next call
        assert "budget_fraction=0.8: 90% of per_task_tokens=1000 spent" in record.reason
    # without the trigger the breaker stops the trial; without a budget the trigger has nothing to read
    assert _run(agent, None, budget=budget).outcome_counts == {"budget_exceeded": 5}
    with pytest.warns(UnusedSetting, match="budget_fraction=0.8: no budget is set"):  # (said, not silently dropped)
        no_budget = _run(agent, Escalation(budget_fraction=0.8, max_steps=40))
    assert {r.reason.split(":")[1].strip() for r in no_budget.records} == {"max_steps=40 reached"}


def test_reported_confidence_under_the_threshold_escalates_at_once():
    def agent(task, env):
        env.report_confidence(0.9)
        env.tools["lookup_order"](42)
        env.report_confidence(0.3)
        env.tools["refund_order"](42)
        return "refunded"

    result = _run(agent, Escalation(min_confidence=0.5))
    for record in result.records:
        assert record.outcome == "escalated" and record.tool_calls == 1
        assert record.reason == "harness escalated: min_confidence=0.5: the agent reported 0.3"
        reported = [e.data["confidence"] for e in record.trace if e.kind == "confidence"]
        assert reported == [0.9, 0.3]
    # without the layer a report is only recorded
    plain = _run(agent, None, check=lambda w, out: 42 in w.refunded)
    assert plain.outcome_counts == {"completed": 5}
    assert [e.data["confidence"] for e in plain.records[0].trace if e.kind == "confidence"] == [0.9, 0.3]


@pytest.mark.parametrize("value", [1.5, -0.1, "0.5", True, None])
def test_report_confidence_rejects_values_outside_zero_to_one(value):
    def agent(task, env):
        try:
            env.report_confidence(value)
        except ValueError as exc:
            return str(exc)
        return "accepted"

    out = _run(agent, trials=1).records[0].output
    assert out == f"env.report_confidence: confidence={value!r} must be a number between 0 and 1"


def test_report_confidence_judges_the_range_by_float_comparisons_and_takes_other_numbers():
    """A review: the range was judged by the agent's own comparisons (a float subclass whose comparisons all said
    yes recorded nan, inf, 5.0 and -5.0 as confidences), and a ``Decimal`` or numpy's ``float32`` was refused as
    "not a number between 0 and 1". The value is read as an exact float first."""
    import decimal

    import numpy as np

    class Agreeable(float):
        def __le__(self, other):
            return True

        def __ge__(self, other):
            return True

    def agent(task, env):
        said = []
        for value in (Agreeable("nan"), Agreeable("inf"), Agreeable(5.0), Agreeable(-5.0)):
            try:
                env.report_confidence(value)
                said.append("accepted")
            except ValueError as exc:
                said.append(str(exc).split("=", 1)[1])
        for value in (decimal.Decimal("0.25"), np.float32(0.5), np.float64(0.75), Agreeable(1.0)):
            env.report_confidence(value)
        return repr(said)

    record = _run(agent, trials=1).records[0]
    assert record.output == repr([f"{v} must be a number between 0 and 1" for v in ("nan", "inf", "5.0", "-5.0")])
    assert [e.data["confidence"] for e in record.trace if e.kind == "confidence"] == [0.25, 0.5, 0.75, 1.0]


def test_a_trigger_with_no_later_harness_call_escalates_when_the_agent_stops():
    def returns(task, env):
        for _ in range(3):
            with contextlib.suppress(ToolError):
                env.tools["lookup_order"](42)
        return "gave up"

    def raises(task, env):
        for _ in range(3):
            try:
                env.tools["lookup_order"](42)
            except ToolError:
                if _ == 2:
                    raise

    for agent in (returns, raises):
        result = _run(agent, Escalation(after_consecutive_failures=3), faults=OUTAGE)
        assert result.outcome_counts == {"escalated": 5}, agent.__name__
        assert result.records[0].time_to_escalation_s == 0.0


def test_an_agent_that_escalates_itself_keeps_its_reason():
    def agent(task, env):
        try:
            env.tools["lookup_order"](42)
        except ToolError:
            time.sleep(12)
            env.escalate("order service down, a human should look")

    result = _run(agent, Escalation(after_consecutive_failures=3, max_steps=10), faults=OUTAGE)
    assert {r.reason for r in result.records} == {"order service down, a human should look"}
    assert {r.time_to_escalation_s for r in result.records} == {12.0}


# --- time to escalation ----------------------------------------------------------------------------------------


def _call(t: float, name: str, outcome: str) -> TraceEvent:
    return TraceEvent(0, t, "tool_call", name, outcome)


@pytest.mark.parametrize("calls, onset", [
    ([], None),
    ([(1, "a", "ok")], None),
    ([(1, "a", "error"), (2, "a", "ok")], None),  # recovered: a later success of the same tool
    ([(1, "a", "error"), (2, "b", "ok")], 1.0),  # another tool's success does not recover it
    ([(1, "a", "timeout"), (2, "a", "ok"), (5, "a", "outage"), (6, "a", "error")], 5.0),
    ([(1, "a", "error"), (3, "b", "raised"), (4, "a", "ok")], 3.0),
    ([(1, "a", "blocked"), (2, "a", "denied_scope"), (3, "a", "bad_arguments")], None),  # never reached it
    ([(1, "a", "malformed"), (2, "a", "blocked")], 1.0),  # a blocked call is no success
])
def test_unrecovered_fault_onset(calls, onset):
    assert unrecovered_fault_onset([_call(*c) for c in calls]) == onset


def _model(t: float, outcome: str, fault: str | None = None, name: str = "m") -> TraceEvent:
    return TraceEvent(0, t, "model_call", name, outcome, data={"fault": fault} if fault else {})


@pytest.mark.parametrize("events, onset", [
    ([_model(1, "rate_limit", "rate_limit"), _model(2, "ok")], None),  # the SDK's retry got through
    ([_model(1, "server_error", "server_error"), _model(3, "timeout", "timeout")], 1.0),  # never got through
    ([_model(1, "ok"), _model(2, "rate_limit", "rate_limit"), _model(4, "ok", name="other")], 2.0),  # per model
    ([_model(1, "ok", None), _model(2, "wrong_tool")], None),  # a perturbed reply is not an API fault
    ([_call(1, "a", "error"), _model(2, "rate_limit", "rate_limit"), _call(3, "a", "ok")], 2.0),
])
def test_unrecovered_fault_onset_counts_model_api_faults(events, onset):
    assert unrecovered_fault_onset(events) == onset


@pytest.mark.parametrize("outcome, escalated_at, onset, expected", [
    ("escalated", 40.0, 10.0, 30.0),
    ("escalated", 40.0, None, None),  # no unrecovered fault: nothing to time
    ("failed", None, 10.0, math.inf),  # never handed over: an exceedance of any threshold
    ("error", None, 10.0, math.inf),
    ("timed_out", None, 0.0, math.inf),
    ("completed", None, 10.0, None),  # worked around the fault: no escalation needed
    ("failed", None, None, None),
])
def test_time_to_escalation_of_a_record(outcome, escalated_at, onset, expected):
    record = TrialRecord("s", 0, 1, outcome, escalated_at_s=escalated_at, unrecovered_fault_s=onset)
    assert record.time_to_escalation_s == expected


def test_never_escalating_trials_count_as_exceedances_and_reports_stay_valid_json(tmp_path):
    def agent(task, env):
        try:
            env.tools["lookup_order"](42)
        except ToolError:
            if env.rng.random() < 0.5:
                return "gave up"  # fails without handing over: +inf
            time.sleep(5)
            env.escalate("down")

    result = _run(agent, None, faults=OUTAGE, trials=80, check=lambda w, out: False,
                  expect={"time_to_escalation_s.p95": "<= 30", "time_to_escalation_s.p50": ">= 1"})
    values = [r.time_to_escalation_s for r in result.records]
    assert set(values) == {5.0, math.inf}
    summary = result.metrics["time_to_escalation_s"]
    assert summary.infinite == values.count(math.inf) and summary.quantiles["p95"] == math.inf
    p95, p50 = result.verdicts
    assert p95.verdict == "fail" and p95.bound == math.inf and "are +inf" in p95.note
    assert p50.verdict == "pass" and p50.bound == 5.0
    path = write_report(tmp_path / "report.json", [result])  # json.dumps(allow_nan=False) inside
    data = json.loads(path.read_text())
    metric = data["campaigns"][0]["metrics"]["time_to_escalation_s"]
    assert metric["infinite"] == summary.infinite and metric["p95"] is None and metric["mean"] is None
    assert data["campaigns"][0]["verdicts"][0]["bound"] is None
    assert "Infinity" not in path.read_text() and "NaN" not in path.read_text()
    table = "\n".join(campaign_table(result))
    assert "time_to_escalation_s.p95" in table and "inf" in table


def test_stats_and_verdicts_handle_infinite_samples():
    samples = [1.0] * 90 + [math.inf] * 10
    assert stats.quantile(samples, 0.5) == 1.0 and stats.quantile(samples, 0.95) == math.inf
    assert stats.quantile_upper_bound(samples, 0.5) == 1.0
    assert stats.quantile_upper_bound(samples, 0.95) == math.inf
    data = collect([TrialRecord("s", i, i, "failed" if v == math.inf else "escalated",
                                escalated_at_s=None if v == math.inf else v, unrecovered_fault_s=0.0)
                    for i, v in enumerate(samples)], ["time_to_escalation_s"])["time_to_escalation_s"]
    assert data.samples == tuple(samples)
    verdict = evaluate(Expectation.parse("time_to_escalation_s.p95", "<= 30"), data)
    assert verdict.verdict == "fail" and verdict.to_dict()["bound"] is None and verdict.to_dict()["estimate"] is None
    assert summarize(data).to_dict()["infinite"] == 10


# --- the verdict, statistically ---------------------------------------------------------------------------------


def _timed_agent(p_never: float, scale_s: float):
    """Hits an outage at t=0; then never escalates with probability ``p_never``, else after Exp(scale_s) s."""

    def agent(task, env):
        with contextlib.suppress(ToolError):
            env.tools["lookup_order"](42)
        if env.rng.random() < p_never:
            return "gave up"
        time.sleep(float(env.rng.exponential(scale_s)))
        env.escalate("down")

    return agent


def _exceedance(p_never: float, scale_s: float, threshold: float = 30.0) -> float:
    return p_never + (1 - p_never) * math.exp(-threshold / scale_s)


def test_time_to_escalation_p95_gate_passes_a_bad_agent_at_most_five_percent_of_campaigns():
    """P(time > 30 s) = 0.07 > 0.05, so p95 > 30: the order-statistic gate must pass it <= 5% of the time.

    Exact, by dynamic programming over the trials (each a look) on the count of values above 30 (one
    Bernoulli(0.07) per trial; tests/sequential_rule.py), for this agent and for one at exactly 0.05 (the
    boundary: the worst case). A good agent (P(time > 30 s) = 0.0006) passes >= 80% of campaigns. A gate
    on the point estimate (the 114th of 120 values <= 30, i.e. at most 6 above) would pass the bad agent
    in about a quarter of campaigns, which the order-statistic bound must not.
    ``test_time_to_escalation_p95_campaigns_follow_the_sequential_rule`` shows the engine is that rule.
    """
    bad_p, good_p = _exceedance(0.02, 10.08), _exceedance(0.0, 4.0)
    assert 0.069 < bad_p < 0.071 and good_p < 0.001
    rule = sr.Quantile(0.95, "<=", 30.0)
    bad, boundary, good = (sr.exact_outcome(rule, p, 120) for p in (bad_p, 0.05, good_p))
    point_estimate_gate = float(scipy.stats.binom.cdf(6, 120, bad_p))
    print(f"exact P(pass) of time_to_escalation_s.p95 <= 30 at 120 trials: bad agent {bad.passed:.6f}, "
          f"boundary (0.05) {boundary.passed:.6f}, good agent {good.passed:.4f}; "
          f"a point-estimate gate would pass the bad agent with {point_estimate_gate:.3f}")
    assert bad.passed <= sr.ALPHA
    assert boundary.passed <= sr.ALPHA
    assert good.passed >= 0.8
    assert point_estimate_gate > 0.2


@pytest.mark.parametrize(("params", "seed", "stop"), [
    pytest.param((0.02, 10.08), 8, 23, id="bad-fails-at-23"),
    pytest.param((0.02, 10.08), 17, 93, id="bad-fails-at-93"),
    pytest.param((0.02, 10.08), 0, 120, id="bad-inconclusive-at-the-maximum"),
    pytest.param((0.0, 4.0), 1000, 59, id="good-passes-at-59"),
])
def test_time_to_escalation_p95_campaigns_follow_the_sequential_rule(params, seed, stop):
    """Real campaigns of the timed agent: their stop and verdict are the independent rule's on their own
    observed times, and every trial has a time (one Bernoulli per trial, as the exact computation assumes).
    The seeds were picked to show each way a campaign ends."""
    scenario = Scenario(name="esc-p95", agent=_timed_agent(*params), world=Orders, tools=ORDER_TOOLS,
                        faults=OUTAGE, trials=120, seed=seed, expect={"time_to_escalation_s.p95": "<= 30"},
                        check=lambda w, out: False)
    rule, full = sr.check_engine_follows_rule(scenario)
    assert rule.n == stop
    assert None not in [r.time_to_escalation_s for r in full.records]


def test_time_to_escalation_of_the_bad_agent_exceeds_30_s_as_the_exact_computation_assumes():
    """The figure behind the exact error rate: in 400 trials (a seed not chosen by its outcome) the share of
    times above 30 s is consistent with P = 0.07 (two-sided exact 99.9% interval)."""
    result = _run(_timed_agent(0.02, 10.08), None, faults=OUTAGE, trials=400, seed=2024, check=lambda w, out: False)
    times = [r.time_to_escalation_s for r in result.records]
    above = sum(t > 30 for t in times)
    print(f"{above}/400 times above 30 s")
    assert sr.cp_lower(above, 400, 0.9995) <= _exceedance(0.02, 10.08) <= sr.cp_upper(above, 400, 0.9995)


def test_time_to_escalation_runs_from_the_first_model_api_fault_not_recovered():
    import httpx

    def agent(task, env):
        for _attempt in range(3):  # a plain HTTP client, retried by hand; the model API is down throughout
            reply = httpx.post(f"{env.llm.base_url}/chat/completions",
                               json={"model": "m", "messages": [{"role": "user", "content": task}]})
            if reply.status_code == 200:
                return "done"
            time.sleep(4)  # virtual backoff
        env.escalate("the model API is down")

    result = run_campaign(Scenario(name="model-down", agent=agent, llm=FakeLLM(policy=lambda request, ctx: "hi"),
                                   trials=5, seed=0, early_stop=False,
                                   faults=Faults(model=ModelFaults(rate=1.0, mix={"server_error": 1}))))
    assert result.outcome_counts == {"escalated": 5}
    assert {r.time_to_escalation_s for r in result.records} == {12.0}  # from the first failed call, 3 x 4 s
