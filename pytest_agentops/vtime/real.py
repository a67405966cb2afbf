"""The real clock functions and classes, captured before anything could patch them.

freezegun captured them when it was first imported, which is before anything could have frozen time through
it; the ones freezegun never patches are taken from ``time`` here. Code that must measure real time while
the time stand-ins are installed (the runner's wall clock, a loop's real waits) uses these.
"""

from __future__ import annotations

import datetime as _datetime_module
import time as _time_module
from collections.abc import Callable

from freezegun import api as _freezegun_api

from ..errors import hide_own_frames

__tracebackhide__ = hide_own_frames

real_time: Callable[[], float] = _freezegun_api.real_time
real_time_ns: Callable[[], int] = _freezegun_api.real_time_ns
real_monotonic: Callable[[], float] = _freezegun_api.real_monotonic
real_monotonic_ns: Callable[[], int] = _freezegun_api.real_monotonic_ns
real_perf_counter: Callable[[], float] = _freezegun_api.real_perf_counter
real_perf_counter_ns: Callable[[], int] = _freezegun_api.real_perf_counter_ns
real_localtime = _freezegun_api.real_localtime
real_gmtime = _freezegun_api.real_gmtime
real_strftime = _freezegun_api.real_strftime
real_sleep: Callable[[float], None] = _time_module.sleep
real_ctime = _time_module.ctime
real_asctime = _time_module.asctime
# (absent on Windows: the stand-ins for them are installed only where they exist)
real_clock_gettime: Callable[[int], float] = getattr(_time_module, "clock_gettime", lambda clock_id: 0.0)
real_clock_gettime_ns: Callable[[int], int] = getattr(_time_module, "clock_gettime_ns", lambda clock_id: 0)
RealDate: type[_datetime_module.date] = _freezegun_api.real_date
RealDatetime: type[_datetime_module.datetime] = _freezegun_api.real_datetime
UTC = _datetime_module.UTC
