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

import pytest_agentops
from pytest_agentops import Budget, Escalation, Faults, LayerTrial, Rule, Scenario, Trajectory, run_campaign, tool
from pytest_agentops.scenario_file import load_scenarios

from import_graph import cycles

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
    """The types of the harness's objects (``HARNESS``) a campaign left to the cyclic collector through a cycle
    the harness made (warmed up first: imports, caches).

    Every object that exists before the measured campaign (the warm-up's leftovers included) is frozen
    first, so the collection afterwards looks at the campaign's own objects only: a full collection of a
    test process late in the suite walks a few hundred thousand objects (~0.3 s each on a loaded CI
    machine, two per scenario before). A cycle among the campaign's objects is found all the same, and the
    campaign runs as it would in a session that froze (it skips its own freeze when one is in force).

    A cycle through a frame of code outside the package (or its traceback entry) is the agent's or its
    libraries': an exception kept with its traceback. On CPython 3.12 every exception an ``@contextmanager``
    turns into another one is such a cycle (its ``__exit__`` frame holds the new exception), and the agent's
    frames on it hold the trial's ``env``. Harness objects that only such a cycle holds are not counted; those
    on, or held by, any other cycle are (a layer keeping a method of itself or of its trial, an exception the
    harness keeps whose traceback holds the harness's own frame)."""
    run_campaign(scenario, trials=1)
    flags = gc.get_debug()
    gc.freeze()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        run_campaign(scenario, trials=trials)
        gc.collect()
        return collections.Counter(type(o).__qualname__ for o in _held_by_harness_cycles(gc.garbage)
                                   if type(o).__qualname__ in HARNESS)
    finally:
        gc.set_debug(flags)
        gc.garbage.clear()
        gc.unfreeze()


_PACKAGE = str(Path(pytest_agentops.__file__).resolve().parent)


def _foreign(o: object) -> bool:
    """A frame of code outside the package, or the traceback entry of one. (``type``, not ``isinstance``: a
    dead weak proxy in the garbage raises on ``isinstance``.)"""
    if type(o) is types.TracebackType:
        o = o.tb_frame  # type: ignore[attr-defined]
    return type(o) is types.FrameType and not o.f_code.co_filename.startswith(_PACKAGE)  # type: ignore[attr-defined]


def _held_by_harness_cycles(garbage: list) -> list:
    """The objects of ``garbage`` on a cycle that passes no foreign frame (``_foreign``), or reachable from one
    without passing such a frame (the cycles: strongly connected components, ``import_graph.cycles``, and
    objects referring to themselves)."""
    nodes = {id(o): o for o in garbage if not _foreign(o)}
    edges = {k: [id(r) for r in gc.get_referents(o) if id(r) in nodes] for k, o in nodes.items()}
    cyclic = {k for component in cycles(edges) for k in component} | {k for k, e in edges.items() if k in e}
    held, todo = set(cyclic), list(cyclic)
    while todo:
        for nxt in edges[todo.pop()]:
            if nxt not in held:
                held.add(nxt)
                todo.append(nxt)
    return [nodes[k] for k in held]


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


class _KeepsItsOwnMethod(LayerTrial):
    """A layer's trial on a cycle of its own (it keeps a method of itself), holding the trial's trace."""

    def __init__(self, trial):
        self.trace = trial.trace
        self.me = self.close


class _CyclicLayer:
    name = "cyclic"

    def attach(self, trial):
        return _KeepsItsOwnMethod(trial)


_KEEPS_AN_EXCEPTION = '''
def close_layers(self):
    try:
        raise RuntimeError("kept")
    except RuntimeError as exc:
        self.kept_error = exc  # the context -> the exception -> its traceback -> this frame, whose self is it
    return original(self)
'''


@pytest.mark.parametrize("cycle", ["a layer keeping a method of itself", "the harness keeping an exception"])
def test_the_check_finds_a_cycle_the_harness_makes(cycle, monkeypatch):
    """The check itself: a cycle of a layer's own, and an exception the harness keeps whose traceback holds the
    harness's own frame (compiled as the package's code), are both found."""
    from pytest_agentops.harness import context

    scenario = Scenario(name="cyclic", agent=agent, tools=[lookup, refund], faults=Faults.none(), trials=10, seed=1)
    if cycle.startswith("a layer"):
        scenario = dataclasses.replace(scenario, layers=[_CyclicLayer()])
        expected = {"Trace"}
    else:
        scope = {"original": context.TrialContext.close_layers}
        exec(compile(_KEEPS_AN_EXCEPTION, context.__file__, "exec"), scope)
        monkeypatch.setattr(context.TrialContext, "close_layers", scope["close_layers"])
        expected = {"TrialContext", "Trace"}
    left = cyclic_garbage(scenario, 10)
    assert expected <= set(left) and all(left[name] == 10 for name in expected), left
