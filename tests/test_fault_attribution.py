"""Fault delivery and attribution as users meet it: through the plugin, the terminal and the JSON report, with
every figure checked against counts the test makes itself from the trials' traces."""

from __future__ import annotations

import json
from collections import Counter

import pytest

CONFTEST = '''
import json
from collections import Counter
from pytest_agentops import Faults, ModelFaults, Scenario, ToolFaults, tool

class Shop:
    def __init__(self):
        self.refunded = 0

@tool
def lookup(world, order_id: int) -> dict:
    """Look an order up."""
    return {"id": order_id}

@tool
def refund(world, order_id: int) -> str:
    """Refund an order."""
    world.refunded += 1
    return "refunded"

def agent(task, env):
    for _ in range(3):  # a retry on lookup, none on refund: a refund timeout is not recovered from
        try:
            env.tools["lookup"](1)
            break
        except Exception:
            pass
    return env.tools["refund"](1)

def scenario(**kw):
    # model faults set by hand, but no fake model (llm:): they can reach no agent, a loud warning
    faults = Faults(rate=0.1, per_tool={"refund": ToolFaults(0.3, {"timeout": 1.0, "malformed": 1.0})},
                    latency=0.2, model=ModelFaults(rate=0.2))
    return Scenario(name="shop", agent=agent, task="refund", world=Shop, tools=[lookup, refund],
                    check=lambda world, output: world.refunded == 1 and output == "refunded", faults=faults,
                    trials=120, seed=5, expect={"completion_rate": ">= 0.9"}, **kw)
'''

TEST = '''
import json
from collections import Counter
from pytest_agentops import Faults
from conftest import scenario

def layer_of(name):
    return {"model": "model", "model_output": "output", "drift": "drift"}.get(
        name, "http" if name.startswith("http:") else "tool")

def test_shop(agent_chaos):
    result = agent_chaos.run(scenario())
    delivered, calls, with_kind = Counter(), Counter(), {}
    for record in result.records:  # counted here from the traces, independently of the report's code
        kinds = set()
        for e in record.trace:
            if e.kind == "tool_call" and e.outcome not in ("blocked", "denied_scope", "bad_arguments"):
                calls[e.name] += 1
            if e.kind == "fault" and not (e.outcome == "outage" and e.data.get("scope") == "trial"):
                delivered[f"{layer_of(e.name)}:{e.outcome}"] += 1
                delivered[f"{e.name}:{e.outcome}"] += 1
                kinds.add(f"{layer_of(e.name)}:{e.outcome}")
                kinds.add(f"{e.name}:{e.outcome}")
        for kind in kinds:
            n, k = with_kind.get(kind, (0, 0))
            with_kind[kind] = (n + 1, k + (record.outcome == "completed"))
    with open("counted.json", "w") as fh:
        json.dump({"delivered": delivered, "calls": calls, "with_kind": with_kind, "n": result.n}, fh)

def test_calm(agent_chaos):
    agent_chaos.run(scenario().replace(name="calm", faults=Faults.none(), trials=30))
'''


@pytest.fixture
def shop(pytester):
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_shop=TEST)
    return pytester


def test_delivery_and_attribution_equal_counts_recomputed_from_the_traces(shop):
    result = shop.runpytest("--agent-chaos", "--agent-chaos-report=report.json")
    result.assert_outcomes(passed=2)
    counted = json.loads((shop.path / "counted.json").read_text())
    calm, campaign = json.loads((shop.path / "report.json").read_text())["campaigns"]
    # a fault-free campaign says so in one line
    assert calm["fault_delivery"]["kinds"] == [] and calm["fault_delivery"]["warning"] is False
    result.stdout.fnmatch_lines(["*faults: none configured, none delivered"])
    fd = campaign["fault_delivery"]
    assert fd["trials"] == counted["n"] == campaign["trials"]
    kinds = {k["fault"]: k for k in fd["kinds"]}
    delivered = Counter(counted["delivered"])
    for fault, row in kinds.items():  # by layer and kind
        assert row["delivered"] == delivered[fault], fault
        if row["delivered"]:
            n, k = counted["with_kind"][fault]
            assert (row["completion"]["trials"], row["completion"]["completed"]) == (n, k), fault
    assert {f for f in delivered if f.startswith(("tool:", "model:"))} <= set(kinds)
    for t in fd["targets"]:  # per tool and kind
        assert t["delivered"] == delivered[f"{t['target']}:{t['kind']}"]
        assert (t["completion"]["trials"], t["completion"]["completed"]) == tuple(
            counted["with_kind"][f"{t['target']}:{t['kind']}"])
    for tool, row in fd["tools"].items():
        assert row["calls"] == counted["calls"][tool]
        assert row["failed_by_fault"] == sum(delivered[f"{tool}:{k}"] for k in
                                             ("error", "timeout", "rate_limit", "malformed", "empty"))
    assert fd["by_layer"]["tool"] == sum(v for f, v in delivered.items() if f.startswith("tool:"))
    # configured next to delivered: refund's own rate and mix; lookup's the scenario-wide 10%
    assert fd["tools"]["refund"]["configured_rate"] == 0.3 and fd["tools"]["lookup"]["configured_rate"] == 0.1
    assert kinds["tool:timeout"]["configured_rate"] > kinds["tool:error"]["configured_rate"] > 0
    # the model faults set by hand reached no agent (no fake model): flagged in the report and loudly in the terminal
    never = {e["fault"]: e for e in fd["never_delivered"]}
    assert fd["warning"] is True
    assert never["model:rate_limit"]["implausible"] and never["model:rate_limit"]["chances"] == 0
    assert "no fake model" in never["model:rate_limit"]["note"]
    out = result.stdout.str()
    assert "WARNING: configured but never delivered: model:connection_reset, model:malformed_body, model:rate_limit, " \
           "model:server_error, model:timeout, model:unavailable (no model-API attempt at all; the scenario serves " \
           "no fake model (llm:), so model faults reach no agent)" in out
    # a refund timeout ends the trial (no retry): the agent does not recover from it, and the table says so
    timeout = next(t for t in fd["targets"] if t["target"] == "refund" and t["kind"] == "timeout")
    assert timeout["completion"]["completed"] == 0 and timeout["completion"]["recovers"] == "no"
    result.stdout.fnmatch_lines([
        "*fault delivery: tool * of * tool calls, model 0 of 0 model-API attempts",
        "*fault*configured*expected*delivered*in trials*completed*95% bounds*recovers",
        f"*tool:timeout*{kinds['tool:timeout']['delivered']}*",
        "*calls failed by a fault, per tool (delivered vs configured): lookup */* (* vs 10%), refund */* (* vs 30%)",
        "*not recovered from (completion_rate >= 0.9): *refund:timeout (0/* completed, upper *)*",
    ])




def test_fault_delivery_is_worked_out_once_per_result_and_each_caller_gets_its_own_copy(monkeypatch):
    """The JUnit properties and the report data both ask for it: the records are walked once."""
    from pytest_agentops import Faults, Scenario, run_campaign, tool
    from pytest_agentops.report import attribution

    @tool
    def ping(world) -> str:
        """Ping."""
        return "pong"

    def pinger(task, env):
        for _ in range(3):
            try:
                return env.tools["ping"]()
            except Exception:
                pass
        return "gave up"

    result = run_campaign(Scenario(name="ping", agent=pinger, tools=[ping], faults=Faults(rate=0.3), trials=30,
                                   seed=4, early_stop=False))
    walks = []
    tally = attribution._tally
    monkeypatch.setattr(attribution, "_tally", lambda records: walks.append(1) or tally(records))
    first = attribution.fault_delivery(result)
    assert first["kinds"] and first["kinds"][0]["delivered"] > 0
    first["kinds"].clear()  # (a caller's copy: changing it changes nothing else)
    second = attribution.fault_delivery(result)
    assert second["kinds"] and second == attribution.fault_delivery(result) and len(walks) == 1


@pytest.mark.parametrize("keep_traces", [None, 5])
def test_the_tally_of_grouped_trials_is_the_tally_of_every_trial(keep_traces):
    """A campaign's ``RecordStore`` is tallied one group of alike trials at a time: the same counts as one record
    at a time, from far fewer records (the model layer's attempts, tool faults, traces kept and not)."""
    import dataclasses
    from pathlib import Path

    from pytest_agentops import run_campaign
    from pytest_agentops.record_store import RecordStore
    from pytest_agentops.report import attribution
    from pytest_agentops.scenario_file import load_scenarios

    root = Path(__file__).resolve().parents[1] / "scenarios"
    records = groups = 0  # trials without a trace of their own, and the groups they make
    for name in ("model_faults.yaml", "flaky_high.yaml", "tool_outage.yaml"):
        for scenario in load_scenarios(root / name):
            scenario = dataclasses.replace(scenario, keep_traces=keep_traces)
            result = run_campaign(scenario, trials=200, early_stop=False, seed=3)
            store = result.records
            assert isinstance(store, RecordStore)
            grouped = list(store.grouped("outcome", "layers", "skeleton"))
            assert sum(times for _, times in grouped) == len(store)
            traced = sum(1 for r in store if r.trace)
            assert sum(1 for r, times in grouped if r.trace) == traced  # (a trial with a trace is tallied alone)
            records += len(store) - traced
            groups += len(grouped) - traced
            one_by_one = attribution._tally(list(store))
            assert attribution._tally(store) == one_by_one and one_by_one.trials == 200
            assert one_by_one.delivered
    assert groups < records / 3 if keep_traces is not None else records == 0  # (520 trials: 130 groups)
