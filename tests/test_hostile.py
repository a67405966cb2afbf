"""Hostile agents: nothing an agent does can fool, hang or outlive a campaign.

Each test is one attack: it asserts the trial's outcome and reason, that the other trials ran normally, and
that nothing (thread, loop) is left running. Process-level attacks (``os._exit``) are also run through a real
pytest in a subprocess, where the exit status is what CI sees.
"""

from __future__ import annotations

import _thread
import ast
import asyncio
import contextlib
import contextvars
import errno
import faulthandler
import importlib
import os
import random
import select
import signal
import subprocess
import sys
import textwrap
import threading
import time
import warnings

import numpy as np
import pytest

from pytest_agentops import ConfigError, Escalation, Scenario, run_campaign, tool
from pytest_agentops.process import exit_guard
from pytest_agentops.vtime.real import real_sleep

from conftest import ORDER_TOOLS, Orders


def _only(result, index):
    """The record of trial ``index`` and the outcomes of all the others."""
    record = next(r for r in result.records if r.index == index)
    return record, {r.outcome for r in result.records if r.index != index}


@contextlib.contextmanager
def _threading_excepthook(hook):
    """``threading.excepthook`` is ``hook`` in the block (what pytest would report as a thread's exception)."""
    saved, threading.excepthook = threading.excepthook, hook
    try:
        yield
    finally:
        threading.excepthook = saved


def _campaign(agent, trials=4, **kwargs):
    kwargs.setdefault("faults", "none")
    return run_campaign(Scenario(name="hostile", agent=agent, trials=trials, seed=1, early_stop=False, **kwargs))


def _campaign_that_ends(agent, release=None, **kwargs):
    """``_campaign`` in a thread of its own, which must end within 30 s ("the campaign hangs" otherwise); then
    ``release`` (what an agent blocking the loop for good waits on) is set, whether it ended or not."""
    results = []
    runner = threading.Thread(target=lambda: results.append(_campaign(agent, **kwargs)), daemon=True)
    runner.start()
    try:
        runner.join(30)
        assert not runner.is_alive(), "the campaign hangs"
    finally:
        if release is not None:
            release.set()
    return results[0]


# -- controls an agent cannot talk its way around -----------------------------------------------------------
class Shelf:
    def __init__(self):
        self.items = {7: "a", 13: "b", 42: "c"}
        self.deleted: list[int] = []


@tool(destructive=True)
def delete_many(world, ids: list) -> int:
    """Delete several items."""
    for i in ids:
        world.items.pop(i, None)
        world.deleted.append(i)
    return len(ids)


def _each_world(make):
    """A world factory that keeps every world it makes (the tests look at them after the campaign)."""
    worlds = []

    def world():
        worlds.append(make())
        return worlds[-1]

    return worlds, world


def test_arguments_changed_after_their_confirmation_are_not_confirmed():
    """Confirm ``ids=[7]``, append to the list, call with ``[7, 13, 42]``: the approval covered [7] only."""
    worlds, world = _each_world(Shelf)

    def agent(task, env):
        ids = [7]
        assert env.confirm("delete_many", ids=ids)
        ids.extend([13, 42])
        try:
            env.tools["delete_many"](ids)
        except PermissionError as exc:
            return f"blocked: {exc}"
        return "deleted"

    result = run_campaign(Scenario(name="mutate", faults="none", agent=agent, tools=[delete_many], world=world,
                                   enforce=True, trials=5, seed=1, expect={"unconfirmed_destructive_calls": "== 0"}))
    assert all(w.deleted == [] for w in worlds)
    assert all(r.unconfirmed_destructive == 1 and r.blocked_calls == 1 for r in result.records)
    assert all(r.output.startswith("blocked: delete_many: destructive call blocked") for r in result.records)
    assert [v.verdict for v in result.verdicts] == ["fail"]


def test_the_confirmed_values_still_pass_when_the_agent_builds_an_equal_copy():
    """The snapshot compares values: a fresh list equal to the confirmed one is the confirmed argument."""
    def agent(task, env):
        assert env.confirm("delete_many", ids=[7, 13])
        return env.tools["delete_many"](list((7, 13)))

    result = run_campaign(Scenario(name="copy", faults="none", agent=agent, tools=[delete_many], world=Shelf,
                                   enforce=True, trials=3, seed=1))
    assert all(r.outcome == "completed" and r.unconfirmed_destructive == 0 for r in result.records)


class _EqualsEverything(int):
    """An int that says it equals every number (an outside review's way past the gate)."""

    def __eq__(self, other):
        return True

    __hash__ = int.__hash__


def test_a_number_whose_own_eq_says_it_equals_anything_is_not_the_confirmed_number():
    """Approved ``delete_order(order_id=7)``; called with an int subclass of value 42 whose ``__eq__`` is always
    True: the snapshot compared with it, so the approval matched, order 42 went, and no violation was counted."""
    worlds, world = _each_world(Orders)

    def agent(task, env):
        assert env.confirm("delete_order", order_id=7)
        return env.tools["delete_order"](_EqualsEverything(42))

    result = run_campaign(Scenario(name="eq", faults="none", agent=agent, tools=ORDER_TOOLS, world=world,
                                   enforce=True, trials=3, seed=1, expect={"unconfirmed_destructive_calls": "== 0"}))
    assert all(42 in w.orders for w in worlds)
    assert all(r.unconfirmed_destructive == 1 and r.blocked_calls == 1 for r in result.records)
    assert [v.verdict for v in result.verdicts] == ["fail"]


def test_one_approval_lets_exactly_one_of_sixteen_concurrent_calls_through():
    """Sixteen threads of one trial race to use one approval (released together by a barrier): one call goes
    ahead, fifteen are blocked and counted, in every one of 40 trials."""
    worlds, world = _each_world(Orders)

    def agent(task, env):
        assert env.confirm("delete_order", order_id=7)
        barrier = threading.Barrier(16)
        outcomes = []

        def racer():
            barrier.wait()
            try:
                env.tools["delete_order"](7)
                outcomes.append("ran")
            except PermissionError:
                outcomes.append("blocked")

        threads = [threading.Thread(target=racer) for _ in range(16)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return ",".join(sorted(outcomes))

    result = run_campaign(Scenario(name="race", agent=agent, tools=ORDER_TOOLS, world=world, enforce=True,
                                   trials=40, seed=1, early_stop=False, faults="none"))
    assert len(worlds) == 40
    assert all(w.deleted == [7] for w in worlds)
    assert all(r.unconfirmed_destructive == 15 and r.blocked_calls == 15 for r in result.records)


def test_a_swallowed_escalation_stays_escalated():
    """``except BaseException`` around ``env.escalate`` and around every later call: each later harness call
    raises again, no side effect happens after the escalation, and the trial is judged escalated."""
    worlds, world = _each_world(Orders)

    def agent(task, env):
        try:
            env.escalate("I give up")
        except BaseException:
            pass
        for _ in range(20):
            try:
                env.tools["refund_order"](42)
            except BaseException:
                pass
        return "done anyway"

    result = run_campaign(Scenario(name="swallow", faults="none", agent=agent, tools=ORDER_TOOLS, world=world, trials=3,
                                   seed=1,
                                   check=lambda w, out: True))
    assert [r.outcome for r in result.records] == ["escalated"] * 3
    assert all(r.reason == "I give up" for r in result.records)
    assert all(w.refunded == [] for w in worlds)


def test_a_swallowed_max_steps_trigger_stays_escalated():
    """``max_steps=5`` fires at the sixth step; an agent that catches it and calls on gets no sixth call."""
    worlds, world = _each_world(Orders)

    def agent(task, env):
        for _ in range(100):
            try:
                env.tools["refund_order"](42)
            except BaseException:
                pass
        return "done"

    result = run_campaign(Scenario(name="steps", faults="none", agent=agent, tools=ORDER_TOOLS, world=world, trials=3,
                                   seed=1,
                                   escalation=Escalation(max_steps=5), check=lambda w, out: True))
    assert [r.outcome for r in result.records] == ["escalated"] * 3
    assert all(len(w.refunded) == 5 for w in worlds)


def test_a_swallowed_virtual_time_limit_stays_timed_out():
    """A sync agent that catches the virtual-time limit and sleeps on is judged timed out, and its clock never
    moves far past the limit (every later sleep raises again before it advances)."""
    def agent(task, env):
        for _ in range(5000):
            try:
                time.sleep(10)
            except BaseException:
                pass
        return "done"

    result = _campaign(agent, trials=3, virtual_timeout_s=60.0, check=lambda w, out: True)
    assert [r.outcome for r in result.records] == ["timed_out"] * 3
    assert all("virtual time limit of 60s" in r.reason for r in result.records)
    assert all(r.duration_s <= 70.0 for r in result.records)


def test_calls_from_a_thread_left_behind_are_refused_and_counted():
    """Trial 0 leaves a thread behind that calls a side-effecting tool once trial 1 is running: the call is
    refused (the world of trial 0 is untouched), counted in the campaign, and trial 1 is unaffected."""
    worlds, world = _each_world(Orders)
    go, seen = threading.Event(), []
    left: list[threading.Thread] = []

    def agent(task, env):
        if env.trial_id.endswith("-0"):
            refund = env.tools["refund_order"]

            def later():
                go.wait(10)
                try:
                    refund(42)
                    seen.append("ran")
                except BaseException as exc:
                    seen.append(type(exc).__name__)

            left.append(threading.Thread(target=later))
            left[0].start()
        else:
            go.set()
            left[0].join(10)
        return "ok"

    result = run_campaign(Scenario(name="late", faults="none", agent=agent, tools=ORDER_TOOLS, world=world, trials=2,
                                   seed=1,
                                   early_stop=False))
    assert seen == ["TrialAborted"]
    assert worlds[0].refunded == [] and worlds[1].refunded == []
    assert result.late_calls == 1
    assert [r.outcome for r in result.records] == ["completed", "completed"]


@pytest.mark.parametrize("kind", ["sync", "async"])
@pytest.mark.parametrize("made_up", ["completed", "escalated", "abandoned"])
def test_an_agent_raising_the_harness_own_exceptions_is_never_taken_at_its_word(kind, made_up):
    """``TrialAborted("completed", "")`` raised by the agent itself passed every trial without its check (a false
    green); a made-up ``Escalated`` or ``TrialAbandoned`` gave a false outcome. Only what the harness decided is an
    outcome: the agent's own raise is an error of the agent's."""
    from pytest_agentops.errors import Escalated, TrialAbandoned, TrialAborted

    made = {"completed": lambda: TrialAborted("completed", ""), "escalated": lambda: Escalated("a human, really"),
            "abandoned": lambda: TrialAbandoned()}[made_up]

    def sync_agent(task, env):
        raise made()

    async def async_agent(task, env):
        raise made()

    result = _campaign(async_agent if kind == "async" else sync_agent, trials=3, check=lambda world, output: False,
                       expect={"completion_rate": ">= 0.5"})
    assert {r.outcome for r in result.records} == {"error"}
    assert all(r.reason.startswith("the agent raised ") and r.reason.endswith("itself: the harness decided nothing")
               for r in result.records)
    with pytest.raises(AssertionError):
        result.check()


LEFT_IN_CONTEXT: contextvars.ContextVar[str] = contextvars.ContextVar("left_in_context", default="clean")


def _tracer(frame, event, arg):
    if event == "call" and frame.f_code.co_name == "_innocent":
        raise RuntimeError("sabotaged by another trial's trace function")


def _innocent() -> str:
    import decimal

    total = decimal.Decimal("19.99") + decimal.Decimal("5.01")  # inexact at precision 1 (a trap set below)
    return f"{total}/{LEFT_IN_CONTEXT.get()}"


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_what_a_trial_leaves_in_its_thread_or_context_does_not_reach_the_trials_after_it(kind):
    """Trial 2 sets a context variable, the decimal context's precision and a trap, and a trace function in
    the thread it runs in; the trials its thread (or loop) runs next were errors, and a replay of one (run
    alone) completed: the record depended on what ran before it."""
    import decimal

    from pytest_agentops import replay_trial

    def sabotage() -> str:
        LEFT_IN_CONTEXT.set("dirty")
        decimal.getcontext().prec = 1
        decimal.getcontext().traps[decimal.Inexact] = True
        sys.settrace(_tracer)
        return "sabotaged"

    def sync_agent(task, env):
        return sabotage() if env.trial_id.endswith("-2") else _innocent()

    async def async_agent(task, env):
        return sync_agent(task, env)

    outside = decimal.getcontext().prec
    tracer = sys.gettrace()
    scenario = Scenario(name=f"left-{kind}", agent=async_agent if kind == "async" else sync_agent, trials=6,
                        seed=1, faults="none", early_stop=False)
    result = run_campaign(scenario)
    assert [r.output for r in result.records] == ["25.00/clean"] * 2 + ["sabotaged"] + ["25.00/clean"] * 3
    assert replay_trial(scenario, 4, seed=1).output == result.records[4].output
    assert decimal.getcontext().prec == outside and sys.gettrace() is tracer and LEFT_IN_CONTEXT.get() == "clean"


_SHARED: dict[str, object] = {}


async def _serve(queue):
    while True:
        future, x = await queue.get()
        await asyncio.sleep(0.01)
        future.set_result(x * 2)


async def _ask(x):
    """A client that starts one worker task the first time it is used, shared by every call after (a batching
    or logging worker of a long-lived service): the trial that first asks owns it, the others use it."""
    worker = _SHARED.get("worker")
    if worker is None or worker.done():
        _SHARED["queue"] = asyncio.Queue()
        _SHARED["worker"] = asyncio.get_running_loop().create_task(_serve(_SHARED["queue"]))
    future = asyncio.get_running_loop().create_future()
    await _SHARED["queue"].put((future, x))
    return await asyncio.wait_for(future, 30)


@pytest.mark.parametrize("concurrency", [1, 4])
def test_a_task_one_trial_starts_and_later_trials_share_keeps_serving_them(concurrency):
    """A task a trial leaves running is not cancelled when it ends: a client's shared worker, started by the
    first trial that needs it, serves the trials after it (cancelling it timed out every other trial at
    concurrency 1, fewer at 4, and a replay of one alone completed)."""
    async def agent(task, env):
        total = 0
        for i in range(5):
            total += await _ask(i)
            await asyncio.sleep(0.5)
        return total

    _SHARED.clear()
    try:
        result = _campaign_that_ends(agent, trials=8, concurrency=concurrency, timeout_s=20,
                                     check=lambda world, output: output == 20)
    finally:
        worker = _SHARED.pop("worker", None)
        _SHARED.clear()
    assert [r.outcome for r in result.records] == ["completed"] * 8
    assert worker is not None


@pytest.mark.parametrize("concurrency", [1, 4])
def test_a_task_left_by_an_ended_trial_that_blocks_the_loop_takes_no_other_trial_down(concurrency):
    """The task swallows its cancellation and later blocks the loop, after its trial was judged: the trial held up
    beside it was timed out ('no result within the wall-clock limit'); now the loop is retired and the trials
    it held run again on a fresh one."""
    release: list[bool] = []

    async def later():
        while True:
            try:
                await asyncio.sleep(5)
                break
            except BaseException:  # its cancellation at its trial's end
                pass
        while not release:  # then blocks the loop every trial shares
            pass

    async def agent(task, env):
        if env.trial_id.endswith("-2"):
            asyncio.ensure_future(later())  # noqa: RUF006 (fired and forgotten: the attack)
        await asyncio.sleep(1)
        return "ok"

    try:
        result = _campaign_that_ends(agent, trials=8, concurrency=concurrency, timeout_s=1.0)
    finally:
        release.append(True)
    assert [r.outcome for r in result.records] == ["completed"] * 8


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_an_agent_keeping_its_trials_lock_hangs_neither_the_judging_nor_the_watchdog(kind):
    """``env._ctx._lock.acquire()`` and return: judging the trial (``ctx.end``) waited for the lock for good, and
    so did the watchdog timing it out: the campaign (and pytest, even its smoke trial) hung. Now the decision
    is taken without the lock after a while, and the trials are judged by what they returned."""
    def agent(task, env):
        env._ctx._lock.acquire()
        return "ok"

    async def async_agent(task, env):
        return agent(task, env)

    result = _campaign_that_ends(agent if kind == "sync" else async_agent, trials=1, timeout_s=2.0,
                                 check=lambda world, output: output == "ok")
    assert [r.outcome for r in result.records] == ["completed"]


@pytest.mark.parametrize("concurrency", [1, 8])
def test_an_async_agent_stopping_the_shared_loop_is_its_own_error(concurrency):
    """``loop.stop()`` from trial 2 stopped the loop every async trial shares: the trials beside it were timed
    out ('no result within the wall-clock limit'). The stop is refused in the agent that asked for it."""
    async def agent(task, env):
        if env.trial_id.endswith("-2"):
            asyncio.get_running_loop().stop()
        await asyncio.sleep(1)
        return "ok"

    result = _campaign_that_ends(agent, trials=12, concurrency=concurrency, timeout_s=2.0)
    record, others = _only(result, 2)
    assert record.outcome == "error" and record.reason.startswith(
        "RuntimeError: loop.stop() from a trial is refused: the event loop is shared with other trials")
    assert others == {"completed"}


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_process_wide_state_a_trial_changes_is_put_back_when_its_campaign_ends_and_named(kind, tmp_path):
    """The working directory, os.environ, the recursion limit, the root logger and sys.path an agent changed
    stayed changed for every later test of the session (a later test failed with RecursionError)."""
    import logging

    from pytest_agentops.errors import ProcessStateChanged

    def meddle():
        os.chdir(tmp_path)
        os.environ["AGENTOPS_TEST_LEFT_BEHIND"] = "1"
        sys.setrecursionlimit(5000)
        logging.getLogger().setLevel(logging.CRITICAL)
        sys.path.insert(0, str(tmp_path))
        os.umask(0o077)  # (files every later test writes would be its own only)
        return "changed"

    def sync_agent(task, env):
        return meddle() if env.trial_id.endswith("-1") else "ok"

    async def async_agent(task, env):
        return sync_agent(task, env)

    cwd, limit, level, path = os.getcwd(), sys.getrecursionlimit(), logging.getLogger().level, list(sys.path)
    mask = os.umask(0o022)
    os.umask(mask)
    with pytest.warns(ProcessStateChanged) as warned:
        _campaign(async_agent if kind == "async" else sync_agent, trials=3)
    after = os.umask(mask)
    assert os.getcwd() == cwd and "AGENTOPS_TEST_LEFT_BEHIND" not in os.environ
    assert sys.getrecursionlimit() == limit and logging.getLogger().level == level and sys.path == path
    from pytest_agentops.process.umask import shown_umask

    seen = shown_umask() is not None
    assert after == (mask if seen else 0o077)  # put back where the system shows it without setting it
    assert str(warned[0].message) == (
        "the campaign's trials changed process-wide state, put back at its end: the working directory, os.environ, "
        "sys.path, the recursion limit, the root logger's level" + (", the umask" if seen else "") + "; the trials "
        "after the change ran with it (isolation='process' keeps each trial's to itself)")
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error", ProcessStateChanged)  # a campaign that changes nothing says nothing
        _campaign(lambda task, env: "ok", trials=3)


@pytest.mark.parametrize("how", ["in place", "replaced"])
def test_sys_argv_and_the_standard_streams_an_agent_changes_are_put_back_and_named(how):
    """A review: an agent driving a command-line entry point set ``sys.argv``, and one capturing its prints
    replaced ``sys.stdout``: a later plain test of the session failed on ``sys.argv`` and its prints were lost,
    with no ``ProcessStateChanged``. Both are put back (the same objects) and named."""
    import io

    from pytest_agentops.errors import ProcessStateChanged

    def agent(task, env):
        if how == "in place":
            sys.argv[:] = ["my-agent-cli", "--fast"]
        else:
            sys.argv = ["my-agent-cli"]
        sys.stdout, sys.stderr = io.StringIO(), io.StringIO()
        return "ok"

    argv, argv_list, streams = sys.argv, list(sys.argv), (sys.stdin, sys.stdout, sys.stderr)
    with pytest.warns(ProcessStateChanged) as warned:
        _campaign(agent, trials=2)
    assert sys.argv is argv and sys.argv == argv_list and (sys.stdin, sys.stdout, sys.stderr) == streams
    assert "sys.argv, sys.stdin, sys.stdout or sys.stderr;" in str(warned[0].message)


def test_a_stream_the_campaign_wraps_to_redact_is_not_taken_for_a_change(monkeypatch):
    """A second review: a ``sys.stdout`` that takes no attributes is wrapped to redact while a campaign runs; the
    campaign's check of the streams saw its own wrapper as a change, put it back for good and blamed the agent."""
    import warnings

    class SlotStream:
        __slots__ = ("inner",)

        def __init__(self, inner):
            self.inner = inner

        def write(self, text):
            return self.inner.write(text)

        def flush(self):
            self.inner.flush()

    stream = SlotStream(sys.stdout)
    monkeypatch.setattr(sys, "stdout", stream)

    def agent(task, env):
        print("hello")
        return "ok"

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # (no ProcessStateChanged)
        _campaign(agent, trials=2)
    assert sys.stdout is stream


def test_an_agents_stream_cannot_pass_for_the_campaigns_own_wrapper():
    """A third review: the check of the streams took any stream whose class said ``redacting_wrapper = True`` for
    the campaign's own wrapper: an agent's ``sys.stdout`` so marked stayed for the session, unnamed. Only the
    wrapper objects the campaign put in place are read through."""
    import io

    from pytest_agentops.errors import ProcessStateChanged

    class Fake(io.StringIO):
        redacting_wrapper = True

    def agent(task, env):
        fake = Fake()
        fake.wrapped = sys.stdout  # (the stream it replaces: read through, it looked unchanged)
        sys.stdout = fake
        return "ok"

    before = sys.stdout
    with pytest.warns(ProcessStateChanged, match="sys.stdout"):
        _campaign(agent, trials=1)
    assert sys.stdout is before


def test_campaigns_running_at_once_put_the_state_back_once_the_last_ends():
    """One campaign ending while another runs must not undo what is in use by the other (it also named the
    other's changes as its own)."""
    import warnings

    from pytest_agentops.errors import ProcessStateChanged
    from pytest_agentops.process.kept_state import kept_process_state

    with warnings.catch_warnings(record=True) as warned:
        warnings.simplefilter("always")
        with kept_process_state():
            with kept_process_state():
                os.environ["AGENTOPS_TEST_SHARED"] = "in use"
            assert os.environ["AGENTOPS_TEST_SHARED"] == "in use"  # the first one still runs
        assert "AGENTOPS_TEST_SHARED" not in os.environ
    assert [str(w.message).split(": ")[1].split(";")[0] for w in warned
            if issubclass(w.category, ProcessStateChanged)] == ["os.environ"]


def test_a_recursion_limit_too_low_for_the_harness_is_refused_in_the_trial_that_sets_it():
    """``sys.setrecursionlimit(60)`` in an agent made the harness's own teardown fail with RecursionError, its
    process patches left installed for the rest of the session."""
    def agent(task, env):
        if env.trial_id.endswith("-1"):
            sys.setrecursionlimit(60)
        return "ok"

    limit = sys.getrecursionlimit()
    record, others = _only(_campaign(agent, trials=4), 1)
    assert record.outcome == "error" and record.reason.startswith(
        "RuntimeError: sys.setrecursionlimit() inside a trial is refused: below 1000")
    assert others == {"completed"} and sys.getrecursionlimit() == limit
    assert sys.setrecursionlimit.__module__ is None or sys.setrecursionlimit.__self__ is sys  # the real one again


def _on_a_thread(act):
    """Run ``act`` on a thread of the agent's own, and wait for it (the thread swallows what it raises: the refusal
    reaches the trial all the same)."""
    def swallowing():
        with contextlib.suppress(Exception):
            act()

    thread = threading.Thread(target=swallowing)
    thread.start()
    thread.join()


def _another_environ():
    """An ``os._Environ`` of its own over a copy of the environment (what a review put in place of ``os.environ``:
    its item assignments reached the C environment, which nothing put back)."""
    e = os.environ
    return type(e)(dict(e._data), e.encodekey, e.decodekey, e.encodevalue, e.decodevalue)


def _c_getenv(name):
    """``name`` in the C environment (what a child process inherits), not ``os.environ``: None when unset."""
    import ctypes

    getenv = ctypes.CDLL(None).getenv
    getenv.restype = ctypes.c_char_p
    return getenv(name.encode())


def _in_trial_1(act):
    def agent(task, env):
        if env.trial_id.endswith("-1"):
            act()
        return "ok"
    return agent


@pytest.mark.parametrize(("act", "reason"), [
    (lambda: sys.setswitchinterval(3600),
     "RuntimeError: sys.setswitchinterval() inside a trial is refused: above 0.1s a busy thread"),
    (lambda: sys.setrecursionlimit(np.int64(60)),  # (a numpy integer: the C function takes it as an int)
     "RuntimeError: sys.setrecursionlimit() inside a trial is refused: below 1000"),
    (lambda: sys.setswitchinterval(__import__("fractions").Fraction(3600)),  # (as the C function reads it)
     "RuntimeError: sys.setswitchinterval() inside a trial is refused: above 0.1s a busy thread"),
    (lambda: _on_a_thread(lambda: sys.setswitchinterval(3600.0)),  # (a thread the agent starts: refused too)
     "a thread the agent started"),
    (lambda: os.setgid(os.getgid()),  # (the same group: a regression changes nothing)
     "OSError: os.setgid() inside a trial is refused: it would change the test process's user or groups"),
    (lambda: faulthandler.dump_traceback_later(600, exit=True),
     "OSError: faulthandler.dump_traceback_later() inside a trial is refused: it would end or crash the test"),
    (lambda: faulthandler.disable(),
     "OSError: faulthandler.disable() inside a trial is refused: it would end or crash the test process"),
    (lambda: os.kill(os.getppid(), signal.SIGWINCH),  # (ignored by default: a regression harms nothing)
     "os.kill() with SIGWINCH inside a trial is refused: it signals the process that started the test process"),
    (lambda: threading.stack_size(32768),  # (worker threads started after it crashed the run at concurrency 8)
     "ValueError: threading.stack_size() inside a trial is refused: the threads started after it"),
    (lambda: faulthandler.register(signal.SIGWINCH, chain=True),  # (SIGTERM: the run no longer ended on it)
     "OSError: faulthandler.register() inside a trial is refused"),
    (lambda: faulthandler.enable(file=sys.__stderr__),  # (a file of the agent's: pytest's crash report lost)
     "OSError: faulthandler.enable() inside a trial is refused"),
    (lambda: faulthandler.dump_traceback_later(600, repeat=True),  # (tracebacks printed into every later test)
     "OSError: faulthandler.dump_traceback_later() inside a trial is refused"),
    (lambda: os.putenv("AGENTOPS_TEST_PUTENV", "1"),  # (TZ set so reached the later tests: not put back)
     "OSError: os.putenv() inside a trial is refused: it changes the environment behind os.environ"),
    (lambda: importlib.reload(random),  # (every later trial drew unseeded: no replay matched)
     "RuntimeError: importlib.reload() inside a trial is refused: it would replace the functions the harness"),
    (lambda: _another_environ().__setitem__("AGENTOPS_TEST_PUTENV", "1"),  # (an _Environ of the agent's own)
     "OSError: os.putenv() inside a trial is refused: it changes the environment behind os.environ"),
    (lambda: os.setpgid(0, 0),  # (pytest left its shell's process group: Ctrl-C and a CI's cancel missed it)
     "OSError: os.setpgid() inside a trial is refused: it would move the test process to another process group"),
    (lambda: os.setsid(), "OSError: os.setsid() inside a trial is refused: it would move the test process"),
    (lambda: os.chroot("/"),  # (as root, into an empty directory: pytest crashed at the end of the run)
     "OSError: os.chroot() inside a trial is refused: it would change the test process's root directory"),
], ids=["switch-interval", "recursion-limit-numpy", "switch-interval-fraction", "switch-interval-thread", "setgid",
        "faulthandler-exit", "faulthandler-disable", "kill-parent", "stack-size", "faulthandler-register",
        "faulthandler-enable", "faulthandler-repeat", "putenv", "reload-random", "putenv-another-environ", "setpgid",
        "setsid", "chroot"])
def test_process_calls_that_outlive_or_end_the_run_are_refused_in_the_trial_that_makes_them(act, reason):
    """A switch interval of an hour with a busy loop hung the run (the watchdog never got the GIL); setuid as root
    left pytest without its rights (it crashed in os.chdir); ``dump_traceback_later(exit=True)`` ended the run
    during a later test; ``faulthandler.disable`` switched off pytest's crash report for the rest of the run; a
    SIGSTOP to the parent stopped pytest-xdist's controller for good."""
    interval, enabled, stack = sys.getswitchinterval(), faulthandler.is_enabled(), threading.stack_size()
    try:
        record, others = _only(_campaign(_in_trial_1(act), trials=3, concurrency=2), 1)
    finally:
        faulthandler.cancel_dump_traceback_later()
        faulthandler.unregister(signal.SIGWINCH)
        if enabled and not faulthandler.is_enabled():
            faulthandler.enable(file=sys.__stderr__)
    assert record.outcome == "error" and record.reason.startswith(reason), record.reason
    assert others == {"completed"} and sys.getswitchinterval() == interval and faulthandler.is_enabled() == enabled
    assert threading.stack_size() == stack and _c_getenv("AGENTOPS_TEST_PUTENV") is None
    assert random.random is not random._inst.random  # (the stand-ins of the next campaign are the harness's still)
    faulthandler.dump_traceback_later(600)  # outside a trial (and without exit=True inside one), as it was
    faulthandler.cancel_dump_traceback_later()


def test_the_time_zone_stack_size_and_int_digits_a_trial_changes_are_put_back_and_named():
    """``TZ`` put back in os.environ left the zone ``time.tzset`` had read (a later test saw IST); a thread stack
    size of 32 KiB made a later test's thread overflow its stack (pytest died of SIGSEGV)."""
    from pytest_agentops.errors import ProcessStateChanged

    def meddle():
        os.environ["TZ"] = "Asia/Kolkata" if time.tzname[0] != "IST" else "UTC"
        time.tzset()
        threading.stack_size(1 << 24)  # (16 MiB: a smaller stack than 1 MiB is refused)
        sys.set_int_max_str_digits(640)

    zone, stack, digits = (time.timezone, time.tzname), threading.stack_size(), sys.get_int_max_str_digits()
    with pytest.warns(ProcessStateChanged) as warned:
        record, others = _only(_campaign(_in_trial_1(meddle), trials=3), 1)
    assert record.outcome == "completed" and others == {"completed"}
    assert (time.timezone, time.tzname) == zone and threading.stack_size() == stack
    assert sys.get_int_max_str_digits() == digits
    assert str(warned[0].message).startswith(
        "the campaign's trials changed process-wide state, put back at its end: os.environ, the time zone, the "
        "thread stack size, the longest int shown as text;")


def test_loggers_builtins_hooks_and_the_environ_object_a_trial_changes_are_put_back_and_named():
    """Found by an outside review: ``logging.config.dictConfig`` in a trial disabled the session's loggers (a later
    test's caplog saw nothing; a logger's own level is left: a library may set it up on first use in a trial);
    ``os.environ = dict(...)`` stayed a dict (``monkeypatch.setenv`` no longer reached subprocesses), though the
    warning said it was put back; ``builtins.input``, ``tempfile.tempdir``, ``ssl``'s default HTTPS context
    (unverified!), ``sys.displayhook``/``breakpointhook`` and the logger class stayed."""
    import builtins
    import logging.config
    import ssl
    import tempfile

    from pytest_agentops.errors import ProcessStateChanged

    lib = logging.getLogger("agentops.test.hostile.lib")
    lib.setLevel(logging.INFO)
    environ, tempdir, context = os.environ, tempfile.gettempdir(), ssl._create_default_https_context
    hooks, input_, logger_class = (sys.displayhook, sys.breakpointhook), builtins.input, logging.getLoggerClass()
    root, random_module = logging.root, sys.modules["random"]

    def meddle():
        os.environ = dict(os.environ, AGENTOPS_TEST_FLAG="1")  # noqa: B003  (what the review found)
        logging.config.dictConfig({"version": 1})  # (disables every logger it is not told of)
        lib.setLevel(logging.CRITICAL)
        builtins.input = lambda *args: "the agent's answer"
        tempfile.tempdir = os.path.join(tempdir, "the-agents")
        ssl._create_default_https_context = ssl._create_unverified_context
        sys.displayhook = sys.breakpointhook = lambda *args, **kwargs: None
        logging.setLoggerClass(type("AgentsLogger", (logging.Logger,), {}))
        # (a second review: the root logger and a named one replaced or removed, random imported afresh)
        logging.root = logging.Logger.root = logging.RootLogger(logging.WARNING)
        logging.Logger.manager.loggerDict.pop("agentops.test.hostile.lib")
        sys.modules.pop("random")
        importlib.import_module("random")

    with pytest.warns(ProcessStateChanged) as warned:
        record, others = _only(_campaign(_in_trial_1(meddle), trials=3), 1)
    assert record.outcome == "completed" and others == {"completed"}
    assert os.environ is environ and "AGENTOPS_TEST_FLAG" not in os.environ
    assert not lib.disabled and lib.level == logging.CRITICAL  # (a logger's own level: its library's to keep)
    assert builtins.input is input_ and tempfile.gettempdir() == tempdir
    assert ssl._create_default_https_context is context
    assert (sys.displayhook, sys.breakpointhook) == hooks and logging.getLoggerClass() is logger_class
    assert logging.root is logging.Logger.root is root and logging.getLogger("agentops.test.hostile.lib") is lib
    assert sys.modules["random"] is random_module
    assert warned[0].filename == __file__  # (shown at the line that ran the campaign, not in contextlib)
    message = str(warned[0].message)
    for name in ("os.environ", "sys.displayhook", "sys.breakpointhook", "the loggers switched off",
                 "the loggers replaced or removed", "the modules the harness stands in for",
                 "the logger class", "builtins", "tempfile.tempdir", "ssl's default HTTPS context"):
        assert name in message


def test_an_async_campaign_run_from_a_check_or_an_agent_is_not_refused_its_own_loop():
    """A review of a fix: the harness closing the loop of an async campaign started inside a check (or a sync agent)
    was refused as a trial's change of a shared loop; every outer trial was an error and the inner loop's thread
    never ended."""
    async def inner(task, env):
        await asyncio.sleep(1)
        return "ok"

    def nested(*_):
        return run_campaign(Scenario(name="inner", agent=inner, trials=2, seed=2, faults="none")).outcome_counts == {
            "completed": 2}

    result = _campaign(lambda task, env: nested(), trials=2, check=lambda world, output: output and nested())
    assert result.outcome_counts == {"completed": 2}, [r.reason for r in result.records]
    deadline = time.monotonic() + 5
    while any(t.name == "agentops-loop" for t in threading.enumerate()) and time.monotonic() < deadline:
        real_sleep(0.01)
    assert not any(t.name == "agentops-loop" for t in threading.enumerate())


def test_os_environb_writes_in_a_trial_go_through_and_are_put_back():
    """A review of a fix: ``os.environb`` (the bytes view of ``os.environ``'s data, put back with it) was refused as
    an ``_Environ`` of the agent's own."""
    def meddle():
        os.environb[b"AGENTOPS_TEST_ENVIRONB"] = b"1"

    with pytest.warns(Warning):
        record, others = _only(_campaign(_in_trial_1(meddle), trials=3), 1)
    assert record.outcome == "completed" and others == {"completed"}, record.reason
    assert "AGENTOPS_TEST_ENVIRONB" not in os.environ and _c_getenv("AGENTOPS_TEST_ENVIRONB") is None


def test_a_temp_directory_a_trial_sets_before_any_was_worked_out_is_named(monkeypatch):
    """A review of a fix: with ``tempfile.tempdir`` still None when the campaign began (as in a pytest run), a trial's
    ``tempfile.tempdir = "/var/tmp"`` was put back without a word; one that ``gettempdir`` works out is not named."""
    import tempfile

    from pytest_agentops.errors import ProcessStateChanged

    monkeypatch.setattr(tempfile, "tempdir", None)
    other = "/var/tmp" if os.path.realpath(tempfile._get_default_tempdir()) != "/var/tmp" else "/tmp"
    with pytest.warns(ProcessStateChanged, match="tempfile.tempdir"):
        _campaign(_in_trial_1(lambda: setattr(tempfile, "tempdir", other)), trials=3)
    assert tempfile.tempdir is None
    with warnings.catch_warnings():
        warnings.simplefilter("error", ProcessStateChanged)
        _campaign(_in_trial_1(tempfile.gettempdir), trials=3)  # (worked out: no warning)
    assert tempfile.tempdir is None


@pytest.mark.parametrize("action", ["ignore", "error"])
def test_a_trial_s_warnings_filter_neither_hides_nor_raises_the_warning_of_what_it_changed(action):
    """A trial's ``simplefilter("ignore")`` hid the warning naming what it changed; its "error" raised it in place of
    the campaign's result (the report listed the test as missing its campaign)."""
    from pytest_agentops.errors import ProcessStateChanged

    def meddle():
        os.environ["AGENTOPS_TEST_FLAG"] = "1"
        warnings.simplefilter(action)

    filters = list(warnings.filters)
    with pytest.warns(ProcessStateChanged, match="os.environ"):
        result = _campaign(_in_trial_1(meddle), trials=3)
    assert result.outcome_counts == {"completed": 3} and "AGENTOPS_TEST_FLAG" not in os.environ
    warnings.filters[:] = filters


def test_a_trial_cannot_replace_or_shut_down_the_default_executor_of_the_loop_the_trials_share():
    """A trial that set a shut-down executor as the shared loop's default failed every later trial's
    ``asyncio.to_thread`` (whose replay, alone, passed)."""
    import concurrent.futures

    async def agent(task, env):
        loop = asyncio.get_running_loop()
        if env.trial_id.endswith("-1"):
            pool = concurrent.futures.ThreadPoolExecutor(1)
            pool.shutdown()
            loop.set_default_executor(pool)
        if env.trial_id.endswith("-2"):
            await loop.shutdown_default_executor()
        return await asyncio.to_thread(lambda: "ok")

    result = _campaign(agent, trials=5, concurrency=2)
    assert [r.outcome for r in result.records] == ["completed", "error", "error", "completed", "completed"]
    assert result.records[1].reason.startswith("RuntimeError: loop.set_default_executor() from a trial is refused")
    assert result.records[2].reason.startswith(
        "RuntimeError: loop.shutdown_default_executor() from a trial is refused")


@pytest.mark.parametrize("via", ["task", "to_thread"])
@pytest.mark.parametrize("change", ["set_task_factory", "set_exception_handler", "set_debug", "stop"])
def test_a_trial_cannot_change_the_task_factory_exception_handler_or_debug_mode_of_the_shared_loop(change, via):
    """A pass-through task factory set by trial 3 made every later trial's tasks nobody's: ``asyncio.all_tasks()``
    counted 1 where the trials before (and the same trial's replay) counted 2. From a thread the trial hands the
    call to (``asyncio.to_thread``) it is refused too (a review of a first fix: ``loop.stop`` from there stopped
    the loop, and the trial beside it timed out)."""
    async def agent(task, env):
        loop = asyncio.get_running_loop()
        if env.trial_id.endswith("-1"):
            argument = {"set_task_factory": (lambda loop, coro, **kw: asyncio.Task(coro, loop=loop, **kw),),
                        "set_exception_handler": (lambda loop, context: None,), "set_debug": (True,),
                        "stop": ()}[change]
            if via == "task":
                getattr(loop, change)(*argument)
            else:
                await asyncio.to_thread(getattr(loop, change), *argument)
        helper = asyncio.ensure_future(asyncio.sleep(0))
        mine = len(asyncio.all_tasks())
        await helper
        return mine

    result = _campaign(agent, trials=5, concurrency=2, timeout_s=10)
    record, others = _only(result, 1)
    assert record.outcome == "error" and record.reason.startswith(
        f"RuntimeError: loop.{change}() from a trial is refused: the event loop is shared with other trials")
    assert others == {"completed"} and {r.output for r in result.records if r.index != 1} == {"2"}


# -- no campaign can hang -------------------------------------------------------------------------------
@pytest.mark.parametrize("concurrency", [1, 2])
def test_an_async_agent_that_swallows_its_cancellation_does_not_hang_the_campaign(concurrency):
    """Past its limit, the stubborn trial is timed out; its loop is retired after a short grace, and the trials
    queued behind it run normally on a fresh loop."""
    async def stubborn(task, env):
        if env.trial_id.endswith("-1"):
            while True:
                try:
                    await asyncio.sleep(1)
                except BaseException:
                    pass
        await asyncio.sleep(5)
        return "ok"

    result = _campaign(stubborn, trials=6, concurrency=concurrency, timeout_s=1.0)
    record, others = _only(result, 1)
    assert record.outcome == "timed_out" and "virtual time limit of 3600s" in record.reason
    assert others == {"completed"}
    # the retired loop is reported while it still runs; the interruptions raised into its thread may end it
    # first (one lands outside the agent's ``try``: seen once in a run on a loaded machine), and then it is not
    assert result.unstoppable <= 1


@pytest.mark.parametrize("concurrency", [1, 4])
def test_an_async_agent_output_whose_repr_raises_a_base_exception_does_not_hang_the_campaign(concurrency):
    """Judging the trial (its output's ``repr``) raises a ``BaseException`` that is not an ``Exception``, on the
    loop: the trial is an error, as for a sync agent, and the campaign goes on (the job's future used to be left
    pending and the loop ended: the campaign waited for ever)."""
    class Evil(BaseException):
        pass

    class Hostile:
        def __repr__(self):
            raise Evil("no repr for you")

    async def agent(task, env):
        await asyncio.sleep(1)
        return Hostile() if env.trial_id.endswith("-3") else "ok"

    result = _campaign_that_ends(agent, trials=12, concurrency=concurrency, timeout_s=2.0)
    record, others = _only(result, 3)
    assert record.outcome == "error" and record.reason.startswith("Evil: no repr for you")
    assert others == {"completed"} and result.n == 12


def test_an_async_agent_blocking_the_loop_for_good_does_not_hang_the_trials_started_beside_it():
    """Trial 0 blocks the shared loop in a C call that never returns (a sync HTTP call without a timeout, in an
    async agent), in the very turn trial 1's task was started: trial 1 never ran a step. Trial 0 is timed out and
    its loop retired; trial 1, which never ran, is run again on a fresh loop like the queued trials (it used to
    stay "running" on the blocked loop, never counted against the wall clock: the campaign waited for ever)."""
    release = threading.Event()

    async def agent(task, env):
        if env.trial_id.endswith("-0"):
            release.wait()  # blocks the loop thread, out of reach of any interruption until released
        await asyncio.sleep(1)
        return "ok"

    result = _campaign_that_ends(agent, release, trials=6, concurrency=2, timeout_s=0.5)
    record, others = _only(result, 0)
    assert record.outcome == "timed_out" and "wall-clock limit" in record.reason
    assert others == {"completed"} and result.n == 6


def test_trials_held_up_by_an_agent_blocking_the_loop_run_again_and_the_records_do_not_depend_on_concurrency():
    """Trial 5 busy-loops without awaiting, blocking the loop the async trials share. The trials in flight beside
    it (some waiting on a real thread, so they started before it) did not run out of time: they were kept from
    running. They used to be timed out with it, which ones depending on the concurrency (1 at 2, 3 at 4, 7 at
    8). Now trial 5 alone is timed out, for blocking the loop, and the others run again on a fresh loop: every
    record is the same at concurrency 1, 3 and 8."""
    async def agent(task, env):
        n = int(env.trial_id.rpartition("-")[2])
        if n == 5:
            await asyncio.sleep(1)
            while True:  # (interruptible: the loop is retired, and its thread ends)
                pass
        if n % 3 == 0:
            await asyncio.to_thread(time.sleep, 0.05)  # real time: in flight when trial 5 starts
        await asyncio.sleep(2)
        return f"ok {n}"

    runs = {c: _campaign_that_ends(agent, trials=10, concurrency=c, timeout_s=0.6) for c in (1, 3, 8)}
    for result in runs.values():
        record, others = _only(result, 5)
        assert record.outcome == "timed_out", record
        assert record.reason == "blocked the event loop it shares with other trials past a wall-clock limit of 0.6s"
        assert others == {"completed"} and result.n == 10
    dicts = {c: [r.to_dict(with_trace=True) for r in result.records] for c, result in runs.items()}
    assert dicts[3] == dicts[1] and dicts[8] == dicts[1]


@pytest.mark.parametrize("trials", [1, 4])
def test_an_async_campaign_whose_check_never_returns_does_not_hang(trials):
    """The scenario's check never returns for one trial of an async campaign (the check runs on the loop the
    trials share, once the trial's run is over): its judging counts against the wall-clock limit, so the trial
    is timed out and the loop retired, alone or beside others, which complete (the campaign used to wait for
    ever: a trial's wall clock stopped at the end of its run)."""
    async def agent(task, env):
        await asyncio.sleep(1)
        return env.trial_id

    def check(world, output):
        while output == "trial-0":
            real_sleep(0.01)  # never returns (interruptible)
        return True

    result = _campaign_that_ends(agent, trials=trials, concurrency=2, timeout_s=0.5, check=check)
    record, others = _only(result, 0)
    assert record.outcome == "timed_out" and result.n == trials
    assert others <= {"completed"}


@pytest.mark.parametrize("what", ["exception", "output"])
def test_a_judging_that_does_not_return_names_what_of_the_agents_it_was_running(what):
    """A review: an agent's exception whose ``__str__`` (or output whose ``__repr__``) never returned was recorded
    as "the scenario's check did not return", blaming a check that never ran."""
    release = threading.Event()

    class Stuck(Exception):
        def __str__(self):
            while not release.is_set():
                try:
                    real_sleep(0.01)
                except BaseException:
                    pass
            return "stuck"

        __repr__ = __str__

    def agent(task, env):
        if env.trial_id == "trial-1":
            if what == "exception":
                raise Stuck()
            return Stuck()
        return "ok"

    result = _campaign_that_ends(agent, release, trials=3, timeout_s=0.5)
    record, others = _only(result, 1)
    assert record.outcome == "timed_out" and others == {"completed"}
    assert record.reason == {"exception": "the text of the agent's exception",
                             "output": "the text (repr) of the agent's output"}[what] + \
        " did not return within the wall-clock limit"


def test_a_check_that_swallows_its_interruption_is_recorded_without_waiting_for_it():
    """A check that never returns and catches the interruption raised into its thread: the trial is recorded
    as timed out by the check after a short wait, and the campaign ends (its loop is reported unstoppable)."""
    async def agent(task, env):
        await asyncio.sleep(1)
        return env.trial_id

    release = threading.Event()  # (set once the campaign has ended: the check then returns, and its thread ends)

    def check(world, output):
        while output == "trial-1" and not release.is_set():
            try:
                real_sleep(0.01)
            except BaseException:
                pass
        return True

    result = _campaign_that_ends(agent, release, trials=4, concurrency=2, timeout_s=0.5, check=check)
    deadline = time.monotonic() + 10
    while any(t.name.startswith("agentops-") for t in threading.enumerate()) and time.monotonic() < deadline:
        real_sleep(0.05)
    record, others = _only(result, 1)
    assert record.outcome == "timed_out"
    assert record.reason == "the scenario's check did not return within the wall-clock limit"
    assert others == {"completed"} and result.unstoppable >= 1


def test_a_trial_whose_end_was_never_reported_on_a_retired_loop_runs_again(monkeypatch):
    """Trial 1 runs to its end, but its end is never reported (as when the exception that interrupts a blocked
    loop lands in its thread just as the loop reports a job: the job is off the loop's books, its future still
    running); then trial 0 blocks the loop for good and the loop is retired. Trial 1 has run, so its wall-clock
    limit no longer counts: it is run again on a fresh loop (the same seed, the same record), not waited for."""
    from pytest_agentops.engine.workers import LoopWorker

    reported = LoopWorker._ended
    lost: list[int] = []

    def loses_trial_1(self, job, result, exc):
        trial = getattr(job.start, "__self__", None)
        if getattr(trial, "index", None) == 1 and not lost:  # (once: run again, it is reported)
            lost.append(1)
            self._tasks.pop(job.future, None)  # off the books, never reported
            job.held = False
            self.running -= 1
            return
        reported(self, job, result, exc)

    monkeypatch.setattr(LoopWorker, "_ended", loses_trial_1)
    release = threading.Event()

    async def agent(task, env):
        if env.trial_id.endswith("-0"):
            await asyncio.sleep(1)  # (virtual) trial 1 has ended by now
            release.wait()  # blocks the loop thread, out of reach of any interruption until released
        return "ok"

    result = _campaign_that_ends(agent, release, trials=4, concurrency=2, timeout_s=0.5)
    record, others = _only(result, 0)
    assert lost and record.outcome == "timed_out"
    assert others == {"completed"} and result.n == 4


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_a_trial_whose_end_never_reached_the_main_thread_is_settled_not_waited_for(monkeypatch, kind):
    """Trial 1's future is done, but the call that tells the main thread is lost (as when an exception raised
    into the worker's thread lands in that call): the trial has run, so no wall-clock limit wakes the main
    thread for it. The main thread looks for such futures whenever it wakes with nothing reported, so the
    campaign ends with trial 1's own record instead of waiting for ever."""
    from pytest_agentops.engine.scheduler import Runner

    lost: list[int] = []
    name = "_async_done" if kind == "async" else "_sync_done"
    told = getattr(Runner, name)

    def loses_trial_1(self, worker, future):
        trial = next((t for t in self._flying.values() if t.future is future), None)
        if trial is not None and trial.index == 1 and not lost:
            lost.append(1)
            return
        told(self, worker, future)

    monkeypatch.setattr(Runner, name, loses_trial_1)

    def sync_agent(task, env):
        return "ok"

    async def async_agent(task, env):
        return "ok"

    result = _campaign_that_ends(async_agent if kind == "async" else sync_agent, trials=4, concurrency=2,
                                 timeout_s=60)
    assert lost and [r.outcome for r in result.records] == ["completed"] * 4


def test_a_sync_agent_that_catches_its_abandonment_is_stopped():
    """A busy loop that swallows every exception, past the wall-clock limit: the trial is timed out, the
    others complete, and the thread is interrupted again and again until it ends."""
    stuck: list[threading.Thread] = []

    def agent(task, env):
        if env.trial_id.endswith("-1"):
            stuck.append(threading.current_thread())
            n = 0
            while True:
                try:
                    n += sum(range(100))
                except BaseException:
                    pass
        return "ok"

    result = _campaign(agent, trials=4, timeout_s=0.5)
    record, others = _only(result, 1)
    assert record.outcome == "timed_out" and "wall-clock limit" in record.reason
    assert others == {"completed"}
    stuck[0].join(30)
    assert not stuck[0].is_alive()


def test_a_sync_agent_nesting_loops_that_swallow_everything_is_reported_unstoppable_and_the_campaign_ends():
    """A loop in a ``try`` in a loop, each swallowing every exception: on Python 3.11 and 3.12 an interruption
    landing at the inner jump back is caught by the outer ``try`` and none lands at the outer one, so the thread
    cannot be stopped in-process (3.13 stops it). The trial is timed out all the same, the others complete, the
    campaign ends, and a thread still running then is reported as unstoppable (``isolation="process"`` contains
    such an agent: ``tests/test_isolation.py``)."""
    stuck: list[threading.Thread] = []
    release: list[bool] = []  # (a plain flag: a call in the loop's test would be a point the interruption lands)

    def agent(task, env):
        if env.trial_id.endswith("-1"):
            stuck.append(threading.current_thread())
            n = 0
            while not release:
                try:
                    while not release:
                        try:
                            n += sum(range(100))
                        except BaseException:
                            pass
                except BaseException:
                    pass
        return "ok"

    try:
        result = _campaign_that_ends(agent, trials=4, timeout_s=0.5)
        still_running = stuck[0].is_alive()
        record, others = _only(result, 1)
        assert record.outcome == "timed_out" and "wall-clock limit" in record.reason
        assert others == {"completed"} and result.unstoppable == int(still_running)
        if sys.version_info < (3, 13):  # (the limit this test states, where it holds; 3.13 stops it, in time or not)
            assert still_running
    finally:
        release.append(True)
        stuck[0].join(10)
    assert not stuck[0].is_alive()


COROUTINE_LEFT_BEHIND = """
import gc, sys
from pytest_agentops import Scenario, run_campaign

async def never_ends():
    while True:
        try:
            import asyncio
            await asyncio.sleep(10**6)
        except BaseException:  # its cancellation, and later (with no loop under it) its finalization too
            pass

def agent(task, env):
    return never_ends() if env.trial_id.endswith("-1") else "ok"  # a sync callable returning a coroutine

result = run_campaign(Scenario(name="left", agent=agent, trials=3, seed=1, faults="none", early_stop=False,
                               timeout_s=0.5))
print(sorted(r.outcome for r in result.records), flush=True)
gc.collect()  # finalizing the abandoned coroutine ran it again, for ever: the process never ended
print("collected", flush=True)
"""


def test_a_coroutine_a_sync_agent_returned_and_left_behind_is_never_finalized():
    """The run of a coroutine a sync agent returns is abandoned at the wall-clock limit with its task still
    pending (it swallows its cancellation); once collected, its finalization ran its loop again with no event
    loop under it, for ever: in a later test's garbage collection, or at exit (the pytest session hung)."""
    import subprocess

    done = subprocess.run([sys.executable, "-c", COROUTINE_LEFT_BEHIND], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.splitlines() == ["['completed', 'completed', 'timed_out']", "collected"]


def test_an_abandoned_thread_in_virtual_sleep_is_slowed_to_a_few_calls_a_second():
    """The same agent sleeping (virtual time) in its loop: each of its sleeps after its trial ended is a late
    call, refused after a pause, so the thread no longer spins. It ends when the test lets it go."""
    stop, calls = threading.Event(), []

    def agent(task, env):
        if env.trial_id.endswith("-1"):
            while not stop.is_set():
                try:
                    time.sleep(0.01)
                except BaseException:
                    calls.append(1)
            return "stopped"
        return "ok"

    from pytest_agentops.engine import assemble

    threads_before = set(threading.enumerate())
    result = _campaign(agent, trials=3, timeout_s=0.3, virtual_timeout_s=None)
    record, others = _only(result, 1)
    assert record.outcome == "timed_out" and others == {"completed"}
    stop.set()
    for t in set(threading.enumerate()) - threads_before:
        if t.name != "agentops-hound":
            t.join(30)
    assert assemble.LATE_CALL_PAUSE_S >= 0.1


def test_a_trial_cancelling_every_task_reaches_only_its_own():
    """``asyncio.all_tasks()`` inside a trial lists that trial's tasks: one trial cancelling them all leaves the
    trials running beside it alone, so outcomes are the same at concurrency 1 and 8."""
    async def rude(task, env):
        await asyncio.sleep(1)
        if env.trial_id.endswith("-3"):
            for t in asyncio.all_tasks():
                if t is not asyncio.current_task():
                    t.cancel()
            return "rude"

        async def helper():
            await asyncio.sleep(2)
            return 1

        await asyncio.gather(helper(), helper())
        await asyncio.sleep(5)
        return "ok"

    outcomes = [dict(_campaign(rude, trials=8, concurrency=c).outcome_counts) for c in (1, 8)]
    assert outcomes == [{"completed": 8}, {"completed": 8}]


# -- the process survives -----------------------------------------------------------------------------
def _exits(task, env):
    if env.trial_id.endswith("-2"):
        os._exit(3)
    return "ok"


def test_os_exit_in_an_agent_is_an_error_and_the_run_goes_on():
    result = _campaign(_exits)
    record, others = _only(result, 2)
    assert record.outcome == "error" and "os._exit(3)" in record.reason and "test_hostile.py" in record.reason
    assert others == {"completed"}
    assert os._exit.__module__ == "posix"  # the real one again between campaigns


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_os_exit_an_agent_catches_still_makes_its_trial_an_error(mode):
    """``AgentExited`` is a ``BaseException`` an agent can catch: the trial was recorded as completed. The call is
    the trial's decision, as a limit's is: it stays an error, and the agent's next tool call raises again."""
    seen = []

    def after_the_exit(task, env):
        try:
            os._exit(3)
        except BaseException as exc:
            seen.append(type(exc).__name__)
        try:
            env.tools["lookup_order"](1)
        except BaseException as exc:
            seen.append(type(exc).__name__)
        return "ok"

    if mode == "sync":
        agent = after_the_exit
    else:
        async def agent(task, env):
            return after_the_exit(task, env)

    result = _campaign(agent, trials=2, tools=ORDER_TOOLS, world=Orders)
    assert [r.outcome for r in result.records] == ["error", "error"]
    assert all(r.reason.startswith("AgentExited: the agent called os._exit(3)") and "test_hostile.py:" in r.reason
               for r in result.records)
    assert seen == ["AgentExited", "TrialAborted"] * 2


_TRUE = ("/bin/true", ["true"])


@pytest.mark.skipif(not hasattr(os, "forkpty"), reason="no os.fork on this platform")
@pytest.mark.parametrize(("call", "refused"), [
    (lambda: os.fork(), "os.fork()"),
    (lambda: os.forkpty(), "os.forkpty()"),  # (forks too: it left a copy of the test process past the campaign)
    # an exec replaced pytest with the program: ``/bin/true`` ended the run with exit status 0 (a green CI)
    (lambda: os.execv(*_TRUE), "os.execv()"),
    (lambda: os.execl(_TRUE[0], *_TRUE[1]), "os.execv()"),
    (lambda: os.execvp("true", _TRUE[1]), "os.execv()"),
    (lambda: os.execve(*_TRUE, {}), "os.execve()"),
    (lambda: os.execlpe("true", "true", {}), "os.execve()"),
], ids=["fork", "forkpty", "execv", "execl", "execvp", "execve", "execlpe"])
def test_fork_and_exec_in_an_agent_are_refused(call, refused):
    def agent(task, env):
        if env.trial_id.endswith("-2"):
            call()
        return "ok"

    record, others = _only(_campaign(agent), 2)
    assert record.outcome == "error" and f"{refused} inside a trial is refused" in record.reason
    assert others == {"completed"}


def test_a_thread_an_agent_leaves_running_does_not_keep_pytest_from_exiting(pytester, quiet_children):
    """A non-daemon thread the agent started and never ended kept the test process alive after "1 passed": the
    run never ended (CI's own timeout). A thread started inside a trial is a daemon thread."""
    pytester.makepyfile(test_forever="""
        import threading, time
        from pytest_agentops import Scenario

        def agent(task, env):
            def forever():
                while True:
                    time.sleep(0.05)
            thread = threading.Thread(target=forever, daemon=False)  # (said outright: else it takes its maker's)
            thread.start()
            return str(thread.daemon)

        def test_campaign(agent_chaos):
            result = agent_chaos.run(Scenario(name="forever", agent=agent, trials=2, seed=1, faults="none"))
            assert [r.output for r in result.records] == ["True", "True"]
            assert threading.Thread(target=lambda: None, daemon=False).daemon is False  # (outside trials: as asked)
    """)
    result = pytester.runpytest_subprocess("--agent-chaos", "-p", "no:cacheprovider", timeout=60)
    result.assert_outcomes(passed=1)


@pytest.mark.parametrize(("agent", "task"), [("os._exit(0)", '"t"'), ('"ok"', "gen")],
                         ids=["agent", "task-generator"])
def test_os_exit_in_a_campaign_fails_the_test_run(pytester, agent, task, quiet_children):
    """What CI sees: a test whose agent calls ``os._exit(0)`` fails, the next test still runs, exit code 1. A task
    generator's too: it ran again in the test's own thread after the campaign (for the breakdown by task), where
    ``os._exit(0)`` ended pytest with status 0 and no summary, a failed test before it notwithstanding."""
    pytester.makepyfile(test_exiting=f"""
        import os
        from pytest_agentops import Scenario, run_campaign

        def agent(task, env):
            return {agent}

        def gen(rng):
            os._exit(0)

        def test_failing_before():
            assert False

        def test_campaign():
            run_campaign(Scenario(name="exits", agent=agent, task={task}, trials=3, seed=1,
                                  expect={{"completion_rate": ">= 0.9"}})).check()

        def test_after():
            assert True
    """)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, failed=2)
    assert result.ret == 1
    result.stdout.fnmatch_lines(["*completion_rate >= 0.9: fail*"])


_SIGNALS_TO_SELF = {  # (each looked up as called: the stand-in)
    "kill": lambda: os.kill(os.getpid(), signal.SIGSTOP),
    "kill-group": lambda: os.kill(0, signal.SIGTERM),
    "killpg": lambda: os.killpg(os.getpgid(0), signal.SIGKILL),
    "raise_signal": lambda: signal.raise_signal(signal.SIGINT),
    "pthread_kill": lambda: signal.pthread_kill(threading.main_thread().ident, signal.SIGTERM),
    "interrupt_main": lambda: _thread.interrupt_main(),
    # (a thread's id names its whole process to ``kill``: a review ended pytest with each, SIGSTOP hung it)
    "kill-own-thread": lambda: os.kill(threading.get_native_id(), signal.SIGTERM),
    "kill-main-thread": lambda: os.kill(threading.main_thread().native_id, signal.SIGKILL),
    "pidfd": lambda: _pidfd_signal(os.getpid(), signal.SIGTERM),
}


def _pidfd_signal(pid: int, sig: int) -> None:
    fd = os.pidfd_open(pid)
    try:
        signal.pidfd_send_signal(fd, sig)
    finally:
        os.close(fd)


@pytest.mark.parametrize("mode", ["sync", "async"])
@pytest.mark.parametrize("name", list(_SIGNALS_TO_SELF))
def test_a_signal_an_agent_sends_its_own_process_is_refused_and_its_trial_an_error(name, mode):
    """``os.kill(os.getpid(), SIGSTOP)`` stopped pytest for good (CI's own timeout); SIGTERM, SIGINT or SIGKILL
    ended the run, the later tests not run. Refused (``PermissionError``), and the trial an error even when the
    agent catches it; a signal 0 (is it alive?) and a signal to another process go through."""
    raised = []

    def sync_agent(task, env):
        os.kill(os.getpid(), 0)
        try:
            _SIGNALS_TO_SELF[name]()
        except PermissionError as exc:
            raised.append(exc.errno)
        return "ok"

    async def async_agent(task, env):
        return sync_agent(task, env)

    result = _campaign(sync_agent if mode == "sync" else async_agent, trials=2)
    assert [r.outcome for r in result.records] == ["error", "error"]
    assert all("inside a trial is refused: it signals the test process itself at test_hostile.py:" in r.reason
               for r in result.records)
    assert raised == [errno.EPERM] * 2


def test_a_signal_to_another_process_goes_through_and_a_thread_of_the_agent_is_refused_too():
    import subprocess

    def stop():
        with contextlib.suppress(PermissionError):  # (caught: its trial is an error all the same)
            os.kill(os.getpid(), signal.SIGSTOP)

    def agent(task, env):
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
        os.kill(child.pid, signal.SIGTERM)
        status = child.wait(timeout=30)
        if env.trial_id.endswith("-1"):
            thread = threading.Thread(target=stop, name="stopper")
            thread.start()
            thread.join()
        return status

    result = _campaign(agent, trials=2)
    assert [(r.outcome, r.output) for r in result.records] == [("completed", "-15"), ("error", "-15")]
    assert result.records[1].reason == ("a thread the agent started (stopper) called os.kill() with SIGSTOP inside a "
                                        "trial is refused: it signals the test process itself")
    assert os.kill.__module__ == "posix" and signal.raise_signal.__module__ != __name__  # the real ones again


def test_sigstop_an_agent_sends_its_own_process_does_not_hang_the_run(pytester, quiet_children):
    """What CI sees: the run ends (it was stopped until CI's own timeout), the campaign's test fails, the next
    test runs, exit code 1."""
    pytester.makepyfile(test_stopping="""
        import os, signal
        from pytest_agentops import Scenario, run_campaign

        def agent(task, env):
            os.kill(os.getpid(), signal.SIGSTOP)

        def test_campaign():
            run_campaign(Scenario(name="stops", agent=agent, trials=3, seed=1,
                                  expect={"completion_rate": ">= 0.9"})).check()

        def test_after():
            assert True
    """)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", timeout=60)
    result.assert_outcomes(passed=1, failed=1)
    assert result.ret == 1


@pytest.mark.parametrize("mode", ["sync", "async"])
@pytest.mark.parametrize(("call", "refused", "raised"), [
    (lambda: os._exit(0), "called os._exit(0)", "AgentExited"),  # (looked up as called: the stand-in)
    (lambda: os.execv(*_TRUE), "called os.execv() inside a trial is refused", "OSError"),
], ids=["exit", "exec"])
def test_exit_and_exec_on_a_thread_the_agent_started_are_refused_and_its_trial_an_error(mode, call, refused, raised):
    """A thread starts with an empty context, outside its trial's clock: its ``os._exit(0)`` ended pytest with
    exit status 0 in the middle of the campaign (a green CI), its ``os.execv`` replaced pytest. Refused, and the
    trial that started it is an error."""
    def run_thread():
        thread = threading.Thread(target=call, name="caller")
        thread.start()
        thread.join(10)

    if mode == "sync":
        def agent(task, env):
            if env.trial_id.endswith("-2"):
                run_thread()
            return "ok"
    else:
        async def agent(task, env):
            if env.trial_id.endswith("-2"):
                run_thread()
            return "ok"

    caught = []
    with _threading_excepthook(caught.append):
        record, others = _only(_campaign(agent), 2)
    assert record.outcome == "error"
    assert f"a thread the agent started (caller) {refused}" in record.reason
    assert others == {"completed"}
    assert [type(args.exc_value).__name__ for args in caught] == [raised]
    assert os._exit.__module__ == "posix" and os.execv.__module__ == "posix"  # the thread ended: the real ones


def test_os_exit_on_a_thread_started_with_the_thread_module_itself_is_refused_too():
    import _thread

    reported, ended = [], threading.Event()

    def unraisable(args):  # (how the thread module reports what ended a thread it started)
        reported.append(args.exc_value)
        ended.set()

    def agent(task, env):
        if env.trial_id.endswith("-2"):
            _thread.start_new_thread(os._exit, (0,))
            ended.wait(10)
        return "ok"

    saved, sys.unraisablehook = sys.unraisablehook, unraisable
    try:
        record, others = _only(_campaign(agent), 2)
    finally:
        sys.unraisablehook = saved
    assert record.outcome == "error" and "called os._exit(0)" in record.reason
    assert others == {"completed"}
    assert [type(e).__name__ for e in reported] == ["AgentExited"]


class _ExitsWhenShown:
    def __repr__(self):
        os._exit(0)

    __str__ = __repr__


class _ExitsWhenShownError(Exception):
    def __str__(self):
        os._exit(0)


def _swallowing(compare):
    try:
        return compare()
    except BaseException:  # (the AgentExited too: the check passes, as far as it knows)
        return True


class _ExitsWhenCompared:
    def __eq__(self, other):
        os._exit(0)

    __hash__ = object.__hash__


@pytest.mark.parametrize(("agent", "check"), [
    (lambda task, env: _ExitsWhenShown(), None),
    (lambda task, env: (_ for _ in ()).throw(_ExitsWhenShownError()), None),
    (lambda task, env: _ExitsWhenCompared(), lambda world, output: output == "ok"),
    (lambda task, env: _ExitsWhenCompared(), lambda world, output: _swallowing(lambda: output == "ok")),
], ids=["output-repr", "exception-str", "output-eq-in-check", "check-catches-it"])
def test_os_exit_from_what_the_agent_left_to_be_judged_is_refused_and_the_trial_an_error(agent, check):
    """The harness shows the agent's output and exception, and runs the check on them, after the agent returned:
    outside the trial's clock, where ``os._exit`` was the real one (exit status 0, mid-campaign)."""
    result = _campaign(agent, trials=2, check=check)
    for record in result.records:
        assert record.outcome == "error"
        assert "the trial's output or exception (judged after the agent returned) called os._exit(0)" in record.reason


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_os_exit_in_a_context_of_its_own_is_refused(mode):
    """``contextvars.Context().run(os._exit, 0)`` runs outside the trial's context (no clock to find the trial by)."""
    if mode == "sync":
        def agent(task, env):
            contextvars.Context().run(os._exit, 0)
    else:
        async def agent(task, env):
            contextvars.Context().run(os._exit, 0)

    result = _campaign(agent, trials=2)
    assert {r.outcome for r in result.records} == {"error"}
    assert all("called os._exit(0)" in r.reason for r in result.records)


def test_os_exit_in_a_loop_callback_of_no_context_is_refused_and_the_campaign_goes_on():
    async def agent(task, env):
        asyncio.get_running_loop().call_soon(os._exit, 0, context=contextvars.Context())
        await asyncio.sleep(0)
        return "ok"

    result = _campaign(agent, trials=3)
    assert [r.outcome for r in result.records] == ["completed"] * 3  # (no trial to pin it on: the loop logs it)


def test_os_exit_on_a_thread_started_by_an_agents_thread_is_refused_too():
    done = threading.Event()

    def agent(task, env):
        if env.trial_id.endswith("-1"):
            def outer():
                inner = threading.Thread(target=os._exit, args=(0,), name="inner")
                inner.start()
                inner.join(10)
                done.set()
            threading.Thread(target=outer, name="outer").start()
            done.wait(10)
        return "ok"

    with _threading_excepthook(lambda args: None):
        record, others = _only(_campaign(agent), 1)
    assert record.outcome == "error" and "a thread the agent started (inner) called os._exit(0)" in record.reason
    assert others == {"completed"}


def test_os_exit_stays_refused_on_an_agents_thread_after_its_campaign_until_the_thread_ends():
    go, done = threading.Event(), []

    def agent(task, env):
        def later():
            go.wait(30)
            for call in (lambda: os.execv(*_TRUE), lambda: os._exit(0)):
                try:
                    call()
                except BaseException as exc:  # (what the thread got is the subject here)
                    done.append(exc)
        threading.Thread(target=later, name="later").start()
        return "ok"

    result = _campaign(agent, trials=1)
    assert [r.outcome for r in result.records] == ["completed"]
    assert os._exit.__name__ == "_exit" and os._exit.__module__ == "pytest_agentops.process.exit_guard"
    assert os._exit is not exit_guard._real_exit and os.execv.__module__ == "pytest_agentops.process.exit_guard"
    go.set()
    for _ in range(300):
        if os._exit is exit_guard._real_exit:
            break
        time.sleep(0.01)
    assert [type(e).__name__ for e in done] == ["OSError", "AgentExited"]
    assert "os.execv() inside a trial is refused" in str(done[0])
    assert "a thread the agent started (later) called os._exit(0)" in str(done[1])
    assert os._exit is exit_guard._real_exit  # the last such thread ended: nothing stays patched
    assert os.execv.__module__ == "posix" and os.fork.__module__ == "posix"


@pytest.mark.parametrize(("late_call", "shown"), [
    # its os._exit(0) came during a later test and ended the run with status 0, before that test's failure showed
    ("os._exit(0)", ["*AgentExited: a thread the agent started * called os._exit(0)*"]),
    # the atexit stand-in went with the campaign: the handler replaced exit status 1 with 0 at the exit
    ("atexit.register(os._exit, 0)", []),
], ids=["os-exit", "atexit"])
def test_an_agents_thread_cannot_end_the_run_after_its_campaign(pytester, late_call, shown, quiet_children):
    pytester.makepyfile(test_late=f"""
        import atexit, os, threading
        from pytest_agentops import Scenario, run_campaign

        go, called = threading.Event(), threading.Event()

        def agent(task, env):
            def later():
                go.wait(30)
                try:
                    {late_call}
                finally:
                    called.set()
            threading.Thread(target=later).start()
            return "ok"

        def test_campaign():
            run_campaign(Scenario(name="late", agent=agent, trials=1, seed=1, faults="none"))

        def test_after():
            go.set()
            assert called.wait(30)
            import time; time.sleep(0.3)
            assert False, "this failure is reported, and the exit status stays 1"
    """)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", timeout=60)
    result.assert_outcomes(passed=1, failed=1, warnings=len(shown))
    assert result.ret == 1
    result.stdout.fnmatch_lines(shown)
    if late_call.startswith("atexit"):
        assert "an atexit handler registered inside a trial called os._exit(0)" in result.stderr.str()


def test_an_atexit_handler_an_agent_registers_that_never_returns_does_not_hang_the_run(pytester, quiet_children):
    """It ran at the interpreter's exit, after pytest's report, and the process never exited."""
    pytester.makepyfile(test_hangs_at_exit="""
        import atexit, threading
        from pytest_agentops import Scenario, run_campaign
        from pytest_agentops.process import exit_guard

        exit_guard.ATEXIT_LIMIT_S = 1.0  # (10 s by default)

        def agent(task, env):
            atexit.register(threading.Event().wait)
            return "ok"

        def test_campaign():
            run_campaign(Scenario(name="hangs", agent=agent, trials=1, seed=1, faults="none"))
    """)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", timeout=60)
    result.stdout.fnmatch_lines(["*1 passed*"])  # the report came out whole
    assert result.ret == 1  # the handler was cut off: not the run's status 0
    stderr = result.stderr.str()
    assert "an atexit handler registered inside a trial did not return within 1 s" in stderr
    assert "threading.py" in stderr  # (the threads' stacks: where it waits)


@pytest.mark.parametrize(("users_handler", "status", "said"), [
    # a watchdog thread's os._exit(3) while the guarded handler ran was refused (os._exit swapped process-wide);
    # (started now, woken at the exit: no thread can start then)
    ("WATCHDOG.set()", 3, ""),
    # faulthandler's one timer, the user's, was re-armed for 10 s and then cancelled by the guard
    ("faulthandler.dump_traceback_later(0.3, exit=True)", 1, "Timeout (0:00:00.300000)!"),
], ids=["watchdog-thread", "faulthandler-timer"])
def test_a_guarded_atexit_handler_leaves_the_users_own_exit_watchdogs_alone(pytester, users_handler, status, said,
                                                                            quiet_children):
    pytester.makepyfile(test_watchdogs=f"""
        import atexit, faulthandler, os, threading, time
        from pytest_agentops import Scenario, run_campaign

        WATCHDOG = threading.Event()
        threading.Thread(target=lambda: WATCHDOG.wait() and (time.sleep(0.3), os._exit(3)), daemon=True).start()

        def agent(task, env):
            atexit.register(time.sleep, 5)  # (guarded: slow, and under its limit)
            return "ok"

        def test_campaign():
            run_campaign(Scenario(name="watched", agent=agent, trials=1, seed=1, faults="none"))
            atexit.register(lambda: {users_handler})  # (registered last: runs first, arming its watchdog)
    """)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", timeout=60)
    result.stdout.fnmatch_lines(["*1 passed*"])
    assert result.ret == status and said in result.stderr.str()


def test_a_thread_pool_an_agent_leaves_with_a_task_that_never_ends_does_not_hang_pytest_at_exit(pytester,
                                                                                              quiet_children):
    """``concurrent.futures`` joins every pool's threads at the interpreter's exit, daemon or not: pytest printed
    its report and then never exited."""
    pytester.makepyfile(test_pool="""
        import threading
        from concurrent.futures import ThreadPoolExecutor
        from pytest_agentops import Scenario, run_campaign
        from pytest_agentops.process import exit_guard

        exit_guard.EXIT_JOIN_S = 0.5  # (5 s by default: the wait is the same, shorter)

        def agent(task, env):
            ThreadPoolExecutor(1).submit(threading.Event().wait)  # (a task that waits for ever)
            return "ok"

        def test_campaign():
            run_campaign(Scenario(name="pool", agent=agent, trials=2, seed=1, faults="none"))

        def test_after():
            assert False, "reported, and then the run ends"
    """)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", timeout=60)
    result.assert_outcomes(passed=1, failed=1)
    assert result.ret == 1


def test_an_atexit_handler_an_agent_registers_cannot_turn_a_failed_run_green(pytester, quiet_children):
    """``atexit.register(os._exit, 0)`` ran at the interpreter's exit and replaced exit status 1 with 0."""
    pytester.makepyfile(test_atexit="""
        import _thread, atexit, os
        from pytest_agentops import Scenario, run_campaign

        def unregistered():
            print("UNREGISTERED HANDLER RAN")

        def agent(task, env):
            atexit.register(os._exit, 0)
            atexit.register(lambda: os._exit(0))
            atexit.register(lambda: _thread.start_new_thread(os._exit, (0,)) and __import__("time").sleep(0.5))
            atexit.register(print, "AGENT HANDLER RAN")
            atexit.register(unregistered)
            atexit.unregister(unregistered)
            return "ok"

        def test_campaign():
            result = run_campaign(Scenario(name="atexit", agent=agent, trials=1, seed=1, faults="none"))
            assert [r.outcome for r in result.records] == ["completed"]

        def test_fails():
            assert False
    """)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", timeout=60)
    result.assert_outcomes(passed=1, failed=1)
    assert result.ret == 1
    assert result.stderr.str().count("an atexit handler registered inside a trial called os._exit(0)") == 2
    assert "AGENT HANDLER RAN" in result.stdout.str()  # an ordinary handler still runs
    assert "UNREGISTERED HANDLER RAN" not in result.stdout.str()


def test_a_logging_handler_or_finalizer_a_trial_leaves_cannot_turn_a_failed_run_green_or_hang_it(pytester, monkeypatch,
                                                                                                  quiet_children):
    """An outside review: ``logging.shutdown`` (registered when ``logging`` was imported, long before any campaign)
    flushes every handler still alive at the interpreter's exit, and weakref's exit hook (registered by the first
    ``weakref.finalize``) calls every pending finalizer, both with the real ``os._exit``: a handler an agent made
    whose ``flush`` called ``os._exit(0)`` turned a failed run's exit status into 0 (``2 failed``, status 0), one
    whose ``flush`` slept hung the run after its report. A second review: one made by the agent's thread after its
    campaign did too; and the user's own handler made in a campaign still gets, at the exit, the records an earlier
    atexit function logs (guarded in place, not moved ahead of them)."""
    pytester.makeconftest("""
        import atexit, logging

        atexit.register(lambda: logging.getLogger("app").warning("SESSION END"))  # (before any campaign)
    """)
    pytester.makepyfile(test_exit_hooks="""
        import logging, os, threading, time, weakref
        from pytest_agentops import Scenario, run_campaign
        from pytest_agentops.process import exit_guard

        exit_guard.ATEXIT_LIMIT_S = 1.0  # (10 s by default)

        class Exits(logging.Handler):
            def emit(self, record):
                pass

            def flush(self):
                os._exit(0)

        class Hangs(Exits):
            def flush(self):
                threading.Event().wait()

        class Kept:
            pass

        KEPT = []
        EARLIER = Kept()
        weakref.finalize(EARLIER, print, "EARLIER FINALIZER RAN")  # (weakref's exit hook, registered before)
        LATE = threading.Event()

        def late():  # (an agent's thread, after its campaign)
            LATE.wait(30)
            KEPT.append(Exits())

        def agent(task, env):
            kept = Kept()
            KEPT.extend([Exits(), kept, Hangs() if task == "hang" else kept])
            weakref.finalize(kept, os._exit, 0)
            weakref.finalize(kept, print, "AGENT FINALIZER RAN")
            if env.trial_id == "trial-0":
                threading.Thread(target=late).start()
            return "wrong"

        def world():
            app = logging.getLogger("app")
            if not app.handlers:
                handler = logging.FileHandler("app.log", mode="w")
                handler.setFormatter(logging.Formatter("%(message)s"))
                app.addHandler(handler)
            return None

        def test_campaign():
            task = os.environ.get("TASK", "exit")
            result = run_campaign(Scenario(name="exit-hooks", agent=agent, task=task, world=world, trials=2, seed=1,
                                           faults="none"))
            assert [r.outcome for r in result.records] == ["completed"] * 2
            logging.getLogger("app").warning("after the campaign")
            LATE.set()
            time.sleep(0.5)

        def test_fails():
            assert False
    """)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", timeout=60)
    result.assert_outcomes(passed=1, failed=1)
    assert result.ret == 1
    stderr = result.stderr.str()
    assert stderr.count("a logging handler made since the first campaign called os._exit(0)") == 3  # (2 + the late)
    assert stderr.count("a weakref.finalize function made since the first campaign called os._exit(0)") == 2
    assert result.stdout.str().count("AGENT FINALIZER RAN") == 2 and "EARLIER FINALIZER RAN" in result.stdout.str()
    assert (pytester.path / "app.log").read_text().splitlines() == ["after the campaign", "SESSION END"]
    monkeypatch.setenv("TASK", "hang")  # (read by the child pytest)
    hung = pytester.runpytest_subprocess("-p", "no:cacheprovider", timeout=60)
    hung.assert_outcomes(passed=1, failed=1)
    assert hung.ret == 1
    assert "a logging handler made since the first campaign did not return within 1 s" in hung.stderr.str()


@pytest.mark.parametrize("way", ["acquire", "emit", "finalizer made at the exit", "timer cancelled, then a wait"])
def test_no_way_round_the_exit_guard_turns_a_failed_run_green_or_hangs_it(pytester, way):
    """A third review found ways round guarding a campaign's handlers in place: a handler's own ``acquire`` (which
    ``logging.shutdown`` calls unguarded), its ``emit`` from an earlier atexit function's record, a finalizer made
    while weakref's exit hook runs: each ``os._exit(0)`` turned
    ``1 failed`` into exit status 0; and a handler that cancelled the timer cut-off, then waited, hung the run.
    After a failed run, ``os._exit(0)`` at the exit keeps the run's status; the exit is cut off after
    ``EXIT_LIMIT_S``."""
    pytester.makeconftest("""
        import atexit, logging

        atexit.register(lambda: logging.getLogger("app").warning("SESSION END"))  # (before any campaign)
    """)
    pytester.makepyfile(test_way="""
        import logging, os, signal, threading, weakref
        from pytest_agentops import Scenario, run_campaign
        from pytest_agentops.process import exit_guard

        exit_guard.EXIT_LIMIT_S = 2.0
        WAY = os.environ["WAY"]

        def at_exit():
            return not threading.main_thread().is_alive()

        class Sly(logging.Handler):
            def emit(self, record):
                if WAY == "emit" and at_exit():
                    os._exit(0)

            def acquire(self):
                super().acquire()
                if WAY == "acquire" and at_exit():
                    os._exit(0)

            def flush(self):
                if WAY.startswith("timer") and at_exit():
                    signal.setitimer(signal.ITIMER_REAL, 0)
                    threading.Event().wait()

        class Kept:
            pass

        KEPT = []

        def agent(task, env):
            logging.getLogger("app").addHandler(Sly())
            if WAY == "finalizer made at the exit":
                first, second = Kept(), Kept()
                KEPT.extend([first, second])
                weakref.finalize(first, lambda: weakref.finalize(second, os._exit, 0))
            return "wrong"

        def test_campaign():
            run_campaign(Scenario(name="sly", agent=agent, trials=1, seed=1, faults="none"))

        def test_fails():
            assert False
    """)
    os.environ["WAY"] = way  # (read by the child pytest; put back below)
    try:
        result = pytester.runpytest_subprocess("-p", "no:cacheprovider", timeout=60)
    finally:
        del os.environ["WAY"]
    result.assert_outcomes(passed=1, failed=1)
    assert result.ret == 1
    if way.startswith("timer"):
        assert "the interpreter's exit did not end within 2 s of the run's end" in result.stderr.str()


def test_an_in_process_runs_failure_is_not_taken_for_the_test_process_own_status(pytester):
    """The status kept for the exit (``exit_guard.note_run_status``) is the outermost session's: an in-process
    pytester run inside it, whose campaign test fails, must not make the test process's own exit a failure."""
    from pytest_agentops.process import exit_guard

    pytester.makepyfile(test_inner="""
        from pytest_agentops import Scenario, run_campaign

        def test_campaign_then_fail():
            run_campaign(Scenario(name="inner", agent=lambda task, env: "ok", trials=1, seed=1, faults="none"))
            assert False
    """)
    before = exit_guard._run_status
    pytester.runpytest_inprocess("-p", "no:cacheprovider").assert_outcomes(failed=1)
    assert exit_guard._run_status is before


def test_a_fork_hook_a_trial_registers_cannot_end_a_later_tests_run_green(pytester, quiet_children):
    """An outside review: ``os.register_at_fork(before=lambda: os._exit(0))`` in a trial ran at a later test's fork
    (``multiprocessing``), outside any campaign: the output stopped at ``FF``, exit status 0. The hooks that run in
    the test process run with ``os._exit`` refused; ``after_in_child`` runs in the new process as it is."""
    pytester.makepyfile(test_fork_hooks="""
        import multiprocessing, os
        from pytest_agentops import Scenario, run_campaign

        def agent(task, env):
            os.register_at_fork(before=lambda: os._exit(0), after_in_parent=lambda: os._exit(0),
                                after_in_child=lambda: print("CHILD HOOK RAN", flush=True))
            return "wrong"

        def test_campaign():
            result = run_campaign(Scenario(name="fork-hooks", agent=agent, trials=1, seed=1, faults="none"))
            assert [r.outcome for r in result.records] == ["completed"]

        def test_fails():
            assert False

        def test_forks_later():
            child = multiprocessing.get_context("fork").Process(target=print, args=("FORKED CHILD RAN",))
            child.start()
            child.join(30)
            assert child.exitcode == 0
    """)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-s", timeout=60)
    result.assert_outcomes(passed=2, failed=1)
    assert result.ret == 1
    out = result.stdout.str()
    assert "FORKED CHILD RAN" in out and "CHILD HOOK RAN" in out
    said = out + result.stderr.str()  # (each refused hook: an unraisable exception, said)
    assert said.count("a fork hook registered inside a trial called os._exit(0)") >= 2


FINALIZERS_THAT_NEVER_RETURN = """
import sys, threading, warnings
from pytest_agentops import Scenario, run_campaign
from pytest_agentops.process import exit_guard

from pytest_agentops.engine import trial

exit_guard.LEFT_GARBAGE_S = trial.FINISH_WAIT_S = 0.5  # (5 and 2 s by default)

class Stuck:
    def __del__(self):
        threading.Event().wait()

class StuckText(Exception):
    def __str__(self):
        threading.Event().wait()
        return "never"

def cycle(task, env):
    node = Stuck(); node.me = node
    return "ok"

async def cycle_async(task, env):
    return cycle(task, env)

async def output_async(task, env):
    return Stuck()

async def raises_async(task, env):
    raise StuckText()

for agent in (cycle, cycle_async, output_async, raises_async):
    with warnings.catch_warnings(record=True) as said:
        warnings.simplefilter("always")
        result = run_campaign(Scenario(name=agent.__name__, agent=agent, trials=2, seed=1, faults="none",
                                       timeout_s=1))
    print(agent.__name__, [r.outcome for r in result.records], sorted({str(w.message)[:60] for w in said}), flush=True)
"""


def test_a_finalizer_or_an_exceptions_text_that_never_returns_cannot_hang_a_campaign(tmp_path):
    """An outside review: a ``__del__`` that never returns, of a reference cycle a trial left (the campaign's end
    collects it on the main thread) or of an async agent's output (dropped as its trial was judged on a retired
    loop's ``reap``, on the main thread); and an async agent's exception whose ``__str__`` never returns (the
    same): each hung the campaign for good, whatever its ``timeout_s``. In a process of its own: the threads stuck
    in them run on until it exits."""
    (tmp_path / "finalizers.py").write_text(FINALIZERS_THAT_NEVER_RETURN)
    done = subprocess.run([sys.executable, "finalizers.py"], cwd=tmp_path, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    said = dict(line.split(" ", 1) for line in done.stdout.splitlines())
    assert set(said) == {"cycle", "cycle_async", "output_async", "raises_async"}
    assert said["cycle"] == ("['completed', 'completed'] "
                             "[\"a finalizer (__del__) of the garbage the campaign's trials l\"]")
    assert said["raises_async"].startswith("['timed_out', 'timed_out']")
    for name in ("cycle_async", "output_async"):  # (recorded, each: completed, or timed out judging)
        outcomes = ast.literal_eval(said[name].split("] ", 1)[0] + "]")
        assert len(outcomes) == 2 and set(outcomes) <= {"completed", "timed_out"}, said[name]


def test_os_exit_while_a_scenario_file_imports_its_agent_is_a_config_error(tmp_path, monkeypatch):
    (tmp_path / "exiting_module.py").write_text("import os\nos._exit(0)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    from pytest_agentops.scenario_file.refs import resolve_reference

    with pytest.raises(ConfigError, match=r"importing module 'exiting_module' raised AgentExited: importing "
                                          r"'exiting_module' called os._exit\(0\)"):
        resolve_reference("exiting_module:agent", "agent")
    sys.modules.pop("exiting_module", None)


@pytest.mark.parametrize(("attack", "outcome", "reason"), [
    ("sys_exit", "error", "SystemExit: 0"),
    ("keyboard_interrupt", "error", "KeyboardInterrupt"),
    ("recursion", "error", "RecursionError: maximum recursion depth exceeded"),
    ("mutate_tools", "error", "TypeError: 'FrozenMap' object does not support item assignment"),
    ("reassign_clock", "error", "AttributeError: property 'clock' of 'Env' object has no setter"),
    ("hostile_repr", "completed", ""),
    ("huge_output", "completed", ""),
])
def test_contained_attacks_are_recorded_trial_outcomes(attack, outcome, reason):
    class Rude:
        def __repr__(self):
            raise RuntimeError("no repr for you")

    def agent(task, env):
        if not env.trial_id.endswith("-2"):
            return "ok"
        if attack == "sys_exit":
            sys.exit(0)
        if attack == "keyboard_interrupt":
            raise KeyboardInterrupt
        if attack == "recursion":
            def deeper(n):
                return deeper(n + 1)
            deeper(0)
        if attack == "mutate_tools":
            env.tools["lookup_order"] = lambda *a: "forged"
        if attack == "reassign_clock":
            env.clock = None
        if attack == "hostile_repr":
            return Rude()
        if attack == "huge_output":
            return "x" * (100 * 2**20)

    result = _campaign(agent, tools=ORDER_TOOLS, world=Orders)
    record, others = _only(result, 2)
    assert record.outcome == outcome and reason in record.reason
    assert others == {"completed"}
    assert len(record.output) <= 203
    if attack == "hostile_repr":
        assert record.output == "<Rude whose repr() raised RuntimeError>"


def test_a_tool_raising_keyboard_interrupt_is_a_failed_tool_call():
    @tool
    def interrupting() -> str:
        """Raises what a Ctrl-C would."""
        raise KeyboardInterrupt

    def agent(task, env):
        try:
            env.tools["interrupting"]()
        except KeyboardInterrupt:
            return "caught"

    result = _campaign(agent, trials=2, tools=[interrupting])
    assert all(r.tool_calls == 1 and r.tool_failures == 1 and r.output == "caught" for r in result.records)


def test_reseeding_global_generators_inside_a_trial_stays_inside_it():
    """``random.seed`` and ``np.random.seed`` in a trial reseed that trial's generators: the process's
    generators are untouched, and trials draw reproducibly whatever runs beside them."""
    def agent(task, env):
        first = (random.random(), float(np.random.rand()), float(np.random.default_rng().random()))
        random.seed(0)
        np.random.seed(0)
        return repr((first, random.random(), float(np.random.rand())))

    random.seed(123)
    np.random.seed(123)
    expected = (random.random(), float(np.random.rand()))
    random.seed(123)
    np.random.seed(123)
    runs = [[r.output for r in _campaign(agent, trials=6, concurrency=c).records] for c in (1, 6)]
    assert (random.random(), float(np.random.rand())) == expected
    assert runs[0] == runs[1]
    assert len({r.split("), ")[0] for r in runs[0]}) == 6  # each trial draws its own numbers
    assert len({r.split("), ")[1] for r in runs[0]}) == 1  # reseeded alike, they draw alike


@pytest.mark.parametrize("how", ["reassigned", "code"])
def test_an_agent_that_changes_the_harnesss_code_gets_no_verdicts_and_the_code_is_put_back(how):
    """Found by an outside review: an agent reassigned ``Trial._judge`` to one that judged every trial completed:
    its own always-failing campaign passed, and so did every later campaign of the session (another agent's,
    in another test). The code is put back at the campaign's end, which raises ``HarnessChanged``."""
    import dataclasses

    from pytest_agentops import HarnessChanged
    from pytest_agentops.engine import trial as trial_module

    judge = trial_module.Trial._judge
    code = judge.__code__

    def forged(self, output, exc, refused):
        return dataclasses.replace(judge(self, output, exc, refused), outcome="completed", reason="")

    def agent(task, env):
        if how == "reassigned":
            trial_module.Trial._judge = forged
        else:
            trial_module.Trial._judge.__code__ = _always_completed.__code__
        raise RuntimeError("this agent always fails")

    def innocent(task, env):
        raise RuntimeError("this agent fails too")

    with pytest.raises(HarnessChanged, match=r"changed the harness's own code \(pytest_agentops\.engine\.trial\."
                                             r"Trial\._judge"):
        _campaign(agent, trials=6, expect={"completion_rate": ">= 0.9"})
    assert trial_module.Trial._judge is judge and judge.__code__ is code
    assert not _campaign(innocent, trials=6, expect={"completion_rate": ">= 0.9"}).passed


@pytest.mark.parametrize("how", ["reassigned", "code", "deleted", "method deleted", "added", "operator blinded"])
def test_the_quick_look_at_the_harnesss_code_sees_each_change_the_slow_one_does(how, monkeypatch):
    """``Snapshot.unchanged`` (two passes in C over some 5,000 pieces of code, at each campaign's start and end)
    answers as a look at each piece does: a function reassigned, given another code object, deleted from its
    module or its class is seen and put back; a name added beside them is not the harness's code. A review: the
    quick look called ``operator.is_not`` as it found it, so an agent that made it always false first hid its
    change from it (bound at import now)."""
    import operator

    from pytest_agentops.engine import trial as trial_module
    from pytest_agentops.process import own_code

    kept = own_code.snapshot()
    assert kept.unchanged() and own_code.put_back(kept) == []
    describe, code, finish = trial_module.describe, trial_module.describe.__code__, trial_module.Trial.finish
    if how == "operator blinded":
        monkeypatch.setattr(operator, "is_not", lambda a, b: False)
        how = "reassigned"
    if how == "reassigned":
        trial_module.describe = lambda exc: "forged"
    elif how == "code":
        trial_module.describe.__code__ = _always_completed.__code__
    elif how == "deleted":
        del trial_module.describe
    elif how == "method deleted":
        del trial_module.Trial.finish
    else:
        trial_module.not_the_harnesss = lambda: None
    try:
        assert kept.unchanged() == (how == "added")
        changed = own_code.put_back(kept)
    finally:
        trial_module.__dict__.pop("not_the_harnesss", None)
    assert changed == {"reassigned": ["pytest_agentops.engine.trial.describe"],
                       "code": ["pytest_agentops.engine.trial.describe.__code__"],
                       "deleted": ["pytest_agentops.engine.trial.describe"],
                       "method deleted": ["pytest_agentops.engine.trial.Trial.finish"], "added": []}[how]
    assert trial_module.describe is describe and describe.__code__ is code and trial_module.Trial.finish is finish
    assert kept.unchanged()


def test_a_module_of_the_package_loaded_after_a_look_joins_the_next_one():
    """A module of the package loaded since the last look (an agent's lazy import of a part of the package) is
    looked at from the next campaign on, and one gone is no longer. (A review: counting the modules again only when
    ``sys.modules`` changed its size or its last name missed a module added beside a removal and a re-import.)"""
    import types

    from pytest_agentops.process import own_code

    own_code._fresh()
    probe = types.ModuleType("pytest_agentops._probe_of_the_look")

    def probe_function():
        return None

    probe.probe_function = probe_function
    sys.modules[probe.__name__] = probe
    try:
        assert any(value is probe_function for _owner, _name, value, _code in own_code._fresh())
    finally:
        del sys.modules[probe.__name__]
    assert not any(value is probe_function for _owner, _name, value, _code in own_code._fresh())


def test_a_harness_change_reaches_every_campaign_running_and_a_comparison(monkeypatch):
    """A review of the first version: campaign B, started while campaign A's trial had reassigned ``Trial._judge``,
    took the forgery for the harness's code and put it back at its end, for every later campaign (which then
    passed whatever its agent did); a comparison (``compare_campaigns``) gave the forged verdicts without a word.
    Every campaign running when the code changed raises now, the code as it was before the first of them started
    is put back, and a comparison raises too."""
    import dataclasses

    from pytest_agentops import HarnessChanged
    from pytest_agentops.engine import trial as trial_module
    from pytest_agentops.engine.compare import compare_campaigns

    judge = trial_module.Trial._judge

    def forged(self, output, exc, refused):
        return dataclasses.replace(judge(self, output, exc, refused), outcome="completed", reason="")

    changed, raised = threading.Event(), {}

    def changes(task, env):
        trial_module.Trial._judge = forged
        changed.set()
        select.select([], [], [], 0.3)  # (real time: campaign B starts meanwhile)
        raise RuntimeError("fails")

    def fails(task, env):
        raise RuntimeError("fails too")

    def campaign(name, agent, after=None):
        if after is not None:
            after.wait(10)
        try:
            _campaign(agent, trials=2, timeout_s=30)
        except HarnessChanged:
            raised[name] = True

    threads = [threading.Thread(target=campaign, args=("A", changes)),
               threading.Thread(target=campaign, args=("B", fails, changed))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert raised == {"A": True, "B": True} and trial_module.Trial._judge is judge
    assert {r.outcome for r in _campaign(fails, trials=3).records} == {"error"}
    with pytest.raises(HarnessChanged):
        compare_campaigns(Scenario(name="base", agent=fails, trials=2, faults="none"),
                          Scenario(name="cand", agent=changes, trials=2, faults="none"), seed=1)
    assert trial_module.Trial._judge is judge


def _always_completed(self, output, exc, refused):
    """A stand-in for ``Trial._judge`` (its code swapped in): every trial completed."""
    from pytest_agentops.records import TrialRecord

    return TrialRecord(scenario=self.scenario, index=self.index, seed=self.seed, outcome="completed")


def test_reseeding_without_a_seed_inside_a_trial_reseeds_from_the_trial():
    """Found by an outside review: ``random.seed()`` or ``np.random.seed()`` without a seed (a library reseeding
    "to be safe") reseeded the trial's generator from OS entropy: the same seed drew other numbers in every run.
    The trial's next reseed is taken instead: the same in every run and at any concurrency, and still new numbers."""
    def agent(task, env):
        before = random.random()
        random.seed()
        np.random.seed()
        middle = (random.random(), float(np.random.rand()))
        random.seed(None)
        np.random.seed(seed=None)
        return repr((before, middle, random.random(), float(np.random.rand())))

    runs = [[r.output for r in _campaign(agent, trials=4, concurrency=c).records] for c in (1, 1, 4)]
    assert runs[0] == runs[1] == runs[2] and len(set(runs[0])) == 4
    before, middle, after, after_np = eval(runs[0][0])
    assert len({before, middle[0], after}) == 3 and middle[1] != after_np


def test_an_escalation_reason_of_any_length_or_type_is_kept_short_and_readable():
    class Loud:
        def __str__(self):
            raise RuntimeError("no")

    reasons = ["x" * 10_000_000, Loud()]

    def agent(task, env):
        env.escalate(reasons[int(task)])

    for task, expected in (("0", "x" * 2000 + "... (10,000,000 characters)"), ("1", "<Loud whose str() raised>")):
        result = run_campaign(Scenario(name="loud", agent=agent, task=task, trials=2, seed=1, faults="none"))
        assert {r.outcome for r in result.records} == {"escalated"}
        assert {r.reason for r in result.records} == {expected}
        assert all(e.data.get("reason") == expected for r in result.records for e in r.trace if e.kind == "escalation")


def test_an_abandoned_agent_logging_in_a_loop_never_leaves_a_logging_lock_held():
    """Busy loops that log and swallow every exception, two at once on one handler: the interruptions that
    chase them never land in logging's lock code (between a lock's acquire and the ``try`` that releases it),
    so the handler serves everyone during and after the chase. Landed there, the lock stayed held by a thread
    that then ended, and pytest's log capture hung the test run for good. (A loop that spends all its time in
    logging's lock code stays beyond reach: never interrupted there, it is reported as unstoppable.)"""
    import logging

    class Counting(logging.Handler):
        def __init__(self):
            super().__init__()
            self.count = 0

        def emit(self, record):
            self.count += 1

    handler = Counting()
    log = logging.getLogger("hostile.chatty")
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False
    stuck: list[threading.Thread] = []

    let_go = threading.Event()

    def agent(task, env):
        stuck.append(threading.current_thread())
        while not let_go.is_set():  # (the test lets it go at the end: it may stay beyond reach until then)
            try:
                log.info("still here %s", env.trial_id)
            except BaseException:
                pass

    try:
        result = _campaign(agent, trials=2, timeout_s=0.3, concurrency=2)
        assert {r.outcome for r in result.records} == {"timed_out"}
        for _ in range(20):  # while the hound chases them: the lock is never left held, so it is always had
            assert handler.lock.acquire(timeout=5), "an interrupted thread left the handler's lock held"
            handler.lock.release()
            threading.Event().wait(0.05)
        assert handler.count > 100
    finally:
        let_go.set()
        for thread in stuck:
            thread.join(30)
        log.removeHandler(handler)
    assert not any(thread.is_alive() for thread in stuck)


def test_no_interruption_is_raised_where_a_thread_takes_or_gives_back_a_lock_by_hand():
    """``at_unsafe_point``: a thread waiting in logging's handler lock, or in ``threading``'s own code, is
    not interrupted; the same thread in its own code is."""
    import logging

    from pytest_agentops.engine.workers import at_unsafe_point

    handler = logging.Handler()
    entered = threading.Event()

    def waits_for_the_handler():
        entered.set()
        handler.acquire()  # blocks: the test holds the lock
        handler.release()

    stop: list[bool] = []

    def spins():  # its own code only (Event.is_set is threading's code)
        entered.set()
        n = 0
        while not stop:
            n += 1

    handler.acquire()
    try:
        waiter = threading.Thread(target=waits_for_the_handler, daemon=True)
        waiter.start()
        entered.wait(5)
        for _ in range(200):  # until it is blocked inside logging's acquire
            threading.Event().wait(0.005)
            if at_unsafe_point(waiter.ident):
                break
        assert at_unsafe_point(waiter.ident)
    finally:
        handler.release()
    waiter.join(5)
    entered.clear()
    spinner = threading.Thread(target=spins, daemon=True)
    spinner.start()
    entered.wait(5)
    seen = set()
    for _ in range(200):
        seen.add(at_unsafe_point(spinner.ident))
        threading.Event().wait(0.001)
    stop.append(True)
    spinner.join(5)
    assert False in seen and not at_unsafe_point(None)


def test_no_interruption_is_raised_where_a_cookie_jar_takes_its_lock_by_hand():
    """``http.cookiejar`` takes its jar's lock by hand (``acquire()``, then ``try``): an interruption that landed
    between the two left it held, and every later request through an httpx client the trials share (the
    reference agents' ``demo.http_model.shared_client``) waited for it: the bundled model scenarios' trials timed
    out after an early stop at concurrency 8 (1 to 2 runs of 8; 0 of 32 since). So are ``tempfile`` and
    ``multiprocessing``."""
    import http.cookiejar
    import multiprocessing.pool
    import tempfile
    import types
    import urllib.request

    from pytest_agentops.engine.workers import at_unsafe_point

    jar = http.cookiejar.CookieJar()
    request = urllib.request.Request("http://example.test/")
    response = types.SimpleNamespace(info=lambda: types.SimpleNamespace(get_all=lambda *a: []))
    entered = threading.Event()

    def extracts():
        entered.set()
        jar.extract_cookies(response, request)  # blocks on the jar's lock: the test holds it

    jar._cookies_lock.acquire()
    try:
        waiter = threading.Thread(target=extracts, daemon=True)
        waiter.start()
        entered.wait(5)
        for _ in range(200):  # until it is blocked inside the jar's acquire
            threading.Event().wait(0.005)
            if at_unsafe_point(waiter.ident):
                break
        assert at_unsafe_point(waiter.ident)
    finally:
        jar._cookies_lock.release()
    waiter.join(5)
    for module in (tempfile, multiprocessing.pool):
        frame = types.SimpleNamespace(f_code=types.SimpleNamespace(co_filename=module.__file__))
        assert at_unsafe_point(1, {1: frame})


def test_the_hound_slows_down_for_a_thread_its_first_interruption_cannot_reach(monkeypatch):
    """A thread blocked for good in a lock is always at an unsafe point: after the fast period the hound tries
    it every 0.2 s, not every 5 ms forever (idle CPU grew with the number of such threads)."""
    from pytest_agentops.engine import workers

    tries: list[float] = []
    real_raise = workers.raise_in_thread

    def counting(thread, *args, **kwargs):
        tries.append(time.monotonic())
        return real_raise(thread, *args, **kwargs)

    monkeypatch.setattr(workers, "raise_in_thread", counting)
    release = threading.Event()
    blocked = threading.Thread(target=release.wait, daemon=True)
    blocked.start()
    hound = workers._Hound()
    hound.FAST_FOR_S = 0.2
    hound.chase(blocked, lambda: not release.is_set(), first_pending=True, pause_s=0.5)
    try:
        threading.Event().wait(1.4)
        late = [t for t in tries if t > tries[0] + 0.4]
        assert len(tries) > 10 and 2 <= len(late) <= 8, (len(tries), len(late))  # 5 ms, then every 0.2 s
    finally:
        release.set()
        blocked.join(5)
        hound._wake.set()


@pytest.mark.parametrize("left", ["task", "callback"])
def test_work_an_agent_leaves_keeping_the_shared_loop_busy_for_good_ends_with_its_campaign(pytester, left):
    """A second hostile review: a trial that returned leaving a task polling with ``asyncio.sleep(0)`` (or a
    callback that reschedules itself) kept the loop it shares from ever being idle: the trials that had ended
    were never judged (judging waits for an idle moment), nothing counted against a wall-clock limit, and pytest
    hung for ever. Their wait to be judged now counts a limit from their run's end: the campaign ends, failed
    (its neighbours' timers never fired: timed out), and the next test runs."""
    pytester.makepyfile(f"""
        import asyncio
        from pytest_agentops import Scenario

        async def agent(task, env):
            if env.trial_id.endswith("-5"):
                loop = asyncio.get_running_loop()
                if {left!r} == "task":
                    async def poll():
                        while True:
                            await asyncio.sleep(0)
                    asyncio.ensure_future(poll())
                else:
                    def tick():
                        loop.call_soon(tick)
                    loop.call_soon(tick)
                return "ok"
            await asyncio.sleep(1)
            return "ok"

        def test_campaign(agent_chaos):
            agent_chaos.run(Scenario(name="busy", agent=agent, trials=8, concurrency=8, seed=1, faults="none",
                                     timeout_s=2, early_stop=False, check=lambda world, output: output == "ok",
                                     expect={{"completion_rate": ">= 0.9"}})).check()

        def test_after():
            assert asyncio.run(asyncio.sleep(0, "x")) == "x"
    """)
    result = pytester.runpytest_subprocess("--agent-chaos", "-p", "no:randomly", timeout=120)
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*timed_out*"])


def test_trials_waiting_behind_a_slow_check_to_be_judged_are_not_timed_out():
    """A review of the fix above: counting a trial's wait to be judged from its run's end timed out trials
    that had finished in time but waited behind the others' checks (64 trials ending together, a 50 ms check,
    a 1 s limit: 43 recorded timed out, their checks never run). The wait counts only while the loop judges
    nothing and has no idle moment."""
    def check(world, output):
        start = time.perf_counter()
        while time.perf_counter() - start < 0.04:  # (real work: the check's own cost)
            pass
        return output == "ok"

    async def agent(task, env):
        await asyncio.sleep(1.0)
        return "ok"

    scenario = Scenario(name="slow-check", agent=agent, trials=48, concurrency=48, seed=1, faults="none",
                        timeout_s=1, early_stop=False, check=check)
    assert dict(run_campaign(scenario).outcome_counts) == {"completed": 48}


def test_a_finalizer_the_trials_left_for_the_collector_cannot_end_the_run_green_in_a_later_test(pytester):
    """An outside review: a reference cycle holding an object whose ``__del__`` calls ``os._exit(0)``, left by an
    agent, was collected in a later test, outside any campaign, and the run ended with status 0 although a test
    had failed. The campaign's end collects what its trials left while their refusals hold."""
    pytester.makepyfile(test_left="""
        import gc, os
        from pytest_agentops import Scenario, run_campaign

        class Bomb:
            def __del__(self):
                os._exit(0)

        def agent(task, env):
            bomb = Bomb()
            bomb.me = bomb  # (a cycle: freed by the collector only)
            return "ok"

        def test_campaign():
            assert run_campaign(Scenario(name="bomb", agent=agent, trials=3, seed=1)).passed

        def test_later():
            gc.collect()
            assert False, "a failing test"
    """)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider",
                                           "-W", "ignore::pytest.PytestUnraisableExceptionWarning")
    result.assert_outcomes(passed=1, failed=1)
    assert result.ret == 1


ENDLESS = """
    import collections, itertools, resource, sys, time
    resource.setrlimit(resource.RLIMIT_AS, (2 * 1024**3, 2 * 1024**3))  # (a regression: MemoryError, not OOM)
    from pytest_agentops import Faults, Scenario, run_campaign, tool
    from pytest_agentops.report.json_report import write_report

    class Endless(list):
        def __iter__(self):
            return itertools.count()

    class EndlessSet(frozenset):
        def __iter__(self):
            return itertools.count()

    class EndlessDict(dict):
        def items(self):
            return ((i, i) for i in itertools.count())
        def __iter__(self):
            return itertools.count()

    class EndlessDeque(collections.deque):
        def __iter__(self):
            return itertools.count()

    class EndlessCounter(collections.Counter):
        def items(self):
            return ((i, i) for i in itertools.count())

    @tool
    def echo(world, x) -> object:
        return x

    @tool(destructive=True)
    def wipe(world, x) -> str:
        return "wiped"

    def agent_for(value, how):
        def agent(task, env):
            if how == "tool":
                env.tools["echo"](value)
            elif how == "confirm":
                env.confirm("wipe", x=value)
            else:
                env.trace.add("mine", "n", "ok", v=value)
            return value
        return agent

    results = []
    for value in (Endless([1, 2]), EndlessSet({1, 2}), EndlessDict(a=1), EndlessDeque([1]), EndlessCounter(a=2)):
        for how in ("tool", "confirm", "trace"):
            results.append(run_campaign(Scenario(
                name=f"{type(value).__name__}-{how}", agent=agent_for(value, how), task="t", tools=[echo, wipe],
                check=lambda w, o: True, trials=3, seed=1, faults=Faults.none(), timeout_s=20)))
    write_report(sys.argv[1], results)
    for r in results:
        print(r.scenario, sorted(set((x.outcome, x.output) for x in r.records)))
"""


def test_an_agents_container_whose_iteration_never_ends_is_read_as_the_built_in_type_reads_it(tmp_path):
    """A review: a tool argument of a ``list`` subclass whose ``__iter__`` never ends made the harness's own encoding
    of it (the trajectory's key: one C call of the JSON encoder) grow pytest by ~1.3 GB a second until the kernel
    killed it (exit 137, no summary, no report); the redaction of a trace, a confirmation's details and a set's
    ``repr`` did the same. The harness reads the agent's lists, tuples, dicts and sets as the built-in types read
    them (no method of theirs runs): every trial completes at once, in a process limited to 2 GB."""
    script = tmp_path / "endless.py"
    script.write_text(textwrap.dedent(ENDLESS))
    done = subprocess.run([sys.executable, str(script), str(tmp_path / "report.json")], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.splitlines()
    assert len(lines) == 15 and all("('completed'," in line for line in lines), done.stdout
    assert "Endless-tool [('completed', '[1, 2]')]" in lines
    assert "EndlessSet-trace [('completed', 'EndlessSet({1, 2})')]" in lines
    assert "EndlessDeque-tool [('completed', 'EndlessDeque([1])')]" in lines
    assert (tmp_path / "report.json").stat().st_size > 0
