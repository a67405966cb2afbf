"""``VirtualTimeLoop`` / ``run_virtual(coro)``: an asyncio event loop whose ``time()`` is virtual.

When only timers are awaited it jumps straight to the next one, so ``asyncio.sleep(30)``, ``call_later``,
``wait_for`` and ``asyncio.timeout`` cost no wall time; while real I/O or work in other threads is pending it
waits for real and virtual time follows real time.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import contextvars
import ctypes
import functools
import heapq
import math
import selectors
import socket
import sys
from asyncio.base_events import MAXIMUM_SELECT_TIMEOUT
from collections.abc import Callable, Coroutine, Iterable, Iterator, Mapping
from typing import Any, TypeVar

from ..errors import ArgumentTypeError, ConfigError, UsageError, hide_own_frames
from .lanes import JOB_LANE, CountedJob, JobLane, lane_on
from .real import real_monotonic

__tracebackhide__ = hide_own_frames

T = TypeVar("T")

#: Longest real wait, in seconds, of one ``VirtualTimeLoop`` poll while real I/O is pending.
DEFAULT_IO_POLL_CAP = 0.05
#: Virtual time's unit: a loop's time is a whole number of microseconds (``_VirtualTimeSelector.ticks``). A timer is
#: due when its tick is reached: asyncio's ``_run_once`` compares float seconds with the loop's clock resolution,
#: set to half a tick, so the comparison stays exact up to some 60 years of loop time (with nanoseconds, or
#: asyncio's 1 ns resolution, a timer due a tick later fired early or not depending on the loop's time, and past
#: 2**24 s, 194 days, ``now + 1e-9 == now``: no timer was due again, and the loop spun for ever).
TICKS_PER_S = 1_000_000

#: Functions run in the context of each job ``VirtualTimeLoop.run_in_executor`` hands to a thread, before it is
#: handed (in submission order, on the loop): what the job's context needs of its own (``trial_random``: a
#: generator per job, so that jobs running at once do not draw from one in the order their threads run).
THREAD_JOB_SETUP: list[Callable[[], Any]] = []


def _job_context(func: Callable[..., Any]) -> contextvars.Context | None:
    """The context a thread job already runs in: ``asyncio.to_thread``'s (``functools.partial(ctx.run, ...)``), or
    a context's own ``run`` handed over with the job's function as its argument (``run_in_executor(pool,
    ctx.run, fn)``, as pydantic-ai's ``using_thread_executor`` does)."""
    if isinstance(func, functools.partial):
        func = func.func
    context = getattr(func, "__self__", None)
    if isinstance(context, contextvars.Context) and func == context.run:
        return context
    return None


def _io_poll_cap(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ArgumentTypeError(f"io_poll_cap={value!r} must be a number of seconds")
    if not math.isfinite(value) or value <= 0:
        raise ConfigError(f"io_poll_cap={value} must be > 0")
    return float(value)


class _VirtualTimeSelector(selectors.BaseSelector):
    """Wraps the loop's real selector and owns the loop's virtual time.

    The rule, applied to each ``select(timeout)`` the loop makes (``timeout`` is the loop's distance to its
    next timer, 0 when callbacks are ready, None when there are no timers):

    1. ``timeout == 0``: poll the real selector without waiting (no poll at all when only the loop's own
       self-pipe is registered); virtual time does not move.
    2. Nothing from outside is pending (no file descriptors registered besides the loop's own self-pipe,
       no ``run_in_executor`` job in flight) and a timer exists: poll the real selector without waiting
       (to pick up wake-ups from other threads); if nothing is ready, jump virtual time forward by
       ``timeout``, straight to the next timer. No wall time passes.
    3. Work in other threads pending (a ``run_in_executor``/``asyncio.to_thread`` job, an anyio worker, a
       block counted with ``outside_work()``): wait on the real selector for up to ``io_poll_cap`` real
       seconds at a time and do not move virtual time, nor jump to a timer: the threads' wall time is not
       the trial's (it varies run to run), so timings stay reproducible; a timer waits until they are done.
    4. Real I/O pending (a file descriptor registered besides the loop's own self-pipe) and no thread at
       work: wait on the real selector for ``min(timeout, io_poll_cap)`` real seconds (``io_poll_cap`` if no
       timer), then advance virtual time by the real time that passed (never past the next timer, so that
       it fires at exactly its virtual time). While the outside world is involved, virtual time runs at the
       speed of real time, so a timeout guarding real I/O never fires before that much real time has passed.
    5. Nothing pending and no timer (an idle loop waiting for work from another thread): block until
       woken; virtual time does not move, since nothing can observe it (a trial measured from when its
       task started gets the same times whenever it was submitted).

    Before any wait (rules 2-5) the turns of the trials' thread jobs that ended are passed on (``lanes``:
    the next job of a trial starts only once the loop has run everything that followed the end of the one
    before it), and the loop comes back; then one step of idle work (``idle``, see ``VirtualTimeLoop.idle_work``) runs
    if there is some; the selector then only polls, and the loop comes back for the next step. Then, before
    the rules are applied, the loop's deferred timers (``VirtualTimeLoop.call_at_deferred``) that the wait
    could reach are put on its heap, and ``timeout`` shortened to the first of them (``arm_deferred``).
    """

    def __init__(self, inner: selectors.BaseSelector, io_poll_cap: float) -> None:
        self._inner = inner
        self.io_poll_cap = io_poll_cap
        # virtual time in whole microseconds (``ticks``), and as seconds (``now``, always ``ticks / TICKS_PER_S``):
        # sums of delays are exact whatever the loop's time when a trial starts (in float seconds, ``t + 0.1 + 0.2``
        # and ``t + 0.3`` compare one way or the other depending on ``t``: timer order, and so records, followed the
        # trials run before)
        self.ticks = 0
        self.now = 0.0
        self.first_timer_ticks: Callable[[], int | float | None] | None = None  # the loop's next timer (set by it)
        self.turns = 0  # turns of the loop so far (one ``select`` each): a loop stuck in one step does not count up
        self.outside_jobs = 0
        self.lane_jobs = 0  # of the outside jobs, those of a trial's lane (``CountedJob``)
        self.working: set[JobLane] = set()  # the lanes with jobs counted
        self.still = 0.0  # real seconds virtual time stood still, a timer waiting, for trials' jobs alone (``held``)
        self.own_fds: frozenset[int] = frozenset()
        fds = getattr(inner, "_fd_to_key", None)  # (asked on every turn of the loop: read without a generator)
        self._fds: dict[int, Any] | None = fds if isinstance(fds, dict) else None
        self.idle: Callable[[], bool] | None = None
        self.handovers: list[Callable[[], None]] = []  # turns of trials' thread jobs to pass on (``lanes``)
        self.lanes: set[JobLane] = set()  # trials' lanes with jobs waiting for a turn (opened when impatient)
        self.on_jump: Callable[[float], None] | None = None  # told each move of its time: to a timer, or real I/O
        self.children: Callable[[], bool] | None = None  # (3.11) a thread waits for a subprocess of the loop
        # the loop's deferred timers (a heap, never replaced) and what arms the due ones (set by the loop)
        self.deferred: list[tuple[int | float, int, DeferredTimer]] = []
        self.arm_deferred: Callable[[float | None], float | None] | None = None
        # what the loop asks on every I/O wait of a task (``add_reader``, ``remove_reader``): the real selector's
        # own methods, called without a wrapper's frame (the methods below are the same, for the ABC)
        self.register = inner.register  # type: ignore[method-assign]
        self.unregister = inner.unregister  # type: ignore[method-assign]
        self.modify = inner.modify  # type: ignore[method-assign]
        self.get_key = inner.get_key  # type: ignore[method-assign]
        self.get_map = inner.get_map  # type: ignore[method-assign]

    def register(self, fileobj: Any, events: int, data: Any = None) -> selectors.SelectorKey:
        return self._inner.register(fileobj, events, data)

    def unregister(self, fileobj: Any) -> selectors.SelectorKey:
        return self._inner.unregister(fileobj)

    def modify(self, fileobj: Any, events: int, data: Any = None) -> selectors.SelectorKey:
        return self._inner.modify(fileobj, events, data)

    def get_key(self, fileobj: Any) -> selectors.SelectorKey:
        return self._inner.get_key(fileobj)

    def get_map(self) -> Mapping[Any, selectors.SelectorKey]:
        return self._inner.get_map()

    def close(self) -> None:
        self._inner.close()

    def _held(self) -> list[tuple[selectors.SelectorKey, int]]:
        """Wait as for any thread job, while a timer waits and every job at work is a trial's: the real time
        that passes is time the trials with no job at work were held up by the others' (``still``; each lane's
        own share in its ``still``): it does not count against their wall-clock limits (``JobLane.held``), so a
        trial's thread job that never returns times out its own trial, not the trials beside it, which ones
        depending on the concurrency."""
        start = real_monotonic()
        try:
            return self._inner.select(self.io_poll_cap)
        finally:
            passed = max(0.0, real_monotonic() - start)
            self.still += passed
            for lane in self.working:
                lane.still += passed

    def real_io_pending(self) -> bool:
        fds = self._fds
        if fds is not None:  # the standard selectors' own table of registered descriptors: one C-level check
            return not self.own_fds.issuperset(fds)
        own = self.own_fds
        return any(fd not in own for fd in self._inner.get_map())

    def outside_work_pending(self) -> bool:
        return self.outside_jobs > 0 or self.real_io_pending() or (self.children is not None and self.children())

    def _poll(self) -> list[tuple[selectors.SelectorKey, int]]:
        """A poll that does not wait, where virtual time cannot move: no system call while only the loop's own
        self-pipe is registered (a wake-up from another thread has queued its callback already; the pipe is
        drained at the next real wait), which also keeps a busy loop from handing the GIL away on every turn."""
        return self._inner.select(0) if self.real_io_pending() else []

    def _lanes_patience(self) -> bool:
        """Open the lanes whose jobs have waited past their patience (``lanes.PATIENCE_S``), and forget those
        with no job waiting: checked on every turn, so that a loop kept busy (a task polling with
        ``asyncio.sleep(0)``) or a job that never ends holds no job up for longer. Whether one opened."""
        now = real_monotonic()
        opened = [lane for lane in self.lanes if lane.impatient(now)]
        for lane in opened:
            lane.open()
        self.lanes = {lane for lane in self.lanes if lane.waiting}
        return bool(opened)

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        self.turns += 1
        if self.lanes and self._lanes_patience():  # (the jobs let go are not counted yet: no time may move)
            return self._poll()
        if timeout is not None and timeout <= 0:  # (``_poll``, inlined: the turn of a loop with callbacks ready)
            fds = self._fds
            if fds is not None and self.own_fds.issuperset(fds):
                return []
            return self._poll()
        if self.handovers:  # about to wait: everything that followed a thread job's end has run; the next may start
            handovers, self.handovers = self.handovers, []
            for pass_on in handovers:
                pass_on()
            return self._poll()
        if self.idle is not None and self.idle():  # about to wait: one step of idle work instead
            return self._poll()
        if self.deferred and self.arm_deferred is not None:  # time may move: the timers it could reach go on
            timeout = self.arm_deferred(timeout)
            if timeout is not None and timeout <= 0:
                return self._poll()
        threads_at_work = self.outside_jobs > 0 or bool(self.lanes) or (self.children is not None and self.children())
        if threads_at_work or self.real_io_pending():
            real_timeout: float | None = self.io_poll_cap if timeout is None else min(timeout, self.io_poll_cap)
        elif timeout is not None:
            ready = self._inner.select(0)
            if not ready:
                self._move_to(self._target(timeout))
            return ready
        else:
            # Idle: no timer and nothing from outside pending, so nothing can observe virtual time; wait
            # (for work submitted from another thread) without moving it, which keeps trial times exact.
            return self._inner.select(None)
        if threads_at_work:
            # work in other threads (an executor job, asyncio.to_thread, an anyio worker): wait for it for real,
            # but its wall time is not the trial's: virtual time stands still, so timings stay reproducible
            if timeout is None or not self.outside_jobs or self.lane_jobs != self.outside_jobs or (
                    self.children is not None and self.children()):
                return self._inner.select(self.io_poll_cap)
            return self._held()
        start = real_monotonic()
        try:
            return self._inner.select(real_timeout)
        finally:
            passed = max(0.0, real_monotonic() - start)
            # never past the next timer: a real wait overshoots by a little, and a timer must fire exactly at
            # its virtual time (so a purely virtual trial keeps exact times beside one doing real I/O)
            if timeout is None or passed < timeout:
                target = self.ticks + round(passed * TICKS_PER_S)
                self._move_to(target if timeout is None else min(target, self._target(timeout)))
            else:
                self._move_to(self._target(timeout))

    def _target(self, timeout: float) -> int:
        """The time a wait of ``timeout`` (asyncio's, from the loop's next timer) ends at: that timer's very
        tick (a timeout in float seconds is rounded), or a whole day's wait (asyncio's longest)."""
        if timeout < MAXIMUM_SELECT_TIMEOUT and self.first_timer_ticks is not None:
            first = self.first_timer_ticks()
            if type(first) is int:
                return max(first, self.ticks)
        return self.ticks + round(timeout * TICKS_PER_S)

    def _move_to(self, ticks: int) -> None:
        """Move virtual time forward to ``ticks``, telling ``on_jump`` by how many seconds."""
        moved = ticks - self.ticks
        if moved > 0:
            self.ticks = ticks
            self.now = ticks / TICKS_PER_S
            if self.on_jump is not None:
                self.on_jump(moved / TICKS_PER_S)


def _children_waited_for(loop: asyncio.AbstractEventLoop) -> bool:
    """(3.11) Whether asyncio's ``ThreadedChildWatcher`` waits, in a thread of its own, for a subprocess started on
    ``loop``: work outside the loop as an executor job is (its wall time is not virtual time). Unseen, an agent's
    ``await process.wait()`` on a subprocess without pipes let the loop jump to the trial's deadline: timed out."""
    watcher = getattr(asyncio.events._event_loop_policy, "_watcher", None)
    threads = getattr(watcher, "_threads", None)
    if not threads:
        return False
    for thread in list(threads.values()):
        args = getattr(thread, "_args", ())
        if args and args[0] is loop and thread.is_alive():
            return True
    return False


def _to_ticks(when: float) -> int | float:
    """A loop time in whole ticks (microseconds; a time beyond any reach, ``inf``, stays as it is)."""
    scaled = when * TICKS_PER_S
    return round(scaled) if math.isfinite(scaled) else scaled


class _OrderedTimer(asyncio.TimerHandle):
    """A timer ordered by (tick, creation): timers due at the same virtual instant fire in the order they
    were made, whatever else is on the heap (asyncio's own handles tie on the time alone, so their order then
    depends on the other timers of the loop: on which other trials run beside). ``when()`` is its tick
    in seconds."""

    __slots__ = ("_seq", "_ticks")

    def __init__(self, ticks: int | float, callback: Callable[..., Any], args: tuple[Any, ...], loop: Any, context: Any,
                 seq: int):
        super().__init__(ticks / TICKS_PER_S, callback, args, loop, context=context)
        self._ticks = ticks
        self._seq = seq

    def __lt__(self, other: object) -> bool:
        if type(other) is _OrderedTimer:  # (the loop's own timers: compared without building tuples)
            ticks, other_ticks = self._ticks, other._ticks
            return ticks < other_ticks or (ticks == other_ticks and self._seq < other._seq)
        return super().__lt__(other)  # type: ignore[operator]

    def __gt__(self, other: object) -> bool:
        if type(other) is _OrderedTimer:
            ticks, other_ticks = self._ticks, other._ticks
            return ticks > other_ticks or (ticks == other_ticks and self._seq > other._seq)
        return super().__gt__(other)  # type: ignore[operator]


#: asyncio's ``Handle`` as ``VirtualTimeLoop.call_soon`` fills it in (the same in Python 3.11 to 3.13); with any
#: other layout the loop makes its handles through asyncio's own ``call_soon``
_HANDLE_SLOTS = ("_callback", "_args", "_cancelled", "_loop", "_source_traceback", "_repr", "__weakref__", "_context")
_FAST_HANDLES = asyncio.Handle.__slots__ == _HANDLE_SLOTS  # type: ignore[attr-defined]
_Handle = asyncio.Handle
_new_handle = object.__new__


class DeferredTimer:
    """A timer made by ``VirtualTimeLoop.call_at_deferred``: kept off the loop's timer heap until the loop is
    about to let virtual time reach it. ``cancel()`` it as a ``TimerHandle``."""

    __slots__ = ("_args", "_callback", "_context", "_loop", "_seq", "_ticks", "_timer", "_when")

    def __init__(self, ticks: int | float, callback: Callable[..., Any], args: tuple[Any, ...], loop: VirtualTimeLoop,
                 context: contextvars.Context, seq: int):
        self._ticks = ticks
        self._when = ticks / TICKS_PER_S
        self._callback: Callable[..., Any] | None = callback
        self._args = args
        self._loop = loop
        self._context: contextvars.Context | None = context
        self._seq = seq
        self._timer: asyncio.TimerHandle | None = None  # the loop's timer, once armed

    def when(self) -> float:
        return self._when

    def cancelled(self) -> bool:
        return self._callback is None and (self._timer is None or self._timer.cancelled())

    def cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        elif self._callback is not None:
            self._callback = self._args = self._context = None  # (what it holds goes now, not when it is purged)
            loop = self._loop
            loop._vt_deferred_dead += 1
            if loop._vt_deferred_dead > _DEFERRED_PURGE_AT:
                loop._vt_purge_deferred()

    def _arm(self) -> None:
        """Put the timer on the loop's heap, ordered as if made when it was deferred (a cancelled one: nothing)."""
        callback = self._callback
        if callback is None:
            return
        loop = self._loop
        timer = _OrderedTimer(self._ticks, callback, self._args, loop, self._context, self._seq)
        heapq.heappush(loop._scheduled, timer)  # type: ignore[attr-defined]
        timer._scheduled = True  # type: ignore[attr-defined]
        self._timer = timer
        self._callback = self._args = self._context = None


#: cancelled deferred timers a loop lets pile up in its heap before it purges them
_DEFERRED_PURGE_AT = 128


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    """An asyncio loop whose clock is virtual; idle waits on timers cost no wall time.

    ``time()`` starts at 0.0 and moves only when the loop would otherwise wait. The rule (see
    ``_VirtualTimeSelector``): when no callbacks are ready and only timers are awaited, the loop jumps
    straight to the next timer; timers due at the same instant fire in the order they were made. While a
    ``run_in_executor``/``asyncio.to_thread`` job (or other counted work in threads) is in flight, it waits
    for real and virtual time stands still: a thread's wall time is not the trial's. When only real I/O is
    pending (a socket or other file descriptor registered besides the loop's own self-pipe, including a
    listening server or an idle open stream), it waits for real, at most ``io_poll_cap`` seconds at a time
    and never past the next timer, and advances virtual time by the real time that passed. So a
    ``wait_for`` around real I/O still means real seconds, and timers of other tasks run at real speed
    while that I/O is pending.

    Limitation: wake-ups from threads the loop does not know about (``call_soon_threadsafe`` from a
    ``threading.Thread`` of your own) are picked up, but the loop does not wait for them while a timer is
    pending: a ``wait_for(future_set_by_own_thread, 10)`` times out at once in virtual time. Start such
    work with ``loop.run_in_executor`` or ``asyncio.to_thread`` instead, which the loop tracks, or count it
    with ``outside_work()``; during campaigns, ``anyio.to_thread`` workers are counted too
    (``process/anyio_threads.py``).

    Implementation: the loop's selector is wrapped (the ``selector`` argument of ``SelectorEventLoop``),
    which is where a loop waits, and ``call_at`` makes timers that tie-break on their creation order; no
    private method of asyncio is overridden. ``call_at_deferred`` makes a timer that reaches the loop's heap
    only when it could fire: for timers that are almost always cancelled first (a trial's deadline).
    """

    def __init__(
        self, selector: selectors.BaseSelector | None = None, *, io_poll_cap: float = DEFAULT_IO_POLL_CAP
    ) -> None:
        inner = selector if selector is not None else selectors.DefaultSelector()
        self._vt_selector = _VirtualTimeSelector(inner, DEFAULT_IO_POLL_CAP)
        if sys.version_info < (3, 12):  # (3.12 on waits for a subprocess through a pidfd: real I/O, seen as such)
            self._vt_selector.children = functools.partial(_children_waited_for, self)
        self._vt_timers = 0  # timers made so far: the tie-break of timers due at the same instant
        #: what holds the loop's virtual time: ``vt_state.now`` is ``time()``, read without a call
        self.vt_state = self._vt_selector
        self._vt_deferred = self._vt_selector.deferred  # deferred timers not yet armed: (ticks, seq, timer)
        self._vt_deferred_dead = 0  # how many of them are cancelled
        self._vt_selector.arm_deferred = self._vt_arm_deferred
        self._vt_selector.first_timer_ticks = self._vt_first_timer_ticks
        super().__init__(self._vt_selector)
        self._clock_resolution = 0.5 / TICKS_PER_S  # (``TICKS_PER_S``: a timer is due once its tick is reached)
        # Whatever the loop registered while being built is its own (the self-pipe), not outside I/O.
        self._vt_selector.own_fds = frozenset(self._vt_selector.get_map())
        try:  # validated once the loop exists, so that a refused loop is closed, not left half-built
            cap = _io_poll_cap(io_poll_cap)
        except BaseException:
            self.close()
            raise
        self._vt_selector.io_poll_cap = cap
        #: when set and true at a ``stop()`` (or a change of what the trials share: ``_refuse_in_a_trial``), it is
        #: refused (``RuntimeError``): a loop that several trials share is stopped only by its owner (``LoopWorker``)
        self.stop_refused: Callable[[], bool] | None = None

    def _refuse_in_a_trial(self, what: str) -> None:
        """``stop_refused``: what the trials share (stopping it, its default executor, task factory, exception handler,
        debug mode) is not a trial's to change."""
        refused = getattr(self, "stop_refused", None)  # (``set_debug`` runs while the loop is being built)
        if refused is not None and refused():
            raise RuntimeError(f"loop.{what}() from a trial is refused: the event loop is shared with other trials")

    def stop(self) -> None:
        self._refuse_in_a_trial("stop")
        super().stop()

    def set_default_executor(self, executor: Any) -> None:
        self._refuse_in_a_trial("set_default_executor")  # (a shut-down executor failed every later trial's jobs)
        super().set_default_executor(executor)

    def set_task_factory(self, factory: Any) -> None:
        # (a factory of a trial's own made every later trial's tasks nobody's: ``asyncio.all_tasks`` no longer per
        # trial, and a trial's replay saw other tasks than in the campaign)
        self._refuse_in_a_trial("set_task_factory")
        super().set_task_factory(factory)

    def set_exception_handler(self, handler: Any) -> None:
        self._refuse_in_a_trial("set_exception_handler")  # (it would handle every other trial's errors)
        super().set_exception_handler(handler)

    def set_debug(self, enabled: bool) -> None:
        self._refuse_in_a_trial("set_debug")  # (debug mode slows, and warns in, every other trial)
        super().set_debug(enabled)

    def time(self) -> float:
        """The loop's virtual monotonic time in seconds (0.0 when the loop was created)."""
        return self._vt_selector.now

    def call_soon(self, callback: Callable[..., Any], *args: Any, context: contextvars.Context | None = None
                  ) -> asyncio.Handle:
        """As ``asyncio``'s (the same handle, in the same queue); outside debug mode the handle is filled in here
        rather than through four more calls (``_check_closed``, ``_call_soon``, ``Handle.__init__``,
        ``get_debug``): every task step and future callback of the loop is scheduled through this."""
        if self._debug or not _FAST_HANDLES:  # type: ignore[attr-defined]
            return super().call_soon(callback, *args, context=context)
        if self._closed:  # type: ignore[attr-defined]
            raise RuntimeError("Event loop is closed")
        handle = _new_handle(_Handle)
        handle._context = contextvars.copy_context() if context is None else context
        handle._loop = self
        handle._callback = callback
        handle._args = args
        handle._cancelled = False
        handle._repr = None
        handle._source_traceback = None
        self._ready.append(handle)  # type: ignore[attr-defined]
        return handle

    def call_at(self, when: float, callback: Callable[..., Any], *args: Any, context: Any = None
                ) -> asyncio.TimerHandle:
        """As ``asyncio``'s, with timers due at the same instant run in the order they were made; ``when`` is taken
        to the nearest tick (a time worked out as ``loop.time() + d`` by the caller, with ``d`` within a float's
        rounding of a half microsecond, may land on either side, depending on the loop's time)."""
        if when is None:
            raise TypeError("when cannot be None")
        return self._vt_timer(_to_ticks(when), callback, args, context)

    def call_later(self, delay: float, callback: Callable[..., Any], *args: Any, context: Any = None
                   ) -> asyncio.TimerHandle:
        """As ``asyncio``'s (``asyncio.sleep``, 3.11's ``wait_for``), the delay counted in ticks from the loop's
        tick: never through a float sum with the loop's time, whose rounding depends on that time."""
        if delay is None:
            raise TypeError("delay must not be None")
        return self._vt_timer(self._vt_selector.ticks + _to_ticks(delay), callback, args, context)

    def _vt_timer(self, ticks: int | float, callback: Callable[..., Any], args: tuple[Any, ...], context: Any
                  ) -> asyncio.TimerHandle:
        """A timer due at ``ticks``, on the loop's heap."""
        self._check_closed()  # type: ignore[attr-defined]
        self._vt_timers += 1
        timer = _OrderedTimer(ticks, callback, args, self, context, self._vt_timers)
        if timer._source_traceback:  # type: ignore[attr-defined]
            del timer._source_traceback[-2:]  # type: ignore[attr-defined]  (this method and call_at/call_later)
        heapq.heappush(self._scheduled, timer)  # type: ignore[attr-defined]
        timer._scheduled = True  # type: ignore[attr-defined]
        return timer

    def call_at_deferred(self, when: float, callback: Callable[..., Any], *args: Any,
                         context: contextvars.Context | None = None) -> DeferredTimer:
        """As ``call_at``, for a timer that is likely cancelled before it is due: until the loop is about to let
        virtual time reach ``when`` it is an entry in a heap of plain tuples, not a timer on the loop's heap
        (which compares its timers in Python). It fires exactly as a ``call_at`` timer made at this point would,
        and in the same order among timers due at the same instant; only ``loop._scheduled`` differs."""
        if self._closed:  # type: ignore[attr-defined]  # (``_check_closed``, inlined)
            raise RuntimeError("Event loop is closed")
        self._vt_timers = seq = self._vt_timers + 1
        ticks = _to_ticks(when)
        timer = DeferredTimer(ticks, callback, args, self,
                              contextvars.copy_context() if context is None else context, seq)
        if ticks <= self._vt_selector.ticks:
            timer._arm()  # due already: on the heap, where the loop's next turn finds it
        else:
            heapq.heappush(self._vt_deferred, (ticks, seq, timer))
        return timer

    def _vt_first_timer_ticks(self) -> int | float | None:
        """The tick of the first timer on the loop's heap (None: no timer)."""
        scheduled = self._scheduled  # type: ignore[attr-defined]
        if not scheduled:
            return None
        first = scheduled[0]
        return first._ticks if type(first) is _OrderedTimer else _to_ticks(first._when)

    def _vt_arm_deferred(self, timeout: float | None) -> float | None:
        """(The selector, before time may move.) Put on the heap the deferred timers that a wait of ``timeout``
        could reach, the first of them included; returns ``timeout`` shortened to it, as ``_run_once``
        computes it from the heap's first timer."""
        pending = self._vt_deferred
        while pending and pending[0][2]._callback is None:
            heapq.heappop(pending)
            self._vt_deferred_dead -= 1
        if not pending:
            return timeout
        now = self._vt_selector.ticks
        first = min(max(0, pending[0][0] - now) / TICKS_PER_S, MAXIMUM_SELECT_TIMEOUT)
        if timeout is None or first < timeout:
            timeout = first
        end = now + _to_ticks(timeout)  # (the wait's end: the timers due by then are armed)
        while pending and pending[0][0] <= end:
            timer = heapq.heappop(pending)[2]
            if timer._callback is None:
                self._vt_deferred_dead -= 1
            else:
                timer._arm()
        return timeout

    def _vt_purge_deferred(self) -> None:
        """Many deferred timers not yet armed were cancelled: drop them from the heap once they are half of it."""
        pending = self._vt_deferred
        if 2 * self._vt_deferred_dead > len(pending):
            pending[:] = [entry for entry in pending if entry[2]._callback is not None]  # (the same list)
            heapq.heapify(pending)
            self._vt_deferred_dead = 0

    def close(self) -> None:
        super().close()
        self._vt_deferred.clear()  # (as asyncio clears its timers: they hold the loop)

    def virtual_now(self) -> float:
        """Virtual seconds since the loop was created (the same value as ``time()``)."""
        return self._vt_selector.now

    @property
    def io_poll_cap(self) -> float:
        """Longest real wait, in seconds, of one poll while real I/O is pending."""
        return self._vt_selector.io_poll_cap

    @property
    def on_jump(self) -> Callable[[float], None] | None:
        """Called (on the loop thread) with the seconds of each move of the loop's time: a jump to the next timer,
        or a real wait on I/O (which virtual time follows): how a loop in another process (an isolated agent's)
        reports its time to the trial's clock."""
        return self._vt_selector.on_jump

    @on_jump.setter
    def on_jump(self, listener: Callable[[float], None] | None) -> None:
        self._vt_selector.on_jump = listener

    @property
    def idle_work(self) -> Callable[[], bool] | None:
        """Work for the loop's idle moments: called (on the loop thread) whenever the loop is about to wait,
        it does one short step and returns True, or returns False when it has nothing to do; after a step
        the loop only polls for I/O, runs what became ready, and comes back. Steps must not raise. It never
        moves virtual time. The runner uses it to build queued trials and judge ended ones off the path
        of the trials running, whose I/O answers it does not delay by more than one step."""
        return self._vt_selector.idle

    @idle_work.setter
    def idle_work(self, work: Callable[[], bool] | None) -> None:
        self._vt_selector.idle = work

    def held_still(self) -> float:
        """Real seconds so far that virtual time stood still for trials' thread jobs alone (``JobLane.held``)."""
        return self._vt_selector.still

    @contextlib.contextmanager
    def outside_work(self, lane: JobLane | None = None) -> Iterator[None]:
        """Count work done outside the loop (another thread that will call back) while the block runs: the
        loop then waits for real instead of jumping to its next timer, as for ``run_in_executor``. ``lane``: the
        trial whose work it is (no longer counted once that trial's agent has returned)."""
        job = CountedJob(self._vt_selector, lane)
        try:
            yield
        finally:
            job.done()

    def run_in_executor(self, executor: Any, func: Callable[..., T], *args: Any) -> asyncio.Future[T]:
        """As ``asyncio``'s, with a job for a thread (the default executor, a thread pool) run in a copy of the
        caller's context (as ``asyncio.to_thread`` runs it: a trial's job sees the trial's clock and a ``random``
        of its own, seeded by the trial and the job's place among the trial's jobs (``THREAD_JOB_SETUP``),
        where it drew from the real ones; a process pool's job is pickled, as it is), and while the job runs
        the loop waits for real instead of jumping timers. A trial's thread jobs run one at a time, in the
        order handed over (``lanes.JobLane``): a job handed over while another of its trial is at work waits
        for its turn (the future returned is then a task)."""
        if executor is None or isinstance(executor, concurrent.futures.ThreadPoolExecutor):
            owner = lane_on(self)  # (the trial whose job it is)
            # (asyncio's own name lookups are never held up by a trial's jobs' turns)
            lane = None if func is socket.getaddrinfo or func is socket.getnameinfo else owner
            if self._debug:
                self._check_callback(func, "run_in_executor")  # type: ignore[attr-defined]  (before it is wrapped)
            context = _job_context(func)
            if context is None:
                context = contextvars.copy_context()
                func, args = context.run, (func, *args)  # type: ignore[assignment]
            for setup in THREAD_JOB_SETUP:
                context.run(setup)
            context.run(JOB_LANE.set, None)  # (what the job calls back into the loop does not wait for its turn)
            if lane is not None and not lane.free():
                self._vt_open_executor(executor)  # (a shut-down executor refuses the job here, as asyncio's does)
                return self.create_task(self._vt_in_turn(lane, executor, func, args))
            if lane is not None and not lane.opened:
                return self._vt_submit(lane, executor, func, args)
            return self._vt_counted(executor, func, args, owner)
        return self._vt_counted(executor, func, args)

    def _vt_counted(self, executor: Any, func: Callable[..., T], args: tuple[Any, ...],
                    owner: JobLane | None = None) -> asyncio.Future[T]:
        """``asyncio``'s ``run_in_executor``, the job counted as outside work while its future is pending
        (``owner``: the lane of the trial whose job it is)."""
        future = super().run_in_executor(executor, func, *args)
        future.add_done_callback(CountedJob(self._vt_selector, owner).done)
        return future

    def hand_over(self, pass_on: Callable[[], None]) -> None:
        """Call ``pass_on`` (a trial's thread-job turn, ``lanes``) in the loop's next idle moment."""
        self._vt_selector.handovers.append(pass_on)

    def lane_waits(self, lane: JobLane) -> None:
        """A job of ``lane`` waits for its turn: the loop opens the lane if the wait outlasts its patience."""
        self._vt_selector.lanes.add(lane)

    def _vt_open_executor(self, executor: Any) -> Any:
        """The executor a job goes to (the default one made if need be), RuntimeError if it is shut down."""
        if executor is None:
            self._check_default_executor()  # type: ignore[attr-defined]
            executor = self._default_executor  # type: ignore[attr-defined]
            if executor is None:
                executor = self._default_executor = concurrent.futures.ThreadPoolExecutor(thread_name_prefix="asyncio")
        elif getattr(executor, "_shutdown", False):
            raise RuntimeError("cannot schedule new futures after shutdown")
        return executor

    def _vt_submit(self, lane: JobLane, executor: Any, func: Callable[..., T], args: tuple[Any, ...]
                   ) -> asyncio.Future[T]:
        """Hand a trial's job to the executor, holding its trial's turn (``lanes``) until the loop has seen its
        thread's end and then its result. Once handed over it runs to its end: cancelling the future it
        returns cancels the caller's wait, not the job (which job runs never depends on a thread's timing);
        the loop then no longer waits for it (a job stuck for good would stop virtual time for every trial)."""
        future: asyncio.Future[T] = self.create_future()
        job: CountedJob | None = None  # (counted as outside work until its result is seen, or its future cancelled)

        def deliver(done: concurrent.futures.Future[T]) -> None:  # (on the loop, once the thread is done with it)
            if job is not None:
                job.done()
            lane.ended(self.hand_over)
            if future.cancelled():
                return
            if done.cancelled():  # (its executor was shut down with ``cancel_futures=True`` before it started)
                future.cancel()
                return
            exc = done.exception()
            if exc is not None:
                future.set_exception(exc)
            else:
                future.set_result(done.result())

        def delivered(done: concurrent.futures.Future[T]) -> None:  # (in the job's thread)
            with contextlib.suppress(RuntimeError):  # (the loop closed meanwhile: no one waits for it)
                self.call_soon_threadsafe(deliver, done)

        lane.take()
        try:
            handed = self._vt_open_executor(executor).submit(lane.timed(func), *args)
        except BaseException:
            lane.ended(self.hand_over)  # (never ran: the turn passes on)
            raise
        job = CountedJob(self._vt_selector, lane)
        future.add_done_callback(job.done)
        handed.add_done_callback(delivered)
        return future

    async def _vt_in_turn(self, lane: JobLane, executor: Any, func: Callable[..., T], args: tuple[Any, ...]) -> T:
        """A thread job that waits for its trial's turn before it is handed to the executor."""
        await lane.turn(self)
        if executor is not None and getattr(executor, "_shutdown", False):
            executor = None  # (a pool shut down while its job waited: the default one runs it, as the pool would
            # have run a job handed to it before its ``shutdown(wait=False)``)
        if lane.opened:  # (the lane opened meanwhile: as any job)
            return await self._vt_counted(executor, func, args, lane)
        return await self._vt_submit(lane, executor, func, args)

    async def shutdown_default_executor(self, *args: Any, **kwargs: Any) -> None:
        """As ``asyncio``'s, counted as outside work so that its join timeout (3.12+) runs in real time."""
        self._refuse_in_a_trial("shutdown_default_executor")
        with self.outside_work():
            await super().shutdown_default_executor(*args, **kwargs)


def _cancel_all_tasks(loop: asyncio.AbstractEventLoop) -> None:
    pending = [task for task in asyncio.all_tasks(loop) if not task.done()]
    if not pending:
        return
    for task in pending:
        task.cancel()
    loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
    for task in pending:
        if not task.cancelled() and task.exception() is not None:
            loop.call_exception_handler(
                {
                    "message": "unhandled exception during run_virtual() shutdown",
                    "exception": task.exception(),
                    "task": task,
                }
            )


def keep_forever(objects: Iterable[Any]) -> int:
    """Never free these objects (their count): finalizing an abandoned task runs its code again (a coroutine's
    ``close()``), and an agent that catches ``GeneratorExit`` (or the error of awaiting with no loop) in a loop
    would hang whichever thread collects it (the interpreter's exit, or a later test's garbage collection)."""
    n = 0
    for obj in objects:
        ctypes.pythonapi.Py_IncRef(ctypes.py_object(obj))
        n += 1
    return n


def run_virtual(coro: Coroutine[Any, Any, T], *, loop: VirtualTimeLoop | None = None) -> T:
    """Run ``coro`` to completion on a ``VirtualTimeLoop`` and return its result.

    Without ``loop`` a fresh loop is made and, afterwards, its remaining tasks are cancelled, async
    generators and the default executor shut down and the loop closed (as ``asyncio.run`` does). A given
    ``loop`` is left open, so that its virtual time can be inspected and the loop reused.
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        pass
    else:
        if asyncio.iscoroutine(coro):
            coro.close()
        raise UsageError("run_virtual() cannot be called from a running event loop; await the coroutine")
    if loop is not None and not isinstance(loop, VirtualTimeLoop):
        if asyncio.iscoroutine(coro):
            coro.close()
        raise ArgumentTypeError(f"loop={loop!r} must be a VirtualTimeLoop or None")
    if loop is not None:
        return loop.run_until_complete(coro)
    own_loop = VirtualTimeLoop()
    try:
        return own_loop.run_until_complete(coro)
    finally:
        wind_down(own_loop)


def wind_down(loop: VirtualTimeLoop) -> None:
    """Close a loop as ``asyncio.run`` does: its remaining tasks cancelled, async generators (an SDK's stream)
    and the default executor shut down, then closed."""
    try:
        _cancel_all_tasks(loop)
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.run_until_complete(loop.shutdown_default_executor())
    finally:
        # a task still pending (it ignored its cancellation, and its thread was interrupted out of the wait)
        # is never freed: finalized later, anywhere, its code would run again with no loop under it
        keep_forever([task for task in asyncio.all_tasks(loop) if not task.done()])
        loop.close()
