"""Virtual time for trials: simulated latency costs no wall time.

Three pieces, usable alone or together.

``VirtualClock``
    A trial's clock. Its elapsed virtual seconds are ``source()`` (a base another component advances, such
    as an event loop's virtual time; 0 without one) plus a private offset that ``advance()`` / ``sleep()``
    move. ``now()`` is ``epoch + elapsed``; ``monotonic()`` is ``elapsed``. Nothing in it ever blocks.

``virtual_time(clock)``
    A context manager that makes code which reads the clock through the standard library see ``clock``,
    and makes ``time.sleep(s)`` advance ``clock`` and return at once.

``VirtualTimeLoop`` / ``run_virtual(coro)``
    An asyncio event loop whose ``time()`` is virtual: when only timers are awaited it jumps straight to
    the next one, so ``asyncio.sleep(30)``, ``call_later``, ``wait_for`` and ``asyncio.timeout`` cost no
    wall time.

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
import math
import selectors
import sys
import threading
import time as _time_module
from collections.abc import Callable, Coroutine, Iterator, Mapping
from types import ModuleType
from typing import Any, TypeVar

from freezegun import api as _freezegun_api
from freezegun import config as _freezegun_config

__all__ = [
    "DEFAULT_EPOCH",
    "DEFAULT_IO_POLL_CAP",
    "IGNORED_MODULES",
    "SWEPT_MODULES",
    "VirtualClock",
    "VirtualTimeLoop",
    "active_clock",
    "real_monotonic",
    "real_perf_counter",
    "real_sleep",
    "real_time",
    "run_virtual",
    "time_patch",
    "virtual_time",
]

T = TypeVar("T")

#: 2026-01-01T00:00:00Z: the default virtual epoch, fixed so that traces and outputs are reproducible.
DEFAULT_EPOCH = 1_767_225_600.0

#: Longest real wait, in seconds, of one ``VirtualTimeLoop`` poll while real I/O is pending.
DEFAULT_IO_POLL_CAP = 0.05

# The real clock functions. freezegun captured them when it was first imported, which is before anything
# could have frozen time through it; the ones freezegun never patches are taken from ``time`` here.
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
_RealDate: type[_datetime_module.date] = _freezegun_api.real_date
_RealDatetime: type[_datetime_module.datetime] = _freezegun_api.real_datetime
_UTC = _datetime_module.timezone.utc


def _as_seconds(seconds: Any, name: str = "seconds") -> float:
    """Validate a duration: a finite real number >= 0, returned as float."""
    if isinstance(seconds, (str, bytes, bytearray)):
        raise TypeError(f"{name}={seconds!r} must be a number of seconds, not {type(seconds).__name__}")
    try:
        value = float(seconds)
    except (TypeError, ValueError):
        raise TypeError(f"{name}={seconds!r} must be a number of seconds") from None
    if math.isnan(value) or math.isinf(value):
        raise ValueError(f"{name}={seconds} must be a finite number of seconds")
    if value < 0:
        raise ValueError(f"{name}={seconds} must be >= 0")
    return value


def _ns(seconds: float) -> int:
    return round(seconds * 1e9)


# --- the clock ---------------------------------------------------------------------------------------------


class VirtualClock:
    """A trial's virtual clock: ``elapsed = source() + offset``; ``now() = epoch + elapsed``.

    Thread-safe: ``advance`` may be called from any thread. ``source`` is read outside the lock and must
    not read the patched clock functions itself (use ``real_monotonic`` or a loop's ``time()``).
    """

    __slots__ = ("_epoch", "_lock", "_offset", "_source")

    def __init__(self, epoch: float = DEFAULT_EPOCH, source: Callable[[], float] | None = None) -> None:
        try:
            epoch_value = float(epoch)
        except (TypeError, ValueError):
            raise TypeError(f"epoch={epoch!r} must be epoch seconds (a float)") from None
        if not math.isfinite(epoch_value):
            raise ValueError(f"epoch={epoch} must be a finite number of epoch seconds")
        if source is not None and not callable(source):
            raise TypeError(f"source={source!r} must be a zero-argument callable returning seconds, or None")
        self._epoch = epoch_value
        self._source = source
        self._offset = 0.0
        self._lock = threading.Lock()

    @classmethod
    def for_loop(cls, loop: asyncio.AbstractEventLoop, epoch: float = DEFAULT_EPOCH) -> VirtualClock:
        """A clock that measures ``loop.time()`` from now on, plus its own offset.

        Made for a ``VirtualTimeLoop``: several trials sharing one loop each get their own clock, each
        starting at elapsed 0 when created. (On an ordinary loop it measures the loop's real time.)
        """
        start = loop.time()

        def source() -> float:
            return loop.time() - start

        return cls(epoch, source)

    @property
    def epoch(self) -> float:
        """Epoch seconds at elapsed 0."""
        return self._epoch

    @property
    def elapsed(self) -> float:
        """Virtual seconds since the clock started."""
        base = self._source() if self._source is not None else 0.0
        with self._lock:
            return base + self._offset

    def now(self) -> float:
        """Virtual epoch seconds (what ``time.time()`` returns under ``virtual_time``)."""
        return self._epoch + self.elapsed

    def monotonic(self) -> float:
        """Virtual monotonic seconds, equal to ``elapsed`` (starts at 0)."""
        return self.elapsed

    def datetime(self) -> _datetime_module.datetime:
        """``now()`` as a timezone-aware UTC datetime."""
        return _RealDatetime.fromtimestamp(self.now(), _UTC)

    def advance(self, seconds: float) -> None:
        """Move the clock forward by ``seconds`` (finite, >= 0); returns at once."""
        value = _as_seconds(seconds)
        with self._lock:
            self._offset += value

    def sleep(self, seconds: float) -> None:
        """Same as ``advance``: a virtual sleep never blocks."""
        self.advance(seconds)

    async def asleep(self, seconds: float) -> None:
        """Sleep ``seconds`` of virtual time inside a coroutine.

        On a ``VirtualTimeLoop`` this is ``await asyncio.sleep(seconds)`` (virtual anyway, and other tasks'
        timers interleave correctly), after which the clock is topped up by whatever it moved less than
        ``seconds`` meanwhile: a clock that follows the loop (``for_loop``, or any source reading loop
        time) has already moved and is left alone; one that does not is advanced by ``seconds``. Either
        way the clock ends at least ``seconds`` later. On any other loop the clock is advanced by
        ``seconds`` and the task yields once.
        """
        value = _as_seconds(seconds)
        loop = asyncio.get_running_loop()
        if isinstance(loop, VirtualTimeLoop):
            before = self.elapsed
            await asyncio.sleep(value)
            shortfall = value - (self.elapsed - before)
            if shortfall > 0:
                self.advance(shortfall)
        else:
            self.advance(value)
            await asyncio.sleep(0)

    def __repr__(self) -> str:
        elapsed = self.elapsed
        stamp = _RealDatetime.fromtimestamp(self._epoch + elapsed, _UTC).isoformat()
        return f"{type(self).__name__}(elapsed={elapsed:g}, now={stamp})"


# --- per-context dispatch ----------------------------------------------------------------------------------

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


class _VirtualDate(_RealDate, metaclass=_freezegun_api.FakeDateMeta):
    """Stands in for ``datetime.date`` while patched; instances are plain ``date`` objects."""

    def __new__(cls, *args: Any, **kwargs: Any) -> Any:
        if cls is _VirtualDate:
            return _RealDate(*args, **kwargs)
        return _RealDate.__new__(cls, *args, **kwargs)  # a user's subclass defined while patched

    @classmethod
    def today(cls) -> Any:
        clock = _active.get()
        if clock is None:
            return super().today()
        return super().fromtimestamp(clock.now())


class _VirtualDatetime(_RealDatetime, metaclass=_freezegun_api.FakeDatetimeMeta):
    """Stands in for ``datetime.datetime`` while patched; instances are plain ``datetime`` objects."""

    def __new__(cls, *args: Any, **kwargs: Any) -> Any:
        if cls is _VirtualDatetime:
            return _RealDatetime(*args, **kwargs)
        return _RealDatetime.__new__(cls, *args, **kwargs)

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
        return super().fromtimestamp(clock.now(), _UTC).replace(tzinfo=None)

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
    (_RealDate, _VirtualDate),
    (_RealDatetime, _VirtualDatetime),
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
    return _VirtualDatetime, _RealDatetime.__reduce__(value)[1]


def _reduce_date(value: _datetime_module.date) -> tuple[Any, tuple[Any, ...]]:
    return _VirtualDate, _RealDate.__reduce__(value)[1]


_REDUCERS: dict[type, Callable[[Any], Any]] = {_RealDatetime: _reduce_datetime, _RealDate: _reduce_date}


def _real_loop_time(self: asyncio.AbstractEventLoop) -> float:
    """``BaseEventLoop.time`` while patched: an ordinary loop keeps real time, even inside a block."""
    return real_monotonic()


_patch_lock = threading.Lock()
_patch_holders = 0
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
    with _patch_lock:
        if _patch_holders:
            raise RuntimeError("stand-ins cannot be registered while installed")
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


def _acquire_patch() -> None:
    global _patch_holders
    with _patch_lock:
        if _patch_holders == 0:
            try:
                _install()
            except BaseException:
                _uninstall()
                raise
        _patch_holders += 1


def _release_patch() -> None:
    global _patch_holders
    with _patch_lock:
        _patch_holders -= 1
        if _patch_holders == 0:
            _uninstall()


@contextlib.contextmanager
def time_patch() -> Iterator[None]:
    """Keep the stand-ins installed for the duration, without activating any clock.

    Code outside a ``virtual_time`` block still sees real time; this only saves the install/remove cost
    when many short blocks run one after another (hold it around a campaign).
    """
    _acquire_patch()
    try:
        yield
    finally:
        _release_patch()


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
        raise TypeError(f"clock={clock!r} must be a VirtualClock")
    _acquire_patch()
    try:
        token = _active.set(clock)
        try:
            yield clock
        finally:
            _active.reset(token)
    finally:
        _release_patch()


# --- virtual-time asyncio ----------------------------------------------------------------------------------


class _VirtualTimeSelector(selectors.BaseSelector):
    """Wraps the loop's real selector and owns the loop's virtual time.

    The rule, applied to each ``select(timeout)`` the loop makes (``timeout`` is the loop's distance to its
    next timer, 0 when callbacks are ready, None when there are no timers):

    1. ``timeout == 0``: poll the real selector without waiting; virtual time does not move.
    2. Nothing from outside is pending (no file descriptors registered besides the loop's own self-pipe,
       no ``run_in_executor`` job in flight) and a timer exists: poll the real selector without waiting
       (to pick up wake-ups from other threads); if nothing is ready, jump virtual time forward by
       ``timeout``, straight to the next timer. No wall time passes.
    3. Real I/O or executor work pending: wait on the real selector for ``min(timeout, io_poll_cap)`` real
       seconds (``io_poll_cap`` if no timer), then advance virtual time by the real time that passed (never
       past the next timer, so that it fires at exactly its virtual time).
       While the outside world is involved, virtual time runs at the speed of real time, so a timeout
       guarding real I/O never fires before that much real time has passed.
    4. Nothing pending and no timer (an idle loop waiting for work from another thread): block until
       woken; virtual time does not move, since nothing can observe it (a trial measured from when its
       task started gets the same times whenever it was submitted).

    Before any wait (rules 2-4) one step of idle work (``idle``, see ``VirtualTimeLoop.idle_work``) runs
    if there is some; the selector then only polls, and the loop comes back for the next step.
    """

    def __init__(self, inner: selectors.BaseSelector, io_poll_cap: float) -> None:
        self._inner = inner
        self.io_poll_cap = io_poll_cap
        self.now = 0.0
        self.outside_jobs = 0
        self.own_fds: frozenset[int] = frozenset()
        self.idle: Callable[[], bool] | None = None
        self.on_jump: Callable[[float], None] | None = None  # told the seconds of each jump to a timer

    def register(self, fileobj: Any, events: int, data: Any = None) -> selectors.SelectorKey:
        return self._inner.register(fileobj, events, data)

    def unregister(self, fileobj: Any) -> selectors.SelectorKey:
        return self._inner.unregister(fileobj)

    def modify(self, fileobj: Any, events: int, data: Any = None) -> selectors.SelectorKey:
        return self._inner.modify(fileobj, events, data)

    def get_key(self, fileobj: Any) -> selectors.SelectorKey:
        return self._inner.get_key(fileobj)

    def get_map(self) -> Mapping[Any, selectors.SelectorKey]:
        return self._inner.get_map()

    def close(self) -> None:
        self._inner.close()

    def outside_work_pending(self) -> bool:
        if self.outside_jobs > 0:
            return True
        own = self.own_fds
        return any(fd not in own for fd in self._inner.get_map())

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        if timeout is not None and timeout <= 0:
            return self._inner.select(0)
        if self.idle is not None and self.idle():  # about to wait: one step of idle work instead
            return self._inner.select(0)
        if self.outside_work_pending():
            real_timeout: float | None = self.io_poll_cap if timeout is None else min(timeout, self.io_poll_cap)
        elif timeout is not None:
            ready = self._inner.select(0)
            if not ready:
                self.now += timeout
                if self.on_jump is not None:
                    self.on_jump(timeout)
            return ready
        else:
            # Idle: no timer and nothing from outside pending, so nothing can observe virtual time; wait
            # (for work submitted from another thread) without moving it, which keeps trial times exact.
            return self._inner.select(None)
        start = real_monotonic()
        try:
            return self._inner.select(real_timeout)
        finally:
            passed = max(0.0, real_monotonic() - start)
            # never past the next timer: a real wait overshoots by a little, and a timer must fire exactly at
            # its virtual time (so a purely virtual trial keeps exact times beside one doing real I/O)
            self.now += passed if timeout is None else min(passed, timeout)


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    """An asyncio loop whose clock is virtual; idle waits on timers cost no wall time.

    ``time()`` starts at 0.0 and moves only when the loop would otherwise wait. The rule (see
    ``_VirtualTimeSelector``): when no callbacks are ready and only timers are awaited, the loop jumps
    straight to the next timer. When real I/O is pending (a socket or other file descriptor registered
    besides the loop's own self-pipe, including a listening server or an idle open stream) or a
    ``run_in_executor``/``asyncio.to_thread`` job is in flight, it waits for real, at most ``io_poll_cap``
    seconds at a time and never past the next timer, and advances virtual time by the real time that
    passed. So a ``wait_for`` around real I/O still means real seconds, and timers of other tasks run at
    real speed while that I/O is pending.

    Limitation: wake-ups from threads the loop does not know about (``call_soon_threadsafe`` from a
    ``threading.Thread`` of your own) are picked up, but the loop does not wait for them while a timer is
    pending: a ``wait_for(future_set_by_own_thread, 10)`` times out at once in virtual time. Start such
    work with ``loop.run_in_executor`` or ``asyncio.to_thread`` instead, which the loop tracks, or count it
    with ``outside_work()``; during campaigns, ``anyio.to_thread`` workers are counted too
    (``harness/anyio_threads.py``).

    Implementation: the loop's selector is wrapped (the ``selector`` argument of ``SelectorEventLoop``),
    which is where a loop waits; no private method of asyncio is overridden.
    """

    def __init__(
        self, selector: selectors.BaseSelector | None = None, *, io_poll_cap: float = DEFAULT_IO_POLL_CAP
    ) -> None:
        inner = selector if selector is not None else selectors.DefaultSelector()
        self._vt_selector = _VirtualTimeSelector(inner, DEFAULT_IO_POLL_CAP)
        super().__init__(self._vt_selector)
        # Whatever the loop registered while being built is its own (the self-pipe), not outside I/O.
        self._vt_selector.own_fds = frozenset(self._vt_selector.get_map())
        try:  # validated once the loop exists, so that a refused loop is closed, not left half-built
            cap = _as_seconds(io_poll_cap, "io_poll_cap")
            if cap == 0:
                raise ValueError(f"io_poll_cap={io_poll_cap} must be > 0")
        except BaseException:
            self.close()
            raise
        self._vt_selector.io_poll_cap = cap

    def time(self) -> float:
        """The loop's virtual monotonic time in seconds (0.0 when the loop was created)."""
        return self._vt_selector.now

    def virtual_now(self) -> float:
        """Virtual seconds since the loop was created (the same value as ``time()``)."""
        return self._vt_selector.now

    @property
    def io_poll_cap(self) -> float:
        """Longest real wait, in seconds, of one poll while real I/O is pending."""
        return self._vt_selector.io_poll_cap

    @property
    def on_jump(self) -> Callable[[float], None] | None:
        """Called (on the loop thread) with the virtual seconds of each jump to the next timer, not with real
        waits: how a loop in another process reports its virtual time to the trial's clock."""
        return self._vt_selector.on_jump

    @on_jump.setter
    def on_jump(self, listener: Callable[[float], None] | None) -> None:
        self._vt_selector.on_jump = listener

    @property
    def idle_work(self) -> Callable[[], bool] | None:
        """Work for the loop's idle moments: called (on the loop thread) whenever the loop is about to wait,
        it does one short step and returns True, or returns False when it has nothing to do; after a step
        the loop only polls for I/O, runs what became ready, and comes back. Steps must not raise. It never
        moves virtual time. The runner uses it to build queued trials and judge ended ones off the path
        of the trials running, whose I/O answers it does not delay by more than one step."""
        return self._vt_selector.idle

    @idle_work.setter
    def idle_work(self, work: Callable[[], bool] | None) -> None:
        self._vt_selector.idle = work

    @contextlib.contextmanager
    def outside_work(self) -> Iterator[None]:
        """Count work done outside the loop (another thread that will call back) while the block runs: the
        loop then waits for real instead of jumping to its next timer, as for ``run_in_executor``."""
        self._vt_selector.outside_jobs += 1
        try:
            yield
        finally:
            self._vt_selector.outside_jobs -= 1

    def run_in_executor(self, executor: Any, func: Callable[..., T], *args: Any) -> asyncio.Future[T]:
        """As ``asyncio``'s, and while the job runs the loop waits for real instead of jumping timers."""
        future = super().run_in_executor(executor, func, *args)
        self._vt_selector.outside_jobs += 1
        future.add_done_callback(self._vt_job_done)
        return future

    def _vt_job_done(self, _future: asyncio.Future[Any]) -> None:
        self._vt_selector.outside_jobs -= 1

    async def shutdown_default_executor(self, *args: Any, **kwargs: Any) -> None:
        """As ``asyncio``'s, counted as outside work so that its join timeout (3.12+) runs in real time."""
        self._vt_selector.outside_jobs += 1
        try:
            await super().shutdown_default_executor(*args, **kwargs)
        finally:
            self._vt_selector.outside_jobs -= 1


def _cancel_all_tasks(loop: asyncio.AbstractEventLoop) -> None:
    pending = [task for task in asyncio.all_tasks(loop) if not task.done()]
    if not pending:
        return
    for task in pending:
        task.cancel()
    loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
    for task in pending:
        if not task.cancelled() and task.exception() is not None:
            loop.call_exception_handler(
                {
                    "message": "unhandled exception during run_virtual() shutdown",
                    "exception": task.exception(),
                    "task": task,
                }
            )


def run_virtual(coro: Coroutine[Any, Any, T], *, loop: VirtualTimeLoop | None = None) -> T:
    """Run ``coro`` to completion on a ``VirtualTimeLoop`` and return its result.

    Without ``loop`` a fresh loop is made and, afterwards, its remaining tasks are cancelled, async
    generators and the default executor shut down and the loop closed (as ``asyncio.run`` does). A given
    ``loop`` is left open, so that its virtual time can be inspected and the loop reused.
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        pass
    else:
        if asyncio.iscoroutine(coro):
            coro.close()
        raise RuntimeError("run_virtual() cannot be called from a running event loop; await the coroutine")
    if loop is not None and not isinstance(loop, VirtualTimeLoop):
        if asyncio.iscoroutine(coro):
            coro.close()
        raise TypeError(f"loop={loop!r} must be a VirtualTimeLoop or None")
    if loop is not None:
        return loop.run_until_complete(coro)
    own_loop = VirtualTimeLoop()
    try:
        return own_loop.run_until_complete(coro)
    finally:
        try:
            _cancel_all_tasks(own_loop)
            own_loop.run_until_complete(own_loop.shutdown_asyncgens())
            own_loop.run_until_complete(own_loop.shutdown_default_executor())
        finally:
            own_loop.close()
