"""The budget layer: per-request / per-task / per-user-day limits, the circuit breaker, the 80% alert."""

from __future__ import annotations

import asyncio
import contextlib
import json
from pathlib import Path

import jsonschema
import numpy as np
import pytest
import scipy.stats
import yaml

from pytest_agentops import ConfigError, Faults, Scenario, ScenarioFileError, run_campaign
from pytest_agentops.demo import runaway
from pytest_agentops.errors import TrialAborted
from pytest_agentops.harness.budget import BudgetGuard
from pytest_agentops.harness.meter import TokenMeter
from pytest_agentops.harness.trace import Trace
from pytest_agentops.report.json_report import report_dict
from pytest_agentops.report.terminal import campaign_table
from pytest_agentops.scenario_file import SCHEMA_PATH, load_scenario_text, load_scenarios
from pytest_agentops.settings.layers import Budget, DailyUsers
from pytest_agentops.settings.prices import DEFAULT_PRICES, Price, price_for, price_table
from pytest_agentops.stats import clopper_pearson_lower, clopper_pearson_upper

import sequential_rule as sr
from conftest import ORDER_TOOLS, Orders


def spender(calls: int | None, input_tokens: int = 1000, output_tokens: int = 0, model: str = "fake-model"):
    """An agent that makes ``calls`` model calls (forever with None), swallowing every Exception."""

    def agent(task, env):
        made = 0
        while calls is None or made < calls:
            with contextlib.suppress(Exception):  # an agent's broad except must not swallow the breaker
                env.record_usage(input_tokens=input_tokens, output_tokens=output_tokens, model=model)
            made += 1
        return "done"

    return agent


def one_trial(agent, budget: Budget | None, **kwargs):
    scenario = Scenario(name="spend", agent=agent, task="t", budget=budget, trials=1, seed=3, **kwargs)
    return run_campaign(scenario, faults=Faults.none()).records[0]


def events(record, kind):
    return [e for e in record.trace if e.kind == kind]


# -- settings -------------------------------------------------------------------------------------------------


def test_default_budget_is_the_common_per_request_circuit_breaker():
    budget = Budget()
    assert budget.per_request_tokens == 4000 and budget.alert_fraction == 0.8
    assert budget.limits == {} and not budget.per_user_day
    assert Scenario(name="s", agent=spender(1), task="t").budget is None


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"per_request_tokens": 0}, r"per_request_tokens=0 must be a whole number of tokens >= 1"),
    ({"per_task_tokens": 2.5}, r"per_task_tokens=2.5 must be a whole number of tokens >= 1"),
    ({"per_user_day_tokens": True}, r"per_user_day_tokens=True must be a whole number"),
    ({"per_task_usd": -1}, r"per_task_usd=-1 must be an amount of USD > 0"),
    ({"per_user_day_usd": float("nan")}, r"per_user_day_usd=nan must be an amount of USD > 0"),
    ({"alert_fraction": 1.0}, r"alert_fraction=1.0 must be a number between 0 and 1"),
    ({"alert_fraction": "80%"}, r"alert_fraction='80%' must be a number between 0 and 1"),
    ({"users": {"count": 3}}, r"users=\{'count': 3\} must be a DailyUsers"),
])
def test_bad_budget_settings_name_the_key(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        Budget(**kwargs)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"count": 0}, r"^count=0 must be a whole number of users >= 1"),
    ({"earlier_tasks": -1}, r"^earlier_tasks=-1 must be a number >= 0"),
    ({"tokens_per_task": 1.5}, r"^tokens_per_task=1.5 must be a whole number of tokens >= 0"),
    ({"usd_per_task": "1"}, r"^usd_per_task='1' must be a number >= 0"),
])
def test_bad_user_settings_name_the_key(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        DailyUsers(**kwargs)


def test_budget_from_mapping_rejects_unknown_keys_and_builds_users():
    budget = Budget.from_mapping({"per_task_tokens": 20000, "per_user_day_usd": 1.5,
                                  "users": {"count": 50, "earlier_tasks": 4}})
    assert budget == Budget(per_task_tokens=20000, per_user_day_usd=1.5, users=DailyUsers(50, 4.0))
    with pytest.raises(ConfigError, match=r"budget has unknown key\(s\) \['per_task'\]; valid keys: "
                                          r"per_request_tokens, per_task_tokens"):
        Budget.from_mapping({"per_task": 100})
    with pytest.raises(ConfigError, match=r"budget.users has unknown key\(s\) \['n'\]; valid keys: count"):
        Budget.from_mapping({"users": {"n": 3}})
    with pytest.raises(ConfigError, match=r"budget=\[1\] must be a mapping"):
        Budget.from_mapping([1])  # type: ignore[arg-type]


def test_scenario_budget_must_be_a_budget():
    with pytest.raises(ConfigError, match=r"budget=\{'per_task_tokens': 5\} must be a Budget"):
        Scenario(name="s", agent=spender(1), task="t", budget={"per_task_tokens": 5})  # type: ignore[arg-type]


# -- the circuit breaker --------------------------------------------------------------------------------------


def test_per_request_limit_trips_on_one_large_call_only():
    at_limit = one_trial(spender(3, input_tokens=3900, output_tokens=100), Budget(per_request_tokens=4000))
    assert at_limit.outcome == "completed" and not events(at_limit, "budget")
    over = one_trial(spender(3, input_tokens=3900, output_tokens=101), Budget(per_request_tokens=4000))
    assert over.outcome == "budget_exceeded"
    assert over.reason == "per_request_tokens=4000 exceeded: one model call of 4001 tokens (fake-model)"
    (trip,) = events(over, "budget")
    assert (trip.name, trip.outcome, trip.data["spent"], trip.data["limit"]) == \
        ("per_request_tokens", "exceeded", 4001, 4000)
    assert len(events(over, "model_call")) == 1  # stopped at the first call, not after the loop
    assert over.extra["budget_exceeded"] == "per_request_tokens"


def test_per_task_token_budget_trips_at_the_call_that_passes_it():
    record = one_trial(spender(None, input_tokens=1000), Budget(per_task_tokens=5500))
    assert record.outcome == "budget_exceeded"
    assert record.tokens == 6000 and len(events(record, "model_call")) == 6
    assert record.reason == "per_task_tokens=5500 exceeded: 6000 tokens spent"
    (trip,) = events(record, "budget")
    assert (trip.name, trip.data["spent"]) == ("per_task_tokens", 6000)
    assert trip.seq == record.trace[-2].seq  # the last event before the outcome
    exactly = one_trial(spender(6, input_tokens=1000), Budget(per_task_tokens=6000))
    assert exactly.outcome == "completed"  # reaching the budget is allowed; passing it is not


def test_per_task_usd_budget_trips_with_the_models_price():
    prices = {"pricey": (1000.0, 0.0)}  # $1 per 1,000 input tokens
    record = one_trial(spender(None, input_tokens=1000, model="pricey"), Budget(per_task_usd=2.5), prices=prices)
    assert record.outcome == "budget_exceeded"
    assert len(events(record, "model_call")) == 3 and record.cost_usd == pytest.approx(3.0)
    assert record.reason == "per_task_usd=2.5 exceeded: $3 spent"
    assert events(record, "budget")[0].name == "per_task_usd"
    cheap = one_trial(spender(30, input_tokens=1000, model="fake-model"), Budget(per_task_usd=2.5), prices=prices)
    assert cheap.outcome == "completed"  # the same calls on a $1/Mtok model cost $0.03


def test_alert_at_80_percent_is_recorded_once_per_budget():
    record = one_trial(spender(9, input_tokens=1000), Budget(per_task_tokens=10_000))
    assert record.outcome == "completed"
    (alert,) = events(record, "alert")
    assert (alert.name, alert.outcome, alert.data["spent"], alert.data["fraction"]) == \
        ("per_task_tokens", "crossed", 8000, 0.8)
    calls_before = [e for e in record.trace if e.kind == "model_call" and e.seq < alert.seq]
    assert len(calls_before) == 8  # raised by the 8th call (8,000 = 80% of 10,000), not earlier
    assert record.extra["budget_alerts"] == 1

    below = one_trial(spender(7, input_tokens=1000), Budget(per_task_tokens=10_000))
    assert not events(below, "alert") and below.extra["budget_alerts"] == 0

    two = one_trial(spender(8, input_tokens=1000, model="pricey"),  # $0.002 per call
                    Budget(per_task_tokens=12_000, per_task_usd=0.0175, alert_fraction=0.5), prices={"pricey": (2, 0)})
    assert two.outcome == "completed"
    assert [(e.name, e.data["spent"]) for e in events(two, "alert")] == \
        [("per_task_usd", pytest.approx(0.01)), ("per_task_tokens", 6000)]
    assert two.extra["budget_alerts"] == 2


def test_runaway_agent_ends_budget_exceeded_instead_of_timing_out():
    def runaway(task, env):
        while True:  # a tool loop that swallows every error and never stops on its own
            try:
                env.tools["lookup_order"](42)
                env.record_usage(input_tokens=800, output_tokens=50, model="gpt-4o")
            except Exception:
                continue

    scenario = Scenario(name="loop", agent=runaway, task="t", world=Orders, tools=ORDER_TOOLS,
                        budget=Budget(per_task_tokens=50_000), faults=Faults.profile("high"), trials=20, seed=5,
                        timeout_s=60.0)
    result = run_campaign(scenario, early_stop=False)
    assert result.outcome_counts == {"budget_exceeded": 20}
    assert all(r.tokens == 50_150 and r.reason.startswith("per_task_tokens=50000 exceeded") for r in result.records)


def test_async_runaway_agent_is_stopped_too():
    async def runaway(task, env):
        while True:
            try:
                await asyncio.sleep(1)  # virtual time: costs no wall time
                env.record_usage(input_tokens=1000, model="gpt-4o")
            except Exception:
                continue

    scenario = Scenario(name="aloop", agent=runaway, task="t", budget=Budget(per_task_tokens=9_500), trials=3, seed=1)
    result = run_campaign(scenario, faults=Faults.none(), early_stop=False)
    assert result.outcome_counts == {"budget_exceeded": 3}
    assert {r.tokens for r in result.records} == {10_000}


def test_the_breaker_stays_open_when_the_agent_swallows_it():
    seen = []

    def stubborn(task, env):
        try:
            while True:
                env.record_usage(input_tokens=1000)
        except BaseException as exc:
            seen.append(type(exc).__name__)
        for attempt in (lambda: env.record_usage(input_tokens=1), lambda: env.tools["lookup_order"](42)):
            try:
                attempt()
            except BaseException as exc:
                seen.append(type(exc).__name__)
        return "pretends to be done"

    record = one_trial(stubborn, Budget(per_task_tokens=2000), world=Orders, tools=ORDER_TOOLS,
                       check=lambda world, out: True)
    assert record.outcome == "budget_exceeded"  # the trial is over even though the agent returned
    assert seen == ["TrialAborted"] * 3
    assert record.tokens == 3000 and record.tool_calls == 0


def test_check_request_trips_before_the_call_for_http_fakes():
    trace = Trace()
    aborted = []
    guard = BudgetGuard(Budget(per_request_tokens=100), trace=trace,
                        abort=lambda outcome, reason: aborted.append(outcome))
    guard.check_request(100, "gpt-4o")
    with pytest.raises(TrialAborted, match="per_request_tokens=100 exceeded: a request of 101 tokens to gpt-4o"):
        guard.check_request(101, "gpt-4o")
    assert aborted == ["budget_exceeded"] and guard.tripped == "per_request_tokens"
    meter = TokenMeter()
    meter.subscribe(guard)
    with pytest.raises(TrialAborted):  # the breaker stays open
        meter.record(1, 0)
    assert [e.kind for e in trace.events()] == ["budget"]


# -- per-user-per-day -----------------------------------------------------------------------------------------


def _user_day_scenario(**kwargs):
    settings = dict(name="daily", agent=spender(1, input_tokens=2000), task="t",
                    budget=Budget(per_user_day_tokens=10_000,
                                  users=DailyUsers(count=20, earlier_tasks=3.0, tokens_per_task=2000)),
                    trials=2000, seed=9, early_stop=False)
    settings.update(kwargs)
    return Scenario(**settings)


def test_user_day_budget_is_reproducible_and_independent_of_concurrency():
    def slow_spender(task, env):
        for _ in range(4):
            env.clock.sleep(float(env.rng.random()))  # vary how trials interleave under concurrency
            env.record_usage(input_tokens=700)
        return "done"

    scenario = _user_day_scenario(agent=slow_spender, trials=60)
    serial = run_campaign(scenario, concurrency=1)
    parallel = run_campaign(scenario, concurrency=8)
    assert report_dict([serial], with_traces=True) == report_dict([parallel], with_traces=True)
    outcomes = serial.outcome_counts
    assert outcomes.get("budget_exceeded", 0) > 0 and outcomes.get("completed", 0) > 0
    tripped = next(r for r in serial.records if r.outcome == "budget_exceeded")
    drawn = next(e for e in tripped.trace if e.kind == "budget" and e.outcome == "drawn")
    user = drawn.data["user"]
    assert tripped.reason.startswith(f"per_user_day_tokens=10000 exceeded: {user} has spent ")
    before = drawn.data["spent_before"]
    assert before + tripped.tokens > 10_000  # tripped by the call that passed the day's budget, not later
    assert before + tripped.tokens - 700 <= 10_000 or tripped.tokens == 700


def test_user_day_exceeded_rate_matches_the_documented_draw():
    """P(trip) = P(earlier spend > 10,000 - 2,000): compound Poisson(3) of Exponential(2,000) tokens."""
    result = run_campaign(_user_day_scenario())
    k, n = result.outcome_counts.get("budget_exceeded", 0), result.n
    lam, scale, room = 3.0, 2000.0, 8000.5  # spend before is rounded to whole tokens
    truth = sum(scipy.stats.poisson.pmf(m, lam) * scipy.stats.gamma.sf(room, a=m, scale=scale)
                for m in range(1, 60))
    assert clopper_pearson_lower(k, n, 0.999) <= truth <= clopper_pearson_upper(k, n, 0.999), (k, n, truth)
    assert 0.1 < truth < 0.4  # the check has power: the trips are neither rare nor certain


def test_user_day_alert_is_not_repeated_for_a_user_already_past_it():
    budget = Budget(per_user_day_tokens=10_000, users=DailyUsers(count=5, earlier_tasks=3.0, tokens_per_task=2000))
    result = run_campaign(_user_day_scenario(budget=budget, trials=300, keep_traces=None))  # every trial's trace
    for r in result.records:
        before = next(e for e in r.trace if e.outcome == "drawn").data["spent_before"]
        alerted = [e for e in r.trace if e.kind == "alert"]
        crossed_here = before < 8000 <= before + r.tokens
        assert len(alerted) == int(crossed_here), r.label
        assert r.extra["budget_alerts"] == int(crossed_here)
    assert 0 < sum(r.extra["budget_alerts"] for r in result.records) < result.n


# -- verdicts on known runaway probabilities ------------------------------------------------------------------


@pytest.mark.parametrize(("p", "expected"), [(0.002, "pass"), (0.15, "fail")])
def test_budget_exceeded_rate_expectation_is_decided_correctly(p, expected):
    verdicts = set()
    for seed in range(5):
        result = run_campaign(runaway.scenario(p, seed=seed, expect={"budget_exceeded_rate": "<= 0.05"}),
                              trials=600)
        verdicts.add(result.verdicts[0].verdict)
    assert verdicts == {expected}


def test_a_borderline_runaway_agent_passes_budget_gate_at_most_five_percent_of_campaigns():
    """True runaway rate 0.05 against <= 0.05: the worst case of the gate's error rate. Exact, by dynamic
    programming over the trials, each one a look (tests/sequential_rule.py): at most 5% of 200-trial
    campaigns pass; agents that run away more often pass less often.
    ``test_runaway_campaigns_follow_the_sequential_rule`` shows the engine is that rule."""
    rule = sr.Rate("<=", 0.05)
    boundary = sr.exact_outcome(rule, 0.05, 200)
    above = [sr.exact_outcome(rule, p, 200).passed for p in np.linspace(0.05, 0.20, 31)]
    print(f"exact P(pass) of budget_exceeded_rate <= 0.05 at 200 trials for a p=0.05 runaway agent: "
          f"{boundary.passed:.6f} (fail {boundary.failed:.4f}, inconclusive {boundary.inconclusive:.4f})")
    assert boundary.passed <= sr.ALPHA
    assert np.all(np.diff(above) <= 1e-12) and above[0] == pytest.approx(boundary.passed)
    assert boundary.passed > 0  # not vacuous: the gate can pass a borderline agent


@pytest.mark.parametrize(("seed", "stop", "verdict"), [
    pytest.param(0, 181, "pass", id="passes-at-181"),  # the rare event whose chance is computed above
    pytest.param(12, 26, "fail", id="fails-at-26"),
    pytest.param(1, 200, "inconclusive", id="inconclusive-at-the-maximum"),
])
def test_runaway_campaigns_follow_the_sequential_rule(seed, stop, verdict):
    """Real campaigns of the p=0.05 runaway agent: their stop and verdict are the independent rule's on
    their own observed outcomes. The seeds were picked to show each way a campaign ends."""
    scenario = runaway.scenario(0.05, seed=seed, expect={"budget_exceeded_rate": "<= 0.05"})
    rule, full = sr.check_engine_follows_rule(scenario, trials=200, faults=Faults.none())
    assert (rule.n, rule.verdicts) == (stop, (verdict,))
    assert set(full.outcome_counts) <= {"completed", "budget_exceeded"}


def test_runaway_agent_runs_away_as_often_as_the_exact_computation_assumes():
    """The figure behind the exact error rate: in 400 trials (a seed not chosen by its outcome) the
    budget_exceeded share is consistent with p = 0.05 (two-sided exact 99.9% interval)."""
    result = run_campaign(runaway.scenario(0.05, seed=2024), trials=400, faults=Faults.none(), early_stop=False)
    k = result.outcome_counts.get("budget_exceeded", 0)
    print(f"{k}/400 trials ran away")
    assert sr.cp_lower(k, 400, 0.9995) <= 0.05 <= sr.cp_upper(k, 400, 0.9995)


# -- cost, metrics and reports --------------------------------------------------------------------------------


def test_cost_uses_the_price_table_per_model_including_names_models_report():
    def agent(task, env):
        for model in ("gpt-4o-mini-2024-07-18", "openai:gpt-4o", "claude-sonnet-4-20250514", "house-model",
                      "someone-elses-model"):
            env.record_usage(input_tokens=1_000_000, output_tokens=1_000_000, model=model)
        return "ok"

    record = one_trial(agent, None, prices={"house-model": (0.5, 0.25)})
    expected = (0.15 + 0.6) + (2.5 + 10.0) + (3.0 + 15.0) + (0.5 + 0.25) + (3.0 + 15.0)
    assert record.cost_usd == pytest.approx(expected)
    assert record.default_priced == ("someone-elses-model",)  # the one priced at the '*' fallback: said so
    assert record.to_dict()["default_priced_models"] == ["someone-elses-model"]
    table = price_table({"house-model": Price(1, 2)})
    assert price_for(table, "house-model") == Price(1.0, 2.0)
    assert price_for(table, "gpt-4o-mini") == DEFAULT_PRICES["gpt-4o-mini"]  # longest name, not gpt-4o
    assert price_for(table, "anthropic/claude-haiku-4@20251001") == DEFAULT_PRICES["claude-haiku-4"]
    assert price_for({"m": Price(1, 1)}, "other") == DEFAULT_PRICES["*"]


def test_budget_metrics_reach_the_json_report_and_the_terminal_table():
    result = run_campaign(runaway.scenario(0.3, trials=60, seed=2, early_stop=False))
    alerts = result.metrics["budget_alert_rate"]
    exceeded = result.outcome_counts["budget_exceeded"]
    assert alerts.n == 60 and alerts.total == exceeded  # every runaway crosses 80% before it trips
    data = report_dict([result])["campaigns"][0]
    assert data["metrics"]["budget_alert_rate"]["k"] == exceeded
    assert sum(r["extra"]["budget_alerts"] for r in data["records"]) == exceeded
    assert f"  budget: alerts in {exceeded}/60 trial(s), exceeded in {exceeded}/60" in campaign_table(result)
    plain = run_campaign(Scenario(name="nob", agent=spender(1), task="t", trials=5, seed=1))
    assert "budget_alert_rate" not in plain.metrics  # not applicable without a budget
    assert not any(line.startswith("  budget:") for line in campaign_table(plain))


def test_budget_runaway_scenario_file_is_the_python_demo():
    """scenarios/budget_runaway.yaml is ``runaway.scenario()``: same report for the same seed, and it passes."""
    (from_file,) = load_scenarios(Path(__file__).parent.parent / "scenarios" / "budget_runaway.yaml")
    demo = runaway.scenario()
    assert from_file.budget == demo.budget == Budget(per_request_tokens=4000, per_task_tokens=20_000)
    result = run_campaign(from_file)
    assert report_dict([result]) == report_dict([run_campaign(demo)])
    assert result.passed and result.outcome_counts.get("budget_exceeded", 0) > 0  # the breaker is seen working


BUDGET_YAML = """
name: b
agent: pytest_agentops.demo.runaway:agent
budget:
  {line}
"""


@pytest.mark.parametrize(("line", "message"), [
    ("per_task_tokens: 20000", None),
    ("per_user_day_usd: 1.5", None),
    ("users: {count: 10, earlier_tasks: 2.5, tokens_per_task: 100, usd_per_task: 0.5}", None),
    ("per_tsk_tokens: 5", r"x.yaml:5:3: budget: unknown key 'per_tsk_tokens' \(did you mean 'per_task_tokens'\?\)"),
    ("per_task_tokens: -3", r"x.yaml:5:20: budget: per_task_tokens=-3 must be a whole number of tokens >= 1"),
    ("per_task_usd: 0", r"x.yaml:5:17: budget: per_task_usd=0 must be an amount of USD > 0"),
    ("alert_fraction: 80%", r"budget: alert_fraction='80%' must be a number between 0 and 1 .*write a share: 0.8"),
    ("users: {count: 0}", r"x.yaml:5:18: budget: users: count=0 must be a whole number of users >= 1"),
    ("users: {n: 1}", r"x.yaml:5:11: budget: users: unknown key 'n'; valid keys: count, earlier_tasks"),
    ("users: 7", r"budget: users=7 must be a mapping of count, earlier_tasks"),
])
def test_budget_section_of_scenario_files(line, message):
    """The loader and the shipped JSON Schema accept and reject the same ``budget:`` sections."""
    text = BUDGET_YAML.format(line=line)
    schema = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    errors = list(jsonschema.Draft202012Validator(schema).iter_errors(yaml.safe_load(text)))
    assert bool(errors) == (message is not None), errors
    if message is None:
        (scenario,) = load_scenario_text(text, "x.yaml")
        assert scenario.budget == Budget.from_mapping(yaml.safe_load(text)["budget"])
    else:
        with pytest.raises(ScenarioFileError, match=message):
            load_scenario_text(text, "x.yaml")


def test_budget_keys_at_the_top_level_point_to_the_section():
    with pytest.raises(ScenarioFileError, match=r"unknown key 'per_task_tokens' \('per_task_tokens' belongs under "
                                                r"'budget:'\)"):
        load_scenario_text("name: b\nagent: pytest_agentops.demo.runaway:agent\nper_task_tokens: 5\n", "x.yaml")


def test_plugin_summary_shows_the_budget_line(pytester):
    pytester.makepyfile(test_runaway='''
from pytest_agentops.demo import runaway

def test_runaway(agent_chaos):
    agent_chaos.run(runaway.scenario(0.3, trials=30, early_stop=False, expect={})).check()
''')
    result = pytester.runpytest("--agent-chaos", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*budget-runaway*30/30 trials*", "*outcomes: completed=* budget_exceeded=*",
                                 "*budget: alerts in */30 trial(s), exceeded in */30"])


def test_alert_listeners_hear_each_alert_once():
    heard = []

    def agent(task, env):
        env._ctx.service("budget").subscribe_alert(lambda name, spent, limit: heard.append((name, spent, limit)))
        for _ in range(5):
            env.record_usage(input_tokens=1000)
        return "done"

    record = one_trial(agent, Budget(per_task_tokens=5000))
    assert record.outcome == "completed" and heard == [("per_task_tokens", 4000, 5000)]
