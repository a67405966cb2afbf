"""The virtual time limit of an async trial: a loop timer that ends the trial at its virtual deadline.

A sync agent's virtual time moves only through its clock's ``advance`` (``time.sleep``, tool latency, the
approver), which checks the limit itself. An async agent's time also moves while it awaits timers on the
shared ``VirtualTimeLoop`` (``asyncio.sleep(30)``), which no ``advance`` sees. So a timer is armed on the
loop at the trial's deadline; when it fires, ``on_expire`` is told and the trial's task cancelled, exactly
at the limit in virtual time (so at no wall cost). Each ``advance`` of the clock (tool latency and the like)
brings the deadline closer in loop time; the timer is re-armed then.

Almost every trial ends before its deadline, so on a ``VirtualTimeLoop`` the timer is deferred
(``call_at_deferred``): it reaches the loop's timer heap only if the loop is about to let virtual time reach
it, and fires exactly as an ordinary timer made at the same point would. A trial that never lets the loop
wait, or ends before its deadline, costs the loop an entry in a heap of tuples instead of a timer.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any

from ..errors import hide_own_frames
from .clock import TrialClock
from .loop import DeferredTimer

__tracebackhide__ = hide_own_frames

#: Deadline tolerance in virtual seconds: an async trial's clock reads loop time rounded to 1 microsecond.
_EPSILON = 1e-6


class VirtualDeadline:
    """Cancels the current asyncio task when ``clock`` reaches its ``limit_s`` (create it from the task; the
    caller may give the running loop and the task, which it knows already)."""

    __slots__ = ("_call_at", "_handle", "_on_expire", "_thread", "clock", "done", "expired", "limit_s", "loop",
                 "task")

    def __init__(self, clock: TrialClock, limit_s: float, on_expire: Callable[[str], None], *,
                 loop: asyncio.AbstractEventLoop | None = None, task: asyncio.Task[Any] | None = None):
        self.clock = clock
        self.limit_s = float(limit_s)
        self._on_expire = on_expire
        self.loop = loop = asyncio.get_running_loop() if loop is None else loop
        self._call_at = getattr(loop, "call_at_deferred", None) or loop.call_at  # deferred on a VirtualTimeLoop
        self.task = asyncio.current_task(loop) if task is None else task
        self._thread = threading.get_ident()
        self._handle: asyncio.TimerHandle | DeferredTimer | None = None
        self.done = False
        self.expired = False
        clock.listeners.append(self._on_advance)  # (a bound method kept on ``self`` would be a reference cycle)
        remaining = self.limit_s - clock.monotonic()  # (``_arm``, inlined: nothing to cancel yet)
        if remaining <= _EPSILON:
            self._expire()
        else:
            self._handle = self._call_at(loop.time() + remaining, self._arm)  # (as ``call_later``)

    def _arm(self) -> None:
        """(Re)schedule the timer at the deadline as the clock now stands; expire when it has come."""
        if self.done:
            return
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        remaining = self.limit_s - self.clock.monotonic()
        if remaining <= _EPSILON:
            self._expire()
        else:
            self._handle = self._call_at(self.loop.time() + remaining, self._arm)  # (as ``call_later``)

    def _on_advance(self) -> None:
        if threading.get_ident() == self._thread:
            self._arm()
        else:  # a tool run in another thread (asyncio.to_thread) advanced the clock
            self.loop.call_soon_threadsafe(self._arm)

    def _expire(self) -> None:
        self.done = self.expired = True
        self._on_expire(f"virtual time limit of {self.limit_s:g}s exceeded")
        if self.task is not None:
            self.task.cancel()

    def cancel(self) -> None:
        """The trial ended: disarm (call from the loop thread)."""
        self.done = True
        handle = self._handle
        if handle is not None:
            self._handle = None
            handle.cancel()
        listeners, listener = self.clock.listeners, self._on_advance  # (an equal bound method)
        if listener in listeners:
            listeners.remove(listener)


def watch_virtual_deadline(clock: TrialClock, on_expire: Callable[[str], None], *,
                           loop: asyncio.AbstractEventLoop | None = None,
                           task: asyncio.Task[Any] | None = None) -> VirtualDeadline | None:
    """Arm the virtual deadline of the async trial running in the current task (None without a limit)."""
    return None if clock.limit_s is None else VirtualDeadline(clock, clock.limit_s, on_expire, loop=loop, task=task)
