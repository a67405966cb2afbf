"""An async trial's thread jobs take turns (``vtime.lanes``): the harness sees their calls in the order the trial
handed the jobs over, whatever order their threads run in.

Found by an outside review: with parallel calls of a sync tool on worker threads (pydantic-ai's sync tools,
``asyncio.to_thread``), the trace's order, which of two identical calls drew the fault, and which calls landed
before the agent gave up followed thread timing: the same seed gave other records and other report bytes, at
concurrency 1 as at 8.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import contextvars
import dataclasses
import hashlib
import threading
import time

import pytest

from pytest_agentops import Faults, Scenario, replay_trial, run_campaign, tool


@tool
def lookup(world, x: int) -> int:
    """Look up x."""
    return x


def _work(seed: int) -> None:
    """Some work in the job before its call (parsing, validation): jobs at once then race as their threads run."""
    digest = str(seed).encode()
    for _ in range(3000):
        digest = hashlib.sha256(digest).digest()


def _call(env, x: int, seed: int) -> object:
    _work(seed)
    try:
        return env.tools["lookup"](x)
    except Exception as exc:
        return type(exc).__name__


def _records(scenario: Scenario, concurrency: int) -> list[tuple]:
    return [(r.outcome, r.output, r.tool_calls, r.faults, tuple((e.kind, e.name, e.outcome, e.data.get("arguments"))
                                                                  for e in r.trace))
            for r in run_campaign(scenario, concurrency=concurrency).records]


def test_identical_parallel_calls_draw_their_faults_in_the_order_the_jobs_were_handed_over():
    """Four identical calls at once (each the n-th such call of the trial): which one fails depends on the order
    the trial handed its jobs over, never on the order their threads reached the harness."""

    async def agent(task, env):
        return repr(await asyncio.gather(*(asyncio.to_thread(_call, env, 7, i) for i in range(4))))

    scenario = Scenario(name="same-calls", agent=agent, task="t", tools=[lookup], check=lambda w, o: True,
                        faults=Faults(rate=0.3, mix={"error": 1.0}), trials=16, seed=3, early_stop=False)
    first = _records(scenario, 1)
    for concurrency in (1, 8, 8):
        assert _records(scenario, concurrency) == first
    assert replay_trial(scenario, 5).output == first[5][1]
    assert any("ToolError" in output for _, output, *_ in first)  # (faults fired: the order decided something)


def test_parallel_calls_are_traced_in_the_order_the_jobs_were_handed_over():
    async def agent(task, env):
        loop = asyncio.get_running_loop()
        jobs = [asyncio.to_thread(_call, env, x, x) for x in (1, 2)]
        jobs += [loop.run_in_executor(None, _call, env, x, x) for x in (3, 4)]
        return repr(await asyncio.gather(*jobs))

    scenario = Scenario(name="order", agent=agent, task="t", tools=[lookup], faults=Faults.none(), trials=12,
                        seed=5, early_stop=False)
    for concurrency in (1, 8):
        for record in run_campaign(scenario, concurrency=concurrency).records:
            calls = [e.data["arguments"]["x"] for e in record.trace if e.kind == "tool_call"]
            assert calls == [3, 4, 1, 2], record.index  # (``run_in_executor`` hands over at once; ``to_thread``
            # when gather starts its coroutine)


def test_a_job_waiting_for_its_turn_never_runs_once_cancelled_or_once_the_agent_has_returned():
    ran: list[tuple[int, int]] = []

    def job(env, n: int) -> int:
        _work(n)
        ran.append((env.seed, n))
        return env.tools["lookup"](n)

    async def agent(task, env):
        first = asyncio.ensure_future(asyncio.to_thread(job, env, 1))
        second = asyncio.ensure_future(asyncio.to_thread(job, env, 2))
        left = asyncio.ensure_future(asyncio.to_thread(job, env, 3))  # the agent returns before its turn
        left.add_done_callback(lambda _: None)
        await asyncio.sleep(0)
        second.cancel()  # cancelled while it waits for the first
        return await first

    scenario = Scenario(name="left", agent=agent, task="t", tools=[lookup], faults=Faults.none(), trials=10,
                        seed=2, early_stop=False)
    for concurrency in (1, 8):
        ran.clear()
        records = run_campaign(scenario, concurrency=concurrency).records
        assert [(r.outcome, r.tool_calls) for r in records] == [("completed", 1)] * 10
        assert sorted(n for _, n in ran) == [1] * 10


def test_jobs_that_wait_for_each_other_wait_the_lanes_patience_then_run_at_once():
    """The price of taking turns: a job that waits for a later job of its trial holds the turn until the lane's
    patience runs out (``PATIENCE_S``); then the lane opens and the trial's jobs run at once, as before."""
    from pytest_agentops.vtime.lanes import PATIENCE_S

    async def agent(task, env):
        signal = threading.Event()
        return repr(await asyncio.gather(asyncio.to_thread(signal.wait, 10), asyncio.to_thread(signal.set)))

    scenario = Scenario(name="each-other", agent=agent, task="t", faults=Faults.none(), trials=1, seed=1,
                        timeout_s=10)
    start = time.monotonic()
    [record] = run_campaign(scenario).records
    assert (record.outcome, record.output) == ("completed", "[True, None]")
    assert time.monotonic() - start >= PATIENCE_S


def test_pydantic_ai_parallel_sync_tool_calls_give_the_same_records_at_any_concurrency():
    """The review's case through the real SDK: the model asks for four calls of a sync tool at once, which
    pydantic-ai runs on anyio's worker threads."""
    pai = pytest.importorskip("pydantic_ai")
    from pydantic_ai.messages import ModelResponse, RetryPromptPart, TextPart, ToolCallPart, ToolReturnPart
    from pydantic_ai.models.function import FunctionModel

    def lookup_order(world, order_id: int) -> str:
        """Look up an order."""
        _work(order_id)
        return f"order {order_id}: paid"

    def model(messages, info):
        if len(messages) == 1:
            return ModelResponse(parts=[ToolCallPart("lookup_order", {"order_id": i}, tool_call_id=f"c{i}")
                                        for i in (1, 2, 3, 4)])
        parts = [p for m in messages for p in getattr(m, "parts", ())
                 if isinstance(p, (ToolReturnPart, RetryPromptPart))]
        return ModelResponse(parts=[TextPart(" | ".join(type(p).__name__ for p in parts))])

    async def agent(task, env):
        runner = pai.Agent(FunctionModel(model), tools=[pai.Tool(env.tools["lookup_order"], max_retries=0)])
        try:
            return (await runner.run(task)).output
        except Exception as exc:
            return type(exc).__name__

    scenario = Scenario(name="pai", agent=agent, task="look up orders 1-4", tools=[tool(lookup_order)],
                        check=lambda w, o: True, faults=Faults.profile("high"), trials=12, seed=3,
                        early_stop=False)
    first = _records(scenario, 1)
    assert _records(scenario, 1) == first
    assert _records(scenario, 8) == first
    assert len({r[2] for r in first}) > 1  # (faults ended some runs early: how many calls landed is decided)


def test_a_job_that_runs_a_loop_of_its_own_hands_that_loops_jobs_over_without_waiting_for_a_turn():
    """A sync tool run with ``asyncio.to_thread`` that runs async code on a loop of its own (as sync wrappers of
    async libraries do; here a virtual-time loop, whose jobs would take turns): the jobs of that inner loop do
    not wait for the turn the outer job holds (they would wait for ever: a timed-out trial where the agent did
    nothing wrong). (``asyncio.run`` makes a plain loop, whose jobs never take turns.)"""
    from pytest_agentops.vtime.loop import run_virtual

    def sync_wrapper(env) -> int:
        async def inner():
            return await asyncio.gather(asyncio.to_thread(env.tools["lookup"], 1), asyncio.to_thread(pow, 2, 3))
        return sum(run_virtual(inner()) + asyncio.run(inner()))

    async def agent(task, env):
        return str(await asyncio.to_thread(sync_wrapper, env))

    scenario = Scenario(name="inner-loop", agent=agent, task="t", tools=[lookup], faults=Faults.none(), trials=3,
                        seed=1, timeout_s=5)
    assert [(r.outcome, r.output) for r in run_campaign(scenario).records] == [("completed", "18")] * 3


# -- a review of the first version: shapes of agents that worked before and must keep working --------------------
async def _cancelled_before_it_started(task, env):
    """A job cancelled while queued (langgraph cancels a sync node's ``run_in_executor`` job when a sibling
    fails): it still runs to its end once handed over, and the next job gets the turn (it kept it for ever)."""
    queued = asyncio.ensure_future(asyncio.to_thread(time.sleep, 0.01))
    await asyncio.sleep(0)
    queued.cancel()
    return str(await asyncio.to_thread(env.tools["lookup"], 5))


async def _calls_back_into_the_loop(task, env):
    """A job that runs async code on the trial's loop (``run_coroutine_threadsafe``, ``anyio.from_thread.run``)
    whose own thread job would wait for the turn the first one holds."""
    import anyio.from_thread
    import anyio.to_thread

    async def read_config() -> str:
        return await asyncio.to_thread(lambda: "cfg")

    loop = asyncio.get_running_loop()
    first = await asyncio.to_thread(lambda: asyncio.run_coroutine_threadsafe(read_config(), loop).result(20))
    second = await anyio.to_thread.run_sync(lambda: anyio.from_thread.run(read_config))
    return first + second


async def _background_job(task, env):
    """A job that runs for the agent's whole life (a watcher): the jobs after it wait at most the lane's patience,
    asyncio's own name lookups not at all."""
    stop = threading.Event()
    watcher = asyncio.ensure_future(asyncio.to_thread(stop.wait, 30))
    await asyncio.sleep(0)
    try:
        infos = await asyncio.get_running_loop().getaddrinfo("localhost", 80)
        return str(await asyncio.to_thread(env.tools["lookup"], len(infos) > 0))
    finally:
        stop.set()
        await watcher


async def _polls_without_waiting(task, env):
    """A task that polls with ``asyncio.sleep(0)``: the loop never has an idle moment to pass the turn on in."""
    first = asyncio.ensure_future(asyncio.to_thread(sum, [1, 2]))
    second = asyncio.ensure_future(asyncio.to_thread(sum, [3, 4]))
    for job in (first, second):
        while not job.done():
            await asyncio.sleep(0)
    return str(first.result() + second.result())


_SHUT = concurrent.futures.ThreadPoolExecutor(1)
_SHUT.shutdown()


async def _falls_back_from_a_shut_pool(task, env):
    """``run_in_executor`` on a shut-down pool raises at the call (asyncio's contract), turn or no turn."""
    loop = asyncio.get_running_loop()
    other = asyncio.ensure_future(asyncio.to_thread(sum, [1]))
    await asyncio.sleep(0)
    try:
        job = loop.run_in_executor(_SHUT, sum, [1, 2])
    except RuntimeError:
        job = loop.run_in_executor(None, sum, [1, 2])
    return str(await job + await other)


async def _pool_shut_with_its_queue(task, env):
    pool = concurrent.futures.ThreadPoolExecutor(1)
    pool.submit(time.sleep, 0.05)
    job = asyncio.get_running_loop().run_in_executor(pool, sum, [1, 2])
    await asyncio.sleep(0)
    pool.shutdown(wait=False, cancel_futures=True)
    with contextlib.suppress(asyncio.CancelledError):
        await job
    return str(await asyncio.to_thread(sum, [3, 4]))


@pytest.mark.parametrize(("agent", "output"), [
    (_cancelled_before_it_started, "5"), (_calls_back_into_the_loop, "cfgcfg"), (_background_job, "True"),
    (_polls_without_waiting, "10"), (_falls_back_from_a_shut_pool, "4"), (_pool_shut_with_its_queue, "7"),
], ids=lambda v: v.__name__.strip("_") if callable(v) else None)
def test_agents_whose_jobs_cancel_call_back_run_long_or_poll_complete_as_before(agent, output, monkeypatch):
    from pytest_agentops.vtime import lanes

    monkeypatch.setattr(lanes, "PATIENCE_S", 0.2)  # (the watcher and the polling agent wait it out: kept short)
    scenario = Scenario(name="shapes", agent=agent, task="t", tools=[lookup], faults=Faults.none(), trials=2,
                        seed=1, timeout_s=10, early_stop=False)
    for concurrency in (1, 2):
        records = run_campaign(scenario, concurrency=concurrency).records
        assert [(r.outcome, r.output) for r in records] == [("completed", output)] * 2, records[0].reason


@dataclasses.dataclass
class _Search:
    """A tool object that cannot be hashed (a dataclass with ``__call__``)."""

    index: str = "docs"

    def __call__(self, query: str) -> str:
        return f"{self.index}:{query}"


async def _unhashable_callable(task, env):
    return await asyncio.get_running_loop().run_in_executor(None, _Search(), "q")


async def _pool_shut_after_its_jobs_were_handed_over(task, env):
    """The jobs handed to a pool before ``shutdown(wait=False)`` still run (``concurrent.futures``), also those
    waiting for their turn when it was shut down."""
    loop = asyncio.get_running_loop()
    pool = concurrent.futures.ThreadPoolExecutor(3)
    jobs = [loop.run_in_executor(pool, env.tools["lookup"], i) for i in range(3)]
    pool.shutdown(wait=False)
    found = await asyncio.gather(*jobs)
    return repr(found + await asyncio.gather(*(asyncio.to_thread(env.tools["lookup"], i) for i in (3, 4))))


@pytest.mark.parametrize(("agent", "output"), [
    (_unhashable_callable, "docs:q"), (_pool_shut_after_its_jobs_were_handed_over, "[0, 1, 2, 3, 4]"),
], ids=lambda v: v.__name__.strip("_") if callable(v) else None)
def test_a_second_reviews_agents_complete_as_before(agent, output):
    scenario = Scenario(name="shapes-2", agent=agent, task="t", tools=[lookup], faults=Faults.none(), trials=2,
                        seed=1, timeout_s=10, early_stop=False)
    assert [(r.outcome, r.output) for r in run_campaign(scenario).records] == [("completed", output)] * 2


def _stuck_trials(trials: int, stuck: set[int], *, wait: bool, concurrency: int) -> list[tuple]:
    """Records of a campaign whose trials in ``stuck`` hand over a thread job that does not return for as long as
    the campaign runs (awaited when ``wait``, else left running as the agent returns), the others sleeping on
    virtual time around a quick job."""
    release = threading.Event()

    def fetch(env, hang: bool) -> int:
        if hang:
            release.wait(30)
        return env.tools["lookup"](1)

    async def agent(task, env):
        hang = int(env.trial_id.rpartition("-")[2]) in stuck
        await asyncio.sleep(1)
        if hang and not wait:
            asyncio.get_running_loop().run_in_executor(None, release.wait, 30)  # (left running)
            return "left"
        found = await asyncio.to_thread(fetch, env, hang)
        await asyncio.sleep(2)
        return str(found)

    scenario = Scenario(name="stuck-job", agent=agent, task="t", tools=[lookup], faults=Faults.none(), trials=trials,
                        seed=1, timeout_s=1, early_stop=False)
    try:
        return [(r.index, r.outcome, r.output, r.duration_s) for r in run_campaign(scenario, concurrency=concurrency)
                .records]
    finally:
        release.set()


def test_a_stuck_job_its_trial_gave_up_on_does_not_stop_the_clock_of_the_trials_after_it():
    """A second review: a job kept running after its trial was timed out (a sync call stuck for its own long
    timeout) counted as work the loop waits for, so virtual time stood still for every trial on the loop: each
    later trial's ``asyncio.sleep`` never ended, and all timed out."""
    records = _stuck_trials(5, {0}, wait=True, concurrency=1)
    assert [r[1] for r in records] == ["timed_out"] + ["completed"] * 4


@pytest.mark.parametrize("concurrency", [4, 12])
def test_a_job_that_never_returns_times_out_its_own_trial_and_not_the_ones_beside_it(concurrency):
    """A trial's thread job that does not return (a tool's call with no timeout) keeps virtual time still for every
    trial on the loop; the trials beside it, held up, timed out with it, which ones depending on the concurrency
    (at 8: 2 of 12 completed, at 1: 8 of 12). Time held up by other trials' jobs no longer counts against a
    trial's limit: the same records at any concurrency, the stuck trials alone timed out."""
    records = _stuck_trials(12, {0, 5}, wait=True, concurrency=concurrency)
    assert records == _stuck_trials(12, {0, 5}, wait=True, concurrency=1)
    assert [r[1] for r in records] == ["timed_out" if r[0] in (0, 5) else "completed" for r in records]
    assert {r[3] for r in records if r[1] == "completed"} == {3.0}


def test_a_job_left_running_as_the_agent_returns_does_not_stop_virtual_time():
    """A thread job the agent left running as it returned (never awaited, never returning) kept virtual time still
    for every trial on the loop, which all timed out; the loop no longer waits for a job of a trial whose agent
    has returned (nothing it does can change that trial's record)."""
    records = _stuck_trials(6, {0}, wait=False, concurrency=6)
    assert [r[1:3] for r in records] == [("completed", "left")] + [("completed", "1")] * 5


def test_jobs_that_work_for_tens_of_milliseconds_keep_their_order_at_high_concurrency():
    """A second review: the patience counted a job's wait in the executor's queue (6 threads for 32 trials' jobs),
    so at concurrency 64 lanes opened and records differed; it counts from the job's start now."""

    def call(env, i: int) -> str:
        _work(8000 + i)
        try:
            return f"{i}:{env.tools['lookup'](7)}"
        except Exception as exc:
            return f"{i}:{type(exc).__name__}"

    async def agent(task, env):
        return repr(await asyncio.gather(*(asyncio.to_thread(call, env, i) for i in range(4))))

    scenario = Scenario(name="busy-jobs", agent=agent, task="t", tools=[lookup], check=lambda w, o: True,
                        faults=Faults(rate=0.5, mix={"error": 1.0}), trials=24, seed=3, early_stop=False)
    first = _records(scenario, 1)
    assert _records(scenario, 64) == first


def test_a_job_that_works_keeps_its_turn_past_the_patience_one_that_waits_does_not(monkeypatch):
    """A third review: the patience was real time, so a job computing for longer than it, which a loaded machine
    (or concurrency 8 on two cores) made of a 0.25 s job, opened the lane: which of two calls drew the fault
    differed between runs and from the replay. The patience counts the time a job does no work in its thread
    (its thread's CPU time stands still: a wait for a slow call, for another job); one working all along opens
    the lane only past ``LONGEST_HOLD_S``."""
    from pytest_agentops.vtime import lanes

    # (below the first job's work, which used to open the lane; above a loaded machine's pauses of a thread: at
    # 0.1 s, three trials' working threads sharing the interpreter's lock on two cores loaded by three other
    # processes left one of them without CPU for longer, once in a full run)
    monkeypatch.setattr(lanes, "PATIENCE_S", 0.3)

    def first(env, how: str) -> str:
        if how == "works":
            spent = time.thread_time()
            while time.thread_time() - spent < 0.5:  # 0.5 s of its thread's CPU, however long that takes
                _work(0)
        else:
            threading.Event().wait(0.6)  # a slow call: its thread waits, using no CPU
        return f"first:{env.tools['lookup'](1)}"

    def second(env) -> str:
        return f"second:{env.tools['lookup'](2)}"

    def scenario(how: str) -> Scenario:
        async def agent(task, env):
            return repr(await asyncio.gather(asyncio.to_thread(first, env, how), asyncio.to_thread(second, env)))

        return Scenario(name=f"first-{how}", agent=agent, task="t", tools=[lookup], faults=Faults.none(), trials=3,
                        seed=1, early_stop=False, timeout_s=30)

    def calls(record) -> list[int]:
        return [e.data["arguments"]["x"] for e in record.trace if e.kind == "tool_call"]

    for concurrency in (1, 3):
        assert [calls(r) for r in run_campaign(scenario("works"), concurrency=concurrency).records] == [[1, 2]] * 3
        assert [calls(r) for r in run_campaign(scenario("waits"), concurrency=concurrency).records] == [[2, 1]] * 3

    # a job working all along while it waits for a later job (a poll in a loop) opens the lane past LONGEST_HOLD_S
    monkeypatch.setattr(lanes, "LONGEST_HOLD_S", 0.3)

    async def polling(task, env):
        done = threading.Event()

        def poll() -> str:
            while not done.is_set():
                _work(10)
            return "polled"

        return repr(await asyncio.gather(asyncio.to_thread(poll), asyncio.to_thread(done.set)))

    [record] = run_campaign(Scenario(name="poll", agent=polling, task="t", faults=Faults.none(), trials=1, seed=1,
                                     timeout_s=30)).records
    assert (record.outcome, record.output) == ("completed", "['polled', None]")


def test_a_job_handed_over_as_a_contexts_run_calls_back_into_the_loop_without_waiting(monkeypatch):
    """A third review: ``run_in_executor(pool, ctx.run, fn)`` (pydantic-ai's ``using_thread_executor``) ran the job
    in the caller's context, which still held the trial's lane: what the job called back into the loop waited
    for the turn the job itself held, until the lane opened (1 s a trial, then unordered)."""
    from pytest_agentops.vtime import lanes

    opened = []
    monkeypatch.setattr(lanes.JobLane, "open", lambda self: opened.append(self))

    async def read_config() -> str:
        return await asyncio.to_thread(lambda: "cfg")

    def sync_tool(loop) -> str:
        return asyncio.run_coroutine_threadsafe(read_config(), loop).result(20)

    async def agent(task, env):
        loop = asyncio.get_running_loop()
        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            return await loop.run_in_executor(pool, contextvars.copy_context().run, sync_tool, loop)

    scenario = Scenario(name="ctx-run", agent=agent, task="t", faults=Faults.none(), trials=3, seed=1, timeout_s=10)
    assert [(r.outcome, r.output) for r in run_campaign(scenario).records] == [("completed", "cfg")] * 3
    assert opened == []


async def _isolated_parallel_agent(task, env):
    async def one(x):
        return await asyncio.to_thread(_call, env, 7, x)
    return repr(await asyncio.gather(*(one(x) for x in range(4))))


def test_an_isolated_async_agents_thread_jobs_take_turns_as_in_process():
    """A third review: in an isolated agent's process, the agent's loop had no lane: parallel sync tools' calls
    reached the parent in their threads' order, and 7 of 12 traces differed between two runs of one seed."""
    records = {}
    for isolation in ("none", "process", "process"):
        scenario = Scenario(name="iso-lanes", agent=_isolated_parallel_agent, task="t", tools=[lookup],
                            faults=Faults(rate=0.4, mix={"error": 1.0}), trials=6, seed=3, early_stop=False,
                            timeout_s=60, isolation=isolation)
        records.setdefault(isolation, []).append(_records(scenario, 1))
    assert records["process"][0] == records["process"][1] == records["none"][0]
