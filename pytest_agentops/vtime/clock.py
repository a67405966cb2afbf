"""A trial's virtual clock: ``elapsed = source() + offset``; ``now() = epoch + elapsed``. Nothing in it blocks.

``source`` is a base another component advances (an event loop's virtual time; 0 without one); ``advance()``
and ``sleep()`` move the private offset. ``TrialClock`` adds a trial's virtual time limit. ``LoopOrigin`` is the
source of an async trial's clock: loop time since the trial started, which a clock reads without a call.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as _datetime_module
import math
import threading
from collections.abc import Callable, Iterator
from typing import Any

from ..errors import ArgumentTypeError, ConfigError, TrialAborted, hide_own_frames
from .loop import TICKS_PER_S, VirtualTimeLoop
from .real import UTC, RealDatetime

__tracebackhide__ = hide_own_frames

#: 2026-01-01T00:00:00Z: the default virtual epoch, fixed so that traces and outputs are reproducible.
DEFAULT_EPOCH = 1_767_225_600.0


def as_seconds(seconds: Any, name: str = "seconds") -> float:
    """Validate a duration: a finite real number >= 0, returned as float."""
    if isinstance(seconds, (str, bytes, bytearray)):
        raise ArgumentTypeError(f"{name}={seconds!r} must be a number of seconds, not {type(seconds).__name__}")
    try:
        value = float(seconds)
    except (TypeError, ValueError):
        raise ArgumentTypeError(f"{name}={seconds!r} must be a number of seconds") from None
    if math.isnan(value) or math.isinf(value):
        raise ConfigError(f"{name}={seconds} must be a finite number of seconds")
    if value < 0:
        raise ConfigError(f"{name}={seconds} must be >= 0")
    return value


class LoopOrigin:
    """The loop time at which an async trial started: ``elapsed()`` is the loop's time since then, to the
    microsecond, frozen once the trial ends (``stop``). A clock whose source is a ``LoopOrigin``'s ``elapsed``
    reads it inline (``VirtualClock.monotonic``), which a trial does at every event of its trace. Loop times are
    whole ticks (``ticks``, microseconds): the elapsed time is exact whatever the loop's time when the trial
    started."""

    __slots__ = ("_end", "_pausing", "_state", "_value", "held", "loop", "t0", "t1")

    def __init__(self, loop: Any):
        self.loop = loop
        # where the loop's time is read: a VirtualTimeLoop's ``vt_state.ticks`` (no call per read), else ``time()``
        self._state = getattr(loop, "vt_state", None) or _TimeOf(loop)
        self.t0: int | None = None
        self.t1: int | None = None  # when the task ended (or paused): the shared loop's time moves on for others
        self.held = 0  # loop time that was not the trial's (``pause``)
        self._pausing = False
        self._end = 0  # the last loop time read (reads often repeat)
        self._value = 0.0  # and its elapsed value

    def start(self) -> None:
        self.t0 = self._end = self._state.ticks

    def stop(self) -> None:
        if self.t0 is not None and self.t1 is None:
            self.t1 = self._state.ticks

    def pause(self) -> None:
        """The loop's time from now until ``resume`` is not the trial's: it waits for the trial's agent in a child
        process of its own, whose start-up and work take real time (what the agent's own clock does there is
        reported and added: ``advance``)."""
        if self.t0 is not None and self.t1 is None:
            self.t1, self._pausing = self._state.ticks, True

    def resume(self) -> None:
        if self._pausing:
            assert self.t1 is not None
            self.held += self._state.ticks - self.t1
            self.t1, self._pausing, self._end = None, False, -1  # (the cached value is stale)

    def elapsed(self) -> float:
        # (``VirtualClock.monotonic`` has this inlined)
        t0 = self.t0
        if t0 is None:
            return 0.0
        end = self._state.ticks if self.t1 is None else self.t1
        if end != self._end:
            # to the microsecond, from whole ticks: the same whenever the trial started, so that records
            # match at any concurrency
            self._end, self._value = end, round((end - t0 - self.held) / TICKS_PER_S, 6)
        return self._value


class _TimeOf:
    """``ticks``: the time of a loop that keeps no ``vt_state``, in whole microseconds."""

    __slots__ = ("loop",)

    def __init__(self, loop: Any):
        self.loop = loop

    @property
    def ticks(self) -> int:
        return round(float(self.loop.time()) * TICKS_PER_S)


class VirtualClock:
    """A trial's virtual clock: ``elapsed = source() + offset``; ``now() = epoch + elapsed``.

    Thread-safe: ``advance`` may be called from any thread. ``source`` is read outside the lock and must
    not read the patched clock functions itself (use ``real_monotonic`` or a loop's ``time()``).
    """

    __slots__ = ("_epoch", "_lock", "_offset", "_origin", "_source")

    def __init__(self, epoch: float = DEFAULT_EPOCH, source: Callable[[], float] | None = None) -> None:
        try:
            epoch_value = float(epoch)
        except (TypeError, ValueError):
            raise ArgumentTypeError(f"epoch={epoch!r} must be epoch seconds (a float)") from None
        if not math.isfinite(epoch_value):
            raise ConfigError(f"epoch={epoch} must be a finite number of epoch seconds")
        if source is not None and not callable(source):
            raise ArgumentTypeError(f"source={source!r} must be a zero-argument callable returning seconds, or None")
        self._epoch = epoch_value
        self._source = source
        # a ``LoopOrigin.elapsed`` source is read inline (``monotonic``): a call less per read
        self._origin: LoopOrigin | None = source.__self__ if getattr(source, "__func__", None) is LoopOrigin.elapsed \
            else None  # type: ignore[union-attr]
        self._offset = 0.0
        self._lock = threading.Lock()

    @classmethod
    def for_loop(cls, loop: asyncio.AbstractEventLoop, epoch: float = DEFAULT_EPOCH) -> VirtualClock:
        """A clock that measures ``loop.time()`` from now on, plus its own offset.

        Made for a ``VirtualTimeLoop``: several trials sharing one loop each get their own clock, each
        starting at elapsed 0 when created. (On an ordinary loop it measures the loop's real time.)
        """
        start = loop.time()

        def source() -> float:
            return loop.time() - start

        return cls(epoch, source)

    @property
    def epoch(self) -> float:
        """Epoch seconds at elapsed 0."""
        return self._epoch

    def monotonic(self) -> float:
        """Virtual monotonic seconds, equal to ``elapsed`` (starts at 0)."""
        origin = self._origin
        if origin is not None:  # (``LoopOrigin.elapsed``, inlined)
            t0 = origin.t0
            if t0 is None:
                return 0.0 + self._offset
            end = origin._state.ticks if origin.t1 is None else origin.t1
            if end != origin._end:
                origin._end, origin._value = end, round((end - t0 - origin.held) / TICKS_PER_S, 6)
            return origin._value + self._offset
        base = self._source() if self._source is not None else 0.0
        return base + self._offset  # (reading one float is atomic: the lock is for ``advance``'s read-add-write)

    #: Virtual seconds since the clock started (``monotonic()``).
    elapsed = property(monotonic)

    def now(self) -> float:
        """Virtual epoch seconds (what ``time.time()`` returns under ``virtual_time``)."""
        return self._epoch + self.monotonic()

    def datetime(self) -> _datetime_module.datetime:
        """``now()`` as a timezone-aware UTC datetime."""
        return RealDatetime.fromtimestamp(self.now(), UTC)

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        """A block whose loop time is not this clock's (one that follows an async trial's loop): the trial waits
        for its agent's child process, whose real start-up must not show in the trial's virtual time."""
        origin = self._origin
        if origin is None:
            yield
            return
        origin.pause()
        try:
            yield
        finally:
            origin.resume()

    def advance(self, seconds: float) -> None:
        """Move the clock forward by ``seconds`` (finite, >= 0); returns at once."""
        value = as_seconds(seconds)
        with self._lock:
            self._offset += value

    def sleep(self, seconds: float) -> None:
        """Same as ``advance``: a virtual sleep never blocks."""
        self.advance(seconds)

    async def asleep(self, seconds: float) -> None:
        """Sleep ``seconds`` of virtual time inside a coroutine.

        On a ``VirtualTimeLoop`` this is ``await asyncio.sleep(seconds)`` (virtual anyway, and other tasks'
        timers interleave correctly), after which the clock is topped up by whatever it moved less than
        ``seconds`` meanwhile: a clock that follows the loop (``for_loop``, or any source reading loop
        time) has already moved and is left alone; one that does not is advanced by ``seconds``. Either
        way the clock ends at least ``seconds`` later. On any other loop the clock is advanced by
        ``seconds`` and the task yields once.
        """
        value = as_seconds(seconds)
        loop = asyncio.get_running_loop()
        if isinstance(loop, VirtualTimeLoop):
            before = self.elapsed
            await asyncio.sleep(value)
            shortfall = value - (self.elapsed - before)
            if shortfall > 0:
                self.advance(shortfall)
        else:
            self.advance(value)
            await asyncio.sleep(0)

    def __repr__(self) -> str:
        elapsed = self.elapsed
        stamp = RealDatetime.fromtimestamp(self._epoch + elapsed, UTC).isoformat()
        return f"{type(self).__name__}(elapsed={elapsed:g}, now={stamp})"


class TrialClock(VirtualClock):
    """A trial's virtual clock; passing the virtual time limit ends the trial as ``timed_out``.

    ``before_advance`` may refuse an advance (a trial already ended: an agent that caught the limit and
    sleeps on must not move its clock further); ``listeners`` are told after each advance (the async virtual
    deadline re-arms its timer), then ``on_advance`` (the harness's liveness check, which may end the trial).
    """

    __slots__ = ("_before_advance", "_on_advance", "_on_limit", "limit_s", "listeners")

    def __init__(self, *args: Any, limit_s: float | None = None, on_advance: Callable[[], None] | None = None,
                 on_limit: Callable[[str, str], None] | None = None,
                 before_advance: Callable[[], None] | None = None, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.limit_s = limit_s
        self._before_advance = before_advance
        self._on_advance = on_advance
        self._on_limit = on_limit  # told (outcome, reason) when the limit is passed: the trial's decision
        self.listeners: list[Callable[[], None]] = []

    def end_trial(self, outcome: str, reason: str) -> None:
        """Tell the trial's harness to end it with ``outcome`` (what passing the limit tells it); the first
        decision of a trial stands. Used for what happens on a thread the trial's agent started."""
        if self._on_limit is not None:
            self._on_limit(outcome, reason)

    def advance(self, seconds: float) -> None:
        if self._before_advance is not None:
            self._before_advance()
        super().advance(seconds)
        for listener in self.listeners:
            listener()
        if self._on_advance is not None:
            self._on_advance()
        if self.limit_s is not None and self.monotonic() > self.limit_s:
            reason = f"virtual time limit of {self.limit_s:g}s exceeded"
            if self._on_limit is not None:
                self._on_limit("timed_out", reason)
            raise TrialAborted("timed_out", reason)
