"""The trial loop: seeding, running sync and async agents, per-trial limits, sequential stopping.

Seeds: one ``numpy.random.SeedSequence`` per campaign; trial ``i`` gets the child with spawn key
``(i,)`` (what ``SeedSequence.spawn`` would give), reduced to one 63-bit integer: the trial seed, from
which everything in the trial is drawn. Trial ``i`` is therefore the same whatever the trial count or
concurrency, and ``replay=i`` re-runs exactly it.

Results are consumed in launch order: verdicts at a look use trials ``0..n-1`` only, whatever finished
first, so early stopping is not biased toward fast (often successful) trials.

Where trials run: the main thread launches trials (up to the next look) and watches the wall clock. A sync
trial is built, run and judged in one of ``concurrency`` worker threads; an async one on the one
``VirtualTimeLoop`` thread, where a driver starts queued trials as others end and builds and judges them
in the loop's idle moments (``workers.LoopWorker``). Either way the main thread is woken once per batch,
not per trial.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures as cf
import contextlib
import functools
import inspect
import queue
import threading
import time
import traceback
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from . import stats
from .env import Env
from .errors import ConfigError, TrialAborted
from .expect import evaluate
from .faults import FaultPlan, Faults
from .gc_hold import campaign_gc
from .harness.anyio_threads import track_anyio_threads
from .harness.budget import attach_budget  # budget layer
from .harness.clock import enter_clock, exit_clock, time_patch
from .harness.context import TrialContext
from .harness.crash import check_crash_setup, crash_layer, resolve_state  # crash layer
from .harness.deadline import watch_virtual_deadline
from .harness.escalation import attach_escalation, unrecovered_fault_onset
from .harness.state import CampaignState, trial_state  # state layer
from .harness.tools import bind_tool
from .harness.trial_random import TrialRandom, enter_random, exit_random
from .llm.boundary import campaign_hold, open_boundary  # model boundary
from .metrics import collect
from .records import TrialRecord
from .result import CampaignResult
from .scenario import Scenario
from .workers import LoopWorker, ThreadWorker, TrialAbandoned

DEFAULT_PROFILE = "mid"
_wall = time.perf_counter  # captured at import: never the virtual clock


def trial_seed(campaign_seed: int, index: int) -> int:
    """The seed of trial ``index`` of the campaign seeded ``campaign_seed``."""
    words = np.random.SeedSequence(campaign_seed, spawn_key=(index,)).generate_state(2, np.uint32)
    return (int(words[0]) << 31) ^ int(words[1])


def fresh_seed() -> int:
    """A new random campaign seed (printed, so that the run can be repeated)."""
    return int(np.random.SeedSequence().generate_state(1, np.uint32)[0])


@dataclass(frozen=True, slots=True)
class RunSettings:
    """How one campaign is run, after every source of settings (scenario, marker, CLI) is resolved."""

    seed: int
    trials: int
    faults: Faults
    confidence: float = 0.95
    concurrency: int = 1
    early_stop: bool = True
    replay: int | None = None
    smoke: bool = False

    @classmethod
    def resolve(cls, scenario: Scenario, *, seed: int | None = None, trials: int | None = None,
                faults: Faults | None = None, profile: str | None = None, confidence: float | None = None,
                concurrency: int | None = None, early_stop: bool | None = None, replay: int | None = None,
                smoke: bool = False) -> RunSettings:
        """Explicit arguments win over the scenario's own values; a run with no seed anywhere gets a fresh one."""
        chosen = faults or scenario.faults or Faults.profile(profile or DEFAULT_PROFILE)
        if profile and faults is None and scenario.faults is not None:
            chosen = scenario.faults.with_profile(profile)
        if smoke:
            chosen = Faults.none()
        n = trials if trials is not None else scenario.trials
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ConfigError(f"trials={n!r} must be a whole number >= 1")
        if replay is not None and (isinstance(replay, bool) or not isinstance(replay, int) or replay < 0):
            raise ConfigError(f"replay={replay!r} must be a trial index >= 0")
        s = seed if seed is not None else scenario.seed
        return cls(seed=fresh_seed() if s is None else int(s), trials=1 if smoke else n, faults=chosen,
                   confidence=confidence or scenario.confidence,
                   concurrency=concurrency or scenario.concurrency,
                   early_stop=scenario.early_stop if early_stop is None else early_stop,
                   replay=replay, smoke=smoke)


class _LoopOrigin:
    """The loop time at which an async trial started: its clock reads loop time since then."""

    __slots__ = ("loop", "t0", "t1")

    def __init__(self, loop: Any):
        self.loop = loop
        self.t0: float | None = None
        self.t1: float | None = None  # when the task ended: the shared loop's time moves on for other trials

    def start(self) -> None:
        self.t0 = self.loop.time()

    def stop(self) -> None:
        if self.t0 is not None and self.t1 is None:
            self.t1 = self.loop.time()

    def elapsed(self) -> float:
        if self.t0 is None:
            return 0.0
        end = self.loop.time() if self.t1 is None else self.t1
        # to the microsecond: the loop's float time depends on when the trial started (float rounding at
        # different magnitudes), its elapsed time must not, so that records match at any concurrency
        return round(end - self.t0, 6)


class _Trial:
    """One launched trial: its context, the agent call in flight, and when it started."""

    def __init__(self, scenario: Scenario, index: int, campaign_seed: int, faults: Faults,
                 state: CampaignState | None = None):
        self.index = index
        self.campaign_seed = campaign_seed
        self.scenario = scenario
        self.faults = faults
        self.state = state
        self.ctx: TrialContext | None = None  # type: ignore[assignment]
        self.future: cf.Future[Any] | None = None
        self.started: float | None = None  # wall time the agent started (a queued trial has not)
        self.ran = False  # the agent's run is over (an async trial may then wait for an idle moment to be judged)
        self.building: float | None = None  # wall time an async trial's building ahead began (``warm``)
        self.worker: ThreadWorker | LoopWorker | None = None
        self._record: TrialRecord | None = None
        self.boundary: Any = None
        self._origin: _LoopOrigin | None = None  # an async trial's loop-time origin, once built
        self._build_error: Exception | None = None  # what building an async trial raised
        self._finish_lock = threading.Lock()

    @functools.cached_property
    def seed(self) -> int:
        """The trial seed, worked out where the trial is built (launching a trial is then cheap)."""
        return trial_seed(self.campaign_seed, self.index)

    def prepare(self) -> None:
        """Build the trial's world, harness layers and env (in the thread that will run the agent)."""
        scenario, index, seed, faults = self.scenario, self.index, self.seed, self.faults
        state = self.state
        clock_source = self._origin.elapsed if self._origin is not None else None  # async: the loop's time
        specs = scenario.tool_specs
        try:
            with _outside_loop():
                world = scenario.world() if scenario.world is not None else None
        except Exception as exc:
            raise ConfigError(f"world factory {scenario.world!r} raised {type(exc).__name__}: {exc}") from exc
        self.ctx = TrialContext(
            scenario=scenario.name, index=index, seed=seed, world=world,
            plan=FaultPlan.draw(seed, faults, tuple(s.name for s in specs)), approver=scenario.approver,
            enforce=scenario.enforce, scopes=scenario.scopes, prices=_prices(scenario),
            virtual_timeout_s=scenario.virtual_timeout_s, clock_source=clock_source)
        self.ctx.budget = attach_budget(self.ctx, scenario.budget)  # budget layer: circuit breaker on the meter
        self.ctx.escalation_layer = attach_escalation(self.ctx, scenario.escalation)  # escalation triggers
        if self.ctx.plan.outage_tool:
            self.ctx.trace.add("fault", self.ctx.plan.outage_tool, "outage", scope="trial")
        tools = {spec.name: bind_tool(spec, self.ctx) for spec in specs}
        self.task = scenario.tasks[index % len(scenario.tasks)]
        self.boundary = open_boundary(scenario.llm, self.ctx)  # model boundary: env.llm, HTTP faults (llm/)
        state = state or CampaignState(resolve_state(scenario.state, faults))  # state layer: the trial's store
        store = trial_state(state, self.ctx)
        self.env = Env(self.ctx, tools, self.task, llm=self.boundary.endpoint if self.boundary else None,
                       state=store)
        self.agent = crash_layer(self.ctx, scenario.agent, faults, store, state.spec)  # crash layer: restarts
        self.random = TrialRandom(seed)  # what the stdlib ``random`` functions draw from inside the trial

    def run_sync(self) -> TrialRecord:
        """In a worker thread: build, run and judge the whole trial, so the worker goes straight on to the
        next queued trial without waiting for the main thread (which only watches the wall clock)."""
        self.started = _wall()  # the wall-clock limit covers building the world too
        self.prepare()
        try:
            output = self.call_sync()
        except BaseException as exc:
            return self.finish(exc=exc)
        return self.finish(output=output)

    def warm(self) -> None:
        """On the loop, before the trial starts (in an idle moment if there is one): build it. Never raises:
        ``run_async`` raises what building raised."""
        if self._origin is not None:
            return
        self._origin = _LoopOrigin(asyncio.get_running_loop())
        self.building = _wall()  # a world factory that hangs is caught by the wall-clock limit too
        try:
            self.prepare()
        except Exception as exc:
            self._build_error = exc
        finally:
            self.building = None

    async def run_async(self) -> tuple[Any, BaseException | None]:
        """As a task on the shared loop: run the agent (building the trial first unless ``warm`` did).
        Returns how it ended, which ``settle_async`` judges, in the loop's next idle moment."""
        self.started = _wall()  # the wall-clock limit covers building the world too
        self.warm()
        if self._build_error is not None:
            raise self._build_error
        assert self._origin is not None
        try:
            return await self.call_async(self._origin), None
        except BaseException as exc:  # CancelledError too: the virtual deadline or the watchdog ended it
            return None, exc
        finally:
            self.ran = True  # within its limit: the wall clock no longer counts for it

    def settle_async(self, ended: tuple[Any, BaseException | None]) -> TrialRecord:
        """On the loop, after the trial ran: judge it."""
        output, exc = ended
        return self.finish(output=output, exc=exc)

    def call_sync(self) -> Any:
        """Run a sync agent in the current (worker) thread, on the trial's virtual clock (the runner holds
        the time stand-ins for the whole campaign)."""
        token, random_token = enter_clock(self.ctx.clock), enter_random(self.random)
        try:
            output = self.agent(self.task, self.env)
            if inspect.isawaitable(output):  # a sync callable that returned a coroutine
                from .harness.clock import run_virtual
                output = run_virtual(output)
            return output
        finally:
            exit_random(random_token)
            exit_clock(token)

    async def call_async(self, origin: _LoopOrigin) -> Any:
        """Run an async agent as a task on the shared virtual-time loop, on the trial's clock."""
        origin.start()
        deadline = watch_virtual_deadline(self.ctx)  # the virtual time limit, as a loop timer
        token, random_token = enter_clock(self.ctx.clock), enter_random(self.random)
        try:
            return await self.agent(self.task, self.env)
        finally:
            exit_random(random_token)
            exit_clock(token)
            if deadline is not None:
                deadline.cancel()
            origin.stop()

    def counting_since(self) -> float | None:
        """Wall time since which the trial counts against its wall-clock limit: since it started, or since
        it began to be built ahead; None while queued and once its run is over."""
        if self.ran:
            return None
        return self.started if self.started is not None else self.building

    def finish(self, output: Any = None, exc: BaseException | None = None) -> TrialRecord:
        """Turn how the agent ended into a TrialRecord (judging the world with the scenario's check).

        Called once by whichever comes first, the agent's thread or the runner's watchdog; later calls get
        the same record."""
        with self._finish_lock:
            if self._record is None:
                self._record = self._judge(output, exc)
                # the record holds what is kept: the world, env and harness go now, not with the campaign
                self.ctx = self.env = self.agent = self.boundary = self.random = None  # type: ignore[assignment]
            return self._record

    def _judge(self, output: Any, exc: BaseException | None) -> TrialRecord:
        ctx = self.ctx
        if ctx is None:  # never got as far as building its world
            return TrialRecord(scenario=self.scenario.name, index=self.index, seed=self.seed,
                               outcome="timed_out" if exc is None else "error",
                               reason=_describe(exc) if exc else "no result within the wall-clock limit")
        if self.boundary is not None:  # model boundary: remove the trial's routes, record context_utilization
            self.boundary.close()
        aborted = ctx.aborted
        if aborted is None and ctx.escalation_layer is not None \
                and not isinstance(exc, (TrialAborted, TrialAbandoned)):  # a trigger fired, no harness call since
            exc = ctx.escalation_layer.settle(exc)
        reason = ""
        if aborted is not None:
            outcome, reason = aborted.outcome, aborted.reason
        elif isinstance(exc, TrialAborted):
            outcome, reason = exc.outcome, exc.reason
        elif isinstance(exc, TrialAbandoned):
            outcome, reason = "timed_out", "abandoned after the wall-clock limit"
        elif exc is not None:
            outcome, reason = "error", _describe(exc)
        elif self.scenario.check is None:
            outcome = "completed"
        else:
            try:
                with _outside_loop():
                    passed = self.scenario.check(ctx.world, output)
                outcome = "completed" if passed else "failed"
                if outcome == "failed":
                    reason = "check(world, output) returned False"
            except Exception as check_exc:
                outcome, reason = "error", f"check raised {_describe(check_exc)}"
        ctx.trace.add("outcome", self.scenario.name, outcome, reason=reason)
        events = ctx.trace.close()
        faults = tuple(f"{e.name}:{e.outcome}" for e in events if e.kind == "fault")
        return TrialRecord(
            scenario=self.scenario.name, index=self.index, seed=self.seed, outcome=outcome, reason=reason,
            input_tokens=ctx.meter.input_tokens, output_tokens=ctx.meter.output_tokens,
            cost_usd=ctx.meter.cost_usd, tool_calls=ctx.tool_calls, tool_failures=ctx.tool_failures,
            destructive_attempts=ctx.destructive_attempts, unconfirmed_destructive=ctx.unconfirmed_destructive,
            blocked_calls=ctx.blocked, escalated_at_s=ctx.escalation[0] if ctx.escalation else None,
            unrecovered_fault_s=unrecovered_fault_onset(events),
            duration_s=ctx.clock.monotonic(), faults=faults,
            violations=tuple(ctx.violations), output=_short_repr(output), extra=dict(ctx.extra), trace=events)


@contextlib.contextmanager
def _outside_loop() -> Iterator[None]:
    """Run user code that is not the agent (the world factory, the check) outside the trial loop, though on
    its thread: as anywhere else, it may run a loop of its own (``asyncio.run(seed_database())``)."""
    loop = asyncio._get_running_loop()
    if loop is None:
        yield
        return
    asyncio._set_running_loop(None)
    try:
        yield
    finally:
        asyncio._set_running_loop(loop)


def _prices(scenario: Scenario) -> Any:
    from .harness.budget import price_table
    return price_table(scenario.prices)


def _describe(exc: BaseException) -> str:
    frames = traceback.extract_tb(exc.__traceback__)
    where = f" at {frames[-1].filename.rsplit('/', 1)[-1]}:{frames[-1].lineno}" if frames else ""
    return f"{type(exc).__name__}: {exc}{where}"


def _short_repr(value: Any, limit: int = 200) -> str:
    if value is None:
        return ""
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


class Runner:
    """Runs trials of one scenario with bounded concurrency and wall-clock protection."""

    def __init__(self, scenario: Scenario, settings: RunSettings):
        self.scenario = scenario
        self.settings = settings
        self.is_async = inspect.iscoroutinefunction(scenario.agent) or \
            inspect.iscoroutinefunction(type(scenario.agent).__call__)
        self._threads: list[ThreadWorker] = []
        self._load: dict[ThreadWorker, int] = {}  # trials queued on or running in each worker thread
        self._loop: LoopWorker | None = None
        # futures put here by the thread that completes them: waiting costs O(1), not O(concurrency)
        self._completed: queue.SimpleQueue[cf.Future[Any]] = queue.SimpleQueue()
        self._flying: dict[int, _Trial] = {}
        self._quiet: collections.deque[cf.Future[Any]] = collections.deque()  # completed, main not woken
        # trials launched ahead of the running ones, queued on the worker threads (sync: 31 per thread) or on
        # the loop (async: up to 1024): a worker goes from one trial to the next without waiting for the
        # main thread (cross-thread wake-ups dominate a fast trial's cost, and a main thread busy queueing
        # trials holds the GIL while the loop's I/O answers wait); the loop asks for more when it runs low
        c = settings.concurrency
        self._in_flight = c + min(31 * c, 1024) if self.is_async else 32 * c
        self._unkicked = 0  # async trials queued on the loop since it was last woken to start them
        self._refill = False  # more async trials to queue once the loop's queue runs low
        spec = resolve_state(scenario.state, settings.faults)  # state + crash layers: checked before any trial
        check_crash_setup(scenario.agent, spec, settings.faults)
        self.state = CampaignState(spec)

    # -- workers --------------------------------------------------------------------------------------
    def _thread_worker(self) -> ThreadWorker:
        """The least loaded of ``concurrency`` worker threads (the main thread alone hands them out)."""
        live = [w for w in self._load if not w.retired]
        if len(live) < self.settings.concurrency:
            worker = ThreadWorker(f"agentops-{self.scenario.name}-{len(self._threads)}")
            self._threads.append(worker)
            self._load[worker] = 0
            return worker
        return min(live, key=self._load.__getitem__)

    def _release(self, trial: _Trial) -> None:
        worker = trial.worker
        if isinstance(worker, ThreadWorker) and worker in self._load:
            self._load[worker] -= 1
            if worker.retired:
                del self._load[worker]

    def _loop_worker(self) -> LoopWorker:
        if self._loop is None or self._loop.retired:
            self._loop = LoopWorker()
        return self._loop

    def close(self) -> None:
        for worker in self._threads:
            worker.close()
        if self._loop is not None:
            self._loop.close()
        self.state.close()  # state layer: a temporary checkpoint file goes with the campaign

    # -- one trial ------------------------------------------------------------------------------------
    def launch(self, index: int) -> _Trial:
        trial = _Trial(self.scenario, index, self.settings.seed, self.settings.faults, state=self.state)
        if self.is_async:
            self._submit_async(trial)
        else:
            self._submit_sync(trial)
        return trial

    def _submit_async(self, trial: _Trial) -> None:
        """Queue an async trial on the loop, which starts it when fewer than ``concurrency`` trials run."""
        worker = self._loop_worker()
        worker.limit = self.settings.concurrency
        trial.worker = worker
        trial.future = worker.put(trial.run_async, warm=trial.warm, settle=trial.settle_async)
        trial.future.add_done_callback(functools.partial(self._async_done, worker))
        self._unkicked += 1

    def _kick(self) -> None:
        """Wake the loop once for the async trials queued since the last time."""
        if self._unkicked and self._loop is not None:
            self._unkicked = 0
            self._loop.kick()

    def _async_done(self, worker: LoopWorker, future: cf.Future[Any]) -> None:
        """(On the loop thread, in an idle moment.) Wake the main thread when the loop has ended everything it
        was given, or when its queue runs low and the main thread has more to queue; other trials end
        quietly (the main thread, woken in the middle of a burst of I/O answers, would hold the GIL while
        they wait)."""
        if future.cancelled():
            self._quiet.append(future)
        elif worker.retired or not (worker.busy() or worker.queued()):
            self._completed.put(future)
        elif self._refill and worker.queued() <= worker.limit:
            self._refill = False
            self._completed.put(future)
        else:
            self._quiet.append(future)

    def _submit_sync(self, trial: _Trial) -> None:
        """Queue a sync trial on a worker thread; it runs as soon as the trials queued before it end."""
        worker = self._thread_worker()
        self._load[worker] += 1
        trial.worker = worker
        trial.future = worker.submit(trial.run_sync)
        trial.future.add_done_callback(functools.partial(self._sync_done, worker))

    def _sync_done(self, worker: ThreadWorker, future: cf.Future[Any]) -> None:
        """Wake the main thread only when this worker has nothing queued: one wake-up per batch, not per
        trial (each wake-up is a GIL hand-off that costs as much as a fast trial's harness)."""
        if worker.has_queued():
            self._quiet.append(future)
        else:
            self._completed.put(future)

    def _wait(self, timeout: float) -> list[cf.Future[Any]]:
        """The futures completed so far, waiting up to ``timeout`` seconds for a first one."""
        try:
            finished = [self._completed.get(timeout=timeout)]
        except queue.Empty:
            finished = []
        while True:
            try:
                finished.append(self._completed.get_nowait())
            except queue.Empty:
                break
        while self._quiet:
            finished.append(self._quiet.popleft())
        return finished

    def settle(self, trial: _Trial) -> TrialRecord:
        """The record of a trial whose future is done."""
        assert trial.future is not None
        self._release(trial)
        try:
            result = trial.future.result()
        except ConfigError:
            raise  # the scenario itself is broken (e.g. its world factory raised): no trial can run
        except BaseException as exc:
            return trial.finish(exc=exc)
        return result if isinstance(result, TrialRecord) else trial.finish(output=result)

    def expire(self, trials: list[_Trial]) -> list[TrialRecord]:
        """Trials that ran past their wall-clock limit, or that an early stop discards: end them and record
        why (records in the order given)."""
        reason = f"no result within the wall-clock limit of {self.scenario.timeout_s:g}s"
        loops: dict[LoopWorker, list[_Trial]] = {}
        for trial in trials:
            if isinstance(trial.worker, LoopWorker):
                loops.setdefault(trial.worker, []).append(trial)
            else:
                self._expire_in_thread(trial, reason)
        for worker, on_loop in loops.items():
            self._expire_on_loop(worker, on_loop, reason)
        for trial in trials:
            self._release(trial)
        return [trial.finish() for trial in trials]

    def _expire_in_thread(self, trial: _Trial, reason: str) -> None:
        if (ctx := trial.ctx) is not None:  # released once the trial is judged
            ctx.abort("timed_out", reason)
        assert trial.future is not None
        worker = trial.worker
        if trial.future.cancel():
            return  # still queued (discarded by an early stop): its worker goes on with the others
        if isinstance(worker, ThreadWorker):
            worker.abandon()
            for other in list(self._flying.values()):  # trials queued behind it move to a fresh worker
                if other is not trial and other.worker is worker and other.future and other.future.cancel():
                    self._submit_sync(other)

    def _expire_on_loop(self, worker: LoopWorker, trials: list[_Trial], reason: str) -> None:
        """End async trials on their loop's own thread, where they are built and judged (so never halfway)."""

        def end() -> None:
            for trial in trials:
                if (ctx := trial.ctx) is not None:  # released once the trial is judged
                    ctx.abort("timed_out", reason)
                assert trial.future is not None
                worker.cancel_job(trial.future)
                trial.finish()

        if worker.call(end):
            return
        # the loop is blocked (an agent busy-looping without awaiting) or gone: retire it, judge here the
        # trials that ran on it, end the late ones from here, and move those that never started to a fresh loop
        worker.abandon()
        worker.reap()
        for trial in trials:
            if (ctx := trial.ctx) is not None:  # released once the trial is judged
                ctx.abort("timed_out", reason)
            assert trial.future is not None
            trial.future.cancel()
        for pos, other in list(self._flying.items()):
            if other.worker is worker and other.future is not None and other.future.cancel():
                if other.boundary is not None:  # built ahead (``warm``): its model routes go with it
                    other.boundary.close()
                self._flying[pos] = self.launch(other.index)
        self._kick()

    def _end_flying(self, trials: list[_Trial]) -> None:
        """The campaign ends with these trials unfinished: stop them and remove their model routes (on the
        loop's thread for async trials, so that none is halfway built)."""

        def end() -> None:
            for trial in trials:
                if (ctx := trial.ctx) is not None:  # released once the trial is judged
                    ctx.abort("timed_out", "campaign ended")
                if trial.boundary is not None:  # model boundary: its routes go with it
                    trial.boundary.close()

        loop = self._loop
        if loop is not None and not loop.retired:
            loop.retired = True  # it starts nothing more
            if loop.call(end):
                return
        end()

    # -- the campaign ---------------------------------------------------------------------------------
    def run(self) -> tuple[list[TrialRecord], bool]:
        """Run up to ``settings.trials`` trials; returns (records in launch order, stopped early)."""
        s = self.settings
        indices = [s.replay] if s.replay is not None else list(range(s.trials))
        looks = stats.look_schedule(len(indices)) if (s.early_stop and s.replay is None and not s.smoke) \
            else (len(indices),)
        look_conf = 1 - stats.per_look_alpha(1 - s.confidence, len(looks))
        expectations = self.scenario.expectations
        done: dict[int, TrialRecord] = {}
        flying = self._flying
        position = 0  # next entry of ``indices`` to launch
        look_i = 0
        prefix = 0  # trials 0..prefix-1 (launch order) are all done
        limit = len(indices)
        stopped_early = False
        holds = contextlib.ExitStack()
        try:
            holds.enter_context(campaign_gc())  # the collector skips the objects that predate the campaign
            holds.enter_context(track_anyio_threads())  # anyio's worker threads keep the virtual loop waiting
            holds.enter_context(time_patch())  # the time stand-ins stay installed for the whole campaign
            holds.enter_context(campaign_hold(self.scenario.llm, s.faults))  # model boundary: HTTP interception
            while len(done) < limit:
                # launch ahead, but never past the next look: an early stop then wastes no trial
                horizon = min(limit, looks[look_i]) if look_i < len(looks) else limit
                while len(flying) < self._in_flight and position < horizon:
                    flying[position] = self.launch(indices[position])
                    position += 1
                self._refill = position < horizon  # stopped by the queue depth, not by a look
                self._kick()
                now = _wall()
                limit_s = self.scenario.timeout_s
                since = [t.counting_since() for t in flying.values()]
                timeout = max(0.0, min((t + limit_s for t in since if t is not None), default=now + limit_s) - now)
                finished = self._wait(timeout)
                if finished:
                    futures = {t.future: pos for pos, t in flying.items()}
                    for future in finished:
                        pos = futures.get(future)  # None: a trial already expired (or discarded)
                        if pos is not None:
                            done[pos] = self.settle(flying.pop(pos))
                now = _wall()
                late = [p for p, t in flying.items() if (since := t.counting_since()) is not None
                        and since + limit_s <= now]
                if late:
                    done.update(zip(late, self.expire([flying.pop(p) for p in late]), strict=True))
                # sequential looks, on the launch-order prefix only
                while prefix in done:
                    prefix += 1
                while look_i < len(looks) and prefix >= looks[look_i]:
                    n = looks[look_i]
                    look_i += 1
                    if n < limit and expectations:
                        data = collect([done[i] for i in range(n)], {e.metric for e in expectations})
                        if all(evaluate(e, data[e.metric], look_conf, final=False).decided for e in expectations):
                            limit, stopped_early = n, True
                            self.expire([flying.pop(p) for p in [p for p in flying if p >= n]])
                            break
        finally:
            self._end_flying(list(flying.values()))
            self.close()
            holds.close()
        return [done[i] for i in range(limit)], stopped_early


def run_campaign(scenario: Scenario, *, seed: int | None = None, trials: int | None = None,
                 faults: Faults | None = None, profile: str | None = None, confidence: float | None = None,
                 concurrency: int | None = None, early_stop: bool | None = None, replay: int | None = None,
                 smoke: bool = False, replay_command: str | None = None) -> CampaignResult:
    """Run a scenario's campaign (or one trial of it with ``replay=i``) and judge its expectations.

    ``replay_command`` is a template with ``{index}`` used in failure messages to tell how to re-run a
    trial (the pytest plugin passes its copy-paste command line).
    """
    if not isinstance(scenario, Scenario):
        raise ConfigError(f"run_campaign expects a Scenario, got {scenario!r}")
    settings = RunSettings.resolve(scenario, seed=seed, trials=trials, faults=faults, profile=profile,
                                   confidence=confidence, concurrency=concurrency, early_stop=early_stop,
                                   replay=replay, smoke=smoke)
    started = _wall()
    records, stopped_early = Runner(scenario, settings).run()
    wall_s = _wall() - started
    return CampaignResult.build(scenario, settings, records, stopped_early=stopped_early, wall_s=wall_s,
                                replay_command=replay_command)


def replay_trial(scenario: Scenario, index: int, *, seed: int | None = None, **kwargs: Any) -> TrialRecord:
    """Re-run exactly trial ``index`` of the campaign and return its record."""
    return run_campaign(scenario, seed=seed, replay=index, **kwargs).records[0]
