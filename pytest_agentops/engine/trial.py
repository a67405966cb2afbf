"""One trial: built (``CampaignLayers.build``), run (sync in a worker thread, async as a task on the
virtual-time loop) and judged into a ``TrialRecord``.

Judging: the layers' ``close`` then ``settle`` hooks, then the outcome: a decision the harness took
(aborted: timed out, budget, error in the fake model's policy), how the agent's run ended (an exception,
abandoned), or the scenario's ``check`` on the world; then the record, with every layer's own record.
"""

from __future__ import annotations

import asyncio
import contextvars
import dataclasses
import functools
import inspect
import sys
import threading
from typing import TYPE_CHECKING, Any

from ..errors import RAISED_AT, AgentExited, TrialAbandoned, TrialAborted, hide_own_frames, user_code_at
from ..harness.escalation import unrecovered_fault_onset
from ..harness.secrets import redact_short, redact_text
from ..harness.trace import PendingEvent, Trace
from ..process import (
    freezegun_captures,  # noqa: F401  (freezegun loaded before any stand-in is in)
    numpy_random,  # noqa: F401  (numpy's stand-ins, registered before any campaign)
)
from ..process.exit_guard import Refusal
from ..process.task_scope import enter_trial, exit_trial
from ..process.time_patch import enter_clock, exit_clock
from ..process.trial_random import CHECK, TrialRandom, enter_random, exit_random
from ..records import EventKey, TraceEvent, TrialRecord, event_key, make_trial_record
from ..seeding import trial_seed
from ..stable_repr import exact_str, stable_repr, without_addresses
from ..vtime.clock import LoopOrigin
from ..vtime.deadline import watch_virtual_deadline
from ..vtime.lanes import JobLane, end_lane, new_lane
from ..vtime.loop import run_virtual
from ..vtime.real import real_perf_counter
from .assemble import CampaignLayers, of_the_trial

__tracebackhide__ = hide_own_frames

if TYPE_CHECKING:
    import concurrent.futures as cf

    from ..harness.context import TrialContext
    from ..harness.env import Env
    from .workers import LoopWorker, ThreadWorker

_wall = real_perf_counter  # never the virtual clock
#: How long ``Trial.finish`` waits for a judging already under way in another thread (an interrupted check
#: unwinds within milliseconds) before it records the trial without it.
FINISH_WAIT_S = 2.0


class Trial:
    """One launched trial: its context, the agent call in flight, and when it started."""

    def __init__(self, layers: CampaignLayers, index: int, campaign_seed: int):
        self.layers = layers
        self.index = index
        self.campaign_seed = campaign_seed
        self._seed: int | None = None
        self.ctx: TrialContext | None = None
        self.env: Env | None = None
        self.agent: Any = None
        self.task = ""
        self.random: TrialRandom | None = None
        self.future: cf.Future[Any] | None = None
        self.started: float | None = None  # wall time the agent started (a queued trial has not)
        self.ran = False  # the agent's run is over (an async trial may then wait for an idle moment to be judged)
        self.ran_at: float | None = None  # wall time an async trial's run ended (its wait to be judged counts from)
        self.building: float | None = None  # wall time an async trial's building ahead began (``warm``)
        self.judging: float | None = None  # wall time an async trial's judging began (``settle_async``)
        self.judged = _CHECK_JUDGED  # what of the agent's the judging runs now (said if it does not return)
        self.worker: ThreadWorker | LoopWorker | None = None
        self.lane: JobLane | None = None  # an async trial's thread jobs (``vtime.lanes``), once it runs
        self._record: TrialRecord | None = None
        self._origin: LoopOrigin | None = None  # an async trial's loop-time origin, once built
        self._build_error: Exception | None = None  # what building an async trial raised
        self._finish_lock = threading.Lock()

    @property
    def seed(self) -> int:
        """The trial seed, worked out where the trial is built (launching a trial is then cheap). (Not a
        ``functools.cached_property``: before Python 3.12 it takes one lock shared by every instance.)"""
        seed = self._seed
        if seed is None:
            seed = self._seed = trial_seed(self.campaign_seed, self.index)
        return seed

    @property
    def scenario(self) -> str:
        return self.layers.scenario.name

    def prepare(self) -> None:
        """Build the trial's world, harness layers and env (in the thread that will run the agent)."""
        clock_source = self._origin.elapsed if self._origin is not None else None  # async: the loop's time
        built = self.layers.build(self.index, self.seed, clock_source)
        self.ctx, self.env, self.task, self.agent = built.ctx, built.env, built.task, built.agent
        self.random = TrialRandom(self.seed)  # what the stdlib ``random`` functions draw from inside the trial

    def run_sync(self) -> TrialRecord:
        """In a worker thread: build, run and judge the whole trial, so the worker goes straight on to the
        next queued trial without waiting for the main thread (which only watches the wall clock).

        In a copy of the thread's context, with a decimal context of its own, and the thread's trace and profile
        functions put back after: what one trial's agent sets there must not reach the trials its worker thread
        runs next (which ones those are depends on the concurrency, and a replay runs the trial alone)."""
        tracer, profiler = sys.gettrace(), sys.getprofile()
        try:
            return contextvars.copy_context().run(self._run_sync)
        finally:
            if sys.gettrace() is not tracer:
                sys.settrace(tracer)
            if sys.getprofile() is not profiler:
                sys.setprofile(profiler)

    def _run_sync(self) -> TrialRecord:
        own_decimal_context()
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
        self._origin = LoopOrigin(asyncio.get_running_loop())
        self.building = _wall()  # a world factory that hangs is caught by the wall-clock limit too
        try:
            self.prepare()
        except Exception as exc:
            self._build_error = exc
        finally:
            self.building = None

    async def run_async(self) -> tuple[Any, BaseException | None]:
        """As a task on the shared loop: run the agent (building the trial first unless ``warm`` did) on the
        trial's clock, its virtual deadline armed. Returns how it ended, which ``settle_async`` judges, in the
        loop's next idle moment."""
        self.started = _wall()  # the wall-clock limit covers building the world too
        if self._origin is None:
            self.warm()
        if self._build_error is not None:
            raise self._build_error
        origin = self._origin
        assert origin is not None
        own_decimal_context()  # (in the task's own context, a copy: as a sync trial's, ``run_sync``)
        tracer, profiler = sys.gettrace(), sys.getprofile()
        try:
            # (the agent's call written out here, not a coroutine of its own: one coroutine less per trial)
            ctx = self.ctx
            assert ctx is not None and self.random is not None
            origin.start()
            clock = ctx.clock
            task = asyncio.current_task(origin.loop)
            deadline = watch_virtual_deadline(clock, functools.partial(ctx.abort, "timed_out"), loop=origin.loop,
                                              task=task)
            token, random_token = enter_clock(clock), enter_random(self.random)
            trial_token = enter_trial(ctx, task)
            lane, lane_token = new_lane(origin.loop)  # (its thread jobs one at a time, in the order handed over)
            self.lane = lane
            try:
                return await self.agent(self.task, self.env), None
            finally:
                end_lane(lane, lane_token)
                exit_trial(trial_token)
                exit_random(random_token)
                exit_clock(token)
                if deadline is not None:
                    deadline.cancel()
                origin.stop()
        except BaseException as exc:  # CancelledError too: the virtual deadline or the watchdog ended it
            return None, exc
        finally:
            self.ran_at = _wall()  # within its limit: its wait to be judged counts anew from here
            self.ran = True
            if sys.gettrace() is not tracer:  # (the loop's thread: put back for the trials after this one)
                sys.settrace(tracer)
            if sys.getprofile() is not profiler:
                sys.setprofile(profiler)

    def settle_async(self, ended: tuple[Any, BaseException | None]) -> TrialRecord:
        """On the loop, after the trial ran: judge it (within the wall-clock limit again: a check that never
        returns must not hang the campaign)."""
        output, exc = ended
        self.judging = _wall()
        try:
            return self.finish(output=output, exc=exc)
        finally:
            self.judging = None

    def call_sync(self) -> Any:
        """Run a sync agent in the current (worker) thread, on the trial's virtual clock (the runner holds
        the time stand-ins for the whole campaign)."""
        assert self.ctx is not None and self.random is not None
        token, random_token = enter_clock(self.ctx.clock), enter_random(self.random)
        try:
            output = self.agent(self.task, self.env)
            if inspect.isawaitable(output):  # a sync callable that returned a coroutine
                output = run_virtual(output)
            return output
        finally:
            exit_random(random_token)
            exit_clock(token)

    def counting_since(self) -> float | None:
        """Wall time since which the trial counts against its wall-clock limit: since it started, or since
        it began to be built ahead, or (an async trial) since its judging began; None while queued. An async
        trial whose run ended waits to be judged in its loop's idle moments, after the trials that ended before
        it (a slow check makes that wait long: it does not count); only while its loop judges nothing and has no
        idle moment at all does the wait count, from the later of its run's end and the loop's last such
        moment: a loop kept busy for good by what a trial left on it (a task polling with ``sleep(0)``, a
        callback that reschedules itself) then ends the campaign a limit later, where it waited for ever.
        An async trial running does not count the time its loop's virtual time stood still for other trials'
        thread jobs while none of its own was at work (``JobLane.held``): a job that never returns times out its
        own trial, and the trials beside it go on once it has (which ones were beside it depends on the
        concurrency)."""
        if self.ran:
            if self.judging is not None:
                return self.judging
            progress = getattr(self.worker, "progress_at", 0.0)  # (a LoopWorker's: an async trial's)
            return max(self.ran_at or 0.0, progress)
        if self.started is None:
            return self.building
        lane = self.lane
        return self.started if lane is None else self.started + lane.held()

    def abort(self, outcome: str, reason: str) -> None:
        """End the trial from outside (wall-clock limit, campaign end): the agent's next harness call raises."""
        if (ctx := self.ctx) is not None:  # released once the trial is judged
            ctx.abort(outcome, reason)

    def close_layers(self) -> None:
        """Release what the trial's layers opened (a queued trial built ahead that will never run)."""
        if (ctx := self.ctx) is not None:
            ctx.close_layers()

    def finish(self, output: Any = None, exc: BaseException | None = None, *, discarded: bool = False) -> TrialRecord:
        """Turn how the agent ended into a TrialRecord (judging the world with the scenario's check).

        Called once by whichever comes first, the agent's thread or the runner's watchdog; later calls get
        the same record. ``discarded``: the campaign is throwing the trial away (an early stop): a call its
        agent still makes is refused but not counted as a late call."""
        lock = self._finish_lock
        if not lock.acquire(False) and not lock.acquire(timeout=FINISH_WAIT_S):  # (the first: no wait, the usual)
            # judged in another thread by a check that does not return (nor give way to the interruption of
            # its thread): recorded from here, without waiting for it (the check's verdict would come too late)
            return TrialRecord(scenario=self.scenario, index=self.index, seed=self.seed, outcome="timed_out",
                               reason=f"{self.judged} did not return within the wall-clock limit")
        try:
            if self._record is None:
                with Refusal(JUDGED) as judged:  # (what the agent left runs here: its output's repr, the check)
                    self._record = self._judge(output, exc, judged.refused)
                if self.ctx is not None:  # a thread the agent left running is refused from now on, and counted
                    self.ctx.end(self.layers.refuse_discarded_call if discarded else self.layers.count_late_call)
                # the record holds what is kept: the world, env and harness go now, not with the campaign
                self.ctx = self.env = self.agent = self.random = None
            return self._record
        finally:
            lock.release()

    def _judge(self, output: Any, exc: BaseException | None, refused: list[str]) -> TrialRecord:
        """The record of how the trial ended; ``refused``: the process-level calls refused while judging it (an
        output whose ``repr`` calls ``os._exit``), which make it an error."""
        ctx = self.ctx
        scenario = self.layers.scenario
        if ctx is None:  # never got as far as building its world
            return TrialRecord(scenario=scenario.name, index=self.index, seed=self.seed,
                               outcome="timed_out" if exc is None else "error",
                               reason=redact_text(describe(exc)) if exc else "no result within the wall-clock limit")
        ctx.close_layers()
        raised = exc
        for settle in ctx.hooks["settle"]:
            exc = settle(exc)
        aborted = ctx.aborted
        reason = ""
        if exc is not None:
            self.judged = _EXCEPTION_JUDGED
        if aborted is not None:  # what the harness decided (a limit, a budget, an escalation): recorded first
            outcome, reason = aborted.outcome, aborted.reason
        elif isinstance(exc, TrialAborted) and exc is not raised:  # a layer's decision as the trial ended (crashed)
            outcome, reason = exc.outcome, exc.reason
        elif isinstance(exc, (TrialAborted, TrialAbandoned)):
            # the harness decided nothing: the agent raised one of its exceptions itself (never taken at its
            # word: a made-up ``TrialAborted("completed", "")`` would pass the trial without its check)
            outcome, reason = "error", f"the agent raised {describe(exc)} itself: the harness decided nothing"
        elif exc is not None:
            outcome, reason = "error", describe(exc)
        elif scenario.check is None:
            outcome = "completed"
        else:
            try:
                passed = of_the_trial(CHECK, self._seed, scenario.check, ctx.world, output)
                if _unrun(passed):  # (truthy whatever the check meant: its body never ran)
                    outcome, reason = "error", (f"check returned {type(passed).__name__} {passed!r:.80}: a check "
                                                "must return True or False, not an object to await or iterate")
                else:
                    outcome = "completed" if passed else "failed"
                if outcome == "failed":
                    reason = "check(world, output) returned False"
            except (Exception, AgentExited) as check_exc:
                outcome, reason = "error", f"check raised {describe(check_exc)}"
        if output is not None:
            self.judged = _OUTPUT_JUDGED
        shown = _shared(short_repr(output))
        if refused:
            outcome, reason = "error", refused[0]
        # (an exception's text, an escalation's reason: the agent's words, an object's address left out)
        reason = without_addresses(redact_text(reason))
        ctx.trace.add("outcome", scenario.name, outcome, reason=reason)  # (its name redacted: ``Trace.add``)
        events = ctx.trace.close_pending()  # (events held unscrubbed are scrubbed only if the trace is kept)
        layers = ctx.layer_records()
        violations = tuple(ctx.violations)
        faults = _shared(tuple([f"{e.name}:{e.outcome}" for e in events if e.kind == "fault"]))
        onset = unrecovered_fault_onset(events)
        skeleton: tuple[EventKey, ...] = ()
        run = self.layers.run
        keep = None if run.replay is not None or run.smoke else scenario.keep_traces  # a replay, a smoke trial: kept
        if keep is not None and self.index >= keep and outcome == "completed" and not violations:
            skeleton, kept = _skeleton(events), ()  # a passing trial past the sample: its trace is not kept
        else:
            kept = Trace.settle(events)
        meter = ctx.meter
        return make_trial_record(  # (every field in its final form: the layers' records in a shared FrozenMap)
            scenario=scenario.name, index=self.index, seed=self.seed, outcome=outcome, reason=reason,
            input_tokens=meter.input_tokens, output_tokens=meter.output_tokens, cost_usd=meter.cost_usd,
            tool_calls=ctx.tool_calls, tool_failures=ctx.tool_failures,
            destructive_attempts=ctx.destructive_attempts, unconfirmed_destructive=ctx.unconfirmed_destructive,
            blocked_calls=ctx.blocked, escalated_at_s=ctx.escalation[0] if ctx.escalation else None,
            unrecovered_fault_s=onset, duration_s=ctx.clock.monotonic(), faults=faults,
            violations=violations, output=shown,
            default_priced=tuple(sorted(meter.default_priced)) if meter.default_priced else (),
            layers=self.layers.layer_map(layers), trace=kept, skeleton=skeleton)


def _unrun(value: Any) -> bool:
    """Whether a check's answer is a coroutine, generator or other awaitable (closed here: its body never runs)."""
    if not (inspect.isawaitable(value) or inspect.isgenerator(value) or inspect.isasyncgen(value)):
        return False
    close = getattr(value, "close", None) if inspect.iscoroutine(value) or inspect.isgenerator(value) else None
    if close is not None:
        close()  # (no "never awaited" warning: the record says what went wrong)
    return True


def own_decimal_context() -> None:
    """Give the current context a decimal context of its own, a copy of the one it had: a copied context shares
    the decimal context object, so a precision or a trap an agent sets would reach every later trial (and the
    caller's thread). Nothing to do when ``decimal`` was never imported."""
    decimal = sys.modules.get("decimal")
    if decimal is not None:
        decimal.setcontext(decimal.getcontext().copy())


# Values many records hold equal (event keys, skeletons, fault lists, short outputs), each kept once per
# process: a campaign of 100,000 trials then holds one copy, not one per trial. Bounded, so that names and
# outputs an agent makes up cannot grow it for ever (past the bound a value is simply not shared).
_SHARED: dict[Any, Any] = {}
_SHARED_MAX = 65536


def _shared(value: Any) -> Any:
    """``value``, or the equal one kept before (a hashable value: a string, a tuple of strings)."""
    if len(value) > 200:
        return value
    kept = _SHARED.get(value)
    if kept is None:
        if len(_SHARED) < _SHARED_MAX:
            _SHARED[value] = value
        return value
    return kept


#: The trace events a campaign's records keep in all: a record that would take them past it keeps its skeleton
#: instead (``Scenario.keep_traces``'s form; its replay command makes the trace again). Records are kept in launch
#: order, so which ones keep their traces depends on the seed alone. A trial keeps at most ``TRACE_EVENTS``
#: (~13 MiB at 20,000: 100 failing runaway trials kept 1.3 GB); this keeps a campaign's to ~130 MiB.
CAMPAIGN_TRACE_EVENTS = 200_000


def within_trace_budget(record: TrialRecord, kept_events: int) -> TrialRecord:
    """``record`` as the campaign keeps it, ``kept_events`` kept before it (``CAMPAIGN_TRACE_EVENTS``)."""
    if not record.trace or kept_events + len(record.trace) <= CAMPAIGN_TRACE_EVENTS:
        return record
    return dataclasses.replace(record, trace=(), skeleton=_skeleton(record.trace))


def _skeleton(events: tuple[TraceEvent | PendingEvent, ...]) -> tuple[EventKey, ...]:
    """What the fault tallies need of a trace that is not kept: its events' keys (shared, like the whole)."""
    keys = tuple([event_key(event) for event in events])
    kept = _SHARED.get(keys)  # (most passing trials have a skeleton seen before: its keys are shared already)
    return kept if kept is not None else _shared(tuple([_shared(key) for key in keys]))


#: who called, in the reason of a trial whose process-level call was refused (``process.exit_guard.Refusal``)
JUDGED = "the trial's output or exception (judged after the agent returned)"
#: what of the agent's a judging that does not return was running (``Trial.judged``), in a timed-out trial's reason
_CHECK_JUDGED = "the scenario's check"
_EXCEPTION_JUDGED = "the text of the agent's exception"
_OUTPUT_JUDGED = "the text (repr) of the agent's output"

def describe(exc: BaseException) -> str:
    """``Type: message at file:line`` of the last frame of the user's code the exception went through (a fault
    the harness raised inside a tool call is shown where the agent called the tool, not in the harness; one
    raised in the agent's child process, where it was raised there)."""
    where = user_code_at(exc.__traceback__)
    if not where:  # no frame of the user's here: the harness raised it (no place to show), or a child did
        sent = getattr(exc, RAISED_AT, "")
        where = sent if isinstance(sent, str) else ""
    return f"{type(exc).__name__}: {_safe(str, exc)}{where}"


def short_repr(value: Any, limit: int = 200) -> str:
    """The output as a record keeps it: its text (or repr), secrets redacted, cut to ``limit`` characters."""
    if value is None:
        return ""
    # (an exact ``str``: an agent's own kept in the record would have its methods run by the reports)
    text = without_addresses(exact_str(value)) if issubclass(type(value), str) else exact_str(_safe(stable_repr, value))
    return exact_str(redact_short(text, limit))


def _safe(show: Any, value: Any) -> str:
    """``str`` or ``repr`` of an agent's object, which may raise (a hostile ``__repr__`` must not end the
    campaign; one that calls ``os._exit`` is refused: ``Refusal``)."""
    try:
        return str(show(value))
    except (Exception, AgentExited) as exc:
        shown = "repr" if show is stable_repr else show.__name__  # (``stable_repr`` is ``repr``, to a reader)
        return f"<{type(value).__name__} whose {shown}() raised {type(exc).__name__}>"
