"""The trial engine's workers: idle work on the virtual-time loop, the loop-side job driver, the runner on it, and the
worker threads of sync trials."""

from __future__ import annotations

import asyncio
import concurrent.futures as cf
import contextvars
import socket
import threading
import time

import pytest

from pytest_agentops import FakeLLM, Faults, Scenario, run_campaign
from pytest_agentops.engine.job_future import JobFuture
from pytest_agentops.engine.workers import LoopWorker, ThreadWorker, _Job
from pytest_agentops.errors import TrialAbandoned
from pytest_agentops.process.http_hub import HUB
from pytest_agentops.vtime.loop import VirtualTimeLoop

# --- idle work ----------------------------------------------------------------------------------------------


def test_idle_work_runs_before_a_timer_jump_and_never_moves_virtual_time():
    loop = VirtualTimeLoop()
    seen: list[float] = []

    def idle() -> bool:
        if len(seen) >= 5:
            return False
        seen.append(loop.time())
        return True

    loop.idle_work = idle
    try:
        loop.run_until_complete(asyncio.sleep(10))
        assert seen == [0.0] * 5  # all five steps ran before the jump, at virtual time 0
        assert loop.time() == 10.0  # and the jump is exactly the timer's distance
    finally:
        loop.close()


def test_endless_idle_work_does_not_starve_ready_io():
    loop = VirtualTimeLoop()
    steps = 0

    def idle() -> bool:
        nonlocal steps
        steps += 1
        return True  # always more to do

    left, right = socket.socketpair()
    left.setblocking(False)
    right.setblocking(False)
    loop.idle_work = idle

    async def read() -> bytes:
        threading.Timer(0.05, right.send, (b"ping",)).start()  # arrives while the loop is busy with idle work
        return await loop.sock_recv(left, 16)

    try:
        assert loop.run_until_complete(asyncio.wait_for(read(), 5)) == b"ping"
        assert steps > 0
    finally:
        loop.close()
        left.close()
        right.close()


def test_idle_work_can_be_unset():
    loop = VirtualTimeLoop()
    loop.idle_work = lambda: False
    assert loop.idle_work is not None
    loop.idle_work = None
    try:
        assert loop.run_until_complete(asyncio.sleep(3, result="slept")) == "slept"
        assert loop.time() == 3.0
    finally:
        loop.close()


# --- the loop-side job driver -------------------------------------------------------------------------------


@pytest.fixture
def worker():
    w = LoopWorker("test-loop")
    yield w
    w.close()


def test_jobs_run_warm_start_settle_in_order_at_most_limit_at_once(worker):
    events: list[str] = []
    running = 0
    most = 0

    def job(i: int):
        async def start() -> int:
            nonlocal running, most
            events.append(f"start {i}")
            running += 1
            most = max(most, running)
            await asyncio.sleep(1)  # virtual: all jobs overlap in virtual time
            running -= 1
            return i

        return start

    worker.limit = 3
    futures = [worker.put(job(i), warm=lambda i=i: events.append(f"warm {i}"),
                          settle=lambda value: value * 10) for i in range(8)]
    worker.kick()
    assert [f.result(5) for f in futures] == [i * 10 for i in range(8)]
    assert most == 3
    warmed = [i for i in range(8) if f"warm {i}" in events]
    # the queued jobs are warmed while the first three sleep (the loop's idle moment before its jump)
    assert set(range(3, 8)) <= set(warmed)
    for i in warmed:  # and warming is never after the start
        assert events.index(f"warm {i}") < events.index(f"start {i}")
    assert [e for e in events if e.startswith("start")] == [f"start {i}" for i in range(8)]
    assert not worker.busy() and worker.queued() == 0


def test_a_job_cancelled_while_queued_never_starts(worker):
    started: list[int] = []
    gate = asyncio.Event()

    def job(i: int):
        async def start() -> int:
            started.append(i)
            if i == 0:
                await gate.wait()  # never set: holds the only slot
            return i

        return start

    worker.limit = 1
    first = worker.put(job(0))
    second = worker.put(job(1))
    third = worker.put(job(2))
    assert second.cancel()  # still queued: cancelled from any thread
    worker.kick()
    assert worker.call(lambda: None)
    assert worker.call(lambda: worker.cancel_job(first))  # running: cancelled on the loop
    with pytest.raises(cf.CancelledError):
        first.result(5)
    assert third.result(5) == 2
    assert started == [0, 2]


def test_job_failures_reach_the_future(worker):
    async def boom():
        raise ValueError("agent bug")

    async def fine():
        return "ok"

    def bad_settle(value):
        raise KeyError("judge bug")

    failing = worker.put(boom)
    badly_settled = worker.put(fine, settle=bad_settle)
    worker.kick()
    with pytest.raises(ValueError, match="agent bug"):
        failing.result(5)
    with pytest.raises(KeyError, match="judge bug"):
        badly_settled.result(5)


def test_call_reports_a_blocked_loop_and_skips_the_function(worker):
    release, entered = threading.Event(), threading.Event()
    ran: list[str] = []

    async def blocks():
        entered.set()
        release.wait(5)  # blocks the loop thread itself
        return "done"

    future = worker.submit(blocks())
    assert entered.wait(5)
    try:
        assert not worker.call(lambda: ran.append("late"), wait_s=0.1)
        assert not worker.responsive(0.05)
    finally:
        release.set()
    assert future.result(5) == "done"
    assert worker.call(lambda: ran.append("now"))
    assert ran == ["now"]  # the call given up on never runs afterwards


def test_a_retired_loops_ended_jobs_are_judged_one_after_the_other_never_on_the_callers_thread(worker):
    """``reap`` (a loop blocked for good: its ended jobs wait for an idle moment that never comes) judges them one
    at a time, as the loop would, each in a thread of its own: judged at once, CPU-bound checks shared the GIL and
    which of them met the trials' limit depended on the concurrency; judged on the caller's thread (the
    campaign's main thread), one that never returned hung the campaign. One that does not return within
    ``judging_s`` is given up (``TrialAbandoned``), and the ones after it are still judged."""
    release, entered = threading.Event(), threading.Event()

    async def blocks():
        entered.set()
        release.wait(10)  # the loop thread itself, blocked: nothing is settled there meanwhile

    blocked = worker.submit(blocks())
    assert entered.wait(5)
    lock, running, most, threads, order = threading.Lock(), [0], [0], [], []
    never = threading.Event()

    def settle(result):
        threads.append(threading.current_thread())
        if result == 2:
            never.wait(10)  # a judging that does not return (an output's __del__, an exception's text)
            return None
        with lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
        time.sleep(0.02)  # (long enough for judgings run at once to overlap)
        order.append(result)
        with lock:
            running[0] -= 1
        return result * 10

    try:
        worker.judging_s = 0.3
        futures = [cf.Future() for _ in range(5)]
        for i, future in enumerate(futures):
            worker._settling.append((_Job(None, None, settle, future), i))
        caller = threading.current_thread()
        worker.reap()
        assert most[0] == 1 and order == [0, 1, 3, 4]  # one at a time, in order; 2 given up and the rest judged
        assert caller not in threads and len(set(threads)) == 5
        assert [f.result(0) for i, f in enumerate(futures) if i != 2] == [0, 10, 30, 40]
        with pytest.raises(TrialAbandoned, match="judging the trial did not return"):
            futures[2].result(0)
    finally:
        never.set()
        release.set()
    blocked.result(5)
    for thread in threads:
        thread.join(5)


def test_a_closed_worker_closes_its_loop_and_lets_the_executor_threads_go():
    w = LoopWorker("test-loop")

    async def uses_the_default_executor():
        return await asyncio.get_running_loop().run_in_executor(None, threading.current_thread)

    executor_thread = w.submit(uses_the_default_executor()).result(5)
    w.close()
    w.thread.join(5)
    assert w.loop.is_closed()  # no "unclosed event loop" ResourceWarning later
    executor_thread.join(5)  # the loop's close shut its default executor down: its idle thread ends
    assert not executor_thread.is_alive()


# --- the runner on it ---------------------------------------------------------------------------------------


def _replies(request, ctx):
    return "done"


def test_async_trials_with_a_fake_model_stop_early_and_leave_no_model_routes():
    async def agent(task, env):
        reply = await env.llm.async_openai().chat.completions.create(model="m", messages=[{"role": "user",
                                                                                           "content": task}])
        await asyncio.sleep(1)
        return reply.choices[0].message.content

    scenario = Scenario(name="stops", agent=agent, llm=FakeLLM(policy=_replies), trials=2000, seed=3, concurrency=20,
                        faults=Faults.none(), check=lambda w, out: out == "done",
                        expect={"completion_rate": ">= 0.5"})
    result = run_campaign(scenario)
    assert result.stopped_early and len(result.records) < 2000
    assert result.outcome_counts == {"completed": len(result.records)}
    assert not HUB.active and not HUB.hosts


def test_a_busy_looping_async_trial_moves_the_queued_ones_to_a_fresh_loop():
    async def agent(task, env):
        if env.trial_id.endswith("-1"):
            await asyncio.sleep(1)  # an idle moment: the loop builds the queued trials ahead
            while True:  # never awaits again: blocks the shared loop
                pass
        await asyncio.sleep(5)
        return "ok"

    result = run_campaign(Scenario(name="spin", agent=agent, trials=6, seed=0, concurrency=2, timeout_s=0.5,
                                   faults=Faults.none(), early_stop=False, llm=FakeLLM(policy=_replies)))
    assert not HUB.active and not HUB.hosts  # trials built ahead on the blocked loop closed their routes
    outcomes = [r.outcome for r in result.records]
    # trial 0 was waiting on the loop that trial 1 blocked: held up, not out of time, it runs again (it used to
    # be timed out with trial 1); the trials queued behind the blocked loop run on a fresh one
    assert outcomes == ["completed", "timed_out"] + ["completed"] * 4
    assert result.records[1].reason == "blocked the event loop it shares with other trials past a wall-clock " \
                                       "limit of 0.5s"
    assert all(r.duration_s == 5.0 for i, r in enumerate(result.records) if outcomes[i] == "completed")


def test_a_world_factory_that_raises_fails_the_async_campaign_with_a_config_error():
    from pytest_agentops import ConfigError

    def broken_world():
        raise OSError("no database")

    async def agent(task, env):
        return "ok"

    with pytest.raises(ConfigError, match=r"world factory .* raised OSError: no database"):
        run_campaign(Scenario(name="broken", agent=agent, world=broken_world, trials=30, seed=0, concurrency=5,
                              faults=Faults.none()))


def test_world_factory_and_check_of_async_trials_may_run_their_own_event_loop():
    async def seed(world: dict) -> dict:
        await asyncio.sleep(0)
        world["orders"] = [42]
        return world

    async def read(world: dict) -> list[int]:
        await asyncio.sleep(0)
        return world["refunded"]

    def world() -> dict:
        return asyncio.run(seed({"refunded": []}))  # async set-up, as on any thread without a running loop

    async def agent(task, env):
        await asyncio.sleep(1)
        env.world["refunded"].append(env.world["orders"][0])
        return "done"

    result = run_campaign(Scenario(name="own-loop", agent=agent, world=world, trials=40, seed=0, concurrency=10,
                                   faults=Faults.none(), early_stop=False,
                                   check=lambda w, out: asyncio.run(read(w)) == [42]))
    assert result.outcome_counts == {"completed": 40}


def test_anyio_worker_threads_keep_the_virtual_loop_waiting_and_are_unwrapped_afterwards():
    import anyio.to_thread
    from anyio._backends._asyncio import AsyncIOBackend

    original = AsyncIOBackend.__dict__["run_sync_in_worker_thread"]

    def blocking_tool() -> str:
        threading.Event().wait(0.05)  # real work in anyio's worker thread (as pydantic-ai runs sync tools)
        return "ok"

    async def agent(task, env):
        return await anyio.to_thread.run_sync(blocking_tool)

    # with only the trial's deadline as a timer, an untracked thread would let the loop jump straight to it
    result = run_campaign(Scenario(name="anyio", agent=agent, trials=3, seed=0, virtual_timeout_s=1,
                                   faults=Faults.none(), early_stop=False, check=lambda w, out: out == "ok"))
    assert result.outcome_counts == {"completed": 3}
    assert all(r.duration_s == 0.0 for r in result.records)  # waited for, and the thread's wall time not counted
    assert result.wall_s >= 0.15
    assert AsyncIOBackend.__dict__["run_sync_in_worker_thread"] is original


def test_a_long_async_campaign_is_fed_to_the_loop_in_batches_and_kept_in_launch_order():
    async def agent(task, env):
        await asyncio.sleep(1 + int(env.rng.integers(0, 5)))  # trials end out of launch order
        return env.trial_id

    # concurrency 2 keeps 64 trials in flight: the loop asks for more about 30 times
    result = run_campaign(Scenario(name="long", agent=agent, trials=2000, seed=4, concurrency=2,
                                   faults=Faults.none(), early_stop=False))
    assert [r.index for r in result.records] == list(range(2000))
    assert [r.output for r in result.records] == [f"trial-{i}" for i in range(2000)]


def test_trials_that_ran_before_the_loop_was_blocked_are_judged_not_timed_out():
    async def agent(task, env):
        if env.trial_id == "trial-1":
            await asyncio.sleep(0)  # trial 0 has ended by now, and waits for an idle moment to be judged
            threading.Event().wait(1.0)  # blocks the loop for real, past the wall-clock limit
        return "ok"

    result = run_campaign(Scenario(name="blocked", agent=agent, trials=6, seed=0, concurrency=2, timeout_s=0.3,
                                   faults=Faults.none(), early_stop=False, check=lambda w, out: out == "ok"))
    assert [r.outcome for r in result.records] == ["completed", "timed_out"] + ["completed"] * 4


def test_a_world_factory_that_hangs_while_trials_are_built_ahead_does_not_hang_the_session():
    calls = 0

    def world() -> dict:
        nonlocal calls
        calls += 1
        if calls == 4:  # built ahead, in an idle moment of the loop, while trials 0 and 1 wait
            while True:  # never returns (a pure-Python hang: the watchdog can interrupt it)
                pass
        return {}

    async def agent(task, env):
        await asyncio.sleep(5)
        return "ok"

    result = run_campaign(Scenario(name="stuck-world", agent=agent, world=world, trials=6, seed=0, concurrency=2,
                                   timeout_s=0.5, faults=Faults.none(), early_stop=False))
    # trial 3 hung while built ahead, blocking the loop: it is timed out (it never got as far as its world); trials
    # 0 and 1, stalled on that loop, are not out of time: they run again on a fresh loop with the rest (they
    # used to be timed out with it)
    assert [r.outcome for r in result.records] == ["completed"] * 3 + ["timed_out"] + ["completed"] * 2
    assert result.records[3].reason == "no result within the wall-clock limit"


def test_a_jobs_context_changes_do_not_reach_the_jobs_started_after_it(worker):
    """The next job starts as the last one ends (in its task's turn): from the worker's own context, not the
    ended job's, so a context variable an agent sets stays in its trial."""
    var: contextvars.ContextVar[str] = contextvars.ContextVar("agent_var", default="unset")
    seen: list[str] = []

    async def sets() -> None:
        seen.append(var.get())
        var.set("leaked")

    worker.limit = 1
    futures = [worker.put(sets) for _ in range(3)]
    worker.kick()
    for future in futures:
        future.result(5)
    assert seen == ["unset"] * 3


def test_a_jobs_task_starts_from_the_workers_context():
    """Each job's task starts from a copy of the context the worker was made in, whatever the job before it
    set there."""
    var: contextvars.ContextVar[str] = contextvars.ContextVar("made_in", default="unset")

    def make() -> LoopWorker:
        var.set("the worker's maker")
        return LoopWorker("test-loop-context")

    w = contextvars.copy_context().run(make)
    try:
        async def job() -> str:
            seen = var.get()
            var.set("changed by a job")
            return seen

        w.limit = 1
        futures = [w.put(job) for _ in range(3)]
        w.kick()
        assert [f.result(5) for f in futures] == ["the worker's maker"] * 3
    finally:
        w.close()


def test_a_job_cancelled_before_its_first_step_gives_its_slot_back(worker):
    started = threading.Event()

    async def waits() -> str:
        await asyncio.sleep(0)
        return "ran"

    worker.limit = 1
    first = worker.put(waits)
    second = worker.put(waits)
    worker.kick()
    assert first.result(5) == "ran" and second.result(5) == "ran"
    blocked = worker.put(waits)

    def start_and_cancel() -> None:  # on the loop: the task exists, then is cancelled before it ever ran
        worker._drive()
        worker.cancel_job(blocked)
        started.set()

    assert worker.call(start_and_cancel)
    assert started.is_set()
    with pytest.raises(cf.CancelledError):
        blocked.result(5)
    after = worker.put(waits)
    worker.kick()
    assert after.result(5) == "ran"  # the slot came back
    assert worker.running == 0


def test_a_job_task_cancelled_from_elsewhere_before_its_first_step_is_still_reported(worker):
    """A job's task reports its own end; one that never ran (cancelled by anyone, not only ``cancel_job``) is
    reported by its done callback, and its slot comes back."""
    async def waits() -> str:
        await asyncio.sleep(0)
        return "ran"

    worker.limit = 1
    doomed = worker.put(waits)

    def start_and_cancel_the_task() -> None:
        worker._drive()
        worker._tasks[doomed].task.cancel()  # e.g. an agent's thread cancelling every task of the loop

    assert worker.call(start_and_cancel_the_task)
    with pytest.raises(cf.CancelledError):
        doomed.result(5)
    after = worker.put(waits)
    worker.kick()
    assert after.result(5) == "ran" and worker.running == 0


def test_a_finished_job_leaves_no_done_callback_on_its_task(worker):
    tasks: list[asyncio.Task] = []
    called: list[object] = []
    job_done = worker._job_done
    worker._job_done = lambda job, task: (called.append(job), job_done(job, task))  # (bound as each job starts)

    async def job() -> int:
        tasks.append(asyncio.current_task())
        return 7

    worker.limit = 2
    futures = [worker.put(job) for _ in range(4)]
    worker.kick()
    assert [f.result(5) for f in futures] == [7] * 4
    assert worker.call(lambda: None)
    assert all(t.done() and not t.cancelled() for t in tasks)
    assert not worker._tasks and worker.running == 0
    assert called == []  # the done callback was removed as each job reported its own end: never called


def test_on_done_is_told_of_every_job_end_before_the_futures_own_callbacks(worker):
    told: list[tuple[str, object]] = []
    worker.on_done = lambda f: told.append(("on_done", f))

    async def job() -> str:
        return "ok"

    worker.limit = 1
    done = worker.put(job)
    done.add_done_callback(lambda f: told.append(("callback", f)))
    queued = worker.put(job)
    assert queued.cancel()  # from this thread, while queued
    worker.kick()
    assert done.result(5) == "ok"
    assert worker.call(lambda: None)
    assert told == [("on_done", queued), ("on_done", done), ("callback", done)]


def test_when_idle_is_called_only_with_no_ended_job_left_to_settle(worker):
    ended: list[int] = []
    settled: list[int] = []
    seen: list[tuple[list[int], list[int]]] = []

    def job(i: int):
        async def start() -> int:
            await asyncio.sleep(1 + i % 3)  # virtual: the loop is about to wait before each jump
            ended.append(i)
            return i

        return start

    worker.when_idle = lambda: seen.append((sorted(ended), sorted(settled)))
    worker.limit = 2
    futures = [worker.put(job(i), settle=lambda v: settled.append(v) or v) for i in range(6)]
    worker.kick()
    assert [f.result(5) for f in futures] == list(range(6))
    assert worker.call(lambda: None)
    assert len(seen) >= 3 and any(e for e, _ in seen)  # called while jobs ran, after some had ended
    assert all(e == s for e, s in seen)  # ... each time with every ended job settled first


def test_async_trials_leave_no_deadline_timer_on_the_loop_and_no_main_task_behind():
    """A trial's virtual deadline is a deferred timer: a trial that never lets the loop wait puts no timer on
    the loop's heap; and the trial's main task is no longer kept once the trial has ended."""
    from pytest_agentops.process import task_scope

    async def agent(task, env):
        loop = asyncio.get_running_loop()
        mine = asyncio.current_task() in asyncio.all_tasks()  # its own main task is listed as its own
        return f"{len(loop._scheduled)} {mine}"

    kept = dict(task_scope._main)  # (trials of other tests whose tasks were abandoned on a blocked loop)
    result = run_campaign(Scenario(name="no-timers", agent=agent, trials=40, seed=0, concurrency=4,
                                   virtual_timeout_s=60, faults=Faults.none(), early_stop=False))
    assert {r.output for r in result.records} == {"0 True"}
    assert task_scope._main.keys() <= kept.keys()


# --- the job future ------------------------------------------------------------------------------------------


def test_job_future_cancel_callbacks_and_results():
    lock = threading.Lock()
    calls: list[str] = []
    queued = JobFuture(lock)
    queued.add_done_callback(lambda f: calls.append("queued"))
    assert queued.cancel() and queued.cancelled() and queued.done() and queued.cancel()
    assert not queued.set_running_or_notify_cancel()
    with pytest.raises(cf.CancelledError):
        queued.result(0)

    running = JobFuture(lock)
    assert running.set_running_or_notify_cancel() and running.running()
    assert not running.cancel()  # started: only the loop can end it
    with pytest.raises(cf.TimeoutError):
        running.result(0.01)
    running.set_exception(ValueError("boom"))
    with pytest.raises(ValueError, match="boom"):
        running.result()
    assert isinstance(running.exception(), ValueError)
    running.add_done_callback(lambda f: calls.append("late"))  # done already: called at once

    waited = JobFuture(lock)
    waited.set_running_or_notify_cancel()
    threading.Timer(0.05, waited.set_result, ("ok",)).start()
    assert waited.result(5) == "ok"
    with pytest.raises(cf.InvalidStateError):
        waited.set_result("again")
    assert calls == ["queued", "late"]


def test_a_thread_worker_tells_on_done_of_every_jobs_end_in_order():
    worker = ThreadWorker("test-thread-worker")
    told = []
    worker.on_done = told.append
    ok = worker.submit(lambda: 1)
    failing = worker.submit(lambda: 1 / 0)
    assert ok.result(5) == 1 and isinstance(failing.exception(5), ZeroDivisionError)
    worker.close()
    worker.thread.join(5)
    assert told == [ok, failing]


def test_a_trial_found_late_as_it_ended_is_not_interrupted_nor_is_the_trial_its_worker_runs_next():
    """A review: under load, the watchdog found a trial past its wall-clock limit just as it ended; the interruption
    it raised into the worker's thread landed in the next trial that worker had started, which was recorded as an
    ``error``, "the agent raised TrialAbandoned ... itself: the harness decided nothing". A trial is interrupted only
    while it runs: the one that ended keeps its record, and the next one runs on undisturbed."""
    from pytest_agentops.engine import scheduler
    from pytest_agentops.precedence import resolve_run
    from pytest_agentops.vtime.real import real_sleep

    go = threading.Event()

    def agent(task, env):
        if env.trial_id == "trial-1":
            for _ in range(1000):  # (busy in Python, where an interruption lands: waits for the test to look)
                if go.is_set():
                    break
                real_sleep(0.01)
        return "done"

    scenario = Scenario(name="late-as-it-ended", agent=agent, check=lambda w, o: o == "done", trials=2, seed=1,
                        timeout_s=60)
    runner = scheduler.Runner(scenario, resolve_run(scenario, ()))
    try:
        first, second = runner.launch(0), runner.launch(1)  # (both queued on the one worker: concurrency 1)
        assert first.worker is second.worker
        first.future.result(30)
        deadline = time.monotonic() + 30
        while second.started is None and time.monotonic() < deadline:
            real_sleep(0.01)
        runner._flying = {0: first, 1: second}
        (late,) = runner.expire([first])  # the watchdog's call for a trial it found late just as it ended
        go.set()
        record = second.future.result(30)
        assert (record.outcome, record.reason) == ("completed", "")
        assert late.outcome == "completed" and not first.worker.retired
    finally:
        go.set()
        runner.close()


def test_sync_trials_wake_the_runner_themselves_not_through_the_lost_report_sweep(monkeypatch):
    """The sweep for lost reports is a safety net: every wait of the runner ends because a worker told it of a
    trial's end (``on_done``), none by running out (after which the sweep would take what had ended)."""
    from pytest_agentops.engine import scheduler

    monkeypatch.setattr(scheduler, "UNREPORTED_LOOK_S", 3600.0)  # (a wait runs out only at a trial's limit)
    waits = []
    wait = scheduler.Runner._wait
    monkeypatch.setattr(scheduler.Runner, "_wait", lambda self, timeout: waits.append(wait(self, timeout)) or waits[-1])
    result = run_campaign(Scenario(name="woken", agent=lambda task, env: "done", check=lambda w, o: o == "done",
                                   trials=40, seed=1, early_stop=False, timeout_s=30, concurrency=2))
    assert result.outcome_counts == {"completed": 40}
    assert waits and all(waits), [len(w) for w in waits]


def test_the_runners_wait_always_ends_by_its_timeout_even_when_nothing_comes():
    """Before Python 3.13, ``queue.SimpleQueue.get(timeout=t)`` can block until the next ``put``, however long that
    takes, when its deadline passes inside its own loop (a tiny ``t``, or the thread stalled at the wrong moment):
    seen as a campaign hung for good, its main thread waiting on a worker that had nothing left to run. The runner's
    wait, given tiny timeouts again and again on an empty queue whose lock the previous take left free (the state in
    which a SimpleQueue shows it), always comes back by itself; a watchdog ends any wait that does not (by putting
    something) and counts it."""
    from pytest_agentops.engine import scheduler
    from pytest_agentops.precedence import resolve_run

    scenario = Scenario(name="waits", agent=lambda task, env: "done", trials=1)
    runner = scheduler.Runner(scenario, resolve_run(scenario, ()))
    waiting_since: list[float] = []
    rescued = []
    stop = threading.Event()

    def watchdog() -> None:
        while not stop.wait(0.05):
            if waiting_since and time.monotonic() - waiting_since[0] > 1.0:
                rescued.append(1)
                runner._completed.put(cf.Future())  # (what a worker's report would do: it ends the wait)
                stop.wait(0.2)

    thread = threading.Thread(target=watchdog, daemon=True)
    thread.start()
    try:
        for _ in range(100_000):  # (a SimpleQueue hung in ~1.7 of 10,000 such waits on the CI machine, 3.10-3.12)
            runner._completed.put(cf.Future())
            runner._completed.get()  # (taken by a plain get: the queue empty again, a SimpleQueue's lock left free)
            waiting_since.append(time.monotonic())
            runner._wait(1e-9)
            waiting_since.clear()
            if rescued:
                break
    finally:
        stop.set()
        thread.join(5)
        runner.close()
    assert not rescued, "a wait of 1 ns on an empty queue blocked until something was put"
