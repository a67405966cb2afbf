"""Garbage-collector settings for the length of a campaign, restored afterwards.

A campaign allocates many short-lived objects per trial. With the interpreter's defaults, the collector
runs a full collection now and then, which walks every object of the process (test session, imported
libraries): 10-30 ms at a time on a loaded test process, paid on the trial loop's critical path. So while
campaigns run, the objects that existed before the first one are frozen (``gc.freeze``: the collector
skips them) and the youngest generation is collected less often. Both are undone when the last running
campaign ends; nothing changes when the collector is disabled or the process already froze objects.
"""

from __future__ import annotations

import contextlib
import gc
import threading
from collections.abc import Iterator

#: Youngest-generation threshold while campaigns run (the interpreter's default is 700 allocations).
CAMPAIGN_GEN0_THRESHOLD = 10_000

_lock = threading.Lock()
_holders = 0
_saved: tuple[tuple[int, ...], bool] | None = None  # (thresholds, froze) to restore


@contextlib.contextmanager
def campaign_gc() -> Iterator[None]:
    """Hold the campaign's collector settings for the duration (nestable, and from several threads)."""
    global _holders, _saved
    with _lock:
        _holders += 1
        if _holders == 1 and gc.isenabled():
            thresholds = gc.get_threshold()
            froze = gc.get_freeze_count() == 0
            if froze:
                gc.freeze()
            if 0 < thresholds[0] < CAMPAIGN_GEN0_THRESHOLD:
                gc.set_threshold(CAMPAIGN_GEN0_THRESHOLD, *thresholds[1:])
            _saved = (thresholds, froze)
    try:
        yield
    finally:
        with _lock:
            _holders -= 1
            if _holders == 0 and _saved is not None:
                thresholds, froze = _saved
                _saved = None
                gc.set_threshold(*thresholds)
                if froze:
                    gc.unfreeze()
