"""A trial's thread jobs, one at a time in the order the trial handed them over (``JobLane``).

An async agent that hands work to threads (``asyncio.to_thread``, ``loop.run_in_executor``, anyio's worker
threads: pydantic-ai runs its sync tools there, in parallel when the model asks for several calls) would
otherwise reach the harness from those threads in the order they happen to run: the trace's order, which of
two identical calls draws the fault, and which calls land before the agent gives up would differ from run to
run. On a ``VirtualTimeLoop`` a trial's jobs therefore take turns: a job starts when the one before it has
ended and the loop has done everything that followed (the turn passes in the loop's next idle moment, see
``VirtualTimeLoop``), so its start is decided by the trial's own code, not by thread timing. A job handed
over always runs to its end, cancelled or not; a job still waiting for its turn when it is cancelled, or
when its trial's agent has returned, never runs. A job that holds the turn while others wait, and has done no
work in its thread for a while (``PATIENCE_S`` of real time without ``PROGRESS_S`` of its thread's CPU time: it
waits, for a slow call or for the trial's async code), or holds it for very long (``LONGEST_HOLD_S``: a
background loop), opens the lane: the trial's jobs then run at once, as before, their order no longer kept. A
job that computes keeps its turn however slowly a loaded machine lets it run (the lane opened after a second of
real time: at concurrency 8, a job of 0.25 s of CPU took longer, and which of two calls drew a fault differed
between runs and from the trial's replay), but for one kept waiting for the interpreter's lock that long by
others' long C calls (a ``sum(range(30_000_000))`` holds it 0.4 s), which uses no CPU either. What a job
calls back into the loop (``anyio.from_thread.run``, ``run_coroutine_threadsafe``) hands its own jobs over
outside the lane: they never wait for the turn the job itself holds.
"""

from __future__ import annotations

import asyncio
import contextvars
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from ..errors import hide_own_frames
from .real import real_monotonic

__tracebackhide__ = hide_own_frames


#: Real seconds a job may hold its trial's turn while another waits, doing no work in its thread (less than
#: ``PROGRESS_S`` of its thread's CPU time), before the lane opens (``JobLane.open``): a job waiting for a slow
#: call, or for the trial's async code, no longer holds the others up; from then on the trial's jobs run at once,
#: as their threads run. Where a thread's CPU time cannot be read, the real seconds the job has held the turn.
PATIENCE_S = 1.0
#: CPU seconds of its thread that count as work done by a job (a thread waiting in a call uses microseconds)
PROGRESS_S = 0.002
#: Real seconds after which a job working all along opens the lane all the same (a background loop that polls
#: for what a later job does would otherwise hold it until the trial's wall-clock limit)
LONGEST_HOLD_S = 10.0


#: ``JobLane.cpu_clock`` of a job handed over that waits for a thread (at high concurrency the executor's queue
#: alone outlasted the patience)
QUEUED = "queued"


def _cpu_clock() -> int | None:
    """The CPU-time clock of the current thread (``time.clock_gettime`` reads it from any thread), or None."""
    try:
        return time.pthread_getcpuclockid(threading.get_ident())
    except (AttributeError, OSError):  # (not on every system)
        return None


class JobLane:
    """One trial's thread jobs: at most one at work in a thread; the others wait for their turn, in order."""

    __slots__ = ("busy", "closed", "cpu", "cpu_at", "cpu_clock", "jobs", "loop", "opened", "since", "still",
                 "still_at", "waiting")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop  # the trial's loop: only its jobs take turns (not those of a loop a job runs itself)
        self.jobs: set[CountedJob] = set()  # its jobs the loop counts as outside work (``CountedJob``)
        self.still = 0.0  # real seconds its loop's virtual time stood still while jobs of this lane were at work
        self.still_at = _held_still(loop)  # the loop's ``held_still()`` when the lane was made
        self.busy = False  # a job holds the turn (at work in a thread, or its end not yet seen by the loop)
        self.closed = False  # the trial's agent has returned: jobs waiting for a turn never get one
        self.opened = False  # a job held the turn past ``PATIENCE_S`` while others waited: no more turns
        self.since = 0.0  # real time the job holding the turn started, or ended (then the turn passes soon)
        # the CPU-time clock of the thread the job holding the turn runs in; ``QUEUED`` while it waits for a thread
        self.cpu_clock: int | str | None = None
        self.cpu = 0.0  # that clock's reading when the job was last seen working
        self.cpu_at = 0.0  # and the real time then
        self.waiting: deque[asyncio.Future[None]] = deque()

    def free(self) -> bool:
        """Whether a job handed over now may start at once (no other job of the trial holds the turn)."""
        return self.opened or (not self.busy and not self.waiting and not self.closed)

    def take(self) -> None:
        """A job starts now (``free()`` was true): it holds the turn until ``ended`` (none once opened)."""
        if not self.opened:
            self.busy = True
            self.since = real_monotonic()
            self.cpu_clock = QUEUED

    async def turn(self, loop: Any) -> None:
        """Wait until this job may start (it then holds the turn); CancelledError when it never may. ``loop``:
        the trial's loop, told of a lane with jobs waiting (``lane_waits``: it opens the lane when its
        patience runs out)."""
        if self.closed:
            raise asyncio.CancelledError("the trial's agent has returned: its thread job does not start")
        if self.free():
            self.take()
            return
        waiter: asyncio.Future[None] = loop.create_future()
        self.waiting.append(waiter)
        loop.lane_waits(self)
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():  # given the turn, then cancelled before it began
                self.pass_on()
            raise

    def timed(self, func: Callable[..., Any]) -> Callable[..., Any]:
        """``func``, noting when it starts in its thread: the patience counts from a job's start, not from its
        wait in an executor's queue (at high concurrency that wait alone outlasted the patience)."""
        def started(*args: Any) -> Any:
            clock = _cpu_clock()
            self.cpu, self.cpu_at = (time.clock_gettime(clock) if clock is not None else 0.0), real_monotonic()
            self.since, self.cpu_clock = self.cpu_at, clock
            try:
                return func(*args)
            finally:  # (its thread may go on to other work: not this job's; the patience counts from its end now,
                # until the loop sees it, as ``ended`` does: a job that took long must not open the lane as it ends)
                self.since, self.cpu_clock = real_monotonic(), None
        return started

    def ended(self, hand_over: Callable[[Callable[[], None]], None]) -> None:
        """The job holding the turn has ended and the loop has seen its end: the turn passes on in the loop's
        next idle moment (``hand_over`` queues it there), once what followed the end has run (or past the
        patience, counted from now)."""
        self.since = real_monotonic()
        self.cpu_clock = None
        if not self.opened:
            hand_over(self.pass_on)

    def pass_on(self) -> None:
        """(On the loop.) Give the turn to the next job still waiting, or free the lane."""
        if self.opened:
            return
        while self.waiting:
            waiter = self.waiting.popleft()
            if waiter.done():  # (cancelled while it waited)
                continue
            if self.closed:
                waiter.cancel()
                continue
            waiter.set_result(None)
            self.since = real_monotonic()
            self.cpu_clock = QUEUED
            return
        self.busy = False

    def impatient(self, now: float) -> bool:
        """Whether jobs have waited while one held the turn doing no work for more than ``PATIENCE_S``, or for more
        than ``LONGEST_HOLD_S`` in all (then ``open``)."""
        if not self.waiting or self.opened or now - self.since <= PATIENCE_S:
            return False
        clock = self.cpu_clock
        if clock is None or now - self.since > LONGEST_HOLD_S:
            return True
        if clock is QUEUED:  # handed over, waiting for an executor's thread: its patience counts from its start
            return False
        try:
            cpu = time.clock_gettime(clock)
        except OSError:  # (its thread has ended)
            return True
        if cpu - self.cpu >= PROGRESS_S:  # it worked since it was last seen working: patience counts anew
            self.cpu, self.cpu_at = cpu, now
        return now - self.cpu_at > PATIENCE_S

    def open(self) -> None:
        """(On the loop.) No more turns: the jobs waiting start now, and later ones at once."""
        self.opened = True
        self.busy = False
        while self.waiting:
            waiter = self.waiting.popleft()
            if not waiter.done():
                waiter.cancel() if self.closed else waiter.set_result(None)

    def close(self) -> None:
        """(On the loop.) The trial's agent has returned: the jobs still waiting never start, and those still at
        work no longer hold the loop's virtual time (a job left running for good would hold it for every trial:
        nothing it does can change the record of a trial whose agent has returned)."""
        self.closed = True
        while self.waiting:
            self.waiting.popleft().cancel()
        for job in list(self.jobs):
            job.done()

    def held(self) -> float:
        """Real seconds the loop's virtual time stood still for other trials' thread jobs (none of this lane's
        at work) since the lane was made: time its trial was held up, not time it used (``Trial.counting_since``)."""
        return max(0.0, _held_still(self.loop) - self.still_at - self.still)


def _held_still(loop: Any) -> float:
    held_still = getattr(loop, "held_still", None)  # (a ``VirtualTimeLoop``'s)
    return held_still() if held_still is not None else 0.0


class CountedJob:
    """Work outside the loop (a thread job, an anyio worker call) that the loop's virtual time waits for, counted
    on its selector from its start until ``done``: the job's end, its caller's cancellation, or (a trial's job)
    the return of the trial's agent (``JobLane.close``), whichever comes first."""

    __slots__ = ("lane", "selector")

    def __init__(self, selector: Any, lane: JobLane | None) -> None:
        self.selector = selector  # (the loop's selector: its ``outside_jobs``, ``lane_jobs``, ``working``)
        self.lane = lane  # the trial whose job it is (None: no trial's, or not known)
        selector.outside_jobs += 1
        if lane is not None:
            selector.lane_jobs += 1
            lane.jobs.add(self)
            selector.working.add(lane)

    def done(self, *_: Any) -> None:
        """The loop no longer waits for this job (called again: nothing more)."""
        selector, self.selector = self.selector, None
        if selector is None:
            return
        selector.outside_jobs -= 1
        lane = self.lane
        if lane is not None:
            selector.lane_jobs -= 1
            lane.jobs.discard(self)
            if not lane.jobs:
                selector.working.discard(lane)


#: The lane of the trial whose code runs in this context (set for an async trial's agent; None elsewhere).
JOB_LANE: contextvars.ContextVar[JobLane | None] = contextvars.ContextVar("pytest_agentops_job_lane", default=None)


def lane_on(loop: asyncio.AbstractEventLoop) -> JobLane | None:
    """The lane of the trial whose code runs in this context, if ``loop`` is its loop (a job's own
    ``asyncio.run`` makes another: its jobs do not wait for the turn the job itself holds)."""
    lane = JOB_LANE.get()
    return lane if lane is not None and lane.loop is loop else None


def new_lane(loop: asyncio.AbstractEventLoop) -> tuple[JobLane, contextvars.Token[JobLane | None]]:
    """A new lane for the trial about to run in this context on ``loop``, and the token that undoes it."""
    lane = JobLane(loop)
    return lane, JOB_LANE.set(lane)


def end_lane(lane: JobLane, token: contextvars.Token[JobLane | None]) -> None:
    """The trial's agent has returned: close its lane, and put the context's back."""
    lane.close()
    JOB_LANE.reset(token)

