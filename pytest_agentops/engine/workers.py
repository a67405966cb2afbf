"""Where agent code runs: worker threads for sync agents, one event-loop thread for async agents.

An agent that hangs or busy-loops must never hang the session. The runner waits with a wall-clock
deadline; past it the trial is abandoned: a ``TrialAbandoned`` is raised asynchronously in the worker
thread (which stops a pure-Python busy loop at its next bytecode), and the worker is retired and
replaced, so a thread stuck in a blocking C call only leaks a daemon thread.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures as cf
import contextlib
import contextvars
import ctypes
import dataclasses
import functools
import logging
import os
import queue
import sys
import threading
from collections.abc import Callable, Coroutine, Mapping
from typing import Any

from ..errors import TrialAbandoned, hide_own_frames
from ..process.exit_guard import Refusal, in_a_trial
from ..process.task_scope import forget_tasks, owner_of, task_factory
from ..vtime.loop import VirtualTimeLoop, keep_forever
from ..vtime.real import real_monotonic, real_perf_counter
from .job_future import JobFuture

#: who called, in the message of a process-level call refused on a worker outside any trial's context
ON_THE_LOOP = "code on the campaign's event loop, outside any trial's context"
ON_A_WORKER = "code on a campaign's worker thread, outside any trial's context"

__tracebackhide__ = hide_own_frames

_STDLIB = os.path.dirname(threading.__file__) + os.sep
#: Where an asynchronous exception must not land: the innermost frame in code that takes and gives back
#: locks by hand (logging's handlers and module lock, the import system, ``threading``, ``queue``,
#: ``concurrent.futures``, ``http.cookiejar``'s jar, ``tempfile``, ``multiprocessing``). Raised between a lock's
#: ``acquire()`` and the ``try`` that releases it, the exception leaves the lock held by a thread that then
#: ends, and every later user of it waits forever (pytest's log capture included; every later trial's request
#: through an httpx client the trials share: its cookie jar's lock, so the bundled scenarios' trials timed out
#: after an early stop at concurrency 8, in 1 to 2 runs of 8). Raised anywhere else it unwinds through
#: ``with`` and ``finally`` blocks that release what they hold. A thread waiting for the GIL raises it in the
#: very frame seen here.
_LOCK_CODE = (os.path.dirname(logging.__file__) + os.sep, "<frozen importlib._bootstrap", threading.__file__,
              queue.__file__, os.path.dirname(cf.__file__) + os.sep, _STDLIB + os.path.join("http", "cookiejar.py"),
              _STDLIB + "tempfile.py", _STDLIB + "multiprocessing" + os.sep)


def at_unsafe_point(ident: int | None, frames: Mapping[int, Any] | None = None) -> bool:
    """Whether the thread ``ident`` is where an asynchronous exception could leave a lock held (``frames``: a
    snapshot of ``sys._current_frames()`` to read instead of taking one)."""
    if ident is None:
        return False
    frame = (sys._current_frames() if frames is None else frames).get(ident)
    return frame is not None and frame.f_code.co_filename.startswith(_LOCK_CODE)


def raise_in_thread(thread: threading.Thread, exc_type: type[BaseException] = TrialAbandoned, *,
                    frames: Mapping[int, Any] | None = None) -> bool:
    """Ask CPython to raise ``exc_type`` in ``thread`` at its next bytecode; True when delivered, False when
    the thread has ended or is at an unsafe point (``at_unsafe_point``: try again a moment later)."""
    ident = thread.ident
    if ident is None or not thread.is_alive() or at_unsafe_point(ident, frames):
        return False
    done = ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(ident), ctypes.py_object(exc_type))
    if done > 1:  # should not happen: undo
        ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(ident), None)
        return False
    return done == 1


@dataclasses.dataclass
class _Chase:
    thread: threading.Thread
    running_agent_code: Callable[[], bool]
    started: float
    next_at: float
    first_pending: bool  # the first interruption has not landed yet (the thread was at an unsafe point)
    pause_s: float  # after the first lands: time for the harness's own clean-up before the chase goes on


class _Hound:
    """Keeps raising ``TrialAbandoned`` in abandoned workers still running agent code, until they stop.

    One asynchronous exception is caught by an agent that wraps its loop in ``except BaseException``;
    raised again and again, one lands outside the ``try`` (at the loop's jump back, or in the handler) and
    ends the thread. The chase starts a moment after the first exception (time for the harness's own
    clean-up on the way out, such as killing a child process, which must not be interrupted), then every
    5 ms for 2 s, then every 200 ms, on one daemon thread that ends when no worker is left to chase. No
    exception is raised while the thread is at an unsafe point (``at_unsafe_point``): a first interruption
    that could not land then is retried at the same cadence. A thread stuck in a C call is beyond reach
    (reported as unstoppable).
    """

    FAST_S, FAST_FOR_S, SLOW_S = 0.005, 2.0, 0.2

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._chased: list[_Chase] = []
        self._thread: threading.Thread | None = None
        self._wake = threading.Event()

    def chase(self, thread: threading.Thread, running_agent_code: Callable[[], bool], after_s: float = 0.0, *,
              first_pending: bool = False, pause_s: float = 0.0) -> None:
        """Interrupt ``thread`` while ``running_agent_code()``, starting in ``after_s`` seconds; with
        ``first_pending`` the first interruption is still to land, and the chase pauses ``pause_s`` after it."""
        now = real_monotonic()
        with self._lock:
            self._chased.append(_Chase(thread, running_agent_code, now, now + after_s, first_pending, pause_s))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="agentops-hound", daemon=True)
                self._thread.start()

    def _run(self) -> None:
        while True:
            with self._lock:
                self._chased = [c for c in self._chased if c.thread.is_alive() and c.running_agent_code()]
                if not self._chased:
                    self._thread = None
                    return
                chased = list(self._chased)
            now = real_monotonic()
            frames = sys._current_frames()  # one snapshot per round, not one per chased thread
            for chase in chased:
                if now >= chase.next_at and raise_in_thread(chase.thread, frames=frames) and chase.first_pending:
                    chase.first_pending, chase.next_at = False, now + chase.pause_s
            fast = any(now - c.started < self.FAST_FOR_S for c in chased)  # then slow, landed or not
            self._wake.wait(self.FAST_S if fast else self.SLOW_S)


HOUND = _Hound()


#: how long ``ThreadWorker.abandon`` waits for a job's start or end under way in its thread (a few bytecodes)
SWITCH_WAIT_S = 1.0


class ThreadWorker:
    """A daemon thread that runs submitted callables one at a time. ``on_done(future)``, if set before jobs are
    submitted, is called as each job's future is completed or cancelled (one callable for all the jobs, not a
    callback added to each future)."""

    def __init__(self, name: str):
        self._jobs: queue.SimpleQueue[tuple[Callable[[], Any], cf.Future[Any]] | None] = queue.SimpleQueue()
        self._futures_lock = threading.Lock()  # shared by the futures of the jobs submitted here (``JobFuture``)
        # held while a job starts or ends, and while ``abandon`` interrupts one: an interruption meant for a job that
        # has just ended must never land in the next one (a trial the watchdog found late as it ended)
        self._switch = threading.Lock()
        self._running: cf.Future[Any] | None = None  # the future of the job running now
        self.on_done: Callable[[cf.Future[Any]], None] | None = None
        self.retired = False
        self.abandoned = False  # its running job was given up on (the thread may still be running it)
        self.in_job = False
        self.thread = threading.Thread(target=self._run, name=name, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        # (code a trial runs outside its context, ``contextvars.Context().run(os._exit, 0)``, cannot end the process)
        with contextlib.suppress(TrialAbandoned), Refusal(ON_A_WORKER):  # abandoned as its job ended: retired anyway
            self._serve()

    def _serve(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            fn, future = job
            with self._switch:
                if self.retired:  # (abandoned meanwhile: this job stays queued, and is moved to another worker)
                    return
                if not future.set_running_or_notify_cancel():
                    continue
                self._running = future
                self.in_job = True
            failed: BaseException | None = None
            try:
                result = fn()
            except BaseException as exc:  # the agent's failure is data, not a crash
                result, failed = None, exc
            with self._switch:
                self._running = None
                self.in_job = False
            if failed is not None:
                future.set_exception(failed)
            else:
                future.set_result(result)
            if self.retired:
                return

    def has_queued(self) -> bool:
        """Whether more jobs wait in this worker's queue."""
        return not self._jobs.empty()

    def submit(self, fn: Callable[[], Any]) -> cf.Future[Any]:
        future: cf.Future[Any] = JobFuture(self._futures_lock, self.on_done)  # (no Condition and RLock per trial)
        self._jobs.put((fn, future))
        return future

    def abandon(self, future: cf.Future[Any] | None = None) -> bool:
        """Give up on the running job: interrupt it if possible and never reuse this worker. With ``future``, only
        if that is the running job's (one that has ended is left alone, and so is the job after it): whether it
        was given up on."""
        held = self._switch.acquire(timeout=SWITCH_WAIT_S)  # (never held long: left held, it is not waited for)
        try:
            if held and future is not None and self._running is not future:
                return False
            self.retired = True
            self.abandoned = True
            landed = raise_in_thread(self.thread)
        finally:
            if held:
                self._switch.release()
        self._jobs.put(None)
        if self.in_job:  # still running it half a second later: the agent caught the first one
            HOUND.chase(self.thread, lambda: self.in_job, after_s=0.5 if landed else 0.0,
                        first_pending=not landed, pause_s=0.5)
        return True

    def close(self) -> None:
        self.retired = True
        self._jobs.put(None)


#: Queued jobs a LoopWorker builds ahead in its idle moments (``warm``), at most, and ended jobs it leaves to be
#: judged in a later idle moment (``settle``) before each job starting settles one (``LoopWorker._run_job``): at
#: high concurrency, thousands of trials built ahead or left unjudged would only keep memory alive (and make
#: every garbage collection longer).
WARM_AHEAD = 128
SETTLE_BACKLOG = 256


class _Job:
    """A job queued on a LoopWorker: ``warm()`` (optional, in an idle moment before it starts),
    ``start()`` (the coroutine run as a task), ``settle(result)`` (optional, in an idle moment after)."""

    __slots__ = ("done_cb", "future", "held", "settle", "start", "task", "warm")

    def __init__(self, start: Callable[[], Coroutine[Any, Any, Any]], warm: Callable[[], None] | None,
                 settle: Callable[[Any], Any] | None, future: JobFuture):
        self.start = start
        self.warm = warm
        self.settle = settle
        self.future = future
        self.held = False  # holds one of the loop's ``limit`` slots
        self.task: asyncio.Task[Any] | None = None  # once started
        self.done_cb: Callable[[asyncio.Task[Any]], None] | None = None  # its task's done callback, while it has one


class LoopWorker:
    """A daemon thread running one virtual-time event loop for async agents (concurrent trials share it).

    Jobs queued with ``put`` are started by a driver on the loop itself: when one ends, the next queued
    one starts right there, so the loop keeps ``limit`` jobs running with no cross-thread hand-off per
    job (each hand-off is a GIL switch that can cost milliseconds while the other thread is busy). A
    job's set-up and its wrap-up run in the loop's idle moments (``VirtualTimeLoop.idle_work``), so that
    when many jobs' I/O answers arrive together the next ones start without waiting for that work.

    A job's task reports its own end, in its last step (``_run_job``); its done callback, which would cost
    the loop a handle and a turn per job, is removed then, and only reports a task that never ran (cancelled
    before its first step). ``on_done(future)``, if set, is called as each job's future is completed or
    cancelled (before the future's own callbacks): one callable for all the jobs, not one per future.
    ``when_idle()``, if set, is called when the loop is about to wait with no job left to warm or settle.
    """

    def __init__(self, name: str = "agentops-loop", judging_s: float = 30.0):
        self.judging_s = judging_s  # how long ``reap`` waits for an ended job's judging (the trials' own limit)
        self.loop = VirtualTimeLoop()
        self.loop.idle_work = self._idle
        self.loop.set_task_factory(task_factory)  # tasks a trial creates are its own (``asyncio.all_tasks``)
        self.retired = False
        self.limit = 1  # jobs from ``put`` running at once
        self.running = 0
        self._pending: collections.deque[_Job] = collections.deque()
        self._warmed = 0  # the first ``_warmed`` pending jobs have been warmed
        self._settling: collections.deque[tuple[_Job, Any]] = collections.deque()
        self._tasks: dict[cf.Future[Any], _Job] = {}  # jobs started and not yet reported
        self._ready = threading.Event()
        self._futures_lock = threading.Lock()  # shared by the futures of the jobs put here (``JobFuture``)
        self.on_done: Callable[[cf.Future[Any]], None] | None = None  # told of every job's end (see above)
        # called when the loop is about to wait with no idle work left (must be quick and not raise)
        self.when_idle: Callable[[], None] | None = None
        # what each job's task starts from: the context of the thread that made this worker (not the context of
        # the job whose end starts it, which its agent may have changed)
        self._context = contextvars.copy_context()
        self.abandoned = 0  # tasks left running when the loop stopped (they ignored their cancellation)
        # wall time (``real_perf_counter``, the runner's clock) the loop last judged an ended job or had an idle
        # moment: a trial waiting to be judged counts against its limit only from here (``Trial.counting_since``)
        self.progress_at = 0.0
        self.thread = threading.Thread(target=self._run, name=name, daemon=True)
        self.loop.stop_refused = self._in_a_trial  # (its own stops run as callbacks, outside any task)
        self.thread.start()
        self._ready.wait()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.call_soon(self._ready.set)
        try:
            # an abandoned trial's async exception can land here: the loop is then retired; and code a trial runs
            # outside its context (a callback, a task made with a context of its own) cannot end the process
            with contextlib.suppress(BaseException), Refusal(ON_THE_LOOP):
                while True:
                    try:
                        self.loop.run_forever()
                        break
                    except (KeyboardInterrupt, SystemExit):
                        # raised by a callback or a task an agent left on the loop (a trial's own coroutine is
                        # judged where it raised it): it stopped the loop every trial on it shares, and those
                        # trials were timed out in its place. Dropped: the loop goes on, unless being retired.
                        if self.retired:
                            break
        finally:
            with contextlib.suppress(BaseException):
                self.reap()  # jobs that ended but would wait for a callback or an idle moment that never comes
            with contextlib.suppress(BaseException):
                left = [t for t in asyncio.all_tasks(self.loop) if not t.done()]
                self.abandoned = keep_forever(left)
                forget_tasks(left)
            # the loop is done for (``close`` or ``abandon`` stopped it): close it, which also lets the default
            # executor's idle threads go (``run_in_executor``/``to_thread`` jobs), and releases its selector
            with contextlib.suppress(BaseException):
                self.loop.close()

    def _in_a_trial(self) -> bool:
        """Whether a trial is the caller (an agent calling ``loop.stop()``): on the loop's thread, whether the loop
        runs a trial's task now; on another thread, whether that thread is in a trial (``asyncio.to_thread`` carries
        the trial's context there) or is an agent's thread. The harness's own calls, from its main thread (closing or
        retiring the loop while a trial's task holds it), are not refused."""
        if threading.current_thread() is not self.thread:
            return in_a_trial()
        return owner_of(asyncio.current_task(self.loop)) is not None

    def submit(self, coro: Coroutine[Any, Any, Any]) -> cf.Future[Any]:
        """Run ``coro`` on the loop now (not counted against ``limit``)."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    # -- queued jobs ------------------------------------------------------------------------------------
    def put(self, start: Callable[[], Coroutine[Any, Any, Any]], *, warm: Callable[[], None] | None = None,
            settle: Callable[[Any], Any] | None = None) -> cf.Future[Any]:
        """Queue a job: once ``kick``-ed, the loop runs ``start()`` as a task when fewer than ``limit`` run.

        ``warm()`` (must not raise) may run before, in an idle moment of the loop, for the jobs that start
        next; ``settle(result)`` runs after, in an idle moment, and its value is the job's result. The
        future is marked running when the job's task runs its first step; a job still queued, or whose task has
        not run yet (e.g. on a loop blocked in the same turn), can be cancelled from any thread with
        ``future.cancel()`` (it then never runs), a running one only from the loop (``cancel_job``)."""
        future = JobFuture(self._futures_lock, self.on_done)
        self._pending.append(_Job(start, warm, settle, future))
        return future

    def kick(self) -> None:
        """Have the loop start queued jobs (one wake-up of the loop for any number of ``put``)."""
        with contextlib.suppress(RuntimeError):  # a closed loop: its jobs never start
            self.loop.call_soon_threadsafe(self._drive)

    def queued(self) -> int:
        """How many jobs put on this loop wait for a free slot."""
        return len(self._pending)

    def busy(self) -> bool:
        """Whether jobs put on this loop are running or not yet settled."""
        return self.running > 0 or bool(self._settling)

    def still_running(self, future: cf.Future[Any]) -> bool:
        """Whether the task of a started job has not ended (a task may ignore its cancellation)."""
        job = self._tasks.get(future)
        return job is not None and job.task is not None and not job.task.done()

    def cancel_job(self, future: cf.Future[Any]) -> None:
        """On the loop: skip a queued job, or cancel the task of a running one."""
        if not future.cancel():
            job = self._tasks.get(future)
            if job is not None and job.task is not None:
                job.task.cancel()

    def _drive(self) -> None:
        """On the loop: start queued jobs while fewer than ``limit`` run."""
        pending = self._pending
        while self.running < self.limit and pending and not self.retired:
            job = pending.popleft()
            if self._warmed:
                self._warmed -= 1
            if job.future.cancelled():  # cancelled while queued (marked running by its task's first step)
                continue
            self.running += 1
            job.held = True
            try:
                # (the loop's task factory, inlined: a job is started outside any trial, so its task has no owner)
                task = asyncio.Task(self._run_job(job), loop=self.loop, context=self._context.copy())
            except BaseException as exc:
                self._free(job)
                job.future.set_exception(exc)
                continue
            job.task = task
            self._tasks[job.future] = job
            # only for a task that never runs ``_run_job`` (cancelled before its first step): removed by it
            job.done_cb = functools.partial(self._job_done, job)
            task.add_done_callback(job.done_cb)

    async def _run_job(self, job: _Job) -> None:
        """A job's task: its coroutine, then its end is reported and the next queued job starts, in the same
        turn of the loop (not one turn later, from a done callback).

        A loop never idle would pile ended jobs up unsettled: past ``min(2 * limit, SETTLE_BACKLOG)`` of them,
        each job starting settles one first, in its own first step (as many settled as started: the backlog stays
        at that mark until the jobs stop coming, then idle moments settle the rest). Neither as a job ends nor
        several in a row: judging a trial frees its objects in bulk, and the collector counts frees only down to
        zero new objects, where it is right after a collection (which a trial's own run sets off): frees made
        then are not counted, and the collector ran twice to four times as often at concurrency 1,000.

        The job's future is marked running here, not when its task is made: a task made in the turn in which
        another blocks the loop for good never runs, and its job, still pending, can then be cancelled from
        another thread and run elsewhere (``Runner._retire_loop``); should this loop run it after all, it ends
        here without running the job."""
        if not job.future.set_running_or_notify_cancel():  # cancelled before its task ran: never runs here
            self._unstarted(job)
            return
        settling = self._settling
        if len(settling) > min(2 * self.limit, SETTLE_BACKLOG):
            self._settle_one()
        try:
            result = await job.start()
        except Exception as exc:  # the job's failure, reported through its future: the task itself ends quietly
            self._ended(job, None, exc)
            return
        except BaseException as exc:  # cancelled, or an exception that must go on (KeyboardInterrupt and the like)
            self._ended(job, None, exc)
            raise
        self._ended(job, result, None)

    def _free(self, job: _Job) -> None:
        """Give back the job's slot and start the next queued jobs."""
        if job.held:
            job.held = False
            self.running -= 1
            self._drive()

    def _ended(self, job: _Job, result: Any, exc: BaseException | None) -> None:
        """(In the job's task, as it ends.) Free its slot and report its end."""
        if job.done_cb is not None and job.task is not None:
            job.task.remove_done_callback(job.done_cb)
            job.done_cb = None
        if job.held:  # (``_free``, inlined: once per job)
            job.held = False
            self.running -= 1
            if self._pending:
                self._drive()
        if self._tasks.pop(job.future, None) is None:
            return  # reaped already (``reap``)
        if exc is not None:
            job.future.set_exception(cf.CancelledError() if isinstance(exc, asyncio.CancelledError) else exc)
        elif job.settle is None:  # (``_report``, inlined)
            job.future.set_result(result)
        else:
            self._settling.append((job, result))  # settled as a job starts (``_run_job``), or in an idle moment

    def _unstarted(self, job: _Job) -> None:
        """(In the job's task, its first step.) The job was cancelled before it ran: free its slot, report nothing
        (its future is cancelled already)."""
        if job.done_cb is not None and job.task is not None:
            job.task.remove_done_callback(job.done_cb)
            job.done_cb = None
        self._tasks.pop(job.future, None)
        self._free(job)

    def _job_done(self, job: _Job, task: asyncio.Task[Any]) -> None:
        """A job's task is done without having reported its end (it never ran, or the loop stopped first)."""
        job.done_cb = None
        if self._tasks.pop(job.future, None) is None:
            return  # reaped already (``reap``)
        self._free(job)  # (a task cancelled before its first step never ran ``_run_job``)
        if job.future.done():
            return  # cancelled before its task ran (its future was never marked running): reported then
        try:
            if task.cancelled():
                job.future.set_exception(cf.CancelledError())
            elif task.exception() is not None:
                job.future.set_exception(task.exception())
            else:
                self._report(job, task.result())
        except cf.InvalidStateError:
            pass  # cancelled from another thread just now, before its task ran: reported by that cancel

    def _report(self, job: _Job, result: Any) -> None:
        """A job ended with ``result``: its future's result, or (with a ``settle``) queued to be settled."""
        if job.settle is None:
            job.future.set_result(result)
        else:
            self._settling.append((job, result))
            # a loop never idle: do not pile up (not for a retired loop's ``reap``: settled apart)
            if len(self._settling) > min(2 * self.limit, SETTLE_BACKLOG) and not self.retired:
                self._settle_one()

    def reap(self) -> None:
        """For a retired loop (blocked, or whose thread is gone): report the jobs whose tasks ended but whose done
        callback or idle moment has not come, and may never. Each is settled (its trial judged) in a thread of its
        own, one after the other as the loop would (checks running at once would share the GIL, and which of them
        met a deadline would depend on the concurrency), each waited for up to ``judging_s`` (the trials'
        wall-clock limit) until it is settled; never in the caller's thread (the campaign's main thread): what the
        agent left runs there (its output's ``__del__`` as the output goes, its exception's ``__str__``), and one
        that never returns hung the campaign, whatever its wall-clock limit. One not settled by then has its future
        ended with ``TrialAbandoned``: its trial's ``finish`` records it without the judging under way."""
        for job in list(self._tasks.values()):
            if job.task is not None and job.task.done():
                self._job_done(job, job.task)
        while self._settling:
            settled, taken = threading.Event(), []  # (the thread takes the job: its output is never held here)
            threading.Thread(target=self._settle_apart, args=(settled, taken), daemon=True,
                             name="agentops-reaped-job").start()
            if not settled.wait(self.judging_s) and taken:
                with contextlib.suppress(cf.InvalidStateError):  # (settled just now)
                    taken[0].future.set_exception(TrialAbandoned("judging the trial did not return"))

    def _settle_apart(self, settled: threading.Event, taken: list[_Job]) -> None:
        """(A thread of its own, started by ``reap``.) Settle the next ended job, as an idle moment of the loop would
        (none: the loop's own thread, reaping too, took the last one)."""
        try:
            job, result = self._settling.popleft()
        except IndexError:
            settled.set()
            return
        taken.append(job)
        try:
            with contextlib.suppress(cf.InvalidStateError), Refusal(ON_THE_LOOP):  # (``reap`` gave up on it)
                self._settle(job, result)
        finally:
            settled.set()  # (before the output goes, with this frame: its ``__del__`` may never return)

    def _settle_one(self) -> None:
        self.progress_at = real_perf_counter()
        try:
            job, result = self._settling.popleft()
        except IndexError:  # the loop's thread took the last one meanwhile
            return
        self._settle(job, result)

    def _settle(self, job: _Job, result: Any) -> None:
        assert job.settle is not None
        try:
            # in a context of its own, a copy of the one each job's task starts from: settled in an idle moment,
            # in the first step of the job starting next (``_run_job``) or by ``reap``, the same (what a trial's
            # judging sets there, e.g. a check's context variable, reaches neither that next job's agent nor a
            # later judging: which trial ends up beside which depends on the concurrency)
            value = self._context.copy().run(job.settle, result)
        except BaseException as exc:  # reported through the future, like the job's own failure: a BaseException
            # too (an agent's object whose ``__repr__`` or ``__eq__`` raises one while the trial is judged), which
            # would otherwise leave the job's future pending for ever and end the loop (or the job starting)
            job.future.set_exception(exc)
        else:
            job.future.set_result(value)

    def _idle(self) -> bool:
        """One step of idle work: warm the next job to start, else settle an ended one."""
        self.progress_at = real_perf_counter()
        pending = self._pending
        while self._warmed < min(len(pending), self.limit, WARM_AHEAD) and not self.retired:
            job = pending[self._warmed]
            self._warmed += 1
            if job.warm is not None and not job.future.cancelled():
                job.warm()
                return True
        if self._settling:
            self._settle_one()
            return True
        if self.when_idle is not None:
            self.when_idle()
        return False

    # -- control from other threads -----------------------------------------------------------------------
    def call(self, fn: Callable[[], Any], wait_s: float = 0.25) -> bool:
        """Run ``fn()`` on the loop thread and wait for it; False when the loop did not get to it within
        ``wait_s`` seconds (a busy-looping coroutine blocks it) or is gone (``fn`` is then skipped)."""
        if threading.get_ident() == self.thread.ident:
            fn()
            return True
        if not self.thread.is_alive():
            return False
        ran = threading.Event()
        given_up = False

        def run() -> None:
            if not given_up:
                try:
                    fn()
                finally:
                    ran.set()

        try:
            self.loop.call_soon_threadsafe(run)
        except RuntimeError:
            return False
        if ran.wait(wait_s):
            return True
        given_up = True
        return ran.is_set()

    def responsive(self, wait_s: float = 0.25) -> bool:
        """Whether the loop runs callbacks (a busy-looping coroutine blocks it)."""
        return self.call(lambda: None, wait_s)

    def stuck(self, wait_s: float = 0.25) -> tuple[bool, object | None]:
        """(From another thread.) Whether the loop is stuck in one step: it did not run a callback within
        ``wait_s`` and did not come round once meanwhile, in the same task throughout (a loop slowed by steps
        that each take a while is not stuck); and the trial whose task that is (None: not in a trial's task, e.g.
        in the idle work that builds trials ahead)."""
        turns, task = self.loop.vt_state.turns, self._current_task()
        if self.responsive(wait_s) or self.loop.vt_state.turns != turns or self._current_task() is not task:
            return False, None
        return True, owner_of(task)

    def _current_task(self) -> asyncio.Task[Any] | None:
        try:
            return asyncio.current_task(self.loop)
        except Exception:  # (a loop closed meanwhile)
            return None

    def abandon(self) -> None:
        """Interrupt a blocked loop thread and retire this worker."""
        self.retired = True
        landed = raise_in_thread(self.thread)
        self.close()
        # a loop still running a second later is blocked by agent code that caught the first interruption
        HOUND.chase(self.thread, self.loop.is_running, after_s=1.0 if landed else 0.0, first_pending=not landed,
                    pause_s=1.0)

    def close(self) -> None:
        self.retired = True
        # the trials left on a retired loop are recorded already: no "Task was destroyed but it is pending!" (the
        # base class's method: its owner's call, never refused as a trial's, even from a campaign a check runs)
        asyncio.BaseEventLoop.set_exception_handler(self.loop, _quiet_handler)
        with contextlib.suppress(RuntimeError):
            self.loop.call_soon_threadsafe(self.loop.stop)


def _quiet_handler(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    """The exception handler of a retired loop: what is left on it was abandoned on purpose."""
