"""A finished trial is freed by reference counting the moment the runner drops it, never left to the cyclic
collector: a layer that kept a method of its trial (``trial.abort``, ``trial.check_alive``: methods bound to
the context itself, not to the weak proxy the layer holds) made every trial a reference cycle, and the
collections those cycles caused took ~40% of a trial's CPU on the peers workload."""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import gc
import types
from pathlib import Path

import pytest

from pytest_agentops import Budget, Escalation, Faults, Rule, Scenario, Trajectory, run_campaign, tool
from pytest_agentops.scenario_file import load_scenarios

SCENARIOS = Path(__file__).resolve().parent.parent / "scenarios"
#: the harness's own per-trial objects: none may be cyclic garbage after a campaign
HARNESS = {"TrialContext", "TrialClock", "Trace", "TokenMeter", "FaultPlan", "BoundTool", "Gate", "BudgetGuard",
           "TrialStore", "EscalationMonitor", "LoopDetector", "EffectLedger", "PendingEvent"}


@tool
def lookup(world, x: int = 0) -> int:
    """Read something."""
    return x


@tool(side_effect=True)
def refund(world, x: int = 0) -> int:
    """Pay something back."""
    return x


def agent(task, env):
    for name in ("lookup", "refund", "lookup"):
        with contextlib.suppress(Exception):
            env.tools[name](1)
    env.state.save("step", 1)
    return 1


ALL_LAYERS = Scenario(name="all-layers", agent=agent, tools=[lookup, refund], faults=Faults(rate=0.3, latency=0.2),
                      trials=30, seed=3, early_stop=False, enforce=True, state="memory",
                      budget=Budget(per_task_tokens=100_000), escalation=Escalation(after_consecutive_failures=2),
                      trajectory=Trajectory(rules=(Rule("refund", after="lookup"),)))


def cyclic_garbage(scenario: Scenario, trials: int) -> collections.Counter[str]:
    """The types of the harness's objects (``HARNESS``) a campaign left on reference cycles of their own, for the
    cyclic collector (warmed up first: imports, caches).

    Every object that exists before the measured campaign (the warm-up's leftovers included) is frozen
    first, so the collection afterwards looks at the campaign's own objects only: a full collection of a
    test process late in the suite walks a few hundred thousand objects (~0.3 s each on a loaded CI
    machine, two per scenario before). A cycle among the campaign's objects is found all the same, and the
    campaign runs as it would in a session that froze (it skips its own freeze when one is in force).

    A cycle through a frame or a traceback is the agent's (or its libraries'): an exception kept with its
    traceback. On CPython 3.12 every exception an ``@contextmanager`` turns into another one is such a cycle
    (its ``__exit__`` frame holds the new exception), and the agent's frames on it hold the trial's ``env``.
    A harness object only reachable from such a cycle is not the harness's cycle, so it is not counted."""
    run_campaign(scenario, trials=1)
    flags = gc.get_debug()
    gc.freeze()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        run_campaign(scenario, trials=trials)
        gc.collect()
        return collections.Counter(type(o).__qualname__ for o in _on_own_cycles(gc.garbage))
    finally:
        gc.set_debug(flags)
        gc.garbage.clear()
        gc.unfreeze()


def _on_own_cycles(garbage: list) -> list:
    """The harness objects in ``garbage`` that can reach themselves without passing a frame or a traceback."""
    skip = {types.FrameType, types.TracebackType}
    inside = {id(o) for o in garbage if type(o) not in skip}  # (``type``: a dead weak proxy raises on isinstance)
    found = []
    for start in garbage:
        if type(start).__qualname__ not in HARNESS:
            continue
        seen, todo = set(), [start]
        while todo:
            for ref in gc.get_referents(todo.pop()):
                if ref is start:
                    found.append(start)
                    todo.clear()
                    break
                if id(ref) in inside and id(ref) not in seen:
                    seen.add(id(ref))
                    todo.append(ref)
    return found


def test_a_campaign_with_every_builtin_layer_leaves_no_cyclic_garbage():
    """(Only the harness's objects are counted: threads other tests of the same process left behind may
    make garbage of their own while the campaign runs.)"""
    left = cyclic_garbage(ALL_LAYERS, 30)
    assert not (HARNESS & set(left)), {k: v for k, v in left.items() if k in HARNESS}


@pytest.mark.parametrize("path", sorted(p.name for p in SCENARIOS.glob("*.yaml")))
def test_no_trial_of_a_bundled_scenario_is_left_to_the_cyclic_collector(path):
    """The bundled scenarios (fake model, confirmations, injections, drift...). A crashed agent's exception is a
    cycle of its own (traceback and frames), and httpx's responses are (a response and its stream), so only the
    harness's objects are counted here, in the scenarios whose agent does not crash."""
    for scenario in load_scenarios(SCENARIOS / path):
        if scenario.faults is not None and scenario.faults.crash:
            continue
        left = cyclic_garbage(dataclasses.replace(scenario, shrink_runs=0), 4)
        assert not (HARNESS & set(left)), {k: v for k, v in left.items() if k in HARNESS}
