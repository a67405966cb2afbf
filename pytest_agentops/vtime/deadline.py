"""The virtual time limit of an async trial: a loop timer that ends the trial at its virtual deadline.

A sync agent's virtual time moves only through its clock's ``advance`` (``time.sleep``, tool latency, the
approver), which checks the limit itself. An async agent's time also moves while it awaits timers on the
shared ``VirtualTimeLoop`` (``asyncio.sleep(30)``), which no ``advance`` sees. So a timer is armed on the
loop at the trial's deadline; when it fires, ``on_expire`` is told and the trial's task cancelled, exactly
at the limit in virtual time (so at no wall cost). Each ``advance`` of the clock (tool latency and the like)
brings the deadline closer in loop time; the timer is re-armed then.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable

from .clock import TrialClock

#: Deadline tolerance in virtual seconds: an async trial's clock reads loop time rounded to 1 microsecond.
_EPSILON = 1e-6


class VirtualDeadline:
    """Cancels the current asyncio task when ``clock`` reaches its ``limit_s`` (create it from the task)."""

    __slots__ = ("_handle", "_on_expire", "_thread", "clock", "done", "expired", "limit_s", "loop", "task")

    def __init__(self, clock: TrialClock, limit_s: float, on_expire: Callable[[str], None]):
        self.clock = clock
        self.limit_s = float(limit_s)
        self._on_expire = on_expire
        self.loop = asyncio.get_running_loop()
        self.task = asyncio.current_task()
        self._thread = threading.get_ident()
        self._handle: asyncio.TimerHandle | None = None
        self.done = False
        self.expired = False
        self.clock.listeners.append(self._on_advance)
        self._arm()

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
            self._handle = self.loop.call_later(remaining, self._arm)

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
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        listeners: list[Callable[[], None]] = self.clock.listeners
        if self._on_advance in listeners:
            listeners.remove(self._on_advance)


def watch_virtual_deadline(clock: TrialClock, on_expire: Callable[[str], None]) -> VirtualDeadline | None:
    """Arm the virtual deadline of the async trial running in the current task (None without a limit)."""
    return None if clock.limit_s is None else VirtualDeadline(clock, clock.limit_s, on_expire)
