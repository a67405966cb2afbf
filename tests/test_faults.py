"""Fault settings validation and the fault plan's determinism."""

from __future__ import annotations

import re
import warnings

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pytest_agentops import (
    Budget,
    ConfigError,
    DailyUsers,
    Drift,
    Escalation,
    Faults,
    HttpFaults,
    ModelFaults,
    Scenario,
    ToolFaults,
    UnusedSetting,
    run_campaign,
)
from pytest_agentops.plan import FaultPlan
from pytest_agentops.settings.faults import PROFILES, unused_settings


def test_profiles_have_the_documented_rates():
    assert [Faults.profile(p).rate for p in ("low", "mid", "high")] == [0.03, 0.08, 0.15]


@pytest.mark.parametrize("kwargs, message", [
    ({"rate": -0.1}, "rate=-0.1 must be between 0 and 1"),
    ({"rate": 1.5}, "rate=1.5 must be between 0 and 1"),
    ({"mix": {"explode": 1}}, "unknown fault kind 'explode'"),
    ({"mix": {"latency": 1}}, "latency and outage have their own settings"),
    ({"mix": {"error": -1}}, "must be a weight >= 0"),
    ({"latency_s": -2}, "latency_s=-2 must be a number of seconds >= 0"),
    ({"per_tool": {"x": {"rte": 0.1}}}, "unknown key(s) ['rte']"),
])
def test_bad_settings_name_the_key(kwargs, message):
    with pytest.raises(ConfigError) as info:
        Faults(**kwargs)
    assert message in str(info.value)


def test_unknown_profile_lists_valid_ones():
    with pytest.raises(ConfigError, match="valid profiles: none, low, mid, high"):
        Faults.profile("extreme")


# seeds span the full 63-bit range trial seeds take; call indices cross the 64-call draw blocks
@given(seed=st.integers(0, 2**63 - 1), calls=st.integers(1, 200))
def test_plan_is_a_pure_function_of_seed(seed, calls):
    faults = Faults.profile("high", latency=0.3)
    a = FaultPlan.draw(seed, faults, ("a", "b"))
    b = FaultPlan.draw(seed, faults, ("a", "b"))
    # b is asked in a different order: answers must not depend on it
    later = [b.tool_fault("b", i) for i in range(calls)]
    assert [a.tool_fault("a", i) for i in range(calls)] == [b.tool_fault("a", i) for i in range(calls)]
    assert [a.tool_fault("b", i) for i in range(calls)] == later


def test_per_tool_override_and_mix():
    faults = Faults(rate=0.0, per_tool={"flaky": {"rate": 1.0, "mix": {"timeout": 1}}})
    plan = FaultPlan.draw(1, faults, ("flaky", "solid"))
    assert {plan.tool_fault("flaky", i).kind for i in range(100)} == {"timeout"}
    assert {plan.tool_fault("solid", i).kind for i in range(100)} == {None}


def test_a_per_tool_mix_without_a_rate_follows_the_scenario_rate_as_a_profile_sets_it():
    """``per_tool: {flaky: {mix: {timeout: 1}}}`` took the scenario-wide rate as the settings were made (0) and
    kept it: under ``--agent-chaos-profile=high`` every other tool failed 15% of its calls and ``flaky`` never,
    its mix silently unused. Now a per-tool entry without a rate has the scenario's rate when the campaign runs."""
    from pytest_agentops.precedence import resolve_run
    from pytest_agentops.settings.run import RunSource

    faults = Faults(per_tool={"flaky": {"mix": {"timeout": 1}}})
    assert faults.tool_settings("flaky").rate == 0.0 and not faults.active
    high = faults.with_profile("high")
    assert high.tool_settings("flaky").rate == high.tool_settings("solid").rate == 0.15
    assert dict(high.tool_settings("flaky").mix) == {"timeout": 1.0}
    plan = FaultPlan.draw(5, high, ("flaky", "solid"))
    kinds = [plan.tool_fault("flaky", i).kind for i in range(2000)]
    assert set(kinds) == {None, "timeout"} and 0.12 < kinds.count("timeout") / 2000 < 0.18
    def flaky() -> int:
        return 1

    scenario = Scenario(name="s", agent=lambda task, env: "ok", tools=[flaky], faults=faults)
    resolved = resolve_run(scenario, (RunSource("command line", profile="high"),)).faults
    assert resolved.tool_settings("flaky").rate == 0.15
    assert Faults(per_tool={"fixed": {"rate": 0.5}}).with_profile("high").tool_settings("fixed").rate == 0.5


@pytest.mark.parametrize(("faults", "said"), [
    (Faults(latency_s=5), ["latency_s=5: latency is 0, no call is slow"]),
    (Faults(outage_tools=("a",)), ["outage_tools=['a']: outage is 0, no tool is down"]),
    (Faults(crash_point="before", crash_steps=2), ["crash_point='before', crash_steps=[2, 2]: crash is 0, no trial "
                                                   "crashes"]),
    (Faults(crash_restarts=3), ["crash_restarts=3: crash is 0, no trial crashes"]),
    (Faults(rate=0.1, mix={"error": 1}, timeout_s=5, retry_after_s=2),
     ["timeout_s=5: no tool call can fail by timeout", "retry_after_s=2: no tool call can fail by rate_limit"]),
    (Faults(mix={"timeout": 1}), ["mix: rate is 0, no tool call fails by it"]),
    (Faults(per_tool={"a": {"mix": {"timeout": 1}}}), ["per_tool['a'].mix: the tool's rate is 0, none of its calls "
                                                        "fails"]),
    (Faults(per_tool={"a": {"rate": 0, "mix": {"empty": 1}}}, rate=0.2),
     ["per_tool['a'].mix: the tool's rate is 0, none of its calls fails"]),
    # (a review: the model, drift, http and injection sections were never looked at)
    (Faults(model=ModelFaults(retry_after_s=5)), ["model: retry_after_s: its rate is 0, none of its faults fires"]),
    (Faults(http=HttpFaults(hosts=["a.test"])), ["http: hosts: its rate is 0, none of its faults fires"]),
    (Faults(drift=Drift(keep_last=3)), ["drift: keep_last: its rate is 0, none of its faults fires"]),
], ids=["latency_s", "outage_tools", "crash", "restarts", "timeout_retry", "mix", "per_tool", "per_tool_rate_0",
        "model", "http", "drift"])
def test_a_fault_setting_that_cannot_take_effect_is_named(faults, said):
    """Settings given without the rate that makes them fire ran silently without their faults (an outside review:
    ``crash_mode`` without ``crash``, ``latency_s`` without ``latency``, a per-tool mix without a rate)."""
    assert list(unused_settings(faults)) == said


@pytest.mark.parametrize("faults", [
    *(Faults.profile(name) for name in PROFILES), Faults(), Faults.none(),
    Faults(rate=0.1, mix={"timeout": 1}, timeout_s=5), Faults(latency=0.1, latency_s=5),
    Faults(crash=0.5, crash_point="any", crash_steps=(2, 3), crash_restarts=0),
    Faults(crash_mode="sigkill", crash_restarts=2),  # (restarts a child killed by itself too)
    Faults(per_tool={"a": {"rate": 0.3, "mix": {"rate_limit": 1}}}, retry_after_s=4),
    Faults(mix={"timeout": 1}, per_tool={"a": 0.2}, timeout_s=3),  # (the per-tool rate uses the scenario's mix)
    Faults(outage=0.1, outage_tools=("a",)),
    Faults(rate=0.1, mix={"timeout": 1}, per_tool={"a": ToolFaults(0.0)}),  # (its mix the default: none given)
    Faults(model=ModelFaults(rate=0.1, retry_after_s=5)), Faults(http=HttpFaults(hosts=["a.test"], rate=0.2)),
    Faults(model=ModelFaults.profile("none"), drift=Drift.profile("none")),
    Faults(per_tool={"a": {"mix": {"timeout": 1}}}).with_profile("low"),
])
def test_settings_that_take_effect_are_not_named(faults):
    assert unused_settings(faults) == ()


def test_an_unused_setting_is_warned_at_the_test_line_that_ran_the_campaign(pytester):
    """Through pytest: an ``UnusedSetting`` warning at the test's line (not the plugin's), once the resolved
    settings are known (a profile from the command line that makes the setting fire: no warning)."""
    pytester.makepyfile(test_unused="""
from pytest_agentops import Faults, Scenario

def lookup(x: int) -> int:
    return x

def test_unused(agent_chaos):
    faults = Faults(per_tool={"lookup": {"mix": {"timeout": 1}}}, latency_s=5)
    agent_chaos.run(Scenario(name="u", agent=lambda task, env: "ok", tools=[lookup], trials=3, seed=1,
                             faults=faults))
""")
    result = pytester.runpytest("--agent-chaos", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, warnings=1)
    result.stdout.fnmatch_lines(["*test_unused.py:8: UnusedSetting: scenario 'u': latency_s=5: latency is 0, no call "
                                 "is slow; per_tool[[]'lookup'].mix: the tool's rate is 0, none of its calls fails"])
    profiled = pytester.runpytest("--agent-chaos", "--agent-chaos-profile=mid", "-p", "no:cacheprovider")
    profiled.assert_outcomes(passed=1, warnings=0)
    smoke = pytester.runpytest("-p", "no:cacheprovider")  # (a smoke trial has no faults: nothing to say)
    smoke.assert_outcomes(passed=1, warnings=0)


def test_mix_proportions_follow_weights():
    faults = Faults(rate=1.0, mix={"error": 3, "empty": 1})
    plan = FaultPlan.draw(123, faults, ("t",))
    kinds = [plan.tool_fault("t", i).kind for i in range(4000)]
    share = kinds.count("error") / len(kinds)
    assert 0.72 < share < 0.78  # 0.75 +- ~5.5 standard errors



def test_a_profile_whose_rates_are_overridden_is_no_longer_named_after_it():
    """An outside review: ``faults: {profile: none, rate: 0.5}`` was reported ``profile=none``, and the gate compared
    the candidate failing half its calls with a baseline run under the real ``none``: a "regression" of the agent.
    Overrides that change the profile's rates make it ``custom``; the others keep its name."""
    assert Faults.profile("none", rate=0.5).profile_name is None
    assert Faults.profile("mid", latency=0.5).profile_name is None
    assert Faults.profile("mid", model=ModelFaults.profile("high")).profile_name is None
    assert Faults.profile("mid", rate=0.08).profile_name == "mid"
    assert Faults.profile("mid", mix={"timeout": 1.0}).profile_name == "mid"
    assert Faults.profile("mid", per_tool={"lookup": 0.9}).profile_name == "mid"  # (rates on top of its own)
    assert Faults.profile("high").profile_name == "high"


@pytest.mark.parametrize(("settings", "said"), [
    ({"escalation": Escalation(budget_fraction=0.5)},
     "escalation.budget_fraction=0.5: no budget is set, the trigger never fires"),
    ({"budget": Budget(per_task_tokens=1000, users=DailyUsers(count=3))},
     "budget.users: no per_user_day_tokens or per_user_day_usd is set"),
    ({"network": "allow", "allow_hosts": ["api.example.com"]},
     "allow_hosts=['api.example.com']: network is 'allow', every host is reached"),
], ids=["budget_fraction", "users", "allow_hosts"])
def test_scenario_settings_that_cannot_take_effect_are_named(settings, said):
    """An outside review: these were accepted and silently did nothing."""
    with pytest.warns(UnusedSetting, match=re.escape(said)):
        run_campaign(Scenario(name="unused", agent=lambda task, env: "ok", trials=1, seed=1, **settings))


def test_the_same_scenario_settings_taking_effect_are_not_named():
    """Each of the settings above, taking effect: no warning."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", UnusedSetting)
        run_campaign(Scenario(name="used", agent=lambda task, env: "ok", trials=1, seed=1,
                              escalation=Escalation(budget_fraction=0.5), network="deny", allow_hosts=["a.example"],
                              budget=Budget(per_task_tokens=1000, per_user_day_tokens=5000,
                                            users=DailyUsers(count=3))))
