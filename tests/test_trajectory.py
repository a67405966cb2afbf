"""Trajectory metrics and expectations: each ordering rule caught and not caught, redundant calls told apart from
retries after a fault, loops, duplicate side effects from retries (and idempotent tools), confirmations consumed
by a call whose fault ran the tool; in Python (run_campaign) and from a YAML scenario through pytest."""

from __future__ import annotations

import asyncio
import contextlib
import json

import pytest
import trajectory_support as ts
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_agentops import (
    ConfigError,
    Faults,
    Rule,
    Scenario,
    ToolFaults,
    Trajectory,
    replay_trial,
    run_campaign,
    tool,
)
from pytest_agentops.harness.loops import LoopDetector
from pytest_agentops.report.timeline import event_line

NONE = Faults.none()


def campaign(agent, trials=2, trajectory=ts.RULES, expect=None, faults=NONE, **kw):
    return run_campaign(Scenario(name=f"traj-{agent.__name__}", agent=agent, world=ts.Shop, tools=ts.TOOLS,
                                 trajectory=trajectory, expect=expect or {}, trials=trials, seed=5, faults=faults,
                                 **kw))


def trajectory_of(result, i=0):
    return result.records[i].layer("trajectory")


# --- ordering rules: each caught and not caught -----------------------------------------------------------------


def test_refund_only_after_a_lookup_of_the_same_order():
    expect = {"rule_violations:lookup_first": "== 0"}
    good, hasty, wrong = (campaign(a, expect=expect) for a in (ts.careful, ts.hasty, ts.wrong_order))
    assert [v.verdict for v in good.verdicts] == ["pass"] and good.records[0].violations == ()
    assert trajectory_of(good).rule_calls["lookup_first"] == 1 and not trajectory_of(good).rule_violations
    for bad in (hasty, wrong):
        assert [v.verdict for v in bad.verdicts] == ["fail"]
        assert bad.records[0].violations == ("lookup_first:refund_order",)  # a violation named after the rule
        assert not bad.records[0].ok and bad.records[0].outcome == "completed"
    (event,) = [e for e in wrong.records[0].trace if e.kind == "violation"]
    assert (event.data["kind"], event.outcome) == ("lookup_first", "broken")
    assert event.data["why"] == "no successful lookup_order with the same order_id before it"
    assert good.metrics["rule_violations:lookup_first"].n == 2  # trials that called refund_order


def test_a_lookup_that_failed_does_not_count_and_a_tool_called_too_often_is_caught():
    def after_failed_lookup(task, env):
        with contextlib.suppress(KeyError):
            env.tools["lookup_order"](99)  # no such order: the tool raises
        return env.tools["refund_order"](99)

    def three_lookups(task, env):
        for _ in range(3):
            env.tools["lookup_order"](43)

    rule = Trajectory(rules=[Rule("refund_order", after="lookup_order", same=["order_id"])])
    record = campaign(after_failed_lookup, trials=1, trajectory=rule).records[0]
    assert record.violations == ("refund_order_after_lookup_order:refund_order",)  # the derived name
    few = campaign(three_lookups, trials=1, expect={"rule_violations:few_lookups": "<= 1"})
    assert few.records[0].violations == ("few_lookups:lookup_order",)  # the third call, one past at_most=2
    assert [v.verdict for v in few.verdicts] == ["pass"]  # an allowance of one violation
    assert [v.verdict for v in campaign(ts.careful, trials=1, expect={"rule_violations:few_lookups": "== 0"})
            .verdicts] == ["pass"]


def test_a_confirmed_rule_uses_up_the_confirmation_it_needs():
    def confirms_once_sends_twice(task, env):
        env.confirm("send_email", to="a@x", body="hi")
        env.tools["send_email"]("a@x", "hi")  # uses the confirmation
        env.tools["send_email"]("a@x", "hi")  # none left: broken

    def confirms_other_text(task, env):
        env.confirm("send_email", to="a@x", body="hi")
        env.tools["send_email"]("a@x", "bye")  # not what was confirmed

    def confirms_each(task, env):
        for body in ("hi", "bye"):
            env.confirm("send_email", to="a@x", body=body)
            env.tools["send_email"]("a@x", body)

    assert campaign(confirms_once_sends_twice, trials=1).records[0].violations == ("confirm_email:send_email",)
    assert campaign(confirms_other_text, trials=1).records[0].violations == ("confirm_email:send_email",)
    result = campaign(confirms_each, trials=1, expect={"rule_violation_rate:confirm_email": "<= 0.5"})
    assert result.records[0].violations == () and trajectory_of(result).rule_calls == {"confirm_email": 2}


def test_a_confirmed_rule_on_a_destructive_tool_sees_the_gates_approval():
    rule = Trajectory(rules=[Rule("delete_order", confirmed=True, name="confirm_delete")])

    def deletes(confirm):
        def agent(task, env):
            if confirm:
                env.confirm("delete_order", order_id=43)
            env.tools["delete_order"](43)
        agent.__name__ = f"deletes_{confirm}"
        return agent

    ok, bad = (campaign(deletes(c), trials=1, trajectory=rule).records[0] for c in (True, False))
    assert ok.violations == () and ok.unconfirmed_destructive == 0
    # the gate counts its own violation beside the rule's: one call, two names
    assert set(bad.violations) == {"unconfirmed_destructive_call:delete_order", "confirm_delete:delete_order"}
    blocked = campaign(deletes(False), trials=1, trajectory=rule, enforce=True).records[0]
    assert "confirm_delete:delete_order" in blocked.violations and blocked.blocked_calls == 1  # judged when refused


def test_a_rule_violation_rate_is_a_share_of_trials():
    result = campaign(ts.sometimes_hasty, trials=60, early_stop=False,
                      expect={"rule_violation_rate:lookup_first": "<= 0.6", "rule_violation_rate": "<= 0.6"})
    rate = result.metrics["rule_violation_rate:lookup_first"]
    broke = sum(1 for r in result.records if r.violations)
    assert (rate.n, rate.total, rate.counting_unit) == (60, broke, "trial that called the rule's tool")
    assert 8 <= broke <= 30  # about 30% of 60
    assert [v.verdict for v in result.verdicts] == ["pass", "pass"]
    assert result.metrics["rule_violations"].total == broke


def test_rule_settings_are_checked_where_they_are_written():
    with pytest.raises(ConfigError, match=r"must say exactly one thing.*got after, at_most"):
        Rule("refund_order", after="lookup_order", at_most=1)
    with pytest.raises(ConfigError, match=r"same=.*needs after="):
        Rule("refund_order", at_most=1, same=["order_id"])
    with pytest.raises(ConfigError, match="is a violation kind the harness records itself"):
        Rule("refund_order", at_most=1, name="duplicate_side_effect")
    with pytest.raises(ConfigError, match=r"duplicate rule name\(s\) \['x'\]"):
        Trajectory(rules=[Rule("a", at_most=1, name="x"), Rule("b", at_most=1, name="x")])
    base = dict(name="s", agent=ts.careful, tools=ts.TOOLS)
    with pytest.raises(ConfigError, match=r"after='lookup' is not one of the scenario's tools .did you mean "
                                          r"'lookup_order'"):
        Scenario(**base, trajectory=Trajectory(rules=[Rule("refund_order", after="lookup")]))
    with pytest.raises(ConfigError, match=r"same: refund_order has no argument 'order' .did you mean 'order_id'"):
        Scenario(**base, trajectory=Trajectory(rules=[Rule("refund_order", after="lookup_order", same=["order"])]))
    with pytest.raises(ConfigError, match=r"names no trajectory rule of this scenario .did you mean 'lookup_first'"):
        Scenario(**base, trajectory=ts.RULES, expect={"rule_violations:lookup_frist": "== 0"})
    with pytest.raises(ConfigError, match="'rule_violations:no_such_rule' names no trajectory rule of this scenario"):
        Scenario(**base, expect={"rule_violations:no_such_rule": "== 0"})  # declared by no scenario at all
    # a rule another scenario declared: the scenario is built (a file's keys are checked one by one), and refused
    # when it runs
    lone = Scenario(**base, expect={"rule_violations:lookup_first": "== 0"})
    with pytest.raises(ConfigError, match="names no trajectory rule of this scenario; rules: none declared"):
        run_campaign(lone, trials=1)


# --- redundant calls and retries --------------------------------------------------------------------------------


def test_asking_again_is_redundant_a_retry_after_a_failure_is_not():
    def asks_twice(task, env):
        env.tools["lookup_order"](42)
        env.tools["lookup_order"](42)
        env.tools["lookup_order"](43)  # other arguments: new

    def rechecks_after_a_failure(task, env):
        env.tools["lookup_order"](42)
        with contextlib.suppress(ConnectionError):
            env.tools["flaky_lookup"](42)  # fails: a fault in between
        env.tools["lookup_order"](42)  # re-reading after a failure is legitimate

    def retries_the_failed_call(task, env):
        ts.retry(env.tools["flaky_lookup"], 42)  # raised, raised, ok

    no_rules = Trajectory()
    assert trajectory_of(campaign(asks_twice, trials=1, trajectory=no_rules)).redundant_calls == 1
    assert trajectory_of(campaign(rechecks_after_a_failure, trials=1, trajectory=no_rules)).redundant_calls == 0
    record = campaign(retries_the_failed_call, trials=1, trajectory=no_rules).records[0]
    assert record.layer("trajectory").redundant_calls == 0 and record.tool_failures == 2
    redundant = [e for e in campaign(asks_twice, trials=1, trajectory=no_rules).records[0].trace
                 if e.kind == "trajectory"]
    assert [(e.name, e.outcome, e.data["arguments"]) for e in redundant] == [("lookup_order", "redundant",
                                                                               {"order_id": 42})]


def test_retries_of_injected_faults_are_never_redundant():
    """Under injected faults (errors, timeouts, rate limits) an agent that retries only what failed makes no
    redundant call, though it repeats calls; one that also asks again makes exactly its extra calls redundant."""
    faults = Faults(rate=0.4, mix={"error": 1, "timeout": 1, "rate_limit": 1})

    def retrying_then_asking_again(task, env):
        ts.retry(env.tools["lookup_order"], 42)
        with contextlib.suppress(Exception):
            env.tools["lookup_order"](42)  # it has the answer: redundant, even if this call then fails

    result = campaign(ts.retrying, trials=30, trajectory=Trajectory(), faults=faults, early_stop=False,
                      expect={"redundant_calls.p50": "<= 0"})
    assert sum(r.tool_calls - 2 for r in result.records) > 10  # retries happened
    assert result.metrics["redundant_calls"].max == 0.0 and [v.verdict for v in result.verdicts] == ["pass"]
    again = campaign(retrying_then_asking_again, trials=30, trajectory=Trajectory(), faults=faults)
    assert {r.layer("trajectory").redundant_calls for r in again.records if r.outcome == "completed"} == {1}


def test_steps_count_tool_and_model_calls():
    def agent(task, env):
        env.record_usage(input_tokens=10, output_tokens=2)
        env.tools["lookup_order"](42)
        env.record_usage(input_tokens=10, output_tokens=2)
        return env.tools["refund_order"](42)

    result = campaign(agent, trials=6, early_stop=False, expect={"steps_per_task.p50": "<= 4"})
    assert {(t.steps, t.model_steps) for t in (trajectory_of(result, i) for i in range(6))} == {(4, 2)}
    assert result.metrics["steps_per_task"].estimate == 4.0 and [v.verdict for v in result.verdicts] == ["pass"]


# --- loops ------------------------------------------------------------------------------------------------------


def test_a_looping_agent_is_caught_and_a_busy_one_is_not():
    looping = campaign(ts.looping, trials=6, trajectory=Trajectory(), early_stop=False, expect={"loop_rate": "<= 0.5"})
    assert [v.verdict for v in looping.verdicts] == ["fail"]
    record = looping.records[0]
    assert record.layer("trajectory").loops == 1  # counted once, however long it went on
    (event,) = [e for e in record.trace if e.kind == "trajectory" and e.outcome == "loop"]
    assert (event.name, event.data["period"], event.data["repeats"]) == ("lookup_order -> refunds_of", 2, 3)
    assert event_line(event.to_dict()).endswith("LOOP       lookup_order -> refunds_of (a cycle of 2 call(s), 3 times "
                                                "in a row)")  # as the trace viewer shows it
    seqs = [e.seq for e in record.trace if e.kind == "tool_call"]
    assert seqs.index(max(s for s in seqs if s < event.seq)) == 5  # recognized at the 6th call: 3 rounds of 2
    busy = campaign(ts.walking, trials=3, trajectory=Trajectory())
    assert busy.metrics["loop_rate"].total == 0 and trajectory_of(busy).redundant_calls == 0
    assert trajectory_of(campaign(ts.looping, trials=1, trajectory=Trajectory(loop_repeats=6))).loops == 0


def test_retrying_a_tool_that_is_down_is_a_loop_a_retry_that_gets_through_is_not():
    down = Faults(outage=1.0, outage_tools=("lookup_order",))
    stuck = campaign(ts.retrying, trials=1, trajectory=Trajectory(), faults=down)
    assert trajectory_of(stuck).loops == 1  # five outages in a row: the same call, the same outcome
    through = campaign(lambda task, env: ts.retry(env.tools["flaky_lookup"], 42), trials=1, trajectory=Trajectory())
    assert trajectory_of(through).loops == 0  # raised, raised, ok: the outcome changed


def test_the_loop_detector_counts_each_loop_once():
    detector = LoopDetector(period=3, repeats=3)
    found = [detector.add(c) for c in "ABCABCABCABCX" + "YYY" + "ZZ"]
    assert [(i, f) for i, f in enumerate(found) if f] == [(8, ("A", "B", "C")), (15, ("Y",))]
    assert detector.loops == 2
    detector.reset()
    assert [detector.add(c) for c in "QQ"] == [None, None]


def _reference_loops(calls, period, repeats):
    """The detector as first written: every period compared at every call."""
    history, runs, active, out = [], [0] * (period + 1), False, []
    for call in calls:
        history = [*history, call][-(period + 1):]
        found = 0
        for p in range(1, period + 1):
            if p < len(history) and history[-1 - p] == call:
                runs[p] += 1
                if not found and runs[p] >= p * (repeats - 1):
                    found = p
            else:
                runs[p] = 0
        started = found and not active
        active = bool(found)
        out.append(tuple(history)[-found:] if started else None)
    return out


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from("ABC"), max_size=60), st.integers(min_value=1, max_value=4),
       st.integers(min_value=2, max_value=4))
def test_the_loop_detector_is_the_reference_detector(calls, period, repeats):
    """Its short path for a call equal to none of the last ``period`` ones finds exactly the same loops."""
    detector = LoopDetector(period=period, repeats=repeats)
    assert [detector.add(c) for c in calls] == _reference_loops(calls, period, repeats)


# --- duplicate side effects from retries ------------------------------------------------------------------------


def test_a_retry_after_a_fault_that_ran_the_tool_duplicates_its_effect_unless_idempotent():
    """``malformed`` and ``empty`` let the tool run: retrying them repeats the effect."""
    def retries_bad_results(tool_name):
        def agent(task, env):
            for _ in range(2):
                if env.tools[tool_name](42) in ("ok", f"refunded {42}"):
                    break  # a good result: done
        agent.__name__ = f"retries_{tool_name}"
        return agent

    bad = {"refund_order": ToolFaults(1.0, {"malformed": 1}), "mark_refunded": ToolFaults(1.0, {"empty": 1})}
    faults = Faults(per_tool=bad)
    refund = campaign(retries_bad_results("refund_order"), trials=2, trajectory=Trajectory(), faults=faults,
                      expect={"duplicate_side_effects": "== 0"})
    assert [v.verdict for v in refund.verdicts] == ["fail"]
    record = refund.records[0]
    assert record.layer("trajectory").duplicate_side_effects == 1 and "crash" not in record.layers  # no crash
    assert record.violations == ("duplicate_side_effect:refund_order",)
    (event,) = [e for e in record.trace if e.kind == "violation"]
    assert (event.outcome, event.data["first_attempt"], event.data["attempt"]) == ("duplicate", 0, 0)
    idem = campaign(retries_bad_results("mark_refunded"), trials=2, trajectory=Trajectory(), faults=faults,
                    expect={"duplicate_side_effects": "== 0"})
    assert [v.verdict for v in idem.verdicts] == ["pass"] and idem.records[0].violations == ()
    # an idempotent tool's runs are not effects that could be duplicated: no trial had the chance
    assert idem.metrics["duplicate_side_effects"].n == 0 and refund.metrics["duplicate_side_effects"].n == refund.n


def test_a_fault_that_stops_the_tool_repeats_no_effect_and_gives_the_confirmation_back():
    """``error``/``timeout``/``rate_limit`` fail the call before the tool runs: no effect, and the confirmation
    it took is given back; ``malformed``/``empty`` run the tool: the effect happened and the confirmation is
    used up."""
    def confirm_once_then_retry(task, env):
        env.confirm("delete_order", order_id=43)
        for _ in range(2):
            try:
                if env.tools["delete_order"](43) == "deleted":
                    return
            except Exception:
                continue

    def run(kind):
        faults = Faults(per_tool={"delete_order": ToolFaults(1.0, {kind: 1})})
        return campaign(confirm_once_then_retry, trials=1, trajectory=Trajectory(), faults=faults).records[0]

    for kind in ("error", "timeout", "rate_limit"):
        record = run(kind)
        assert record.unconfirmed_destructive == 0 and record.violations == (), kind  # given back both times
        assert record.layer("trajectory").side_effects == 0, kind
    for kind in ("malformed", "empty"):
        record = run(kind)
        assert record.unconfirmed_destructive == 1, kind  # the retry had no confirmation left
        assert set(record.violations) == {"unconfirmed_destructive_call:delete_order",
                                          "duplicate_side_effect:delete_order"}, kind


def test_the_records_replay_exactly():
    scenario = Scenario(name="replay", agent=ts.sometimes_hasty, world=ts.Shop, tools=ts.TOOLS, trajectory=ts.RULES,
                        faults=Faults(rate=0.3, mix={"error": 1, "malformed": 1}), trials=8, seed=3)
    result = run_campaign(scenario)
    for record in result.records[:4]:
        again = replay_trial(scenario, record.index)
        assert again.layer("trajectory") == record.layer("trajectory") and again.trace == record.trace


# --- through pytest, from a YAML scenario -----------------------------------------------------------------------

YAML = """\
- &shop
  name: careful refunds
  agent: trajectory_support:careful
  world: trajectory_support:Shop
  tools: trajectory_support:TOOLS
  check: trajectory_support:refunded
  faults: none
  trajectory:
    loop_repeats: 4
    rules:
      - {name: lookup_first, tool: refund_order, after: lookup_order, same: [order_id]}
      - {tool: lookup_order, at_most: 2}
  expect:
    completion_rate: ">= 0.5"
    rule_violations:lookup_first: "== 0"
    rule_violation_rate:lookup_order_at_most_2: "<= 0.5"
    steps_per_task.p50: "<= 2"
    redundant_calls.p50: "<= 0"
    loop_rate: "<= 0.5"
  trials: 8
  early_stop: false
  seed: 1
- <<: *shop
  name: hasty refunds
  agent: trajectory_support:hasty
"""


def test_rules_from_a_yaml_scenario_through_pytest(pytester):
    pytester.mkdir("scenarios")
    pytester.path.joinpath("scenarios", "refunds.yaml").write_text(YAML)
    result = pytester.runpytest("--agent-chaos", "scenarios", "--agent-chaos-report=report.json", "-p", "no:randomly")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*rule_violations:lookup_first == 0: fail*", "*lookup_first:refund_order*"])
    report = json.loads(pytester.path.joinpath("report.json").read_text())
    by_name = {c["scenario"]: c for c in report["campaigns"]}
    careful, hasty = by_name["careful refunds"], by_name["hasty refunds"]
    assert {v["key"]: v["verdict"] for v in careful["verdicts"]} == {
        "completion_rate": "pass", "rule_violations:lookup_first": "pass", "loop_rate": "pass",
        "rule_violation_rate:lookup_order_at_most_2": "pass", "steps_per_task.p50": "pass",
        "redundant_calls.p50": "pass"}
    assert careful["metrics"]["rule_violations:lookup_first"]["total"] == 0
    assert hasty["metrics"]["rule_violations:lookup_first"]["total"] >= 1
    assert "rule_violation_rate:lookup_order_at_most_2" not in hasty["metrics"]  # it never looked up: no chance
    assert hasty["records"][0]["violations"] == ["lookup_first:refund_order"]
    assert careful["records"][0]["extra"]["rule_violations"] == {"lookup_first": 0, "lookup_order_at_most_2": 0}


@tool(side_effect=True)
async def _grow(items: list) -> int:
    """A side-effecting tool that changes its (mutable) argument in place."""
    await asyncio.sleep(0)
    items.append(2)
    return len(items)


@tool
async def _other(x: int) -> int:
    """Another tool."""
    await asyncio.sleep(0)
    return x


def test_calls_made_at_once_are_judged_by_their_arguments_as_the_agent_passed_them():
    """Two calls at once (judged one after the other, recorded after both tools ran): each is keyed by its
    arguments as judged, not as its tool left them, so the later identical call is a redundant call and a
    duplicate side effect."""
    async def agent(task, env):
        await asyncio.gather(env.tools["_grow"]([1]), env.tools["_other"](0))
        await env.tools["_grow"]([1])
        return "ok"

    record = run_campaign(Scenario(name="at-once", agent=agent, tools=[_grow, _other], faults="none", trials=1,
                                   seed=1)).records[0]
    trajectory = record.layer("trajectory")
    assert (trajectory.redundant_calls, trajectory.duplicate_side_effects) == (1, 1)
    assert record.violations == ("duplicate_side_effect:_grow",)
