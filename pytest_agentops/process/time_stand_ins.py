"""The stand-ins for the standard library's clocks: each reads the clock of the current context (a
``contextvars.ContextVar``: a thread, or an asyncio task) and calls the real function when there is none.
``time_patch`` installs them; this module only defines them and the real/stand-in pairs the sweep uses."""

from __future__ import annotations

import asyncio
import contextvars
import datetime as _datetime_module
import sys
import time as _time_module
import types
from collections.abc import Callable
from typing import Any

from ..errors import hide_own_frames
from ..vtime.clock import VirtualClock
from ..vtime.real import (
    UTC,
    RealDate,
    RealDatetime,
    real_asctime,
    real_clock_gettime,
    real_clock_gettime_ns,
    real_ctime,
    real_gmtime,
    real_localtime,
    real_monotonic,
    real_monotonic_ns,
    real_perf_counter,
    real_perf_counter_ns,
    real_sleep,
    real_strftime,
    real_time,
    real_time_ns,
)

__tracebackhide__ = hide_own_frames


def _ns(seconds: float) -> int:
    return round(seconds * 1e9)


#: The clock of the current context (None: real time).
active: contextvars.ContextVar[VirtualClock | None] = contextvars.ContextVar(
    "pytest_agentops_virtual_clock", default=None
)


def active_clock() -> VirtualClock | None:
    """The clock of the innermost ``virtual_time`` block in the current context, or None."""
    return active.get()


#: Module-name prefixes of the standard library's blocking machinery: what it reads of ``time`` (or sleeps) inside a
#: trial is real, since its deadlines bound real waits. ``multiprocessing.connection.wait(timeout=0)`` polled until
#: ``time.monotonic()`` moved: frozen in a trial, it spun for ever, and every forkserver pool in a trial hung (the
#: default start method of Python 3.14). Read from the caller's module, one frame up (freezegun walks the stack).
REAL_TIME_CALLERS: tuple[str, ...] = ("multiprocessing", "concurrent", "threading", "queue", "selectors",
                                      "subprocess", "socket", "ssl")
_real_callers: dict[Any, bool] = {}
_handed_over: set[Any] = set()  # the code of the functions that call what they were handed (``_handing_over``)


def _handing_over() -> set[Any]:
    """The code of the standard library's functions that call a function they were given, on another thread
    (``asyncio.to_thread(time.sleep, 3)``, ``run_in_executor(None, time.time)``): such a call is the agent's."""
    if not _handed_over:
        import concurrent.futures.thread
        import threading

        _handed_over.update({concurrent.futures.thread._WorkItem.run.__code__, threading.Thread.run.__code__})
    return _handed_over


def _for_real() -> bool:
    """Whether the caller of the stand-in that calls this is in ``REAL_TIME_CALLERS``' modules (and is not one that
    calls what it was handed)."""
    frame = sys._getframe(2)
    name = frame.f_globals.get("__name__")
    found = _real_callers.get(name)
    if found is None:
        found = isinstance(name, str) and any(name == p or name.startswith(p + ".") for p in REAL_TIME_CALLERS)
        if len(_real_callers) < 4096:
            _real_callers[name] = found
    return found and frame.f_code not in _handing_over()


def _fake_time() -> float:
    clock = active.get()
    return real_time() if clock is None or _for_real() else clock.now()


def _fake_time_ns() -> int:
    clock = active.get()
    return real_time_ns() if clock is None or _for_real() else _ns(clock.now())


def _fake_monotonic() -> float:
    clock = active.get()
    return real_monotonic() if clock is None or _for_real() else clock.monotonic()


def _fake_monotonic_ns() -> int:
    clock = active.get()
    return real_monotonic_ns() if clock is None or _for_real() else _ns(clock.monotonic())


#: ``time.clock_gettime`` clock ids read from the virtual clock inside a trial: wall clocks give its
#: ``now()``, the others its ``monotonic()``; CPU-time clocks (process, thread) stay real.
_WALL_CLOCK_IDS = frozenset(getattr(_time_module, n) for n in ("CLOCK_REALTIME", "CLOCK_TAI")
                            if hasattr(_time_module, n))
_STEADY_CLOCK_IDS = frozenset(getattr(_time_module, n) for n in ("CLOCK_MONOTONIC", "CLOCK_MONOTONIC_RAW",
                                                                  "CLOCK_BOOTTIME", "CLOCK_HIGHRES", "CLOCK_UPTIME")
                              if hasattr(_time_module, n))


def _virtual_clock_gettime(clock_id: int) -> float | None:
    clock = active.get()
    if clock is None:
        return None
    if clock_id in _WALL_CLOCK_IDS:
        return clock.now()
    if clock_id in _STEADY_CLOCK_IDS:
        return clock.monotonic()
    return None


def _fake_clock_gettime(clock_id: int, /) -> float:
    seconds = _virtual_clock_gettime(clock_id)
    return real_clock_gettime(clock_id) if seconds is None else seconds


def _fake_clock_gettime_ns(clock_id: int, /) -> int:
    seconds = _virtual_clock_gettime(clock_id)
    return real_clock_gettime_ns(clock_id) if seconds is None else _ns(seconds)


def _fake_perf_counter() -> float:
    clock = active.get()
    return real_perf_counter() if clock is None or _for_real() else clock.monotonic()


def _fake_perf_counter_ns() -> int:
    clock = active.get()
    return real_perf_counter_ns() if clock is None or _for_real() else _ns(clock.monotonic())


def _fake_sleep(seconds: float, /) -> None:
    clock = active.get()
    if clock is None or _for_real():
        real_sleep(seconds)
        return
    clock.advance(seconds)
    real_sleep(0)  # still yield the GIL, as a real sleep would, so polling loops do not starve others


def _fake_localtime(secs: float | None = None, /) -> _time_module.struct_time:
    clock = active.get()
    if secs is None and clock is not None:
        secs = clock.now()
    return real_localtime(secs)


def _fake_gmtime(secs: float | None = None, /) -> _time_module.struct_time:
    clock = active.get()
    if secs is None and clock is not None:
        secs = clock.now()
    return real_gmtime(secs)


def _fake_ctime(secs: float | None = None, /) -> str:
    clock = active.get()
    if secs is None and clock is not None:
        secs = clock.now()
    return real_ctime(secs)


def _fake_asctime(t: Any = None, /) -> str:
    if t is not None:
        return real_asctime(t)
    clock = active.get()
    return real_asctime() if clock is None else real_asctime(real_localtime(clock.now()))


def _fake_strftime(fmt: str, t: Any = None, /) -> str:
    if t is not None:
        return real_strftime(fmt, t)
    clock = active.get()
    return real_strftime(fmt) if clock is None else real_strftime(fmt, real_localtime(clock.now()))


class _DateMeta(type):
    """The stand-in's metaclass: every ``date`` is an instance of it, every ``date`` class a subclass (what
    ``isinstance(value, datetime.date)`` asked before the stand-in was put in, as freezegun's ``FakeDateMeta``)."""

    def __instancecheck__(cls, obj: Any) -> bool:
        return isinstance(obj, RealDate)

    def __subclasscheck__(cls, subclass: type) -> bool:
        return issubclass(subclass, RealDate)


class _DatetimeMeta(_DateMeta):
    """``_DateMeta`` for ``datetime`` (freezegun's ``FakeDatetimeMeta``)."""

    def __instancecheck__(cls, obj: Any) -> bool:
        return isinstance(obj, RealDatetime)

    def __subclasscheck__(cls, subclass: type) -> bool:
        return issubclass(subclass, RealDatetime)


class VirtualDate(RealDate, metaclass=_DateMeta):
    """Stands in for ``datetime.date`` while patched; instances are plain ``date`` objects."""

    def __new__(cls, *args: Any, **kwargs: Any) -> Any:
        if cls is VirtualDate:
            return RealDate(*args, **kwargs)
        return RealDate.__new__(cls, *args, **kwargs)  # a user's subclass defined while patched

    @classmethod
    def today(cls) -> Any:
        clock = active.get()
        if clock is None:
            return super().today()
        return super().fromtimestamp(clock.now())


class VirtualDatetime(RealDatetime, metaclass=_DatetimeMeta):
    """Stands in for ``datetime.datetime`` while patched; instances are plain ``datetime`` objects."""

    def __new__(cls, *args: Any, **kwargs: Any) -> Any:
        if cls is VirtualDatetime:
            return RealDatetime(*args, **kwargs)
        return RealDatetime.__new__(cls, *args, **kwargs)

    @classmethod
    def now(cls, tz: _datetime_module.tzinfo | None = None) -> Any:
        clock = active.get()
        if clock is None:
            return super().now(tz)
        return super().fromtimestamp(clock.now(), tz)

    @classmethod
    def utcnow(cls) -> Any:
        clock = active.get()
        if clock is None:
            return super().utcnow()
        return super().fromtimestamp(clock.now(), UTC).replace(tzinfo=None)

    @classmethod
    def today(cls) -> Any:
        return cls.now()


def _metaclass_conflict(metaclass: Any, bases: tuple[Any, ...]) -> bool:
    """Whether building a class of ``bases`` (with ``metaclass``, None: not given) fails with "metaclass conflict":
    the metaclass worked out as ``__build_class__`` works it out (``types._calculate_meta``)."""
    resolved = types.resolve_bases(bases)
    winner = metaclass if metaclass is not None else (type(resolved[0]) if resolved else type)
    if not isinstance(winner, type):  # (a callable that is not a class: nothing is worked out)
        return False
    for base in resolved:
        base_meta = type(base)
        if issubclass(winner, base_meta):
            continue
        if issubclass(base_meta, winner):
            winner = base_meta
            continue
        return True
    return False


def class_builder(previous: Callable[..., Any]) -> Callable[..., Any]:
    """``builtins.__build_class__`` while patched (``previous``: the one it stands in for). A class deriving
    directly from a stand-in, with a metaclass of its own (pydantic v1's ``class ConstrainedDate(date,
    metaclass=...)``, langchain importing it lazily inside a trial), failed with "metaclass conflict"
    (freezegun's too): it derives from the real class instead (its own ``now()``/``today()`` then read the real
    clock). Any other class is built as ``previous`` builds it."""

    def build_class(func: Callable[..., Any], name: str, /, *bases: Any, **kwds: Any) -> Any:
        __tracebackhide__ = True  # (a class body's error shows no frame of ours)
        if not build_class.installed:  # type: ignore[attr-defined]  (left by a library that put back what it found)
            return previous(func, name, *bases, **kwds)
        for base in bases:
            if base is VirtualDate or base is VirtualDatetime:
                if _metaclass_conflict(kwds.get("metaclass"), bases):
                    bases = tuple(RealDate if b is VirtualDate else RealDatetime if b is VirtualDatetime else b
                                  for b in bases)
                break
        return previous(func, name, *bases, **kwds)

    build_class.installed = True  # type: ignore[attr-defined]  (``time_patch`` clears it as it removes the stand-ins)
    return build_class


# Shown (and pickled, by reference) under the names they stand in for.
for _stand_in, _name in ((VirtualDate, "date"), (VirtualDatetime, "datetime")):
    _stand_in.__module__ = "datetime"
    _stand_in.__name__ = _stand_in.__qualname__ = _name
del _stand_in, _name

TIME_STAND_INS: dict[str, Callable[..., Any]] = {
    "time": _fake_time,
    "time_ns": _fake_time_ns,
    "monotonic": _fake_monotonic,
    "monotonic_ns": _fake_monotonic_ns,
    "perf_counter": _fake_perf_counter,
    "perf_counter_ns": _fake_perf_counter_ns,
    "sleep": _fake_sleep,
    "localtime": _fake_localtime,
    "gmtime": _fake_gmtime,
    "ctime": _fake_ctime,
    "asctime": _fake_asctime,
    "strftime": _fake_strftime,
    **({"clock_gettime": _fake_clock_gettime, "clock_gettime_ns": _fake_clock_gettime_ns}
       if hasattr(_time_module, "clock_gettime") else {}),
}
REAL_TIME_FUNCS: dict[str, Any] = {
    "time": real_time,
    "time_ns": real_time_ns,
    "monotonic": real_monotonic,
    "monotonic_ns": real_monotonic_ns,
    "perf_counter": real_perf_counter,
    "perf_counter_ns": real_perf_counter_ns,
    "sleep": real_sleep,
    "localtime": real_localtime,
    "gmtime": real_gmtime,
    "ctime": real_ctime,
    "asctime": real_asctime,
    "strftime": real_strftime,
    **({"clock_gettime": real_clock_gettime, "clock_gettime_ns": real_clock_gettime_ns}
       if hasattr(_time_module, "clock_gettime") else {}),
}
# (real object, stand-in) for the sweep over other modules' attributes.
SWEEP_PAIRS: tuple[tuple[Any, Any], ...] = (
    *((REAL_TIME_FUNCS[name], fake) for name, fake in TIME_STAND_INS.items()),
    (RealDate, VirtualDate),
    (RealDatetime, VirtualDatetime),
)
FAKE_FOR_REAL: dict[int, tuple[Any, Any]] = {id(real): (real, fake) for real, fake in SWEEP_PAIRS}
REAL_FOR_FAKE: dict[int, tuple[Any, Any]] = {id(fake): (fake, real) for real, fake in SWEEP_PAIRS}


def real_of(value: Any) -> Any:
    """The real function or class ``value`` stands in for, or ``value`` itself when it is not a stand-in."""
    pair = REAL_FOR_FAKE.get(id(value))
    return pair[1] if pair is not None and pair[0] is value else value


def _reduce_datetime(value: _datetime_module.datetime) -> tuple[Any, tuple[Any, ...]]:
    # pickle and copy find a class by its name; while patched ``datetime.datetime`` names the stand-in,
    # so a plain datetime is reduced to the stand-in, which builds a plain datetime again (and after the
    # patch the name is the real class once more).
    return VirtualDatetime, RealDatetime.__reduce__(value)[1]


def _reduce_date(value: _datetime_module.date) -> tuple[Any, tuple[Any, ...]]:
    return VirtualDate, RealDate.__reduce__(value)[1]


REDUCERS: dict[type, Callable[[Any], Any]] = {RealDatetime: _reduce_datetime, RealDate: _reduce_date}


def real_loop_time(self: asyncio.AbstractEventLoop) -> float:
    """``BaseEventLoop.time`` while patched: an ordinary loop keeps real time, even inside a block."""
    return real_monotonic()
