"""Garbage-collector settings for the length of a campaign (and of making its result), restored afterwards.

A campaign allocates many short-lived objects per trial. With the interpreter's defaults, the collector
runs a full collection now and then, which walks every object of the process (test session, imported
libraries): 10-30 ms at a time on a loaded test process, paid on the trial loop's critical path. So while
campaigns run, the objects that existed before the first one are frozen (``gc.freeze``: the collector
skips them) and the youngest generation is collected less often. Both are undone when the last running
campaign ends; nothing changes when the collector is disabled or the process already froze objects.
"""

from __future__ import annotations

import gc

from .patch import ProcessPatch

#: Youngest-generation threshold while campaigns run (the interpreter's default is 700 allocations).
CAMPAIGN_GEN0_THRESHOLD = 10_000


def _hold() -> tuple[tuple[int, ...], bool] | None:
    """Freeze and raise the threshold; returns (thresholds, froze) to restore."""
    if not gc.isenabled():
        return None
    thresholds = gc.get_threshold()
    froze = gc.get_freeze_count() == 0
    if froze:
        gc.freeze()
    if 0 < thresholds[0] < CAMPAIGN_GEN0_THRESHOLD:
        gc.set_threshold(CAMPAIGN_GEN0_THRESHOLD, *thresholds[1:])
    return thresholds, froze


def _restore(held: tuple[tuple[int, ...], bool]) -> None:
    thresholds, froze = held
    gc.set_threshold(*thresholds)
    if froze:
        gc.unfreeze()


#: ``with campaign_gc():`` holds the campaign's collector settings for the duration (nestable, thread-safe).
campaign_gc = ProcessPatch("gc", _hold, _restore, what="gc.freeze() of older objects, a higher gen-0 threshold")


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
