"""Settings are never silently lost or ignored: a profile replaces rates only (tool and model faults alike),
faults naming tools the scenario lacks are errors in Python as in YAML, and agent/check/world signatures are
checked when the Scenario is built."""

from __future__ import annotations

import pytest

from pytest_agentops import ConfigError, Faults, ModelFaults, Scenario, run_campaign

from conftest import ORDER_TOOLS, Orders, coin_agent


def test_a_profile_replaces_rates_and_keeps_a_custom_model_mix():
    custom = ModelFaults.profile("low", mix={"overloaded": 1.0}, output_mix={"refusal": 1.0}, retry_after_s=0.5)
    faults = Faults.profile("low", model=custom, mix={"timeout": 1.0}, per_tool={"refund_order": 0.4})
    high = faults.with_profile("high")
    assert (high.rate, high.latency, high.model.rate, high.model.output_rate) == (0.15, 0.2, 0.10, 0.10)
    assert dict(high.mix) == {"timeout": 1.0} and high.per_tool["refund_order"].rate == 0.4
    assert dict(high.model.mix) == {"overloaded": 1.0} and dict(high.model.output_mix) == {"refusal": 1.0}
    assert high.model.retry_after_s == 0.5
    by_hand = Faults(model=ModelFaults(rate=0.3, mix={"timeout": 1.0}))
    assert by_hand.with_profile("high").model == by_hand.model  # set by hand: kept whole
    assert Faults().with_profile("mid").model == ModelFaults.profile("mid")


def test_faults_naming_a_tool_the_scenario_lacks_are_an_error_in_python():
    with pytest.raises(ConfigError, match=r"faults name tool\(s\) \['refund_ordr'\] that scenario 'x' does not have"
                                          r".*its tools: lookup_order, refund_order, delete_order"):
        Scenario(name="x", agent=coin_agent(1.0), tools=ORDER_TOOLS, faults=Faults(per_tool={"refund_ordr": 0.5}))
    with pytest.raises(ConfigError, match=r"\['nope'\]"):
        Scenario(name="x", agent=coin_agent(1.0), tools=ORDER_TOOLS, faults=Faults(outage=1, outage_tools=["nope"]))
    bare = Scenario(name="x", agent=coin_agent(1.0), world=Orders, tools=ORDER_TOOLS, trials=3)
    with pytest.raises(ConfigError, match=r"\['refund_ordr'\]"):  # faults given when run are checked too
        run_campaign(bare, faults=Faults(per_tool={"refund_ordr": 0.5}))


@pytest.mark.parametrize(("field", "value", "message"), [
    ("check", lambda world: True, r"check=.* must take two arguments: it is called as check\(world, output\) "
                                  r"\(its signature is \(world\)\)"),
    ("world", lambda size: None, r"world=.* must take no arguments: it is called as world\(\)"),
    ("agent", lambda task: None, r"agent=.* must take two arguments: it is called as agent\(task, env\)"),
])
def test_agent_check_and_world_signatures_are_checked_when_the_scenario_is_built(field, value, message):
    settings = {"name": "x", "agent": coin_agent(1.0), field: value}
    with pytest.raises(ConfigError, match=message):
        Scenario(**settings)


def test_callables_with_defaults_or_varargs_are_accepted():
    Scenario(name="x", agent=lambda *args: None, check=lambda world, output, extra=1: True, world=dict)


def test_defaults_that_shape_a_verdict_are_said_in_the_table_and_report(tmp_path):
    import json
    import os
    import stat

    from pytest_agentops.report.json_report import write_report
    from pytest_agentops.report.terminal import campaign_table

    def agent(task, env):
        env.record_usage(input_tokens=10, output_tokens=1, model="house-model")
        return "done"

    result = run_campaign(Scenario(name="no-expect", agent=agent, trials=5, seed=1, faults=Faults(rate=0.1)))
    table = "\n".join(campaign_table(result))
    assert "profile=custom" in table  # faults set by hand, not a named profile
    assert "no expectations: nothing was judged" in table
    assert "priced at the default '*' price (no price of their own): house-model" in table
    old = os.umask(0o022)
    try:
        path = write_report(tmp_path / "r.json", [result])
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644  # the umask, as an ordinary file (not mkstemp's 0600)
    assert json.loads(path.read_text())["campaigns"][0]["profile"] == "custom"


def test_a_reason_points_at_the_agents_frame_not_the_harness():
    from pytest_agentops import tool

    @tool
    def flaky() -> str:
        return "ok"

    def agent(task, env):
        return env.tools["flaky"]()  # an injected error raised through here, uncaught

    result = run_campaign(Scenario(name="reason", agent=agent, tools=[flaky], trials=1, seed=1,
                                   faults=Faults(rate=1.0, mix={"error": 1.0})))
    (record,) = result.records
    assert record.outcome == "error" and "at test_settings_never_lost.py:" in record.reason
