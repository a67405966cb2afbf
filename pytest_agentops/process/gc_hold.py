"""Garbage-collector settings for the length of a campaign (and of making its result), restored afterwards.

A campaign allocates many short-lived objects per trial. With the interpreter's defaults, the collector
runs a full collection now and then, which walks every object of the process (test session, imported
libraries): 10-30 ms at a time on a loaded test process, paid on the trial loop's critical path. So while
campaigns run, the objects that existed before the first one are frozen (``gc.freeze``: the collector
skips them) and the youngest generation is collected less often. Both are undone when the last running
campaign ends; nothing changes when the collector is disabled or the process already froze objects (beyond
what was frozen when the package was imported, ``process.FROZEN_AT_START``: CPython 3.12 starts with a few
hundred objects frozen).

The youngest generation's count is net (a freed object of any generation takes one off it), so with many
trials in flight a gen-0 collection walks most of their live objects: at concurrency 1,000 each walked
~130,000 objects (30-100 ms) and took a quarter of the campaign's time. The threshold therefore grows with
the number of trials in flight (``gen0_threshold``): a collection then comes once per many trials, not
once per few dozen. The price: cyclic garbage an agent makes waits longer for its collection (at most the
threshold's count of objects).
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator

from ..errors import hide_own_frames
from . import FROZEN_AT_START
from .patch import ProcessPatch

__tracebackhide__ = hide_own_frames

#: Youngest-generation threshold while campaigns run (the interpreter's default is 700 allocations).
CAMPAIGN_GEN0_THRESHOLD = 10_000
#: ... raised to this many objects per trial in flight (an async trial keeps ~130 alive while it runs)
GEN0_PER_TRIAL_IN_FLIGHT = 200
#: ... and never above this
GEN0_THRESHOLD_CAP = 1_000_000

_original: tuple[int, ...] | None = None  # the thresholds before the first hold (None: not held, or gc off)
_wanted: list[int] = []  # the gen-0 thresholds the campaigns running now asked for


def gen0_threshold(in_flight: int) -> int:
    """The gen-0 threshold for a campaign with ``in_flight`` trials running at once."""
    return min(GEN0_THRESHOLD_CAP, max(CAMPAIGN_GEN0_THRESHOLD, GEN0_PER_TRIAL_IN_FLIGHT * in_flight))


def _apply() -> None:
    """Set the gen-0 threshold to the highest one asked for (never below the process's own)."""
    if _original is not None and _original[0] > 0:
        gc.set_threshold(max(_original[0], CAMPAIGN_GEN0_THRESHOLD, *_wanted), *_original[1:])


def _hold() -> tuple[tuple[int, ...], bool] | None:
    """Freeze and raise the threshold; returns (thresholds, froze) to restore."""
    global _original
    if not gc.isenabled():
        return None
    thresholds = gc.get_threshold()
    froze = gc.get_freeze_count() <= FROZEN_AT_START  # (the interpreter's own are unfrozen with ours: harmless)
    if froze:
        gc.freeze()
    _original = thresholds
    _apply()
    return thresholds, froze


def _restore(held: tuple[tuple[int, ...], bool]) -> None:
    global _original
    thresholds, froze = held
    _original = None
    _wanted.clear()  # (the last holder is gone: a request an interrupt left behind goes with it)
    gc.set_threshold(*thresholds)
    if froze:
        gc.unfreeze()


#: ``with campaign_gc():`` holds the campaign's collector settings for the duration (nestable, thread-safe).
campaign_gc = ProcessPatch("gc", _hold, _restore, what="gc.freeze() of older objects, a higher gen-0 threshold")


@contextlib.contextmanager
def campaign_gc_for(in_flight: int) -> Iterator[None]:
    """``campaign_gc()``, with the gen-0 threshold raised to ``gen0_threshold(in_flight)`` while held (the
    highest of the campaigns running at once is in force)."""
    want = gen0_threshold(in_flight)
    with campaign_gc():
        with campaign_gc.lock:
            _wanted.append(want)
            _apply()
        try:
            yield
        finally:
            with campaign_gc.lock:
                _wanted.remove(want)
                _apply()


def _pause() -> bool | None:
    if not gc.isenabled():
        return None
    gc.disable()
    return True


def _resume(_paused: bool) -> None:
    gc.enable()


#: ``with collector_paused():`` no cyclic collection while a finished campaign's records are summed up and
#: written: that work makes many containers that refcounting frees (no cycle among them), and with the
#: collector on, collections of the young ones that survive a while cost a third of it at 100,000 trials
#: (nestable, thread-safe; nothing changes when the collector is off already).
collector_paused = ProcessPatch("gc-paused", _pause, _resume, what="gc.disable() while results are made")
