"""The real clock functions and classes, captured before anything could patch them.

Where freezegun is loaded, its captures are taken: it made them when it was first imported, before anything
could have frozen time through it. Where it is not (an isolated agent's process; pytest's before the engine
loads it), nothing has frozen time through it, and the functions are taken from ``time`` and ``datetime``
here: the process does not pay ~50 ms for freezegun and its ``dateutil`` to learn the same functions. The
ones freezegun never patches are taken from ``time`` either way. Code that must measure real time while the
time stand-ins are installed (the runner's wall clock, a loop's real waits) uses these.
"""

from __future__ import annotations

import datetime as _datetime_module
import sys
import time as _time_module
from collections.abc import Callable
from typing import Any

from ..errors import hide_own_frames

__tracebackhide__ = hide_own_frames

_freezegun_api = sys.modules.get("freezegun.api")


def _real(freezegun_name: str, own: Any) -> Any:
    """freezegun's capture named ``freezegun_name`` where freezegun is loaded, else ``own`` (taken now)."""
    return own if _freezegun_api is None else getattr(_freezegun_api, freezegun_name)


real_time: Callable[[], float] = _real("real_time", _time_module.time)
real_time_ns: Callable[[], int] = _real("real_time_ns", _time_module.time_ns)
real_monotonic: Callable[[], float] = _real("real_monotonic", _time_module.monotonic)
real_monotonic_ns: Callable[[], int] = _real("real_monotonic_ns", _time_module.monotonic_ns)
real_perf_counter: Callable[[], float] = _real("real_perf_counter", _time_module.perf_counter)
real_perf_counter_ns: Callable[[], int] = _real("real_perf_counter_ns", _time_module.perf_counter_ns)
real_localtime = _real("real_localtime", _time_module.localtime)
real_gmtime = _real("real_gmtime", _time_module.gmtime)
real_strftime = _real("real_strftime", _time_module.strftime)
real_sleep: Callable[[float], None] = _time_module.sleep
real_ctime = _time_module.ctime
real_asctime = _time_module.asctime
# (absent on Windows: the stand-ins for them are installed only where they exist)
real_clock_gettime: Callable[[int], float] = getattr(_time_module, "clock_gettime", lambda clock_id: 0.0)
real_clock_gettime_ns: Callable[[int], int] = getattr(_time_module, "clock_gettime_ns", lambda clock_id: 0)
RealDate: type[_datetime_module.date] = _real("real_date", _datetime_module.date)
RealDatetime: type[_datetime_module.datetime] = _real("real_datetime", _datetime_module.datetime)
UTC = _datetime_module.UTC
