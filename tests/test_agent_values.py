"""What an agent and its tools hand the harness, from an outside review: values a report cannot write, objects
whose ``repr`` shows a memory address, results an ``empty`` fault could not empty, made-up harness events,
agents whose body never runs, and ``os.abort``. Each one is a recorded trial or a clear error, never a crashed
report, a run that differs from its replay, or a falsely green campaign."""

from __future__ import annotations

import contextlib
import enum
import json
import os
import resource
from typing import NamedTuple

import numpy as np
import pytest

from pytest_agentops import ConfigError, Faults, Scenario, ToolError, replay_trial, run_campaign, tool
from pytest_agentops.report.json_report import report_dict, write_report


def _strict(text: str) -> object:
    """``json.loads`` that refuses ``NaN`` and ``Infinity`` (which ``json`` writes only when asked not to refuse)."""
    def refuse(constant: str) -> object:
        raise ValueError(f"{constant} in a report")
    return json.loads(text, parse_constant=refuse)


VALUES = {"nan": float("nan"), "inf": float("-inf"), "numpy-nan": np.float64("nan"), "long-int": 10 ** 5000,
          "long-double": np.longdouble("inf")}


@pytest.mark.parametrize("name", VALUES)
def test_a_value_json_cannot_write_is_traced_as_text_and_the_report_is_written(name, tmp_path):
    """A tool called with NaN, or returning it or a 5,000-digit int: the trial was recorded, then ``write_report``
    raised (and through pytest the session ended in an internal error with a placeholder report)."""
    value = VALUES[name]

    @tool
    def measure(world, x: float = 1.0):
        """Measure."""
        return value

    def agent(task, env):
        env.tools["measure"](value)
        return "done"

    result = run_campaign(Scenario(name=f"v-{name}", agent=agent, tools=[measure], check=lambda w, o: True,
                                   faults=Faults.none(), trials=2, seed=1, early_stop=False))
    assert dict(result.outcome_counts) == {"completed": 2}
    path = tmp_path / "r.json"
    write_report(str(path), [result], with_traces=True)
    call = next(e for e in _strict(path.read_text())["campaigns"][0]["records"][0]["trace"]
                if e["kind"] == "tool_call")
    expected = {"nan": "nan", "inf": "-inf", "numpy-nan": "nan", "long-int": "<int of 16610 bits>",
                "long-double": "np.longdouble('inf')"}[name]
    assert (call["data"]["arguments"]["x"], call["data"]["result"]) == (expected, expected)


@pytest.mark.parametrize("fault", [None, "malformed"])
def test_a_result_holding_an_int_too_long_for_repr_is_traced_as_a_placeholder_not_an_error(fault):
    """A tool returning ``{"total": 10**4500}``: tracing its result (and garbling it) called ``repr``, which raised
    ``ValueError``, and the trial became an error blamed on the agent's line."""
    @tool
    def total(world):
        """Total."""
        return {"total": 10 ** 4500}

    def agent(task, env):
        env.tools["total"]()
        return "ok"

    faults = Faults.none() if fault is None else Faults(rate=1.0, mix={fault: 1.0})
    result = run_campaign(Scenario(name="long", agent=agent, tools=[total], faults=faults, trials=2, seed=1,
                                   early_stop=False))
    assert dict(result.outcome_counts) == {"completed": 2}
    if fault is None:
        call = next(e for e in result.records[0].trace if e.kind == "tool_call")
        assert call.data["result"] == "<dict whose repr() raised ValueError>"
    else:
        assert all(r.faults == ("total:malformed",) for r in result.records)


class Order:  # a plain class: its default ``repr`` shows the object's address
    def __init__(self, n: int):
        self.n = n


class Holder:
    """Keeps an object whose default ``repr`` shows its address, in the ways reasons and traces show one."""


@pytest.mark.parametrize("how", ["exception", "escalation", "checkpoint", "dict-key", "tool-error"])
def test_an_address_in_a_reason_or_a_traced_value_is_left_out(how):
    """``raise ValueError(obj)``, ``env.escalate(obj)``, a checkpoint value the store refuses, a dict keyed by an
    object, a tool raising with an object: each kept ``at 0x...`` in the record's reason or its trace."""
    @tool
    def lookup(world, arguments: dict | None = None):
        """Look up."""
        if how == "tool-error":
            raise ValueError(Order(1))
        return 1

    def agent(task, env):
        if how == "exception":
            raise ValueError(Order(1))
        if how == "escalation":
            env.escalate(Order(1))
        if how == "checkpoint":
            env.state.save("order", Order(1))
        with contextlib.suppress(ValueError):
            env.tools["lookup"]({Order(1): 1} if how == "dict-key" else None)
        return "ok"

    scenario = Scenario(name=f"address-{how}", agent=agent, tools=[lookup], faults=Faults.none(), trials=2, seed=1,
                        early_stop=False)
    texts = [json.dumps(report_dict([run_campaign(scenario, concurrency=c)], with_traces=True), sort_keys=True)
             for c in (1, 2)]
    assert texts[0] == texts[1] and " at 0x" not in texts[0]


def test_objects_whose_repr_shows_an_address_give_the_same_report_at_any_concurrency_and_in_replay():
    """An output or a tool result with a default ``repr`` kept ``at 0x7f...`` in the record and the trace: reports
    of the same seed differed, and a replay differed from the record."""
    @tool
    def lookup(world, x: int = 1):
        """Look up."""
        return Order(x)

    def agent(task, env):
        return env.tools["lookup"](1)

    scenario = Scenario(name="addresses", agent=agent, tools=[lookup], check=lambda w, o: o.n == 1,
                        faults=Faults.none(), trials=3, seed=1, early_stop=False)
    texts, results = [], []
    for concurrency in (1, 8):
        result = run_campaign(scenario, concurrency=concurrency)
        results.append(result)
        texts.append(json.dumps(report_dict([result], with_traces=True), sort_keys=True))
    assert texts[0] == texts[1] and "0x" not in texts[0]
    record = results[0].records[0]
    assert record.output == f"<{__name__}.Order object>"
    assert replay_trial(scenario, 0, seed=1) == record


class Pair(NamedTuple):
    id: int
    status: str


class Status(enum.StrEnum):
    PAID = "paid"


@pytest.mark.parametrize("value, empty", [(Pair(42, "paid"), ()), (Status.PAID, ""), ([1], []), ({"a": 1}, {})])
def test_an_empty_fault_empties_results_whose_type_cannot_be_made_empty(value, empty):
    """A ``NamedTuple`` or a ``StrEnum`` result: ``type(result)()`` raised, and the trial became an error that
    named the agent's line, with no fault recorded although the tool had run."""
    seen = []

    @tool
    def fetch(world, order_id: int):
        """Fetch."""
        return value

    def agent(task, env):
        try:
            seen.append(env.tools["fetch"](42))
        except ToolError:
            return "failed"
        return "ok"

    result = run_campaign(Scenario(name="empty", agent=agent, tools=[fetch], check=lambda w, o: True,
                                   faults=Faults(rate=1.0, mix={"empty": 1.0}), trials=2, seed=1, early_stop=False))
    assert dict(result.outcome_counts) == {"completed": 2}
    assert all(r.faults == ("fetch:empty",) for r in result.records)
    assert seen == [empty, empty] and all(type(s) is type(empty) for s in seen)


def test_an_agent_cannot_write_the_harness_events_that_verdicts_and_tallies_read():
    """``env.trace.add("fault", ...)`` with no fault configured: the record showed the made-up fault, and the
    report's fault tallies blamed failures on faults that never fired. The agent's own kinds still go in."""
    @tool
    def lookup(world, x: int = 1):
        """Look up."""
        return x

    def agent(task, env):
        env.tools["lookup"](1)
        env.trace.add("agent", "plan", steps=2)
        if task == "forge":
            env.trace.add("fault", "lookup", "error", fid=1)
        return "ok"

    honest, forging = (run_campaign(Scenario(name=f"trace-{task}", agent=agent, task=task, tools=[lookup],
                                             faults=Faults.none(), trials=2, seed=1, early_stop=False))
                       for task in ("plain", "forge"))
    assert dict(honest.outcome_counts) == {"completed": 2}
    assert [(e.kind, e.name) for e in honest.records[0].trace if e.kind == "agent"] == [("agent", "plan")]
    assert dict(forging.outcome_counts) == {"error": 2}
    assert all(r.faults == () for r in forging.records)
    assert "env.trace.add: kind='fault' is not the agent's to write" in forging.records[0].reason


def _generator_agent(task, env):
    yield "partial"


async def _async_generator_agent(task, env):
    yield "partial"


class _StreamingAgent:
    async def __call__(self, task, env):
        yield "partial"


@pytest.mark.parametrize("agent", [_generator_agent, _async_generator_agent, _StreamingAgent()],
                         ids=["generator", "async-generator", "object"])
def test_an_agent_whose_body_a_call_never_runs_is_refused(agent):
    """An async generator agent: every trial was recorded completed with no tool call, and the campaign passed,
    though the agent's body (which would have raised) never ran."""
    with pytest.raises(ConfigError, match=r"is a generator function: calling it runs none of its body"):
        Scenario(name="gen", agent=agent, trials=3, seed=1)


async def _async_check(world, output):
    return False


def _generator_check(world, output):
    yield False


class _AsyncWorld:
    async def __call__(self):
        return {}


@pytest.mark.parametrize(("role", "fn"), [("check", _async_check), ("check", _generator_check),
                                          ("world", _AsyncWorld())], ids=["async-check", "generator-check", "world"])
def test_a_check_or_world_whose_body_a_call_never_runs_is_refused(role, fn):
    """An ``async def`` check passed every trial: the coroutine it returned is truthy, and its body (which said
    False) never ran; the run was green, with only a "never awaited" warning."""
    with pytest.raises(ConfigError, match=rf"^{role}=.* is a (coroutine|generator) function.*: calling it runs none"):
        Scenario(name="gen", agent=lambda task, env: "ok", trials=3, seed=1, **{role: fn})


class _CheckReturningACoroutine:
    """A check whose call returns a coroutine though it is not itself a coroutine function (what a decorator
    does): refused when it answers."""

    def __call__(self, world, output):
        return _async_check(world, output)


def test_a_check_that_answers_with_a_coroutine_makes_its_trials_errors_without_a_warning(recwarn):
    result = run_campaign(Scenario(name="coro", agent=lambda task, env: "ok", check=_CheckReturningACoroutine(),
                                   faults=Faults.none(), trials=3, seed=1, early_stop=False,
                                   expect={"completion_rate": ">= 0.5"}))
    assert dict(result.outcome_counts) == {"error": 3} and not result.passed
    assert result.records[0].reason.startswith("check returned coroutine <coroutine object _async_check")
    assert "must return True or False" in result.records[0].reason
    assert not [w for w in recwarn if "never awaited" in str(w.message)]


def test_os_abort_inside_a_trial_is_a_recorded_error_not_the_end_of_the_test_process():
    """``os.abort()`` killed pytest (SIGABRT, exit status 134), the later tests and the report with it."""
    def agent(task, env):
        if env.trial_id == "trial-1":
            os.abort()
        return "ok"

    result = run_campaign(Scenario(name="abort", agent=agent, check=lambda w, o: o == "ok", faults=Faults.none(),
                                   trials=3, seed=1, early_stop=False))
    assert dict(result.outcome_counts) == {"completed": 2, "error": 1}
    assert result.records[1].reason.startswith("OSError: os.abort() inside a trial is refused: it would kill")


_NOFILE = resource.getrlimit(resource.RLIMIT_NOFILE)


class _NeverLess(int):
    """An int whose ``<`` says no: the C function reads its value (a lowering all the same)."""

    def __lt__(self, other: object) -> bool:
        return False

_PROCESS_WIDE = {  # (each harmless if it went through: a file limit one lower, put back; descriptors not open)
    "setrlimit": lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (_NOFILE[0] - 1, _NOFILE[1])),
    "prlimit": lambda: resource.prlimit(0, resource.RLIMIT_NOFILE, (_NOFILE[0] - 1, _NOFILE[1])),
    "closerange": lambda: os.closerange(2**20, 2**20 + 1),
    "setrlimit-sly-int": lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (_NeverLess(_NOFILE[0] - 1), _NOFILE[1])),
}


@pytest.mark.parametrize("mode", ["sync", "async"])
@pytest.mark.parametrize("name", list(_PROCESS_WIDE))
def test_process_wide_limits_and_closing_every_descriptor_are_refused_in_a_trial(name, mode):
    """``resource.setrlimit(RLIMIT_CPU, ...)`` killed pytest (SIGXCPU), a low ``RLIMIT_NOFILE`` failed the later
    tests' files, ``os.closerange(3, 1000)`` ended the run with no output: refused with ``OSError`` (the trial an
    error naming the call, as for a fork). Reading a limit, setting one no lower (as libraries raising the
    file limit on import do), and turning core dumps off go through."""
    core = resource.getrlimit(resource.RLIMIT_CORE)

    def sync_agent(task, env):
        resource.prlimit(0, resource.RLIMIT_NOFILE)  # (a read)
        resource.setrlimit(resource.RLIMIT_NOFILE, _NOFILE)  # (no lower)
        resource.setrlimit(resource.RLIMIT_CORE, (0, core[1]))  # (core dumps off)
        _PROCESS_WIDE[name]()
        return "ok"

    async def async_agent(task, env):
        return sync_agent(task, env)

    try:
        result = run_campaign(Scenario(name="wide", agent=sync_agent if mode == "sync" else async_agent,
                                       faults=Faults.none(), trials=2, seed=1, early_stop=False))
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, _NOFILE)  # (had it gone through: as it was; a soft limit)
        resource.setrlimit(resource.RLIMIT_CORE, core)
    assert [r.outcome for r in result.records] == ["error", "error"]
    owner, call = ("os", name) if name == "closerange" else ("resource", name.partition("-")[0])
    assert all(r.reason.startswith(f"OSError: {owner}.{call}() inside a trial is refused: ") for r in result.records)
    from pytest_agentops.process import exit_guard  # (lowering the core-dump size counts as no lowering: a unit
    assert not exit_guard._lowers(resource.RLIMIT_CORE, (0, 0))  # check, as a lowered hard limit stays lowered)
    assert exit_guard._lowers(resource.RLIMIT_NOFILE, iter(_NOFILE))  # (an iterator: counted as lowering)


def test_a_cpu_limit_and_closed_descriptors_in_a_campaign_leave_the_run_and_its_report(pytester, quiet_children):
    """What CI sees: the campaign's test fails with its report, the next test runs, exit code 1 (it was killed by
    SIGXCPU, or ended with status 1 and no output)."""
    pytester.makepyfile(test_wide="""
        import os, resource, time
        from pytest_agentops import Scenario, run_campaign

        def agent(task, env):
            if env.trial_id == "trial-0":
                resource.setrlimit(resource.RLIMIT_CPU, (int(time.process_time()), resource.RLIM_INFINITY))
            os.closerange(3, 1000)

        def test_campaign():
            run_campaign(Scenario(name="wide", agent=agent, trials=3, seed=1,
                                  expect={"completion_rate": ">= 0.9"})).check()

        def test_after():
            busy = time.process_time() + 0.2  # (CPU time past a CPU limit's next check, had it been set:
            while time.process_time() < busy:  # the kernel checks it while the process runs, not while it sleeps)
                pass
            assert True
    """)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", timeout=60)
    result.assert_outcomes(passed=1, failed=1)
    assert result.ret == 1
    result.stdout.fnmatch_lines(["*completion_rate >= 0.9: fail*"])


LEFT: list[object] = []


@pytest.mark.parametrize("exit_with", [KeyboardInterrupt, SystemExit])
@pytest.mark.parametrize("where", ["callback", "left-task"])
def test_an_exit_raised_on_the_shared_loop_outside_a_trials_coroutine_takes_no_trial_down(exit_with, where):
    """A loop callback or a task left by an ended trial raising ``KeyboardInterrupt`` or ``SystemExit`` stopped the
    loop all async trials share: at concurrency 8 every trial was timed out after its wall-clock limit (the verdict
    then depended on the concurrency), and a replay of a blamed trial completed."""
    import asyncio

    def raise_it():
        raise exit_with

    async def agent(task, env):
        if env.trial_id == "trial-2":
            if where == "callback":
                asyncio.get_running_loop().call_soon(raise_it)
                await asyncio.sleep(0.01)
            else:
                async def later():
                    await asyncio.sleep(0.2)
                    raise_it()
                LEFT.append(asyncio.ensure_future(later()))  # (left running past the trial)
            return "ok"
        await asyncio.sleep(0.5)
        return "ok"

    scenario = Scenario(name=f"exit-{where}", agent=agent, check=lambda w, o: o == "ok", faults=Faults.none(),
                        trials=8, seed=3, early_stop=False, timeout_s=5)
    texts = []
    for concurrency in (1, 8):
        result = run_campaign(scenario, concurrency=concurrency)
        assert dict(result.outcome_counts) == {"completed": 8}, (concurrency, result.records)
        texts.append(json.dumps(result.to_dict(with_traces=True), sort_keys=True))
    assert texts[0] == texts[1]


@pytest.mark.parametrize("name", ["settrace", "setprofile"])
def test_a_process_wide_thread_hook_set_in_a_trial_is_refused_and_the_campaign_ends(name):
    """``threading.settrace(f)`` with an ``f`` that raises: every thread started after it ran ``f``, so the
    campaign's worker threads died as they started and the run hung (and a later test hung after it)."""
    import threading

    def agent(task, env):
        if env.trial_id == "trial-2":
            getattr(threading, name)(lambda *args: 1 / 0)
        return "ok"

    before = threading.gettrace(), threading.getprofile()
    result = run_campaign(Scenario(name=f"hook-{name}", agent=agent, check=lambda w, o: o == "ok",
                                   faults=Faults.none(), trials=8, seed=3, early_stop=False, concurrency=8))
    assert dict(result.outcome_counts) == {"completed": 7, "error": 1}
    assert result.records[2].reason.startswith(f"RuntimeError: threading.{name}() inside a trial is refused")
    assert (threading.gettrace(), threading.getprofile()) == before


@pytest.mark.parametrize("args, kwargs, message", [
    (("agent", float("nan")), {}, "name=nan must be a string"),
    (("agent", "plan", float("inf")), {}, "outcome=inf must be a string"),
    (("agent",), {"input_tokens": 10 ** 5000}, "input_tokens=<a very long int> must be a whole number of tokens"),
    (("agent",), {"output_tokens": -1}, "output_tokens=-1 must be a whole number of tokens"),
])
def test_an_agents_own_event_takes_only_what_a_report_can_write(args, kwargs, message):
    """``env.trace.add("agent", float("nan"))`` or ``input_tokens=10**5000``: the trial was recorded, then
    ``write_report`` raised."""
    def agent(task, env):
        env.trace.add(*args, **kwargs)
        return "ok"

    result = run_campaign(Scenario(name="own-event", agent=agent, faults=Faults.none(), trials=1, seed=1))
    assert result.records[0].outcome == "error" and f"env.trace.add: {message}" in result.records[0].reason
    json.dumps(report_dict([result], with_traces=True), allow_nan=False)


def test_a_thread_hook_set_by_an_agents_thread_after_its_campaign_is_refused_and_the_next_campaign_runs():
    """A thread an agent left running called ``threading.settrace`` once the campaign was over (the stand-in was
    gone): accepted, and the next campaign's worker threads died as they started, so it hung."""
    import threading

    from pytest_agentops.vtime.real import real_sleep

    said: dict[str, str] = {}
    done = threading.Event()

    def later():
        real_sleep(0.3)  # (the campaign is over by then)
        try:
            threading.settrace(lambda *args: 1 / 0)
            said["after"] = "accepted"
        except RuntimeError as exc:
            said["after"] = str(exc)
        done.set()

    def agent(task, env):
        if env.trial_id == "trial-1":
            threading.Thread(target=later, daemon=True).start()
        return "ok"

    first = run_campaign(Scenario(name="hook-left", agent=agent, faults=Faults.none(), trials=4, seed=1,
                                  early_stop=False))
    assert done.wait(10) and said["after"].startswith("threading.settrace() inside a trial is refused")
    assert threading.gettrace() is None
    second = run_campaign(Scenario(name="hook-next", agent=lambda task, env: "ok", faults=Faults.none(), trials=4,
                                   seed=1, early_stop=False, concurrency=4))
    assert dict(first.outcome_counts) == dict(second.outcome_counts) == {"completed": 4}


def test_every_kind_of_event_the_harness_writes_is_one_an_agent_may_not():
    """``HARNESS_KINDS`` is kept by hand: a kind the harness starts to write must join it, or an agent could make
    that event up. Every literal kind given to a trace's ``add`` in the package (the bundled demo agents' own
    ``agent`` events aside) is in it."""
    import re
    from pathlib import Path

    import pytest_agentops
    from pytest_agentops.harness.trace import HARNESS_KINDS

    root = Path(pytest_agentops.__file__).parent
    written = {}
    for path in root.rglob("*.py"):
        if "demo" in path.parts:
            continue
        for kind in re.findall(r"(?:\.add(?:_data|_plain)?|_event)\(\s*\"([a-z_]+)\"", path.read_text()):
            written.setdefault(kind, path.relative_to(root).as_posix())
    assert len(written) >= 15 and set(written) <= HARNESS_KINDS, {k: p for k, p in written.items()
                                                                  if k not in HARNESS_KINDS}
