"""The trace viewer: ``--agent-chaos-replay`` prints the replayed trial's timeline, ``--agent-chaos-show`` prints a
trial of the last report without running anything; the worst-trials list shows one example of each failure
class first; a smoke run says in one line whether it passed; ``-q`` one line per campaign."""

from __future__ import annotations

import json
import re

import pytest

CONFTEST = '''
from pytest_agentops import Faults, Scenario, ToolFaults, tool

class Shop:
    def __init__(self):
        self.refunded = 0

@tool
def lookup(world, order_id: int) -> dict:
    """Look an order up."""
    return {"id": order_id, "status": "paid"}

@tool(destructive=True)
def refund(world, order_id: int) -> str:
    """Refund an order (destructive: asks first)."""
    world.refunded += 1
    return "refunded"

def agent(task, env):
    with open("agent-ran.txt", "a") as fh:
        fh.write("x")
    env.record_usage(input_tokens=100, output_tokens=20, model="gpt-4o-mini")
    env.tools["lookup"](7)
    if env.confirm("refund", order_id=7):
        try:
            env.tools["refund"](7)
        except Exception as exc:
            env.escalate(f"refund failed: {type(exc).__name__}")
    return "done"

# every refund call times out: each trial asks, gets the timeout, and hands over
REFUND = Scenario(name="refund", agent=agent, task="refund order 7", world=Shop, tools=[lookup, refund],
                  check=lambda world, output: world.refunded == 1,
                  faults=Faults(per_tool={"refund": ToolFaults(1.0, {"timeout": 1.0})}), trials=30, seed=3,
                  expect={"escalation_rate": ">= 0.8"})
'''

TEST = '''
from conftest import REFUND

def test_refund(agent_chaos):
    agent_chaos.run(REFUND).check()
'''

TIMELINE = [
    "refund[[]trial-3 seed=*]  outcome=escalated: refund failed: ToolTimeout",
    "  tokens 120 (100 in, 20 out), cost $*, tool calls 2 (1 failed), virtual time 30s",
    "  faults: refund:timeout",
    "  replay: pytest test_refund.py::test_refund --agent-chaos --agent-chaos-seed=3 "
    "--agent-chaos-replay=refund/trial-3",
    "  timeline (virtual time):",
    "      0.000s  model      gpt-4o-mini  ok  100+20 tokens",
    "      0.000s  tool       lookup(order_id=7)  ok -> {'id': 7, 'status': 'paid'}",
    "      0.000s  confirm    refund(order_id=7)?  approved",
    "      0.000s  FAULT      refund: timeout (call 0)",
    "      0.000s  tool       refund(order_id=7)  timeout [[]destructive[]]",
    "     30.000s  escalate   to a human: refund failed: ToolTimeout",
    "     30.000s  outcome    escalated: refund failed: ToolTimeout",
    "  final answer: (none)",
    "  check: not asked: the trial ended escalated (refund failed: ToolTimeout)",
]


@pytest.fixture
def shop(pytester):
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_refund=TEST)
    return pytester


def test_replay_prints_the_trials_timeline(shop):
    result = shop.runpytest("--agent-chaos", "--agent-chaos-seed=3", "--agent-chaos-replay=refund/trial-3",
                            "-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)  # a replayed trial that escalated did not pass
    result.stdout.fnmatch_lines(["*= agent chaos =*", "refund: replay of trial 3 (seed=3, profile=custom)",
                                 *TIMELINE])


def test_show_prints_a_trial_of_the_last_report_without_running_anything(shop):
    quiet = shop.runpytest("--agent-chaos", "--agent-chaos-report=report.json", "-q")
    quiet.assert_outcomes(passed=1)  # -q: one line per campaign
    quiet.stdout.fnmatch_lines(["refund: PASS */30 trials seed=3 profile=custom: escalation_rate pass (1, lo *)"])
    report = json.loads((shop.path / "report.json").read_text())
    record = report["campaigns"][0]["records"][3]
    assert record["output"] == "" and record["trace"][-1]["kind"] == "outcome"  # carried by the JSON report
    (shop.path / "agent-ran.txt").unlink()
    shown = shop.runpytest("--agent-chaos-show=refund/trial-3")  # the report path from pytest's cache
    assert shown.ret == 0
    assert not (shop.path / "agent-ran.txt").exists()  # nothing ran
    from_report = TIMELINE  # (the replay command the run printed, kept in the report: node id and options)
    shown.stdout.fnmatch_lines(["refund trial-3 from *report.json (not re-run):", *from_report])
    also = shop.runpytest("--agent-chaos-show=3", "--agent-chaos-report=report.json")  # the only campaign
    also.stdout.fnmatch_lines(from_report[:2])
    for args, message in [  # usage errors that say what exists
        (["--agent-chaos-show=nosuch/trial-1"], "*no campaign named 'nosuch'; the report's campaigns: refund (in *)"),
        (["--agent-chaos-show=refund/trial-99"], "*campaign 'refund' has no trial 99 (its trials: 0..*)*"),
        (["--agent-chaos-show=1", "--agent-chaos-report=missing.json"], "*no report at *missing.json*"),
    ]:
        result = shop.runpytest(*args)
        assert result.ret == pytest.ExitCode.USAGE_ERROR
        result.stderr.fnmatch_lines([message])
    for record in report["campaigns"][0]["records"]:  # a report edited by hand: said so, not "index" alone
        del record["index"]
    (shop.path / "edited.json").write_text(json.dumps(report))
    edited = shop.runpytest("--agent-chaos-show=refund/trial-3", "--agent-chaos-report=edited.json")
    assert edited.ret == pytest.ExitCode.USAGE_ERROR
    edited.stderr.fnmatch_lines(["*campaign 'refund': record #1 has no trial index: is this a pytest-agentops JSON "
                                 "report? (in *edited.json)"])


MIXED = '''
import pytest
from pytest_agentops import Faults, Scenario, tool

class World:
    def __init__(self):
        self.done = False

@tool(destructive=True)
def wipe(world) -> str:
    """Wipe (destructive)."""
    world.done = True
    return "wiped"

def agent(task, env):
    u = env.rng.random()
    if u < 0.3:
        raise RuntimeError("agent bug")
    if u < 0.5:
        return "gave up"
    if u < 0.7:
        env.tools["wipe"]()  # without asking: a violation (the trial still completes)
        return "ok"
    if env.confirm("wipe"):
        env.tools["wipe"]()
    return "ok"

S = Scenario(name="mixed", agent=agent, task="t", world=World, tools=[wipe],
             check=lambda world, output: world.done, faults=Faults.none(), trials=40, seed=1, early_stop=False,
             expect={"completion_rate": ">= 0.95"})

def test_mixed(agent_chaos):
    agent_chaos.run(S).check()

def test_broken(agent_chaos):
    agent_chaos.run(S.replace(name="broken", check=lambda world, output: False)).check()
'''


def test_worst_trials_show_one_example_of_each_failure_class_first(pytester):
    pytester.makepyfile(test_mixed=MIXED)
    result = pytester.runpytest("--agent-chaos", "-p", "no:cacheprovider", "-k", "not broken")
    result.assert_outcomes(failed=1)
    out = result.stdout.str()
    listed = re.findall(r"^E +mixed\[trial-\d+ seed=\d+\]: (\w+)(.*)$", out, re.M)
    assert [outcome for outcome, _ in listed[:3]] == ["error", "failed", "completed"]  # one of each class first
    assert listed[2][1] == ": unconfirmed_destructive_call:wipe"  # the violation's example
    assert len(listed) == 5
    assert "def check(self)" not in out and "raise CampaignFailed" not in out  # the library's frames are hidden


def test_smoke_runs_print_one_line_per_scenario(pytester, shop):
    pytester.makepyfile(test_mixed=MIXED)
    smoke = pytester.runpytest("-p", "no:cacheprovider")
    smoke.stdout.fnmatch_lines(["*= agent chaos =*", "broken: smoke trial (fault-free, seed=1) did not pass: failed: "
                                "check(world, output) returned False*(re-run: pytest test_mixed.py::test_broken "
                                "--agent-chaos-seed=1)"])
    smoke.stdout.fnmatch_lines(["refund: smoke trial (fault-free, seed=3) passed: 120 tokens"])
    assert "inconclusive" not in smoke.stdout.str().lower()  # one trial decides nothing: no verdict is shown


def test_a_tool_calls_arguments_read_the_same_in_a_replay_and_from_the_report():
    """An outside review: a replay printed a call's arguments in the order the agent gave them, the JSON report
    keeps them in key order, so ``--agent-chaos-show`` of the same trial printed another line (a diff of the two
    showed a change that was none)."""
    from pytest_agentops.report.timeline import event_line

    event = {"t": 0.5, "kind": "tool_call", "name": "lookup_order", "outcome": "ok",
             "data": {"arguments": {"order_id": 42, "__raw_arguments__": '{"order_id": 42', "args": []}}}
    from_report = json.loads(json.dumps(event, sort_keys=True))
    assert event_line(event) == event_line(from_report)
    assert "__raw_arguments__='{\"order_id\": 42', args=[], order_id=42" in event_line(event)
