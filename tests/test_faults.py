"""Fault settings validation and the fault plan's determinism."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pytest_agentops import ConfigError, Faults
from pytest_agentops.plan import FaultPlan


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


def test_mix_proportions_follow_weights():
    faults = Faults(rate=1.0, mix={"error": 3, "empty": 1})
    plan = FaultPlan.draw(123, faults, ("t",))
    kinds = [plan.tool_fault("t", i).kind for i in range(4000)]
    share = kinds.count("error") / len(kinds)
    assert 0.72 < share < 0.78  # 0.75 +- ~5.5 standard errors

