"""Live progress of a running campaign: the ``Progress`` value the scheduler hands to a callback, and the
``ProgressFeed`` that decides when.

The engine knows nothing of terminals: whoever runs a campaign (the pytest plugin) passes a callback and an
interval, and renders what it gets. The feed is called by the scheduler's main thread only, and calls back
at most once per interval of wall time, never before the first interval has passed (a campaign that ends
sooner produces nothing). It reads the judges, never feeds them, so results do not depend on it.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..errors import hide_own_frames
from ..vtime.real import real_perf_counter

__tracebackhide__ = hide_own_frames

if TYPE_CHECKING:
    from ..judge import Judge

_wall = real_perf_counter  # never the virtual clock


@dataclass(frozen=True, slots=True)
class RunningEstimate:
    """One expectation's state so far, on the judged launch-order prefix: ``estimate`` of its statistic,
    ``bound`` (``bound_side`` ``"lower"``/``"upper"``) where its judge has a cheap one (rates and quantiles;
    None for betting means and counts), and ``state``, ``"pass"``/``"fail"`` once decided."""

    key: str
    expression: str
    statistic: str
    estimate: float | None
    bound: float | None
    bound_side: str
    n: int
    state: str | None


@dataclass(frozen=True, slots=True)
class Progress:
    """A campaign's progress at one moment: ``done`` trials finished of at most ``max_trials``, ``elapsed_s``
    wall seconds since it started, ``eta_s`` the wall seconds left at the pace so far if it runs to its
    maximum (an early stop may come sooner; None before the first trial), the running ``estimates``."""

    scenario: str
    done: int
    max_trials: int
    elapsed_s: float
    eta_s: float | None
    estimates: tuple[RunningEstimate, ...]


ProgressCallback = Callable[[Progress], None]


class ProgressFeed:
    """Calls ``callback`` with the campaign's ``Progress`` at most every ``every_s`` wall seconds, first when
    ``every_s`` have passed since ``started`` (``clock``: the wall clock; tests give a fake one)."""

    def __init__(self, scenario: str, max_trials: int, callback: ProgressCallback, every_s: float, *,
                 started: float | None = None, clock: Callable[[], float] = _wall):
        if not every_s > 0:
            raise ValueError(f"every_s={every_s!r} must be a number of seconds > 0")
        self.scenario = scenario
        self.max_trials = max_trials
        self.callback = callback
        self.every_s = float(every_s)
        self.clock = clock
        self.started = clock() if started is None else started
        self.next_at = self.started + self.every_s

    def wait_s(self, now: float) -> float:
        """Seconds until the next report is due (0 when it is)."""
        return max(0.0, self.next_at - now)

    def tick(self, now: float, done: int, judges: Sequence[Judge]) -> Progress | None:
        """Report if due: the ``Progress`` given to the callback, or None when not due yet."""
        if now < self.next_at:
            return None
        # the next report an interval after this one (not after the missed due time: no bursts after a stall)
        self.next_at = now + self.every_s
        elapsed = now - self.started
        eta = elapsed / done * max(0, self.max_trials - done) if done else None
        progress = Progress(scenario=self.scenario, done=done, max_trials=self.max_trials, elapsed_s=elapsed,
                            eta_s=eta, estimates=tuple(running_estimate(j) for j in judges))
        try:
            self.callback(progress)
        except Exception as exc:  # a display that breaks stops showing; the campaign and its result go on
            self.next_at = math.inf
            warnings.warn(f"agentops: the progress display failed and was switched off for this campaign "
                          f"({type(exc).__name__}: {exc})", RuntimeWarning, stacklevel=2)
        return progress


def running_estimate(judge: Judge) -> RunningEstimate:
    """A judge's running estimate as a value (``Judge.running``: cheap, and it changes nothing in the judge)."""
    estimate, bound, side = judge.running()
    exp = judge.exp
    return RunningEstimate(key=exp.key, expression=f"{exp.op} {exp.threshold:g}", statistic=exp.statistic,
                           estimate=estimate, bound=bound, bound_side=side, n=judge.trials, state=judge.state)
