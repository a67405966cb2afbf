"""Scheduling a campaign: launch-order sequential looks, bounded concurrency, the wall-clock watchdog.

Results are consumed in launch order: after each trial ``n`` of the launch-order prefix the expectations'
judges (``pytest_agentops.judge``) look at trials ``0..n-1`` only, whatever finished first, so early stopping
is not biased toward fast (often successful) trials. The campaign stops as soon as every expectation is
decided, or at once when one fails; trials launched past that point are discarded.

Where trials run: the main thread launches trials (up to the next look) and watches the wall clock. A sync
trial is built, run and judged in one of ``concurrency`` worker threads; an async one on the one
``VirtualTimeLoop`` thread, where a driver starts queued trials as others end and builds and judges them
in the loop's idle moments (``workers.LoopWorker``). Either way the main thread is woken once per batch,
not per trial.
"""

from __future__ import annotations

import collections
import concurrent.futures as cf
import contextlib
import functools
import queue
import sys
import threading
from collections.abc import Iterator, Sequence
from typing import Any

from ..errors import ConfigError, ProcessStateChanged, hide_own_frames, warn_at_campaign
from ..judge import judge
from ..process import exit_guard
from ..process.anyio_threads import track_anyio_threads
from ..process.exit_guard import collect_left_garbage, watch_exit_hooks  # (stand-ins installed with time's)
from ..process.gc_hold import campaign_gc_for
from ..process.kept_state import kept_process_state
from ..process.own_code import harness_changed, own_code_kept
from ..process.time_patch import take_rebound, time_patch
from ..record_store import RecordStore
from ..records import TrialRecord
from ..scenario import Scenario
from ..settings.run import RunSettings
from ..vtime.real import real_perf_counter
from .assemble import CampaignLayers, is_async_agent
from .progress import ProgressCallback, ProgressFeed
from .spend import SpendGate
from .trial import Trial, within_trace_budget
from .workers import LoopWorker, ThreadWorker

__tracebackhide__ = hide_own_frames

_wall = real_perf_counter  # never the virtual clock
#: Real seconds an async trial has, once cancelled at its wall-clock limit, to end before its loop is retired.
CANCEL_GRACE_S = 0.5
#: how long the end of a campaign waits for each of its worker threads to end
JOIN_S = 1.0
#: how long, in all, the end of a campaign waits for the threads it abandoned (an early stop's discarded trials,
#: trials past their limit) to end: one in a blocking call ends when the call returns, and is not unstoppable
ABANDONED_GRACE_S = 0.5
#: ``Runner._blocker``: the loop is stuck in a task left by a trial that has ended (not a position in flight)
_ENDED_TRIAL = -1
#: the longest the main thread waits for a word from the workers: after any wait that brought none (this long,
#: or shorter, e.g. for the progress line), it looks for a finished trial whose end never reached it (an exception
#: raised into a worker's thread can land in the call that tells it)
UNREPORTED_LOOK_S = 1.0


@contextlib.contextmanager
def campaign_patches(concurrency: int = 1) -> Iterator[None]:
    """The process-wide changes every campaign holds while it runs: the collector skips the objects that
    predate it and collects the young ones less often the more trials run at once, anyio's worker threads
    keep the virtual loop waiting, the time stand-ins stay installed."""
    with campaign_gc_for(concurrency), track_anyio_threads(), time_patch():
        yield


class Runner:
    """Runs trials of one scenario with bounded concurrency and wall-clock protection."""

    def __init__(self, scenario: Scenario, settings: RunSettings, *, progress: ProgressCallback | None = None,
                 progress_every_s: float = 5.0, trace_budget: bool = True, layers: CampaignLayers | None = None):
        self.scenario = scenario
        self.settings = settings
        # the records keep traces within the campaign's budget (``within_trace_budget``; ``keep_traces=None`` too,
        # which an OpenTelemetry export sets: the JSON report is the same whichever reports are asked for), unless
        # the run is a replay or a smoke trial, or the caller keeps its own count (``compare_campaigns``: blocks of
        # trials, one Runner each)
        self.trace_budget = trace_budget and settings.replay is None and not settings.smoke
        # live progress (``engine/progress.py``): called from this thread at most every ``progress_every_s``
        self.progress = progress
        self.progress_every_s = progress_every_s
        self.is_async = is_async_agent(scenario.agent)
        self._threads: list[ThreadWorker] = []
        self._load: dict[ThreadWorker, int] = {}  # trials queued on or running in each worker thread
        self._loop: LoopWorker | None = None
        # futures put here by the thread that completes them: waiting costs O(1), not O(concurrency). A
        # ``queue.Queue``, not a ``SimpleQueue``: before Python 3.13, ``SimpleQueue.get(timeout=t)`` can block until
        # the next ``put`` however long that takes, when its deadline passes inside its own loop (a tiny ``t``, a
        # stall of the thread), and the main thread then waited for ever on workers that had nothing left to run
        self._completed: queue.Queue[cf.Future[Any]] = queue.Queue()
        self._flying: dict[int, Trial] = {}
        self._quiet: collections.deque[cf.Future[Any]] = collections.deque()  # completed, main not woken
        self._stubborn: list[tuple[LoopWorker, Trial, float]] = []  # cancelled, still running: (loop, trial, grace)
        self._retired: list[LoopWorker] = []  # loops given up on (blocked, or running a task that ignores cancel)
        self._held_up: set[int] = set()  # trials run again once already after a retired loop caught them halfway
        # trials launched ahead of the running ones, queued on the worker threads (sync: 31 per thread) or on
        # the loop (async: up to 1024): a worker goes from one trial to the next without waiting for the
        # main thread (cross-thread wake-ups dominate a fast trial's cost, and a main thread busy queueing
        # trials holds the GIL while the loop's I/O answers wait); the loop asks for more when it runs low
        c = settings.concurrency
        ahead = min(31 * c, 1024)
        self._in_flight = c + ahead if self.is_async else 32 * c
        # the loop wakes the main thread to queue more once this few are left (half the queue at most: at high
        # concurrency a few hundred trials per wake-up, not a few dozen, each wake-up scanning every trial)
        self._low_water = min(c, ahead // 2)
        self._unkicked = 0  # async trials queued on the loop since it was last woken to start them
        self._refill = False  # more async trials to queue once the loop's queue runs low
        self.interrupted = False  # Ctrl-C ended the run: the records are the trials that finished before it
        self.harness_changed: list[str] = []  # the harness's own code the trials changed (``own_code``), put back
        # the layers' campaign parts, checked before any trial; ``layers``: the caller's, kept across its Runners (a
        # comparison's blocks of trials are one campaign a side: one spend ledger, closed by the caller)
        self._own_layers = layers is None
        self.layers = CampaignLayers(scenario, settings) if layers is None else layers
        try:
            self.spend = SpendGate.of(self.layers.parts)  # a spend cap's launch rule (engine/spend.py)
        except BaseException:
            if self._own_layers:
                with contextlib.suppress(BaseException):  # (the error that stopped the set-up is the one to show)
                    self.layers.close()  # what the parts opened goes with the runner that is not made
            raise
        if self.spend.active:
            self._in_flight = c  # no trial queued ahead: each one is launched when the cap's rule allows it
        # the first fill of an async campaign stops at ``concurrency`` plus the low-water mark: the loop starts the
        # first trials while the main thread queues the rest once enough have ended (the first refill wake-up comes
        # as the queue runs dry), not while the first ones are being started and send their first requests (both
        # need the GIL; at concurrency 100 queueing 1,000 trials first delayed the first requests by ~10 ms, and
        # shared the GIL with them for ~40 ms more)
        self._first_fill = min(self._in_flight, c + self._low_water) if self.is_async else self._in_flight
        # trials ended quietly that the loop hands to the main thread when it is about to wait (``_loop_idle``)
        self._idle_batch = max(1, self._low_water // 4)
        # trials ended since the main thread last woke (this one included) before it is woken to queue more
        self._batch = 1 if self.spend.active else self._low_water

    # -- workers --------------------------------------------------------------------------------------
    def _thread_worker(self) -> ThreadWorker:
        """The least loaded of ``concurrency`` worker threads (the main thread alone hands them out)."""
        live = [w for w in self._load if not w.retired]
        if len(live) < self.settings.concurrency:
            worker = ThreadWorker(f"agentops-{self.scenario.name}-{len(self._threads)}")
            worker.on_done = functools.partial(self._sync_done, worker)  # told of each trial's end
            self._threads.append(worker)
            self._load[worker] = 0
            return worker
        return min(live, key=self._load.__getitem__)

    def _release(self, trial: Trial) -> None:
        worker = trial.worker
        if isinstance(worker, ThreadWorker) and worker in self._load:
            self._load[worker] -= 1
            if worker.retired:
                del self._load[worker]

    def _loop_worker(self) -> LoopWorker:
        if self._loop is None or self._loop.retired:
            self._loop = LoopWorker(judging_s=self.scenario.timeout_s)
            self._loop.limit = self.settings.concurrency
            self._loop.on_done = functools.partial(self._async_done, self._loop)  # told of each trial's end
            self._loop.when_idle = self._loop_idle
        return self._loop

    def close(self) -> None:
        for worker in self._threads:
            worker.close()
        if self._loop is not None:
            self._loop.close()
        # the campaign returns with its threads gone (a worker that cannot be stopped is reported instead)
        for thread in [w.thread for w in self._threads if not w.abandoned] + [w.thread for w in self._retired] + \
                ([self._loop.thread] if self._loop is not None else []):
            thread.join(JOIN_S)
        deadline = _wall() + ABANDONED_GRACE_S  # (one grace for them all: a campaign's end waits 0.5 s at most)
        for worker in self._threads:
            if worker.abandoned and worker.thread.is_alive():
                worker.thread.join(max(0.0, deadline - _wall()))
        if self._own_layers:
            self.layers.close()  # e.g. a temporary checkpoint file goes with the campaign

    def unstoppable(self) -> int:
        """Workers this campaign gave up on that still run: threads of agents that caught their abandonment
        (CPython cannot stop a thread from outside), and retired loops (blocked, or running tasks that ignored
        their cancellation). Reported with the campaign; ``isolation`` of trials in processes is the cure."""
        threads = sum(1 for w in self._threads if w.retired and w.thread.is_alive() and w.abandoned)
        loops = sum(1 for w in self._retired if w.thread.is_alive() or w.abandoned)
        return threads + loops

    # -- one trial ------------------------------------------------------------------------------------
    def launch(self, index: int) -> Trial:
        trial = Trial(self.layers, index, self.settings.seed)
        if self.is_async:
            self._submit_async(trial)
        else:
            self._submit_sync(trial)
        return trial

    def _submit_async(self, trial: Trial) -> None:
        """Queue an async trial on the loop, which starts it when fewer than ``concurrency`` trials run."""
        worker = self._loop_worker()
        trial.worker = worker
        trial.future = worker.put(trial.run_async, warm=trial.warm, settle=trial.settle_async)
        self._unkicked += 1

    def _kick(self) -> None:
        """Wake the loop once for the async trials queued since the last time."""
        if self._unkicked and self._loop is not None:
            self._unkicked = 0
            self._loop.kick()

    def _async_done(self, worker: LoopWorker, future: cf.Future[Any]) -> None:
        """(On the loop thread, in an idle moment.) Wake the main thread when the loop has ended everything it
        was given, or when its queue runs low, the main thread has more to queue and enough trials ended since
        it last woke to queue a batch as large (it queues one trial per trial ended); other trials end
        quietly (the main thread, woken in the middle of a burst of I/O answers, would hold the GIL while
        they wait)."""
        if future.cancelled():
            self._quiet.append(future)
            return
        queued = worker.queued()
        if worker.retired or not (queued or worker.busy()):
            self._completed.put(future)
        elif self._refill and queued <= self._low_water and len(self._quiet) + 1 >= self._batch:
            self._refill = False
            self._completed.put(future)
        else:
            self._quiet.append(future)

    def _loop_idle(self) -> None:
        """(On the loop thread, about to wait with nothing left to build or judge.) Hand the trials that ended
        quietly to the main thread now, a batch at a time, while the loop waits for I/O: not all of them at
        the campaign's end, after the last answer (1,000 trials' records then took ~15 ms of the wall time)."""
        quiet = self._quiet
        if len(quiet) >= self._idle_batch and self._completed.empty():
            with contextlib.suppress(IndexError):  # (the main thread took them meanwhile)
                self._completed.put(quiet.popleft())

    def _submit_sync(self, trial: Trial) -> None:
        """Queue a sync trial on a worker thread; it runs as soon as the trials queued before it end."""
        worker = self._thread_worker()
        self._load[worker] += 1
        trial.worker = worker
        trial.future = worker.submit(trial.run_sync)

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

    def _keep(self, store: RecordStore, record: TrialRecord) -> TrialRecord:
        """Add the next record of the launch-order prefix to ``store``, as the campaign keeps it (its trace within
        the campaign's budget, ``within_trace_budget``, where ``trace_budget`` holds); returns it so."""
        if self.trace_budget:
            record = within_trace_budget(record, store.kept_events)
        store.append(record)
        return record

    def settle(self, trial: Trial) -> TrialRecord:
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

    def expire(self, trials: list[Trial], reason: str | None = None, *, discarded: bool = False
               ) -> list[TrialRecord]:
        """Trials that ran past their wall-clock limit, or that an early stop or an interrupt discards
        (``discarded``: their agents' later calls are not late calls): end them and record why (records in the
        order given)."""
        reason = reason or f"no result within the wall-clock limit of {self.scenario.timeout_s:g}s"
        loops: dict[LoopWorker, list[Trial]] = {}
        for trial in trials:
            if isinstance(trial.worker, LoopWorker):
                loops.setdefault(trial.worker, []).append(trial)
            else:
                self._expire_in_thread(trial, reason)
        for worker, on_loop in loops.items():
            self._expire_on_loop(worker, on_loop, reason, discarded)
        for trial in trials:
            self._release(trial)
        return [trial.finish(discarded=discarded) for trial in trials]

    def _time_out(self, late: list[int]) -> dict[int, TrialRecord]:
        """Time out the trials in flight at these positions, past their wall-clock limit: their records.

        Not an async trial held up on a loop that another trial blocks (an agent busy-looping, or stuck in a
        call that never returns, without awaiting; a world factory that hangs while the trial is built ahead):
        it did not run out of time, it was kept from running, and which trials were in flight beside the blocker
        depends on timing and concurrency. The trial the loop is stuck in (``LoopWorker.stuck``: no turn of the
        loop for a while, in the same task) is timed out in their stead, whether its own limit has passed or not,
        and its loop is retired, which runs the trials held up there again on a fresh loop (``_retire_loop``)."""
        flying = self._flying
        blockers: dict[int, LoopWorker] = {}  # position of the trial a loop is stuck in -> that loop
        orphaned: list[LoopWorker] = []  # loops stuck in a task left by a trial that has ended: no one to time out
        for worker in {flying[p].worker for p in late}:
            blocker = self._blocker(worker)
            if blocker is not None:
                if blocker == _ENDED_TRIAL:
                    orphaned.append(worker)
                else:
                    blockers[blocker] = worker
                late = [p for p in late if flying[p].worker is not worker]  # (held up there: they run again)
        blocked = [flying.pop(p) for p in blockers]
        timed_out = [flying.pop(p) for p in late]  # (all out of ``flying`` before a loop is retired)
        records: dict[int, TrialRecord] = {}
        for worker in orphaned:
            self._retire_loop(worker)
        if blocked:
            reason = (f"blocked the event loop it shares with other trials past a wall-clock limit of "
                      f"{self.scenario.timeout_s:g}s")
            records.update(zip(blockers, self.expire(blocked, reason), strict=True))
            for worker in set(blockers.values()):  # (retired already unless it came unstuck just now: all the same)
                self._retire_loop(worker)
        if timed_out:
            records.update(zip(late, self.expire(timed_out), strict=True))
        return records

    def _blocker(self, worker: ThreadWorker | LoopWorker | None) -> int | None:
        """The position in flight of the trial a loop is stuck in: the owner of its task, or, stuck outside any
        task, the trial it is building ahead or judging (a world factory or a check that does not return);
        ``_ENDED_TRIAL`` when the task is one a trial that has ended left behind (the loop is retired, and the
        trials it held run again). None when the loop is not stuck (or not in a trial), or the trial does not run
        on a loop."""
        if not isinstance(worker, LoopWorker) or worker.retired:
            return None
        stuck, owner = worker.stuck()
        if not stuck:
            return None
        for pos, trial in self._flying.items():
            if trial.worker is worker and (trial.ctx is owner if owner is not None
                                           else trial.building is not None or trial.judging is not None):
                return pos
        # stuck in a task of a trial no longer in flight: one it left running (tasks outlive their trial)
        return _ENDED_TRIAL if owner is not None else None

    def _expire_in_thread(self, trial: Trial, reason: str) -> None:
        trial.abort("timed_out", reason)
        assert trial.future is not None
        worker = trial.worker
        if trial.future.cancel():
            return  # still queued (discarded by an early stop): its worker goes on with the others
        # (only while it runs: a trial found late as it ended is recorded as it ended, and the interruption does not
        # land in the trial its worker started next, which recorded it as the agent's own ``TrialAbandoned``)
        if isinstance(worker, ThreadWorker) and worker.abandon(trial.future):
            for other in list(self._flying.values()):  # trials queued behind it move to a fresh worker
                if other is not trial and other.worker is worker and other.future and other.future.cancel():
                    self._submit_sync(other)

    def _expire_on_loop(self, worker: LoopWorker, trials: list[Trial], reason: str, discarded: bool = False) -> None:
        """End async trials on their loop's own thread, where they are built and judged (so never halfway)."""

        def end() -> None:
            for trial in trials:
                trial.abort("timed_out", reason)
                assert trial.future is not None
                worker.cancel_job(trial.future)
                trial.finish(discarded=discarded)

        if worker.call(end):
            # a task that swallows its cancellation keeps running, and keeps its slot: given a short grace, its
            # loop is retired (``_retire_stubborn``)
            deadline = _wall() + CANCEL_GRACE_S
            self._stubborn.extend((worker, trial, deadline) for trial in trials
                                  if trial.future is not None and worker.still_running(trial.future))
            return
        # the loop is blocked (an agent busy-looping without awaiting) or gone: retire it
        for trial in trials:  # decided first: judged by the reap below or later, they are timed out with this reason
            trial.abort("timed_out", reason)
        self._retire_loop(worker)
        for trial in trials:
            assert trial.future is not None
            trial.future.cancel()

    def _retire_loop(self, worker: LoopWorker) -> None:
        """Give up on a loop that cannot be stopped in-process (blocked, or running a task that ignores its
        cancellation): judge here the trials whose end it reported, and run every other trial it held again,
        from its seed, on a fresh loop."""
        if worker in self._retired:
            return
        self._retired.append(worker)
        worker.abandon()
        worker.reap()
        for pos, other in list(self._flying.items()):
            if other.worker is not worker or other.future is None:
                continue
            # The trials the loop held that it did not report run again on a fresh loop, with the record a clean
            # run of their seed gives: one that never started; one that ran to its end unreported (the exception
            # that interrupts a blocked loop landed as it reported it: waiting for it would be waiting for ever);
            # and one caught halfway, beside the trial that blocked the loop or ignored its cancellation: which
            # trials were halfway then depends on timing and concurrency, so recording them (they used to time
            # out) made a campaign's report depend on them too. Its old run is ended first: a step it might still
            # take on the retired loop changes nothing (every harness call raises), and is not a late call.
            # A trial caught halfway twice (every trial blocking the loop, say) stays where it is and is timed out
            # by its own limit, as before: at most one run more per trial, not one trial at a time.
            if other.future.cancel():
                pass  # (never started)
            elif other.future.done():
                continue  # (its end reported: judged from its own record)
            elif not other.ran:  # halfway
                if other.index in self._held_up:
                    continue
                self._held_up.add(other.index)
            other.abort("ended", "its event loop was retired: the trial runs again on a fresh loop")
            other.close_layers()  # built ahead (``warm``), or run part or all the way: its routes go with it
            self.spend.restart(other.index)  # (what its old run spent stays in the campaign's total only)
            self._flying[pos] = self.launch(other.index)
        self._kick()

    def _retire_stubborn(self, now: float) -> float | None:
        """Retire the loops of trials still running past their grace after their cancellation; the earliest
        grace deadline still ahead (None: none)."""
        ahead = []
        for entry in list(self._stubborn):
            worker, trial, deadline = entry
            if trial.future is None or not worker.still_running(trial.future) or worker in self._retired:
                self._stubborn.remove(entry)
            elif deadline <= now:
                self._stubborn.remove(entry)
                self._retire_loop(worker)
            else:
                ahead.append(deadline)
        return min(ahead, default=None)

    def _outwait_stubborn(self) -> None:
        """At the campaign's end: the trials still ignoring their cancellation get the rest of their grace, then
        their loops are retired (and reported), as during the campaign."""
        while (grace := self._retire_stubborn(_wall())) is not None:
            threading.Event().wait(max(0.0, grace - _wall()))

    def _end_flying(self, trials: list[Trial]) -> None:
        """The campaign ends with these trials unfinished: stop them and remove their model routes (on the
        loop's thread for async trials, so that none is halfway built)."""

        def end() -> None:
            for trial in trials:
                trial.abort("timed_out", "campaign ended")
                trial.close_layers()  # e.g. its model routes go with it

        loop = self._loop
        if loop is not None and not loop.retired:
            loop.retired = True  # it starts nothing more
            if loop.call(end):
                return
        end()

    # -- the campaign ---------------------------------------------------------------------------------
    def _horizon(self, judges: list[Any], prefix: int) -> float:
        """How far ahead to launch: at least to the first trial at which the campaign could stop (no waste), and
        at least concurrency + 8 (16 at the least) past the judged prefix, to keep the workers busy."""
        fail = min(d[0] for d in (j.distances() for j in judges))
        decide = max(j.distances()[1] for j in judges)
        return prefix + max(min(fail, decide), self.settings.concurrency + 8, 16)

    def _progress_feed(self, planned: int, judges: list[Any]) -> tuple[ProgressFeed | None, list[Any]]:
        """The progress feed of this run (None: no callback, or a single trial) and the judges whose running
        estimates it shows: the campaign's own, or, when it judges once at the end (no early stopping), judges
        of the same expectations fed the same launch-order prefix for the display only."""
        if self.progress is None or planned < 2:
            return None, judges
        feed = ProgressFeed(self.scenario.name, planned, self.progress, self.progress_every_s)
        if judges or not self.scenario.expectations:
            return feed, judges
        s = self.settings
        unit = self.scenario.unit_trials
        return feed, [judge(e, max_trials=planned, confidence=s.confidence, sequential=False, unit_trials=unit)
                      for e in self.scenario.expectations]

    def run(self, indices: Sequence[int] | None = None) -> tuple[RecordStore, bool]:
        """Run up to ``settings.trials`` trials; returns (records in launch order, stopped early). ``indices``:
        exactly these trials, all of them (a paired comparison runs its campaigns block by block).

        A record leaves ``done`` for the compact store (``record_store``) once the judges have seen it: what
        the campaign holds of a trial is then its columns' ~60-90 bytes, whatever the number of trials."""
        s = self.settings
        judged = indices is None and s.sequential
        if indices is None:
            # a range, not a list: nothing proportional to the planned trials (a campaign may plan 10,000,000
            # and stop at 25)
            indices = range(s.replay, s.replay + 1) if s.replay is not None else range(s.trials)
        expectations = self.scenario.expectations
        unit = self.scenario.unit_trials
        judges = [judge(e, max_trials=len(indices), confidence=s.confidence, sequential=True, unit_trials=unit)
                  for e in expectations] if judged else []
        feed, shown = self._progress_feed(len(indices), judges)
        done: dict[int, TrialRecord] = {}  # finished, not yet judged (past the launch-order prefix)
        store = RecordStore()  # trials 0..prefix-1 (launch order), judged
        flying = self._flying
        position = 0  # next entry of ``indices`` to launch
        prefix = 0  # trials 0..prefix-1 (launch order) are all done
        limit = len(indices)
        stopped_early = False
        spend = self.spend
        holds = contextlib.ExitStack()
        try:
            holds.enter_context(campaign_patches(s.concurrency))  # gc, anyio, time: held for the whole campaign
            holds.enter_context(kept_process_state())  # what trials change process-wide: put back first, at the end
            holds.enter_context(own_code_kept(self.harness_changed))  # the harness's own code: put back, and named
            watch_exit_hooks()  # the handlers and finalizers the trials leave for the exit: guarded there
            while len(store) + len(done) < limit or (self.spend.stopped and flying):
                # launch ahead up to the queue depth, but not far past the first trial at which the judges could
                # stop the campaign: an early stop discards what was launched past it
                horizon = limit if not judges else min(limit, self._horizon(judges, prefix))
                fill = self._in_flight if position else self._first_fill
                # (the spend gate reads trials by their index: a comparison's blocks share one ledger)
                while len(flying) < fill and position < horizon and \
                        (not spend.active or spend.may_launch([indices[p] for p in flying])):
                    flying[position] = self.launch(indices[position])
                    position += 1
                self._refill = position < horizon  # stopped by the queue depth
                self._kick()
                now = _wall()
                limit_s = self.scenario.timeout_s
                since = [t.counting_since() for t in flying.values()]
                wake = min((t + limit_s for t in since if t is not None), default=now + limit_s)
                grace = self._retire_stubborn(now)
                timeout = max(0.0, min(wake, grace if grace is not None else wake) - now)
                if feed is not None:  # woken for the next progress report (the finished trials are taken then)
                    timeout = min(timeout, feed.wait_s(now))
                finished = self._wait(min(timeout, UNREPORTED_LOOK_S))
                if not finished and flying:  # a quiet wait: a finished trial whose report was lost is taken now
                    finished = [t.future for t in flying.values() if t.future is not None and t.future.done()]
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
                    done.update(self._time_out(late))
                halt = spend.halt(position, [indices[p] for p in flying], indices[0] if len(indices) else 0) \
                    if spend.active else None  # (the spend cap ends the campaign here)
                if halt is not None:  # trials past the stop run on unjudged: their calls fit the cap, and are metered
                    limit = min(limit, halt)
                    for p in [p for p in done if p >= limit]:
                        del done[p]
                    store.truncate(limit)
                # the judges look after every trial of the launch-order prefix
                while prefix in done and prefix < limit:
                    record = self._keep(store, done[prefix])
                    del done[prefix]
                    prefix += 1
                    if shown is not judges:  # judges for the display only: they decide nothing
                        for j in shown:
                            j.add(record)
                    if not judges or prefix >= limit:
                        continue
                    for j in judges:
                        j.add(record)
                    if any(j.failed for j in judges) or all(j.decided for j in judges):
                        limit, stopped_early = prefix, True
                        self.expire([flying.pop(p) for p in [p for p in flying if p >= prefix]], discarded=True)
                        break
                if feed is not None:  # (always: a due report left untaken would make the wait above spin)
                    feed.tick(_wall(), len(store) + len(done), shown)
        except KeyboardInterrupt:
            # Ctrl-C: keep what finished, in launch order (a later trial that finished first is left out, as an
            # early stop leaves it out); end the running ones; the caller reports the campaign as interrupted.
            # A second Ctrl-C during this wrap-up goes straight through.
            self.interrupted = True
            futures = {t.future: pos for pos, t in flying.items()}
            for future in self._wait(0.0):  # finished, but the main thread had not been woken for them yet
                pos = futures.get(future)
                if pos is not None and pos in flying:
                    done[pos] = self.settle(flying.pop(pos))
            store.truncate(len(store))  # (Ctrl-C in the middle of an append: the part of a row it wrote goes)
            prefix = len(store)
            while prefix in done and prefix < limit:
                self._keep(store, done[prefix])
                prefix += 1
            limit = min(limit, prefix)  # (a spend cap's stop may have cut the prefix already)
            ending = list(flying.values())
            flying.clear()  # (before ``expire``: a loop retired now must not run them again)
            self.expire(ending, "the run was interrupted (Ctrl-C)", discarded=True)
        finally:
            try:
                self._outwait_stubborn()
                self._end_flying(list(flying.values()))
                self.close()
                if not collect_left_garbage():  # (while the stand-ins refuse what a finalizer calls)
                    warn_at_campaign(ProcessStateChanged(
                        f"a finalizer (__del__) of the garbage the campaign's trials left has not returned after "
                        f"{exit_guard.LEFT_GARBAGE_S:g}s: it runs on in a thread of its own, and until it returns "
                        f"the garbage collector collects nothing in this process"))
            finally:  # the process-wide changes are undone even when a layer's close raised
                holds.close()
                rebound = take_rebound()
                if rebound and sys.exc_info()[0] is None:
                    warn_at_campaign(ProcessStateChanged(
                        f"the campaign's trials rebound functions the harness stands in for, put back at its end: "
                        f"{', '.join(sorted(set(rebound)))}; the trials after the change ran with it"))
        store.truncate(limit)
        assert len(store) == limit, "every trial of the launch-order prefix is judged"
        if self.harness_changed and not self.interrupted:  # (its records may be the agent's judgement: none given;
            # an interrupted campaign ends as Ctrl-C asked, its code put back all the same)
            raise harness_changed(self.harness_changed)
        return store, stopped_early
