"""The time stand-ins: code that reads the clock through the standard library sees the trial's clock.

``virtual_time(clock)`` is a context manager that makes code which reads the clock through the standard
library see ``clock`` (a ``pytest_agentops.vtime.clock.VirtualClock``), and makes ``time.sleep(s)`` advance
``clock`` and return at once. ``enter_clock``/``exit_clock`` do the same for a caller that holds
``time_patch()`` (the runner, around a campaign).

What ``virtual_time`` covers
----------------------------
While at least one block is active anywhere in the process, these names are replaced by stand-ins:

- in the ``time`` module: ``time``, ``time_ns``, ``monotonic``, ``monotonic_ns``, ``perf_counter``,
  ``perf_counter_ns``, ``sleep``, and the no-argument forms of ``localtime``, ``gmtime``, ``ctime``,
  ``asctime`` and ``strftime``;
- in the ``datetime`` module: the classes ``datetime`` and ``date``, so that ``datetime.now(tz)``,
  ``datetime.utcnow()``, ``datetime.today()`` and ``date.today()`` read the clock;
- the same function and class objects bound under any name in modules that were already imported
  (``from time import monotonic as now``, ``from datetime import datetime``), except in the modules of
  ``IGNORED_MODULES`` (the standard library's own blocking machinery, pytest, and this plugin's own
  modules other than its demo agent).

A stand-in asks for the clock of the *current context* (a ``contextvars.ContextVar``) and calls the
real function when there is none. So other threads, and this thread outside the block, see real time,
also while another thread is inside its own block with another clock. A context variable rather than
a ``threading.local``: it is just as thread-confined (a new thread starts with an empty context), and in
addition two asyncio tasks on one loop, each inside its own block, each see their own clock; and
``asyncio.to_thread`` work, which runs in a copy of the caller's context, sees the caller's clock. (On
free-threaded builds of Python 3.14+, where new threads inherit their starter's context by default, a
thread started inside a block inherits its clock.)

The stand-ins are installed when the first block enters and removed when the last one exits (reference
counted under a lock), so nothing stays patched in code that never uses virtual time. Modules imported
during a block are swept on removal too. To keep the stand-ins installed over many short trials (the
module sweep costs a few milliseconds), hold ``time_patch()`` around the whole campaign.

``datetime.datetime`` and ``datetime.date`` become thin stand-in classes while installed, but every
instance anyone creates is a plain ``datetime``/``date``, so database adapters and type-keyed
serialisers are unaffected and ``isinstance(x, datetime.datetime)`` is true as usual. Only
``type(x) is datetime.datetime`` compared against the patched *name* is false while installed. Because
pickle and copy look a class up by its name, ``copyreg`` entries for the two classes are installed with
the stand-ins; a value pickled while patched unpickles as a plain one, patched or not.

While installed, ``asyncio.BaseEventLoop.time`` reads the real monotonic clock, so that an ordinary
asyncio loop started inside a block (``asyncio.run`` in a sync agent) keeps real time instead of
freezing (the classic freezegun hang). Use ``VirtualTimeLoop`` / ``run_virtual`` for virtual asyncio.

Not covered (these see real time, or are not virtualised): C extensions that read the OS clock directly
(uvloop, numpy's ``datetime64('now')``, ``uuid.uuid1`` when libuuid is present); names captured in
default arguments, containers, closures or class attributes (``Foo.clock = time.time``);
``time.process_time``/``thread_time`` (CPU time, not wall time); timeouts of real blocking primitives
(``threading.Event.wait(5)``, socket and lock timeouts, ``subprocess`` timeouts) which still take real
time; threads started inside a block with ``threading.Thread`` or a ``ThreadPoolExecutor`` (they start
with an empty context: wrap their body in ``virtual_time`` to share the clock). Library loops that poll
``time.sleep`` until a real event arrives spin (each virtual sleep yields the GIL once) rather than
wait. A ``source`` callable must not itself read the patched functions (use ``real_monotonic``).
Covered, perhaps unexpectedly: ``logging`` stamps records made inside a block with virtual time. Do not
interleave with freezegun's ``freeze_time`` or time-machine in one test: whichever installs second
shadows the other until it exits.

Why not freezegun itself: ``freeze_time`` freezes every thread at once (its only escape is a module
ignore list, checked by walking the call stack on every call); its ``monotonic()``/``perf_counter()``
are derived from the frozen datetime (epoch seconds at microsecond resolution), so threads outside a
trial, other event loops among them, would lose their monotonic clock; it keeps the frozen time in
process-wide stacks that its ``FakeDatetime``/``FakeDate`` classes read (they fail once freezegun is
stopped), and it does not patch ``time.sleep``. What is reused:
its captured real functions (``freezegun.api.real_*``, taken at its import, before anything patched
them), its metaclasses that keep ``isinstance`` transparent for stand-in classes, and its default list
of modules never to patch. The rest, a per-context dispatch and a reference-counted module sweep, is
written here.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import copyreg
import datetime as _datetime_module
import sys
import time as _time_module
from collections.abc import Callable, Iterator, Mapping
from types import ModuleType
from typing import Any

from freezegun import api as _freezegun_api
from freezegun import config as _freezegun_config

from ..errors import ArgumentTypeError, UsageError
from ..vtime.clock import VirtualClock
from ..vtime.real import (
    UTC,
    RealDate,
    RealDatetime,
    real_asctime,
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
from .patch import ProcessPatch

__all__ = [
    "IGNORED_MODULES",
    "SWEPT_MODULES",
    "TIME_PATCH",
    "active_clock",
    "enter_clock",
    "exit_clock",
    "register_stand_ins",
    "time_patch",
    "virtual_time",
]


def _ns(seconds: float) -> int:
    return round(seconds * 1e9)


_active: contextvars.ContextVar[VirtualClock | None] = contextvars.ContextVar(
    "pytest_agentops_virtual_clock", default=None
)


def active_clock() -> VirtualClock | None:
    """The clock of the innermost ``virtual_time`` block in the current context, or None."""
    return _active.get()


def _fake_time() -> float:
    clock = _active.get()
    return real_time() if clock is None else clock.now()


def _fake_time_ns() -> int:
    clock = _active.get()
    return real_time_ns() if clock is None else _ns(clock.now())


def _fake_monotonic() -> float:
    clock = _active.get()
    return real_monotonic() if clock is None else clock.monotonic()


def _fake_monotonic_ns() -> int:
    clock = _active.get()
    return real_monotonic_ns() if clock is None else _ns(clock.monotonic())


def _fake_perf_counter() -> float:
    clock = _active.get()
    return real_perf_counter() if clock is None else clock.monotonic()


def _fake_perf_counter_ns() -> int:
    clock = _active.get()
    return real_perf_counter_ns() if clock is None else _ns(clock.monotonic())


def _fake_sleep(seconds: float, /) -> None:
    clock = _active.get()
    if clock is None:
        real_sleep(seconds)
        return
    clock.advance(seconds)
    real_sleep(0)  # still yield the GIL, as a real sleep would, so polling loops do not starve others


def _fake_localtime(secs: float | None = None, /) -> _time_module.struct_time:
    clock = _active.get()
    if secs is None and clock is not None:
        secs = clock.now()
    return real_localtime(secs)


def _fake_gmtime(secs: float | None = None, /) -> _time_module.struct_time:
    clock = _active.get()
    if secs is None and clock is not None:
        secs = clock.now()
    return real_gmtime(secs)


def _fake_ctime(secs: float | None = None, /) -> str:
    clock = _active.get()
    if secs is None and clock is not None:
        secs = clock.now()
    return real_ctime(secs)


def _fake_asctime(t: Any = None, /) -> str:
    if t is not None:
        return real_asctime(t)
    clock = _active.get()
    return real_asctime() if clock is None else real_asctime(real_localtime(clock.now()))


def _fake_strftime(fmt: str, t: Any = None, /) -> str:
    if t is not None:
        return real_strftime(fmt, t)
    clock = _active.get()
    return real_strftime(fmt) if clock is None else real_strftime(fmt, real_localtime(clock.now()))


class _VirtualDate(RealDate, metaclass=_freezegun_api.FakeDateMeta):
    """Stands in for ``datetime.date`` while patched; instances are plain ``date`` objects."""

    def __new__(cls, *args: Any, **kwargs: Any) -> Any:
        if cls is _VirtualDate:
            return RealDate(*args, **kwargs)
        return RealDate.__new__(cls, *args, **kwargs)  # a user's subclass defined while patched

    @classmethod
    def today(cls) -> Any:
        clock = _active.get()
        if clock is None:
            return super().today()
        return super().fromtimestamp(clock.now())


class _VirtualDatetime(RealDatetime, metaclass=_freezegun_api.FakeDatetimeMeta):
    """Stands in for ``datetime.datetime`` while patched; instances are plain ``datetime`` objects."""

    def __new__(cls, *args: Any, **kwargs: Any) -> Any:
        if cls is _VirtualDatetime:
            return RealDatetime(*args, **kwargs)
        return RealDatetime.__new__(cls, *args, **kwargs)

    @classmethod
    def now(cls, tz: _datetime_module.tzinfo | None = None) -> Any:
        clock = _active.get()
        if clock is None:
            return super().now(tz)
        return super().fromtimestamp(clock.now(), tz)

    @classmethod
    def utcnow(cls) -> Any:
        clock = _active.get()
        if clock is None:
            return super().utcnow()
        return super().fromtimestamp(clock.now(), UTC).replace(tzinfo=None)

    @classmethod
    def today(cls) -> Any:
        return cls.now()


# Shown (and pickled, by reference) under the names they stand in for.
for _stand_in, _name in ((_VirtualDate, "date"), (_VirtualDatetime, "datetime")):
    _stand_in.__module__ = "datetime"
    _stand_in.__name__ = _stand_in.__qualname__ = _name
del _stand_in, _name

_TIME_STAND_INS: dict[str, Callable[..., Any]] = {
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
}
_REAL_TIME_FUNCS: dict[str, Any] = {
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
}
# (real object, stand-in) for the sweep over other modules' attributes.
_SWEEP_PAIRS: tuple[tuple[Any, Any], ...] = (
    *((_REAL_TIME_FUNCS[name], fake) for name, fake in _TIME_STAND_INS.items()),
    (RealDate, _VirtualDate),
    (RealDatetime, _VirtualDatetime),
)
_FAKE_FOR_REAL: dict[int, tuple[Any, Any]] = {id(real): (real, fake) for real, fake in _SWEEP_PAIRS}
_REAL_FOR_FAKE: dict[int, tuple[Any, Any]] = {id(fake): (fake, real) for real, fake in _SWEEP_PAIRS}

#: Module-name prefixes whose attributes the sweep never rebinds: freezegun's own default list, plus the
#: standard library's blocking machinery (whose timeouts must stay real), pytest, and this plugin's own
#: modules (a name they bound, such as the runner's wall clock, stays real; they read virtual time
#: through a clock or the ``time`` module), except those of ``SWEPT_MODULES``.
IGNORED_MODULES: tuple[str, ...] = (
    *(name.rstrip(".") for name in _freezegun_config.DEFAULT_IGNORE_LIST),
    "time",
    "random",
    "datetime",
    "_datetime",
    "_strptime",
    "asyncio",
    "concurrent",
    "selectors",
    "subprocess",
    "socket",
    "ssl",
    "_pytest",
    "pytest",
    "pluggy",
    "freezegun",
    "time_machine",
    "pytest_agentops",
)

#: Swept even though under an ignored prefix: the bundled demo agent is agent code, like a user's.
SWEPT_MODULES: tuple[str, ...] = ("pytest_agentops.demo",)


def _under(module_name: str, prefixes: tuple[str, ...]) -> bool:
    return any(module_name == p or module_name.startswith(p + ".") for p in prefixes)


_ignored_cache: dict[tuple[str, tuple[str, ...], tuple[str, ...]], bool] = {}


def _is_ignored(module_name: str) -> bool:
    # cached: installing the stand-ins checks every loaded module, once per campaign
    key = (module_name, IGNORED_MODULES, SWEPT_MODULES)  # the lists are public: a change is a new key
    ignored = _ignored_cache.get(key)
    if ignored is None:
        ignored = _under(module_name, IGNORED_MODULES) and not _under(module_name, SWEPT_MODULES)
        if len(_ignored_cache) > 100_000:
            _ignored_cache.clear()
        _ignored_cache[key] = ignored
    return ignored


def _reduce_datetime(value: _datetime_module.datetime) -> tuple[Any, tuple[Any, ...]]:
    # pickle and copy find a class by its name; while patched ``datetime.datetime`` names the stand-in,
    # so a plain datetime is reduced to the stand-in, which builds a plain datetime again (and after the
    # patch the name is the real class once more).
    return _VirtualDatetime, RealDatetime.__reduce__(value)[1]


def _reduce_date(value: _datetime_module.date) -> tuple[Any, tuple[Any, ...]]:
    return _VirtualDate, RealDate.__reduce__(value)[1]


_REDUCERS: dict[type, Callable[[Any], Any]] = {RealDatetime: _reduce_datetime, RealDate: _reduce_date}


def _real_loop_time(self: asyncio.AbstractEventLoop) -> float:
    """``BaseEventLoop.time`` while patched: an ordinary loop keeps real time, even inside a block."""
    return real_monotonic()


# (owner: a module, class or copyreg's dispatch table; attribute or key; original; stand-in), in install order
_undo: list[tuple[Any, Any, Any, Any]] = []
_modules_at_install: frozenset[str] = frozenset()


def _module_namespace(module: Any) -> dict[str, Any] | None:
    namespace = getattr(module, "__dict__", None) if isinstance(module, ModuleType) else None
    return namespace if isinstance(namespace, dict) else None


# Other modules' functions with stand-ins installed and swept along with time's (``register_stand_ins``).
_MORE_STAND_INS: list[tuple[ModuleType, dict[str, Callable[..., Any]]]] = []


def register_stand_ins(module: ModuleType, stand_ins: Mapping[str, Callable[..., Any]]) -> None:
    """Install ``stand_ins`` (name -> function) over ``module``'s functions of those names, and over the same
    function objects bound in other modules, whenever the time stand-ins are installed (at import time, so
    before any is)."""
    with TIME_PATCH.lock:
        if TIME_PATCH.holders:
            raise UsageError("stand-ins cannot be registered while installed")
        entry = (module, dict(stand_ins))
        for name, fake in entry[1].items():
            real = getattr(module, name)
            _FAKE_FOR_REAL[id(real)] = (real, fake)
            _REAL_FOR_FAKE[id(fake)] = (fake, real)
        _MORE_STAND_INS.append(entry)


def _install() -> None:
    global _modules_at_install
    undo = _undo
    for name, fake in _TIME_STAND_INS.items():
        undo.append((_time_module, name, getattr(_time_module, name), fake))
        setattr(_time_module, name, fake)
    for module, stand_ins in _MORE_STAND_INS:
        for name, fake in stand_ins.items():
            undo.append((module, name, getattr(module, name), fake))
            setattr(module, name, fake)
    for name, fake in (("date", _VirtualDate), ("datetime", _VirtualDatetime)):
        undo.append((_datetime_module, name, getattr(_datetime_module, name), fake))
        setattr(_datetime_module, name, fake)
    base_loop = asyncio.BaseEventLoop
    undo.append((base_loop, "time", base_loop.__dict__["time"], _real_loop_time))
    base_loop.time = _real_loop_time  # type: ignore[method-assign]
    for cls, reducer in _REDUCERS.items():
        undo.append((copyreg.dispatch_table, cls, copyreg.dispatch_table.get(cls), reducer))
        copyreg.dispatch_table[cls] = reducer

    modules = dict(sys.modules)
    _modules_at_install = frozenset(modules)
    for module_name, module in modules.items():
        namespace = _module_namespace(module)
        if namespace is None or _is_ignored(module_name):
            continue
        for attribute, value in list(namespace.items()):
            pair = _FAKE_FOR_REAL.get(id(value))
            if pair is not None and pair[0] is value:
                try:
                    setattr(module, attribute, pair[1])
                except (AttributeError, TypeError):
                    continue
                undo.append((module, attribute, value, pair[1]))


def _uninstall() -> None:
    global _modules_at_install
    while _undo:
        owner, key, original, fake = _undo.pop()
        if isinstance(owner, dict):  # copyreg.dispatch_table
            if owner.get(key) is fake:
                if original is None:
                    del owner[key]
                else:
                    owner[key] = original
            continue
        current = owner.__dict__.get(key) if isinstance(owner, type) else getattr(owner, key, None)
        if current is fake:  # leave alone anything someone else rebound after us
            setattr(owner, key, original)
    # Modules imported during the patch may have bound a stand-in (``from time import time``).
    for module_name, module in list(sys.modules.items()):
        if module_name in _modules_at_install:
            continue
        namespace = _module_namespace(module)
        if namespace is None or _is_ignored(module_name):
            continue
        for attribute, value in list(namespace.items()):
            pair = _REAL_FOR_FAKE.get(id(value))
            if pair is not None and pair[0] is value:
                with contextlib.suppress(AttributeError, TypeError):
                    setattr(module, attribute, pair[1])
    _modules_at_install = frozenset()


def _make() -> bool:
    try:
        _install()
    except BaseException:
        _uninstall()
        raise
    return True


#: The time and datetime stand-ins (and the stdlib ``random`` ones registered with them), as one patch.
TIME_PATCH = ProcessPatch("time", _make, lambda _made: _uninstall(),
                          what="time/datetime stand-ins and those registered with them (random)")


@contextlib.contextmanager
def time_patch() -> Iterator[None]:
    """Keep the stand-ins installed for the duration, without activating any clock.

    Code outside a ``virtual_time`` block still sees real time; this only saves the install/remove cost
    when many short blocks run one after another (hold it around a campaign).
    """
    with TIME_PATCH():
        yield


def enter_clock(clock: VirtualClock) -> contextvars.Token[VirtualClock | None]:
    """Make ``clock`` the current context's clock without installing the stand-ins: for a caller that
    holds ``time_patch()`` already (the runner, around a campaign) and runs many short trials. Undo with
    ``exit_clock(token)`` in the same context."""
    return _active.set(clock)


def exit_clock(token: contextvars.Token[VirtualClock | None]) -> None:
    """Undo ``enter_clock``."""
    _active.reset(token)


@contextlib.contextmanager
def virtual_time(clock: VirtualClock) -> Iterator[VirtualClock]:
    """Make the current thread (or asyncio task) read ``clock`` through ``time``/``datetime``.

    Inside the block ``time.time()``, ``time.monotonic()``, ``time.perf_counter()`` and their ``_ns``
    forms, ``datetime.datetime.now()``/``utcnow()``/``today()`` and ``datetime.date.today()`` read
    ``clock``, and ``time.sleep(s)`` advances it and returns at once. Blocks nest; the innermost wins.
    See the module docstring for exactly what is and is not covered.
    """
    if not isinstance(clock, VirtualClock):
        raise ArgumentTypeError(f"clock={clock!r} must be a VirtualClock")
    with TIME_PATCH():
        token = _active.set(clock)
        try:
            yield clock
        finally:
            _active.reset(token)


