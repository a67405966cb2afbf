"""The rate limits a campaign keeps to against a live upstream, over all its trials: requests and tokens per
sliding minute, and a pause for everyone while the upstream asked to wait (its 429's retry-after).

Waits are real time (the upstream's limits are), taken in the thread that forwards the request, and never
on a trial's virtual clock: they are not faults of the agent's world, and a replay has none.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable

from ..errors import hide_own_frames
from ..vtime.real import real_monotonic

__tracebackhide__ = hide_own_frames

WINDOW_S = 60.0


class RateLimiter:
    """Requests-per-minute and tokens-per-minute ceilings, and the upstream's own pauses."""

    def __init__(self, requests_per_minute: int | None = None, tokens_per_minute: int | None = None, *,
                 clock: Callable[[], float] = real_monotonic,
                 sleep: Callable[[float], object] | None = None):
        self.rpm = requests_per_minute
        self.tpm = tokens_per_minute
        self.clock = clock
        self.sleep = sleep or (lambda seconds: threading.Event().wait(seconds))
        self._lock = threading.Lock()
        self._window: deque[list[float]] = deque()  # [time, tokens] of the requests of the last minute
        self._paused_until = 0.0
        self.waited_s = 0.0  # real seconds spent waiting, all threads together
        self.throttled = 0  # upstream 429s waited out

    def _wait_needed(self, now: float, tokens: int) -> float:
        while self._window and self._window[0][0] <= now - WINDOW_S:
            self._window.popleft()
        waits = [self._paused_until - now]
        if self.rpm is not None and len(self._window) >= self.rpm:
            waits.append(self._window[0][0] + WINDOW_S - now)
        if self.tpm is not None and self._window:
            used = sum(t for _, t in self._window)
            if used + tokens > self.tpm:  # wait until enough of the window has slid out
                need, freed = used + tokens - self.tpm, 0.0
                for when, spent in self._window:
                    freed += spent
                    if freed >= need:
                        waits.append(when + WINDOW_S - now)
                        break
        return max(waits)

    def acquire(self, tokens: int) -> list[float]:
        """Wait until a request of about ``tokens`` tokens may go; returns its entry (for ``settle``)."""
        while True:
            with self._lock:
                now = self.clock()
                wait = self._wait_needed(now, tokens)
                if wait <= 0:
                    entry = [now, float(tokens)]
                    self._window.append(entry)
                    return entry
                self.waited_s += wait
            self.sleep(wait)

    def settle(self, entry: list[float], tokens: int) -> None:
        """The request's real token count, once known."""
        with self._lock:
            entry[1] = float(tokens)

    def pause(self, seconds: float) -> None:
        """The upstream said to wait: no request goes out for ``seconds`` (from now)."""
        with self._lock:
            self.throttled += 1
            self._paused_until = max(self._paused_until, self.clock() + max(0.0, seconds))
