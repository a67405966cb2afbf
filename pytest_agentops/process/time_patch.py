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
the stand-ins; a value pickled while patched unpickles as a plain one, patched or not. A class defined while
installed that derives from a stand-in with a metaclass of its own (pydantic v1's ``ConstrainedDate``) derives
from the real class instead (``class_builder`` stands in for ``builtins.__build_class__``): "metaclass
conflict" otherwise.

The standard library's blocking machinery (``REAL_TIME_CALLERS``: ``multiprocessing``, ``concurrent``,
``threading``, ``queue``, ``selectors``, ``subprocess``, ``socket``, ``ssl``) reads real time and really sleeps
inside a block: its deadlines bound real waits (a forkserver pool polled until a frozen clock moved).

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
its captured real functions where it is loaded (``freezegun.api.real_*``, taken at its import, before
anything patched them: ``vtime.real``), the design of its metaclasses that keep ``isinstance`` transparent
for stand-in classes, and its default list of modules never to patch (both written out here: a process that
never imports freezegun does not load it for them). The rest, a per-context dispatch and a reference-counted
module sweep, is written here.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import contextvars
import copyreg
import datetime as _datetime_module
import sys
import time as _time_module
from collections.abc import Callable, Iterator, Mapping
from types import ModuleType
from typing import Any

from ..errors import ArgumentTypeError, hide_own_frames
from ..vtime.clock import VirtualClock
from .patch import ProcessPatch
from .time_stand_ins import (
    FAKE_FOR_REAL,
    REAL_FOR_FAKE,
    REDUCERS,
    TIME_STAND_INS,
    VirtualDate,
    VirtualDatetime,
    active,
    active_clock,
    class_builder,
    real_loop_time,
    real_of,
)

__tracebackhide__ = hide_own_frames

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


#: freezegun's default ignore list (``freezegun.config.DEFAULT_IGNORE_LIST``, 1.5), written out: importing
#: freezegun costs a process ~50 ms (its ``dateutil``), an isolated agent's on every attempt
#: (``tests/test_virtual_time.py`` checks that this holds every entry of the installed freezegun's list).
FREEZEGUN_IGNORED = ("nose.plugins", "six.moves", "django.utils.six.moves", "google.gax", "threading",
                     "multiprocessing", "queue", "selenium", "_pytest.terminal", "_pytest.runner", "gi",
                     "prompt_toolkit")
#: Module-name prefixes whose attributes the sweep never rebinds: freezegun's own default list, plus the
#: standard library's blocking machinery (whose timeouts must stay real), pytest, and this plugin's own
#: modules (a name they bound, such as the runner's wall clock, stays real; they read virtual time
#: through a clock or the ``time`` module), except those of ``SWEPT_MODULES``.
IGNORED_MODULES: tuple[str, ...] = (
    *FREEZEGUN_IGNORED,
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


# (owner: a module, class or copyreg's dispatch table; attribute or key; original; stand-in), in install order
_undo: list[tuple[Any, Any, Any, Any]] = []
_modules_at_install: frozenset[str] = frozenset()


def _module_namespace(module: Any) -> dict[str, Any] | None:
    namespace = getattr(module, "__dict__", None) if isinstance(module, ModuleType) else None
    return namespace if isinstance(namespace, dict) else None


# Other modules' functions with stand-ins installed and swept along with time's (``register_stand_ins``).
_MORE_STAND_INS: list[tuple[ModuleType, dict[str, Callable[..., Any]]]] = []


# Told (with the patch's lock held) once the stand-ins have been removed (``register_stand_ins``).
_AFTER_REMOVAL: list[Callable[[], None]] = []


def register_stand_ins(module: ModuleType, stand_ins: Mapping[str, Callable[..., Any]], *,
                       after_removal: Callable[[], None] | None = None) -> None:
    """Install ``stand_ins`` (name -> function) over ``module``'s functions of those names, and over the same
    function objects bound in other modules, whenever the time stand-ins are installed. ``after_removal`` is
    called each time they have been removed again.

    Registered while the stand-ins are in (a module imported inside a trial: ``after_import``), they are put over
    ``module``'s functions at once, and over the same functions bound in the modules loaded so far (its own
    submodules), before the code that imported it can bind them."""
    with TIME_PATCH.lock:
        if after_removal is not None:
            _AFTER_REMOVAL.append(after_removal)
        entry = (module, dict(stand_ins))
        for name, fake in entry[1].items():
            real = getattr(module, name)
            FAKE_FOR_REAL[id(real)] = (real, fake)
            REAL_FOR_FAKE[id(fake)] = (fake, real)
        _MORE_STAND_INS.append(entry)
        _scan_cache.clear()
        if TIME_PATCH.holders:
            for name, fake in entry[1].items():
                _undo.append((module, name, getattr(module, name), fake))
                setattr(module, name, fake)
            _sweep(dict(sys.modules))  # (the module's own submodules bind them too: ``numpy.random.mtrand``)


def stood_in_modules() -> tuple[ModuleType, ...]:
    """The modules whose functions have stand-ins while campaigns run (``time`` and those registered): reloading one
    would put real functions back under the stand-ins' names."""
    return (_time_module, _datetime_module, *(module for module, _ in _MORE_STAND_INS))


#: module name -> (id of the module, size of its namespace, the attributes that held a real function) at the
#: last sweep: a module whose namespace has not changed size is not rescanned, only those attributes checked.
#: (A module that rebinds an existing name to a real clock function after it was first swept, keeping its
#: size, is missed: imports and ``from time import ...`` add names, so they are seen.)
_scan_cache: dict[str, tuple[int, int, tuple[str, ...]]] = {}


def _real_function_attributes(module_name: str, module: Any, namespace: dict[str, Any]) -> tuple[str, ...]:
    size = len(namespace)
    cached = _scan_cache.get(module_name)
    if cached is not None and cached[0] == id(module) and cached[1] == size:
        return cached[2]
    found = []
    for attribute, value in list(namespace.items()):
        pair = FAKE_FOR_REAL.get(id(value))
        if pair is not None and pair[0] is value:
            found.append(attribute)
    attributes = tuple(found)
    _scan_cache[module_name] = (id(module), size, attributes)
    return attributes


_swept_cache: tuple[tuple[int, str | None], list[tuple[str, Any, dict[str, Any]]]] | None = None


def _swept(modules: dict[str, Any]) -> list[tuple[str, Any, dict[str, Any]]]:
    """(name, module, namespace) of the loaded modules the sweep looks at; recomputed only when the set of
    loaded modules changed (its size or its last entry: modules are added at the end)."""
    global _swept_cache
    key = (len(modules), next(reversed(modules), None))
    if _swept_cache is not None and _swept_cache[0] == key:
        return _swept_cache[1]
    swept = []
    for module_name, module in modules.items():
        namespace = _module_namespace(module)
        if namespace is not None and not _is_ignored(module_name):
            swept.append((module_name, module, namespace))
    _swept_cache = (key, swept)
    return swept


_builders: list[Any] = []  # the ``class_builder`` installed, if any


def _install() -> None:
    global _modules_at_install
    undo = _undo
    for name, fake in TIME_STAND_INS.items():
        undo.append((_time_module, name, getattr(_time_module, name), fake))
        setattr(_time_module, name, fake)
    for module, stand_ins in _MORE_STAND_INS:
        for name, fake in stand_ins.items():
            undo.append((module, name, getattr(module, name), fake))
            setattr(module, name, fake)
    for name, fake in (("date", VirtualDate), ("datetime", VirtualDatetime)):
        undo.append((_datetime_module, name, getattr(_datetime_module, name), fake))
        setattr(_datetime_module, name, fake)
    build_class = class_builder(builtins.__build_class__)  # (a subclass of them with a metaclass of its own)
    undo.append((builtins, "__build_class__", builtins.__build_class__, build_class))
    builtins.__build_class__ = build_class
    _builders.append(build_class)
    base_loop = asyncio.BaseEventLoop
    undo.append((base_loop, "time", base_loop.__dict__["time"], real_loop_time))
    base_loop.time = real_loop_time  # type: ignore[method-assign]
    for cls, reducer in REDUCERS.items():
        undo.append((copyreg.dispatch_table, cls, copyreg.dispatch_table.get(cls), reducer))
        copyreg.dispatch_table[cls] = reducer

    modules = dict(sys.modules)
    _modules_at_install = frozenset(modules)
    _sweep(modules)


def _sweep(modules: dict[str, Any]) -> None:
    """Put the stand-ins over the real functions bound in ``modules`` (``from time import time``)."""
    undo = _undo
    for module_name, module, namespace in _swept(modules):
        for attribute in _real_function_attributes(module_name, module, namespace):
            value = namespace.get(attribute)
            pair = FAKE_FOR_REAL.get(id(value))
            if pair is not None and pair[0] is value:
                try:
                    setattr(module, attribute, pair[1])
                except (AttributeError, TypeError):
                    continue
                undo.append((module, attribute, value, pair[1]))


#: The functions the stand-ins were put over that something rebound while they were in (``_uninstall`` puts the
#: real ones back): named by the campaign that removed them (``take_rebound``).
REBOUND: list[str] = []


def take_rebound() -> list[str]:
    """The functions rebound while the stand-ins were in, since the last call (put back already)."""
    taken = REBOUND[:]
    del REBOUND[:]
    return taken


def _uninstall() -> None:
    global _modules_at_install
    while _builders:  # (off even where a library rebound ``__build_class__`` after us and put ours back later)
        _builders.pop().installed = False
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
        if current is not fake:  # rebound while the stand-ins were in: by a trial (``time.time = lambda: 1.7e9``
            # froze time for every later test, unnamed), or code of the campaign's test: put back, and named
            REBOUND.append(f"{getattr(owner, '__name__', owner)}.{key}")
        setattr(owner, key, original)
    # Modules imported during the patch may have bound a stand-in (``from time import time``).
    for module_name, module in list(sys.modules.items()):
        if module_name in _modules_at_install:
            continue
        namespace = _module_namespace(module)
        if namespace is None or _is_ignored(module_name):
            continue
        for attribute, value in list(namespace.items()):
            real = real_of(value)
            if real is not value:
                with contextlib.suppress(AttributeError, TypeError):
                    setattr(module, attribute, real)
    _modules_at_install = frozenset()
    for after_removal in _AFTER_REMOVAL:
        after_removal()


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
    return active.set(clock)


def exit_clock(token: contextvars.Token[VirtualClock | None]) -> None:
    """Undo ``enter_clock``."""
    active.reset(token)


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
        token = active.set(clock)
        try:
            yield clock
        finally:
            active.reset(token)


