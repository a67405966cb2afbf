"""Loop detection: an agent going round in circles, the same few calls again and again with the same results.

A *loop* is a cycle of at most ``period`` calls repeated ``repeats`` times in a row, where two calls are the
same when their tool, arguments and outcome are (so a retry that gets a different outcome is progress, and a
tool polled while its answer changes is not told apart from one polled in vain: see docs/metrics.md). A loop
is counted once when it reaches ``repeats``, however long it then goes on; a call that breaks every cycle ends
it, and the next one counts again.

Checking costs ``period`` comparisons per call: for each period p the detector keeps how many calls in a row
equalled the call p before them; a cycle of p calls has repeated r times when that run reaches p * (r - 1).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Hashable

from ..errors import hide_own_frames

__tracebackhide__ = hide_own_frames


class LoopDetector:
    """Watches one attempt's calls (a restart after a crash starts afresh: ``reset``)."""

    __slots__ = ("_runs", "active", "history", "loops", "period", "repeats")

    def __init__(self, period: int, repeats: int):
        self.period = period
        self.repeats = repeats
        self.history: deque[Hashable] = deque(maxlen=period + 1)
        self._runs = [0] * (period + 1)  # _runs[p]: calls in a row equal to the call p before them
        self.active = False  # a loop is going on
        self.loops = 0

    def add(self, call: Hashable) -> tuple[Hashable, ...] | None:
        """One more call (its signature); the cycle when a new loop is recognized at this call, else None."""
        history, runs = self.history, self._runs
        history.append(call)
        if history.count(call) == 1:  # equal to none of the calls before it (the common case): every run ends
            if self.active or any(runs):
                self._runs = [0] * (self.period + 1)
                self.active = False
            return None
        n = len(history)
        found = 0
        for p in range(1, self.period + 1):
            if p < n and history[-1 - p] == call:
                runs[p] += 1
                if not found and runs[p] >= p * (self.repeats - 1):
                    found = p
            else:
                runs[p] = 0
        started = found and not self.active
        self.active = bool(found)
        if not started:
            return None
        self.loops += 1
        return tuple(history)[-found:]

    def reset(self) -> None:
        """Forget the calls so far (the agent was restarted: redoing them is not a loop)."""
        self.history.clear()
        self._runs = [0] * (self.period + 1)
        self.active = False
