"""Shrinking a failing trial to the faults it needs (``engine.shrink``): delta debugging over fault ids."""

from __future__ import annotations

import dataclasses
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_agentops import CampaignFailed, Faults, Scenario, run_campaign, shrink_trial
from pytest_agentops.engine.scheduler import Runner
from pytest_agentops.engine.shrink import ddmin, failure_of, fired_faults
from pytest_agentops.precedence import resolve_run
from pytest_agentops.report.json_report import report_dict

from conftest import ORDER_TOOLS, Orders

PAIR = (("lookup_order", 42), ("refund_order", 42))


def _pair_agent(task, env):
    """Gives up only when both calls about order 42 fail; what happens to order 7 does not matter."""
    failed = 0
    for name, order in (("lookup_order", 42), ("refund_order", 42), ("lookup_order", 7), ("refund_order", 7)):
        try:
            env.tools[name](order)
        except Exception:
            failed += (name, order) in PAIR
    return "gave up" if failed == 2 else "done"


PAIR_SCENARIO = Scenario(name="pair", agent=_pair_agent, tools=ORDER_TOOLS, world=Orders,
                         faults=Faults(rate=0.5, latency=0.3), trials=60, seed=3, early_stop=False,
                         check=lambda world, out: out == "done", expect={"completion_rate": ">= 0.99"})


def _rerun(scenario, index, allowed):
    settings = dataclasses.replace(resolve_run(scenario), replay=index, allowed_faults=frozenset(allowed))
    return Runner(scenario, settings).run()[0][0]


def test_a_trial_failing_only_when_two_faults_coincide_shrinks_to_exactly_those_two():
    result = run_campaign(PAIR_SCENARIO)
    failing = [r for r in result.records if r.outcome != "completed"]
    assert len(failing) >= 3
    for record in failing:
        found = shrink_trial(PAIR_SCENARIO, record.index)
        assert found is not None and found.minimal and found.failure == "failed"
        assert len(found.faults) == 2 and found.fired > 2
        assert found.faults[0].startswith("lookup_order call 1 -> ") and found.faults[1].startswith(
            "refund_order call 1 -> ")
        # truly minimal, checked by re-running independently: fails with the two, passes without either
        assert _rerun(PAIR_SCENARIO, record.index, found.fault_ids).outcome == "failed"
        for dropped in found.fault_ids:
            rest = [f for f in found.fault_ids if f != dropped]
            assert _rerun(PAIR_SCENARIO, record.index, rest).outcome == "completed"


def test_a_failed_campaign_shows_the_faults_its_worst_trial_needs(tmp_path):
    result = run_campaign(PAIR_SCENARIO)
    (shrunk,) = result.minimal_faults
    worst = result.worst_trials(1)[0]
    assert shrunk.index == worst.index and len(shrunk.faults) == 2
    with pytest.raises(CampaignFailed) as failed:
        result.check()
    message = str(failed.value)
    assert f"    fails with just: {shrunk.faults[0]}; {shrunk.faults[1]} (2 of {shrunk.fired} faults, minimal)" \
        in message.splitlines()
    data = json.loads(json.dumps(report_dict([result])))
    assert data["campaigns"][0]["minimal_faults"][0]["faults"] == list(shrunk.faults)


def test_fault_ids_in_the_trace_name_every_fault_that_fired():
    result = run_campaign(PAIR_SCENARIO)
    for record in result.records:
        fault_events = [e for e in record.trace if e.kind == "fault"]
        assert len(fired_faults(record)) == len({e.data["fid"] for e in fault_events})


def test_a_trial_that_fails_without_any_fault_says_so():
    scenario = Scenario(name="broken", agent=lambda task, env: "nope", tools=ORDER_TOOLS, world=Orders,
                        faults=Faults(rate=0.3), trials=5, seed=1, check=lambda w, out: out == "yes")
    found = shrink_trial(scenario, 0)
    assert found is not None and found.faults == () and found.minimal
    assert found.describe().startswith("fails with no fault at all")
    assert shrink_trial(PAIR_SCENARIO, next(r.index for r in run_campaign(PAIR_SCENARIO).records
                                            if r.outcome == "completed")) is None


def test_shrink_runs_zero_turns_it_off():
    result = run_campaign(dataclasses.replace(PAIR_SCENARIO, shrink_runs=0))
    assert not result.passed and result.minimal_faults == ()


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 12).flatmap(lambda n: st.tuples(st.just(n), st.sets(st.integers(0, n - 1), max_size=n))))
def test_ddmin_finds_exactly_the_culprits_of_a_monotone_failure(case):
    """If a trial fails exactly when its faults include a hidden set S, the 1-minimal set is S itself."""
    n, culprits = case
    items = [f"f{i}" for i in range(n)]
    hidden = {f"f{i}" for i in culprits}
    calls = []

    def fails(subset):
        calls.append(list(subset))
        return hidden <= set(subset)

    found, minimal = ddmin(items, fails)
    assert minimal and set(found) == hidden
    assert len({frozenset(c) for c in calls}) <= n * n + 3 * n  # ddmin's worst case (distinct re-runs)


def test_ddmin_stops_when_its_budget_is_spent():
    found, minimal = ddmin([f"f{i}" for i in range(8)], lambda subset: None)
    assert not minimal and len(found) == 8


def test_failure_of_names_the_outcome_or_the_first_violation():
    result = run_campaign(PAIR_SCENARIO)
    assert {failure_of(r) for r in result.records} <= {None, "failed"}


def test_a_failing_chaos_test_prints_the_faults_under_the_replay_command(pytester):
    pytester.makepyfile(test_pair='''
        from pytest_agentops import Faults, Scenario
        from conftest import ORDER_TOOLS, Orders
        from test_shrink import _pair_agent

        def test_pair(agent_chaos):
            agent_chaos.run(Scenario(name="pair", agent=_pair_agent, tools=ORDER_TOOLS, world=Orders,
                                     faults=Faults(rate=0.5, latency=0.3), trials=60, seed=3, early_stop=False,
                                     check=lambda world, out: out == "done",
                                     expect={"completion_rate": ">= 0.99"})).check()
    ''')
    result = pytester.runpytest("--agent-chaos", "-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*worst trials (replay each with the command under it):",
                                 "*pair[[]trial-*: failed: check(world, output) returned False",
                                 "*pytest test_pair.py::test_pair --agent-chaos --agent-chaos-seed=3 *",
                                 "*fails with just: lookup_order call 1 -> *; refund_order call 1 -> * (2 of * "
                                 "faults, minimal)"])
