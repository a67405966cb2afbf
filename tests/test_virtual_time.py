"""Virtual time in campaigns: what agents see, what simulated latency costs, and the per-trial time limits."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime

import pytest

from pytest_agentops import Approver, Escalation, Faults, Scenario, ToolError, run_campaign
from pytest_agentops.vtime.clock import DEFAULT_EPOCH
from pytest_agentops.vtime.loop import VirtualTimeLoop
from pytest_agentops.vtime.real import real_sleep, real_time

import isolation_support
from conftest import ORDER_TOOLS, Orders

EPOCH = datetime.fromtimestamp(DEFAULT_EPOCH, UTC)  # 2026-01-01T00:00:00Z, every trial's start


def test_sync_agents_see_virtual_time_inside_a_trial_and_real_time_outside():
    seen: dict[int, tuple] = {}
    outside: list[float] = []
    stop = threading.Event()

    def watcher():  # another thread, reading the clock while trials run: real time throughout
        while not stop.is_set():
            outside.append(time.time() - real_time())
            real_sleep(0.0005)

    def agent(task, env):
        start = (time.time(), time.monotonic(), time.perf_counter(), datetime.now(UTC))
        pause = 10.0 * (1 + env.rng.integers(0, 9))  # each trial sleeps its own amount, in parallel
        time.sleep(pause)
        env.tools["lookup_order"](42)
        end = (time.time(), time.monotonic(), datetime.now(UTC), datetime.now())
        seen[int(env.trial_id.split("-")[1])] = (start, pause, end)
        return "ok"

    thread = threading.Thread(target=watcher, daemon=True)
    thread.start()
    try:
        result = run_campaign(Scenario(name="clocks", agent=agent, world=Orders, tools=ORDER_TOOLS,
                                       faults=Faults.none(), trials=16, seed=3, concurrency=4, early_stop=False))
    finally:
        stop.set()
        thread.join(5)
    assert result.outcome_counts == {"completed": 16}
    for record in result.records:
        start, pause, end = seen[record.index]
        assert start == (DEFAULT_EPOCH, 0.0, 0.0, EPOCH)
        assert end[:3] == (DEFAULT_EPOCH + pause, pause,
                           datetime.fromtimestamp(DEFAULT_EPOCH + pause, UTC))
        assert end[3] == datetime.fromtimestamp(DEFAULT_EPOCH + pause)  # local time, naive
        assert record.duration_s == pause
        call = next(e for e in record.trace if e.kind == "tool_call")
        assert call.t == pause  # trace events carry the trial's virtual time
    assert len({seen[i][1] for i in seen}) > 1
    # outside the trials: real time, during the campaign (another thread) and after it (this one)
    assert outside and max(abs(d) for d in outside) < 1.0
    assert abs(time.time() - real_time()) < 1.0
    assert abs(datetime.now(UTC).timestamp() - real_time()) < 1.0


@pytest.mark.skipif(not hasattr(time, "clock_gettime"), reason="time.clock_gettime is POSIX only")
def test_clock_gettime_reads_the_virtual_clock_for_wall_and_steady_clocks_only():
    def agent(task, env):
        time.sleep(25)
        return repr((time.clock_gettime(time.CLOCK_REALTIME), time.clock_gettime_ns(time.CLOCK_MONOTONIC),
                     time.clock_gettime(time.CLOCK_PROCESS_CPUTIME_ID) < 1e6))

    result = run_campaign(Scenario(name="gettime", agent=agent, faults=Faults.none(), trials=2, seed=1))
    assert [r.output for r in result.records] == [repr((DEFAULT_EPOCH + 25, 25 * 10**9, True))] * 2
    assert abs(time.clock_gettime(time.CLOCK_REALTIME) - real_time()) < 1.0  # real again outside


def test_tool_and_approver_latency_advance_the_clock_and_the_trace():
    def agent(task, env):
        env.tools["lookup_order"](42)
        if env.confirm("delete_order", order_id=42):
            env.tools["delete_order"](42)
        env.record_usage(input_tokens=10, output_tokens=2)
        return "ok"

    result = run_campaign(Scenario(name="latency", agent=agent, world=Orders, tools=ORDER_TOOLS,
                                   faults=Faults(latency=1.0, latency_s=2.0), approver=Approver(latency_s=60.0),
                                   trials=20, seed=5, early_stop=False))
    for record in result.records:
        delays = [e.data["latency_s"] for e in record.trace if e.kind == "fault" and e.outcome == "latency"]
        human = [e.data["latency_s"] for e in record.trace if e.kind == "confirmation"]
        assert len(delays) == 2 and len(human) == 1 and all(d > 0 for d in delays + human)
        assert record.duration_s == pytest.approx(sum(delays) + sum(human), abs=1e-5)
        times = [e.t for e in record.trace]
        assert times == sorted(times)
        calls = [e for e in record.trace if e.kind == "tool_call"]
        assert calls[0].t == pytest.approx(delays[0], abs=1e-5)  # the call is traced after its latency
        assert calls[1].t == pytest.approx(record.duration_s, abs=1e-5)
    assert len({r.duration_s for r in result.records}) == 20  # drawn per trial


def test_model_latency_advances_the_clock():
    import httpx

    from pytest_agentops.llm import FakeLLM, scripted

    def agent(task, env):
        with httpx.Client() as client:
            for _ in range(3):
                client.post(f"{env.llm.base_url}/chat/completions",
                            headers={"authorization": f"Bearer {env.llm.api_key}"},
                            json={"model": env.llm.model, "messages": [{"role": "user", "content": task}]})
        return time.monotonic()

    policy = scripted("one", "two", "three")
    result = run_campaign(Scenario(name="model-latency", agent=agent, llm=FakeLLM(policy, latency_s=1.5),
                                   faults=Faults.none(), trials=2, seed=0, early_stop=False))
    for record in result.records:
        assert [e.t for e in record.trace if e.kind == "model_call"] == [1.5, 3.0, 4.5]
        assert record.output == "4.5" and record.duration_s == 4.5


def _sleeper(step_s: float):
    def agent(task, env):
        while True:
            time.sleep(step_s)

    return agent


def test_virtual_time_limit_ends_a_sync_trial():
    result = run_campaign(Scenario(name="sync-limit", agent=_sleeper(100), trials=3, seed=0, early_stop=False,
                                   virtual_timeout_s=250))
    for record in result.records:
        assert record.outcome == "timed_out"
        assert record.reason == "virtual time limit of 250s exceeded"
        assert record.duration_s == 300.0  # the sleep that crossed the limit was counted, then the trial ended


def test_virtual_time_limit_ends_an_async_trial_at_its_deadline():
    async def sleeper(task, env):
        while True:
            await asyncio.sleep(100)

    async def blocking_then_sleeping(task, env):
        time.sleep(100)  # moves the trial's own clock, not the loop: the deadline comes 100 s earlier
        await asyncio.sleep(1000)

    for agent in (sleeper, blocking_then_sleeping):
        result = run_campaign(Scenario(name=agent.__name__, agent=agent, trials=6, seed=0, concurrency=3,
                                       early_stop=False, virtual_timeout_s=250))
        assert result.outcome_counts == {"timed_out": 6}, agent.__name__
        assert {r.reason for r in result.records} == {"virtual time limit of 250s exceeded"}
        assert [r.duration_s for r in result.records] == [250.0] * 6, agent.__name__


def test_async_wait_for_times_out_in_virtual_time_and_no_limit_means_none():
    async def agent(task, env):
        loop = asyncio.get_running_loop()
        start = loop.time()
        try:
            await asyncio.wait_for(asyncio.sleep(10_000), timeout=30)
        except TimeoutError:
            return f"gave up after {loop.time() - start:g}s"
        return "slept"

    result = run_campaign(Scenario(name="wait-for", agent=agent, trials=4, seed=0, virtual_timeout_s=None,
                                   check=lambda w, out: out == "gave up after 30s", early_stop=False))
    assert result.outcome_counts == {"completed": 4}
    assert [r.duration_s for r in result.records] == [30.0] * 4


def test_wall_time_limit_still_stops_an_agent_that_never_awaits():
    async def spins(task, env):
        while True:
            pass

    result = run_campaign(Scenario(name="spins", agent=spins, trials=1, seed=0, timeout_s=0.3,
                                   virtual_timeout_s=60, early_stop=False))
    assert result.records[0].outcome == "timed_out"
    assert "wall-clock limit of 0.3s" in result.records[0].reason


def test_purely_virtual_trials_keep_exact_times_beside_trials_doing_real_work():
    async def agent(task, env):
        if int(env.trial_id.split("-")[1]) % 2:
            for _ in range(8):
                await asyncio.sleep(0.125)  # virtual: exactly 1 s in all
        else:
            for _ in range(10):
                await asyncio.to_thread(threading.Event().wait, 0.03)  # real work: the loop waits for real
        return "ok"

    result = run_campaign(Scenario(name="mixed", agent=agent, trials=20, seed=0, concurrency=10, early_stop=False))
    assert [r.duration_s for r in result.records[1::2]] == [1.0] * 10
    # work in threads is waited for (for real: at least 10 x 0.03 s) but is not the trials' virtual time
    assert [r.duration_s for r in result.records[0::2]] == [0.0] * 10
    assert result.wall_s >= 0.3


def test_an_idle_virtual_time_loop_does_not_move_its_clock():
    loop = VirtualTimeLoop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        real_sleep(0.1)  # the loop waits, idle, for work from this thread
        assert asyncio.run_coroutine_threadsafe(asyncio.sleep(0, result=loop.time()), loop).result(5) == 0.0

        async def nap():
            await asyncio.sleep(5)
            return loop.time()

        assert asyncio.run_coroutine_threadsafe(nap(), loop).result(5) == 5.0
        real_sleep(0.1)
        assert asyncio.run_coroutine_threadsafe(asyncio.sleep(0, result=loop.time()), loop).result(5) == 5.0
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        loop.close()


def test_async_agent_sleeping_30s_per_step_reports_escalation_times_in_virtual_seconds():
    """200 trials of an agent that hits an outage, then works 30 virtual seconds per step, and escalates."""

    async def agent(task, env):
        with contextlib.suppress(ToolError):
            env.tools["lookup_order"](42)  # down for the whole trial: the unrecovered fault, at t=0
        steps = int(env.rng.integers(1, 11))  # 1..10 steps of 30 s before handing over
        env.trace.add("agent", "plan", steps=steps)
        for _ in range(steps):
            await asyncio.sleep(30)
        env.escalate("the order service is down")

    scenario = Scenario(name="outage", agent=agent, world=Orders, tools=ORDER_TOOLS, trials=200, seed=4,
                        concurrency=50, early_stop=False,
                        faults=Faults(outage=1.0, outage_tools=("lookup_order",)),
                        expect={"time_to_escalation_s.p95": "<= 300", "escalation_rate": ">= 0.9"})
    result = run_campaign(scenario)
    assert result.outcome_counts == {"escalated": 200}
    expected = []
    for record in result.records:
        steps = next(e.data["steps"] for e in record.trace if e.kind == "agent")
        expected.append(30.0 * steps)
        assert record.unrecovered_fault_s == 0.0
        assert record.escalated_at_s == record.time_to_escalation_s == record.duration_s == 30.0 * steps
    assert sorted(expected) != [expected[0]] * 200
    metric = result.metrics["time_to_escalation_s"]
    ranked = sorted(expected)
    assert metric.n == 200 and metric.quantiles["p95"] == ranked[189] and metric.max == max(expected)
    assert [v.verdict for v in result.verdicts] == ["pass", "pass"]
    # the same campaign with the harness escalating for an agent that never would: after 3 failures
    result = run_campaign(scenario.replace(name="outage-harness", agent=_retries_forever, trials=20,
                                           escalation=Escalation(after_consecutive_failures=3)))
    assert result.outcome_counts == {"escalated": 20}
    assert [r.time_to_escalation_s for r in result.records] == [90.0] * 20


async def _retries_forever(task, env):
    while True:
        try:
            return env.tools["lookup_order"](42)
        except Exception:
            await asyncio.sleep(30)  # backoff: failures at 0, 30, 60 s; the next call, at 90 s, escalates


def test_an_async_agent_waits_for_its_subprocess_without_pipes():
    """On Python 3.11 asyncio waits for a subprocess in a thread of its own, which the virtual-time loop did not
    see: with nothing else to wait for, it jumped to the trial's deadline, and ``await process.wait()`` on a
    subprocess without pipes ended ``timed_out`` (virtual time limit of 3600s exceeded)."""
    import sys

    async def agent(task, env):
        process = await asyncio.create_subprocess_exec(sys.executable, "-c", "import time; time.sleep(0.2)")
        code = await process.wait()
        await asyncio.sleep(1)  # (virtual: the loop still jumps once the wait is over)
        return f"{code} {time.monotonic():.1f}"

    result = run_campaign(Scenario(name="subprocess", agent=agent, trials=2, seed=1, faults="none", concurrency=2,
                                   timeout_s=60))
    assert [r.outcome for r in result.records] == ["completed", "completed"], [r.reason for r in result.records]
    assert all(r.output.startswith("0 ") and 1.0 <= float(r.output.split()[1]) < 5 for r in result.records)


@pytest.mark.parametrize("isolation", ["none", "process"])
def test_an_agent_importing_a_date_subclass_with_its_own_metaclass_inside_a_trial_runs(tmp_path, monkeypatch,
                                                                                      isolation):
    """langchain_core imported inside a trial imports pydantic v1, whose ``class ConstrainedDate(date,
    metaclass=ConstrainedNumberMeta)`` failed with "metaclass conflict" under the time stand-ins: every trial
    was an error. (The same class, in a module of its own, first imported by the agent.)"""
    module = f"lazy_dates_{isolation}"
    (tmp_path / f"{module}.py").write_text(
        "from datetime import date\n\n\nclass Meta(type):\n    pass\n\n\n"
        "class ConstrainedDate(date, metaclass=Meta):\n    pass\n")
    (tmp_path / f"agent_{isolation}.py").write_text(
        f"def agent(task, env):\n    import {module}\n\n"
        f"    return {module}.ConstrainedDate(2030, 1, 2).isoformat()\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    for name in (module, f"agent_{isolation}"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    agent = __import__(f"agent_{isolation}").agent
    result = run_campaign(Scenario(name="lazy", agent=agent, trials=3, seed=1, faults="none", isolation=isolation,
                                   check=lambda world, output: output == "2030-01-02"))
    assert result.outcome_counts == {"completed": 3}, [r.reason for r in result.records]
    monkeypatch.delitem(sys.modules, module, raising=False)


@pytest.mark.leaves_process_state("children", reason="multiprocessing's forkserver and resource tracker, which an "
                                   "in-process trial's pool starts, live as long as the process")
@pytest.mark.parametrize("isolation", ["none", "process"])
def test_a_forkserver_pool_in_a_trial_runs_on_real_time(isolation):
    """``multiprocessing.connection.wait(timeout=0)`` polls until ``time.monotonic()`` moves: frozen at the trial's
    virtual time it spun for ever, and every forkserver pool (Python 3.14's default start method) hung its trial
    to the wall-clock limit. The standard library's blocking machinery reads real time now; the agent's own
    code still reads the trial's clock."""
    import isolation_support

    result = run_campaign(Scenario(name="pool", agent=isolation_support.pools, task="forkserver", trials=2, seed=1,
                                   faults="none", isolation=isolation, timeout_s=20,
                                   check=lambda world, output: output == [0, 1, 4, 9]))
    assert result.outcome_counts == {"completed": 2}, [r.reason for r in result.records]
    assert {r.duration_s for r in result.records} == {0.0}  # (no virtual time passed: the pool's waits were real)


def test_the_clock_handed_to_a_thread_as_it_is_is_the_agents():
    """``asyncio.to_thread(time.sleep, 3)`` is the agent's sleep, though the standard library's thread pool calls
    it: 3 virtual seconds, not 3 real ones (the first version of the real time of the blocking machinery took the
    thread pool for the caller); ``run_in_executor(None, time.time)`` reads the trial's clock."""
    import isolation_support

    start = real_time()
    (record,) = run_campaign(Scenario(name="handed", agent=isolation_support.hands_the_clock_to_a_thread, trials=1,
                                      seed=1, faults="none", check=lambda world, output: True)).records
    assert real_time() - start < 2.5  # (3 s of real sleep would pass it)
    assert record.duration_s == 3.0 and float(record.output) == DEFAULT_EPOCH + 3.0


def test_a_timer_fires_at_its_tick_whatever_the_loops_time():
    """A review of the first fix in whole nanoseconds: asyncio's loop takes a timer as due when its float time is
    under the loop's time plus the clock's resolution (1 ns), so a timer due a tick after the loop's time fired
    early or not depending on that time (10 of 200 start times; 2 of 40 records differed between concurrency 1
    and 8). Time is whole microseconds now, the resolution half a tick, and ``call_later`` counts from the tick."""

    async def main(offset: float) -> tuple[list[int], list[int]]:
        loop = asyncio.get_running_loop()
        await asyncio.sleep(offset)
        state, fired = loop.vt_state, []
        start = state.ticks
        loop.call_later(1.0, lambda: fired.append(state.ticks - start))
        for _ in range(3):
            await asyncio.sleep(1 / 3)  # 333,333 us each: one tick short of the timer
        early = list(fired)
        await asyncio.sleep(1e-6)
        return early, fired

    for k in range(300):
        loop = VirtualTimeLoop()
        try:
            early, fired = loop.run_until_complete(main(k * 0.3600003 + (k % 7) * 12345.678901))
        finally:
            loop.close()
        assert (early, fired) == ([], [1_000_000]), k


def test_a_loop_whose_time_is_past_half_a_year_still_fires_its_timers():
    """Past 2**24 s of loop time (194 days: one long sleep, or many trials' times added up), ``now + 1e-9 == now``
    in float, no timer was ever due again and the loop spun for ever."""
    done = threading.Event()

    def run() -> None:
        loop = VirtualTimeLoop()
        try:
            loop.run_until_complete(asyncio.sleep(1.7e7))
            loop.run_until_complete(asyncio.sleep(0.25))
            done.set()
        finally:
            loop.close()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(10)
    assert done.is_set()


_REAL_CLOCK_WITHOUT_FREEZEGUN = """
import datetime, sys, time
import pytest_agentops.vtime.real as real
import pytest_agentops.process.time_patch
assert "freezegun" not in sys.modules and "dateutil" not in sys.modules, "loaded for the real clock"
assert real.real_time is time.time and real.real_monotonic is time.monotonic
assert real.real_perf_counter is time.perf_counter
assert real.RealDatetime is datetime.datetime and real.RealDate is datetime.date
"""

_REAL_CLOCK_UNDER_FREEZEGUN = """
import subprocess
import sys
import freezegun
frozen = freezegun.freeze_time("2001-02-03")
frozen.start()
import pytest_agentops.vtime.real as real
import time
assert time.time() < 1e9 and real.real_time() > 1.7e9, (time.time(), real.real_time())
assert real.RealDatetime is freezegun.api.real_datetime and real.RealDatetime.now().year >= 2025
frozen.stop()
"""


@pytest.mark.parametrize("program", [_REAL_CLOCK_WITHOUT_FREEZEGUN, _REAL_CLOCK_UNDER_FREEZEGUN],
                         ids=["without freezegun", "time frozen by freezegun first"])
def test_the_real_clock_is_learned_without_loading_freezegun_and_stays_real_under_it(program):
    """``vtime.real`` imported freezegun (and its ``dateutil``: ~50 ms of every isolated attempt's start-up) to take
    its captures of the real clock functions. Now a process without freezegun takes them from ``time`` and
    ``datetime`` and never loads it; one that froze time through freezegun before the plugin's import still gets
    freezegun's captures: real time, not the frozen."""
    done = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr


def test_the_sweep_ignores_every_module_freezeguns_own_default_list_ignores():
    """freezegun's default ignore list is written out (``time_patch.FREEZEGUN_IGNORED``: reading it loaded freezegun):
    a module the installed freezegun adds to its list shows here."""
    from freezegun import config

    from pytest_agentops.process.time_patch import FREEZEGUN_IGNORED, IGNORED_MODULES

    wanted = {name.rstrip(".") for name in config.DEFAULT_IGNORE_LIST}
    assert wanted <= set(FREEZEGUN_IGNORED) <= set(IGNORED_MODULES)


def test_freezegun_imported_first_inside_an_isolated_trial_keeps_the_real_clock():
    """A review: with freezegun no longer loaded by the isolated agent's harness, an agent importing it inside its
    trial (its process's first import of it) made freezegun take the trial's stand-ins for the real clock: a frozen
    ``real_asyncio`` loop's sleep and a ticking clock never moved, and the trial hung to its wall-clock limit. Now
    the agent's process puts the real functions back into freezegun right after its import. (In-process,
    ``freeze_time`` inside a trial rebinds the harness's own names and the campaign refuses its results:
    ``HarnessChanged``; pytest's process loads freezegun with the engine, the next test.)"""
    agent = isolation_support.freezes_time_after_importing_freezegun
    result = run_campaign(Scenario(name="freezegun", agent=agent, task="freeze", check=lambda world, out: True,
                                   faults=Faults.none(), trials=2, seed=1, isolation="process", timeout_s=20))
    assert [r.outcome for r in result.records] == ["completed"] * 2, result.records[0].reason
    assert {r.output for r in result.records} == {"(2001, [])"}


def test_a_session_whose_trial_imported_freezegun_first_gets_the_real_datetime_back(pytester):
    """A review: freezegun first imported inside a trial kept the stand-ins as its real classes, and put them back
    into ``datetime`` at every ``freeze_time`` exit for the rest of the session (a later test's ``pickle`` of a
    ``datetime`` failed). A fresh pytest process: the plugin's engine loads freezegun before any stand-in is in."""
    pytester.makepyfile(test_session="""
import datetime, pickle, sys
from pytest_agentops import Faults, Scenario, run_campaign

def agent(task, env):
    from freezegun import freeze_time
    with freeze_time("2030-01-01", ignore=["pytest_agentops"]):  # (the harness's own names left as they are)
        return str(datetime.date.today())

def test_a_campaign():
    result = run_campaign(Scenario(name="x", agent=agent, task="t", check=lambda w, o: o == "2030-01-01",
                                   faults=Faults.none(), trials=1, seed=1))
    assert result.outcome_counts == {"completed": 1}

def test_a_datetime_after_it():
    from freezegun import freeze_time
    with freeze_time("2001-02-03"):
        assert datetime.date.today().year == 2001
    now = datetime.datetime.now()
    assert type(now) is datetime.datetime and pickle.loads(pickle.dumps(now)) == now
""")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=2)
