"""The process-wide state a campaign changes, checked back to how it was after every test of this suite.

A campaign swaps in stand-ins for the clock functions, ``datetime``'s classes and the ``random`` functions,
freezes the collector, wraps anyio's worker-thread call, registers respx routers and starts its mockers,
and runs worker threads and event-loop threads. All of it must be undone when the campaign ends. The
autouse fixtures at the end of this module (imported into ``tests/conftest.py``) take a ``Snapshot``
before each test (and each test module) and compare a new one afterwards; whatever differs is a leak,
reported as an error at the teardown of the test that leaked it, then repaired where it can be (so that
one leak is reported once, not by every later test). Threads and child processes get ``GRACE_S`` to end.

A test that must leave something behind says what and why::

    @pytest.mark.leaves_process_state("threads", reason="the abandoned worker is stuck in a C call")

with one or more of ``CATEGORIES``. Only those categories are excused, and only for that test.

The package's own module constants (``TRACE_EVENTS``, ``SESSION_TRACE_EVENTS``, ...: upper-case names bound to
numbers, strings or tuples of them) are checked too: a test that lowers one where ``monkeypatch`` does not put
it back (a conftest of an in-process ``pytester`` run) changes the tests after it.

Cheap by design (well under a millisecond per test): identity checks of a few dozen attributes, of the
package's constants and of the signal handlers, a walk of ``threading.enumerate()`` and of this process's
``/proc/self/task/*/children``.
"""

from __future__ import annotations

import asyncio
import contextlib
import copyreg
import datetime
import functools
import gc
import os
import random
import signal
import sys
import threading
import time
import types
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

MARKER = "leaves_process_state"

CATEGORIES = ("time", "random", "gc", "anyio", "respx", "asyncio", "threads", "children", "constants", "signals")

#: How long the threads and child processes a test started get to end on their own, in seconds, all told.
GRACE_S = 2.0

TIME_NAMES = ("time", "time_ns", "monotonic", "monotonic_ns", "perf_counter", "perf_counter_ns", "sleep",
              "localtime", "gmtime", "ctime", "asctime", "strftime")

# The module-level functions that are methods of the process-wide generator (``random._inst``).
RANDOM_NAMES = tuple(name for name in random.__all__ if callable(getattr(random.Random, name, None)))
_REAL_DATETIME, _REAL_DATE = datetime.datetime, datetime.date
# the checker's own clock, taken before any test could patch the time module
_perf_counter, _sleep = time.perf_counter, time.sleep


def _frozen() -> int:
    """Objects the process froze (``gc.freeze``): 0 for only the interpreter's own (CPython 3.12 starts with a
    few hundred frozen, which a campaign's freeze and unfreeze release with its own)."""
    from pytest_agentops.process import FROZEN_AT_START

    count = gc.get_freeze_count()
    return count if count > FROZEN_AT_START else 0


def _assert_pristine() -> None:
    """Every check compares with the state before the test: the first must start from the real objects."""
    stand_ins = [f"time.{name}" for name in TIME_NAMES
                 if not isinstance(getattr(time, name), types.BuiltinFunctionType)]
    stand_ins += [f"random.{name}" for name in RANDOM_NAMES
                  if getattr(getattr(random, name), "__self__", None) is not random._inst]
    real = sys.modules.get("_datetime", datetime)
    stand_ins += [f"datetime.{name}" for name in ("datetime", "date")
                  if getattr(datetime, name) is not getattr(real, name)]
    if stand_ins:
        raise RuntimeError(f"tests/process_state.py imported while these are stand-ins: {stand_ins}")


_assert_pristine()

#: Thread names that may appear during a test and stay for the life of the process (every other thread a test or
#: the plugin starts must end). Add ``name prefix: why`` entries here only with a reason.
LIFELONG_THREADS: dict[str, str] = {
    "agentops-exit-watch": "one per process, started as a pytest run that had campaigns ends (an in-process "
                           "pytester run here): it cuts the interpreter's exit off past EXIT_LIMIT_S (Python 3.12 "
                           "starts no thread at the exit itself)"}


# --- what is looked at ------------------------------------------------------------------------------------


def _patches() -> dict[str, Any]:
    """Attributes that must be the same objects before and after (name -> object)."""
    found: dict[str, Any] = {f"time.{name}": getattr(time, name, None) for name in TIME_NAMES}
    found["datetime.datetime"] = datetime.datetime
    found["datetime.date"] = datetime.date
    found["asyncio.BaseEventLoop.time"] = asyncio.BaseEventLoop.__dict__.get("time")
    found["copyreg.dispatch_table[datetime]"] = copyreg.dispatch_table.get(_REAL_DATETIME)
    found["copyreg.dispatch_table[date]"] = copyreg.dispatch_table.get(_REAL_DATE)
    for name in RANDOM_NAMES:
        found[f"random.{name}"] = getattr(random, name, None)
    backend = sys.modules.get("anyio._backends._asyncio")
    cls = getattr(backend, "AsyncIOBackend", None)
    if cls is not None:
        found["anyio AsyncIOBackend.run_sync_in_worker_thread"] = cls.__dict__.get("run_sync_in_worker_thread")
    return found


_CATEGORY_OF_PREFIX = (("time.", "time"), ("datetime.", "time"), ("asyncio.BaseEventLoop", "time"),
                       ("copyreg.", "time"), ("random.", "random"), ("anyio ", "anyio"))


def _category(name: str) -> str:
    return next(category for prefix, category in _CATEGORY_OF_PREFIX if name.startswith(prefix))


def _mockers() -> dict[str, Any]:
    """respx's registered mockers (name -> class), when respx is imported."""
    mocks = sys.modules.get("respx.mocks")
    mocker = getattr(mocks, "Mocker", None)
    return dict(getattr(mocker, "registry", {}))


def _mocker_state(mockers: dict[str, Any]) -> dict[str, tuple[tuple[Any, ...], bool]]:
    """name -> (its routers, whether its patches are started)."""
    return {name: (tuple(getattr(cls, "routers", ())), bool(getattr(cls, "_patches", ()))) for name, cls in
            mockers.items()}


def _target_methods(mockers: dict[str, Any]) -> dict[str, Any]:
    """The transport methods respx's mockers patch when started (``target.method`` -> the function there),
    for the target modules imported so far."""
    found: dict[str, Any] = {}
    for cls in mockers.values():
        for target in getattr(cls, "targets", ()):
            module_name, _, class_name = target.rpartition(".")
            owner = getattr(sys.modules.get(module_name), class_name, None)
            if owner is None:
                continue
            for method in getattr(cls, "target_methods", ()):
                found[f"{target}.{method}"] = getattr(owner, "__dict__", {}).get(method)
    return found


def _is_respx_patch(value: Any) -> bool:
    return getattr(value, "__module__", None) == "respx.mocks"


def _policy_and_loop() -> tuple[Any, Any]:
    """The asyncio event-loop policy set process-wide (None: the default one not made yet) and the loop set
    as current for this (the main) thread, read without making either."""
    policy = getattr(asyncio.events, "_event_loop_policy", None)
    loop = getattr(getattr(policy, "_local", None), "_loop", None)
    return policy, loop


def _task_ids() -> list[str]:
    try:
        return os.listdir("/proc/self/task")
    except OSError:
        return []


#: The signals whose handlers are checked: every one a handler can be set for (a handler left as ``SIG_IGN`` for
#: ``SIGINT`` made ``_thread.interrupt_main`` and a terminal's Ctrl-C do nothing in every later test, and is
#: inherited by every process the tests start).
_SIGNALS = tuple(sorted(s for s in signal.valid_signals() if s not in (signal.SIGKILL, signal.SIGSTOP)))


def _signal_state() -> tuple[dict[int, Any], frozenset[int]]:
    """Every signal's handler, and the signals the main thread blocks (only read on the main thread)."""
    handlers = {}
    for signum in _SIGNALS:
        with contextlib.suppress(ValueError, OSError):
            handlers[signum] = signal.getsignal(signum)
    on_main = threading.current_thread() is threading.main_thread()
    mask = frozenset(signal.pthread_sigmask(signal.SIG_BLOCK, ())) if on_main else frozenset()
    return handlers, mask


def _put_signal_back(signum: int, handler: Any) -> None:
    with contextlib.suppress(ValueError, OSError, TypeError):
        signal.signal(signum, handler)


def _children() -> set[int]:
    """Pids of this process's child processes that are not zombies (from ``/proc``; empty elsewhere)."""
    pids: set[int] = set()
    for tid in _task_ids():
        try:
            with open(f"/proc/self/task/{tid}/children") as f:
                pids.update(int(pid) for pid in f.read().split())
        except (OSError, ValueError):
            continue
    return {pid for pid in pids if _alive_pid(pid)}


def _alive_pid(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return False
    state = stat[stat.rfind(b")") + 2:stat.rfind(b")") + 3]
    return state not in (b"Z", b"X")


def _describe_pid(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            cmdline = f.read().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        cmdline = "?"
    return f"pid {pid}: {cmdline[:200]}"


def _thread_alive(thread: threading.Thread) -> bool:
    if isinstance(thread, threading._DummyThread):  # a foreign thread: alive while its OS thread is
        native = getattr(thread, "native_id", None)
        return native is None or os.path.exists(f"/proc/self/task/{native}")
    return thread.is_alive()


_STDLIB = os.path.dirname(os.__file__) + os.sep


def _describe_thread(thread: threading.Thread) -> str:
    target = getattr(thread, "_target", None)
    what = (getattr(target, "__qualname__", None) or type(target).__name__) if target is not None else None
    where = ""
    frame = sys._current_frames().get(thread.ident) if thread.ident is not None else None
    if frame is not None:
        where = f", now in {_frame(frame)}"
        caller = frame
        while caller is not None and caller.f_code.co_filename.startswith(_STDLIB):
            caller = caller.f_back
        if caller is not None and caller is not frame:  # waiting in the standard library: whose code waits
            where += f" from {_frame(caller)}"
    daemon = "daemon " if thread.daemon else ""
    return f"{daemon}thread {thread.name!r}" + (f" running {what}" if what else "") + where


def _frame(frame: Any) -> str:
    return f"{frame.f_code.co_name} ({os.path.basename(frame.f_code.co_filename)}:{frame.f_lineno})"


_SCALARS = (int, float, str, bool, type(None))


def _constant(value: Any) -> bool:
    return type(value) in _SCALARS or (type(value) is tuple and all(type(v) in _SCALARS for v in value))


# module name -> (the module, the names of its constants when first seen)
_constant_names: dict[str, tuple[Any, tuple[str, ...]]] = {}


def _constants() -> dict[tuple[str, str], tuple[Any, Any]]:
    """(module, name) -> (the module, the value) of the package's module constants: upper-case names bound to
    numbers, strings or flat tuples of them."""
    found: dict[tuple[str, str], tuple[Any, Any]] = {}
    for module_name, module in list(sys.modules.items()):
        if not module_name.startswith("pytest_agentops"):
            continue
        namespace = getattr(module, "__dict__", None)
        if not isinstance(namespace, dict):
            continue
        known = _constant_names.get(module_name)
        if known is None or known[0] is not module:
            names = tuple(n for n, v in list(namespace.items()) if n.isupper() and _constant(v))
            known = _constant_names[module_name] = (module, names)
        for name in known[1]:
            found[(module_name, name)] = (module, namespace.get(name))
    return found


# --- snapshots and their differences ----------------------------------------------------------------------


@dataclass
class Leak:
    category: str
    message: str
    repair: Callable[[], None] | None = None
    thread: threading.Thread | None = None  # the thread or child process left running
    pid: int | None = None


@dataclass
class Snapshot:
    patches: dict[str, Any]
    gc: tuple[tuple[int, ...], int, bool]
    mockers: dict[str, Any]
    mocker_state: dict[str, tuple[tuple[Any, ...], bool]]
    targets: dict[str, Any]
    policy: Any
    loop: Any
    threads: set[threading.Thread] = field(default_factory=set)
    children: set[int] = field(default_factory=set)
    constants: dict[tuple[str, str], tuple[Any, Any]] = field(default_factory=dict)
    signals: tuple[dict[int, Any], frozenset[int]] = field(default_factory=lambda: ({}, frozenset()))

    @classmethod
    def take(cls) -> Snapshot:
        mockers = _mockers()
        policy, loop = _policy_and_loop()
        return cls(patches=_patches(), gc=(gc.get_threshold(), _frozen(), gc.isenabled()),
                   mockers=mockers, mocker_state=_mocker_state(mockers), targets=_target_methods(mockers),
                   policy=policy, loop=loop, threads=set(threading.enumerate()), children=_children(),
                   constants=_constants(), signals=_signal_state())

    def leaks(self, excused_threads: set[threading.Thread] = frozenset(),  # type: ignore[assignment]
              excused_children: set[int] = frozenset(),  # type: ignore[assignment]
              patched: set[tuple[int, str]] = frozenset()) -> list[Leak]:  # type: ignore[assignment]
        """What differs now from this snapshot (waiting up to ``GRACE_S`` for new threads and children to
        end), each with a way to put it back where there is one; ``patched``: (id of an object, attribute) the
        test's ``monkeypatch`` puts back after this check (the suite's own autouse fixture asks for it first)."""
        found: list[Leak] = []
        found += self._patch_leaks()
        found += self._gc_leaks()
        found += self._respx_leaks()
        found += self._asyncio_leaks()
        found += self._constant_leaks(patched)
        found += self._signal_leaks()
        deadline = _perf_counter() + GRACE_S
        found += self._thread_leaks(deadline, excused_threads)
        found += self._child_leaks(deadline, excused_children)
        return found

    def _patch_leaks(self) -> list[Leak]:
        found = []
        for name, value in _patches().items():
            if name not in self.patches:  # anyio imported during the test: its method must be anyio's own
                if not getattr(getattr(value, "__func__", None), "__module__", "").startswith("anyio"):
                    found.append(Leak(_category(name), f"{name} is {_fn(value)}, not anyio's own"))
                continue
            before = self.patches[name]
            if value is not before:
                found.append(Leak(_category(name), f"{name} is {_fn(value)} (was {_fn(before)})",
                                  functools.partial(_restore_patch, name, before)))
        return found

    def _gc_leaks(self) -> list[Leak]:
        (thresholds, frozen, enabled), found = self.gc, []
        if gc.get_threshold() != thresholds:
            found.append(Leak("gc", f"gc thresholds are {gc.get_threshold()} (were {thresholds})",
                              lambda: gc.set_threshold(*thresholds)))
        if _frozen() != frozen:
            found.append(Leak("gc", f"gc.get_freeze_count() is {gc.get_freeze_count()} (was {frozen})",
                              gc.unfreeze if frozen == 0 else None))
        if gc.isenabled() != enabled:
            found.append(Leak("gc", f"gc is {'enabled' if gc.isenabled() else 'disabled'} (was "
                                    f"{'enabled' if enabled else 'disabled'})", gc.enable if enabled else gc.disable))
        return found

    def _respx_leaks(self) -> list[Leak]:
        found = []
        mockers = _mockers()
        for name, cls in mockers.items():
            routers, started = _mocker_state({name: cls})[name]
            routers_before, started_before = self.mocker_state.get(name, ((), False))
            if self.mockers.get(name, cls) is not cls:
                continue  # respx re-imported (pytester restores sys.modules): another registry
            if routers != routers_before:
                added = [r for r in routers if not any(r is b for b in routers_before)]
                gone = [r for r in routers_before if not any(r is a for a in routers)]
                found.append(Leak("respx", f"respx {name!r} mocker routers changed: added {added}, removed {gone}",
                                  functools.partial(_restore_routers, cls, routers_before)))
            if started and not started_before:
                found.append(Leak("respx", f"respx {name!r} mocker left started ({len(cls._patches)} patches)",
                                  functools.partial(cls.stop, force=True)))
            elif started_before and not started:
                found.append(Leak("respx", f"respx {name!r} mocker stopped (it was started before)", cls.start))
        for spec, value in _target_methods(mockers).items():
            # a module imported during the test: its method must not be respx's patch
            changed = value is not self.targets[spec] if spec in self.targets else _is_respx_patch(value)
            if changed:
                found.append(Leak("respx", f"{spec} is {_fn(value)} (was {_fn(self.targets.get(spec))})"))
        return found

    def _asyncio_leaks(self) -> list[Leak]:
        found = []
        policy, loop = _policy_and_loop()
        if policy is not self.policy:
            found.append(Leak("asyncio", f"the asyncio event-loop policy is {policy!r} (was {self.policy!r})",
                              functools.partial(_restore_policy, self.policy)))
        elif loop is not self.loop:
            found.append(Leak("asyncio", f"the main thread's current event loop is {loop!r} (was {self.loop!r})",
                              functools.partial(_restore_loop, self.loop)))
        return found

    def _constant_leaks(self, patched: set[tuple[int, str]]) -> list[Leak]:
        found = []
        for key, (module, value) in _constants().items():
            before = self.constants.get(key)
            if before is None or before[0] is not module:  # imported during the test, or again (pytester)
                continue
            if (id(module), key[1]) in patched:
                continue
            if value is not before[1] and value != before[1]:
                found.append(Leak("constants", f"{key[0]}.{key[1]} is {value!r} (was {before[1]!r})",
                                  functools.partial(setattr, module, key[1], before[1])))
        return found

    def _signal_leaks(self) -> list[Leak]:
        found = []
        (handlers, mask), (now, now_mask) = self.signals, _signal_state()
        for signum, before in handlers.items():
            if signum in now and now[signum] is not before and now[signum] != before:
                found.append(Leak("signals", f"the handler of {signal.Signals(signum).name} is {now[signum]!r} "
                                             f"(was {before!r})", functools.partial(_put_signal_back, signum, before)))
        if now_mask != mask and threading.current_thread() is threading.main_thread():
            names = sorted(signal.Signals(s).name for s in now_mask ^ mask)
            found.append(Leak("signals", f"the main thread's blocked signals changed ({', '.join(names)})",
                              lambda: signal.pthread_sigmask(signal.SIG_SETMASK, mask)))
        return found

    def _thread_leaks(self, deadline: float, excused: set[threading.Thread]) -> list[Leak]:
        new = [t for t in threading.enumerate() if t not in self.threads and t not in excused
               and t is not threading.current_thread() and not _lifelong(t)]
        alive = []
        for thread in new:
            if not isinstance(thread, threading._DummyThread):
                thread.join(max(0.0, deadline - _perf_counter()))
            else:  # (no join: given until the deadline to end, as a thread is; one that just ran a hook still unwinds)
                while _thread_alive(thread) and _perf_counter() < deadline:
                    _sleep(0.01)
            if _thread_alive(thread):
                alive.append(thread)
        return [Leak("threads", f"{_describe_thread(t)} is still alive", thread=t) for t in alive]

    def _child_leaks(self, deadline: float, excused: set[int]) -> list[Leak]:
        new = _children() - self.children - excused
        while new and _perf_counter() < deadline:
            _sleep(0.01)
            new = {pid for pid in new if _alive_pid(pid)}
        return [Leak("children", f"child process {_describe_pid(pid)} is still running", pid=pid)
                for pid in sorted(new)]


def _lifelong(thread: threading.Thread) -> bool:
    return any(thread.name.startswith(prefix) for prefix in LIFELONG_THREADS)


def _fn(value: Any) -> str:
    if value is None:
        return "unset"
    func = getattr(value, "__func__", value)
    module = getattr(func, "__module__", None)
    name = getattr(func, "__qualname__", None)
    return f"{module}.{name}" if module and name else repr(value)


def _restore_patch(name: str, value: Any) -> None:
    if name.startswith("time."):
        setattr(time, name[5:], value)
    elif name.startswith("datetime."):
        setattr(datetime, name[9:], value)
    elif name.startswith("random."):
        setattr(random, name[7:], value)
    elif name == "asyncio.BaseEventLoop.time":
        asyncio.BaseEventLoop.time = value  # type: ignore[method-assign]
    elif name.startswith("copyreg."):
        cls = _REAL_DATETIME if name.endswith("[datetime]") else _REAL_DATE
        if value is None:
            copyreg.dispatch_table.pop(cls, None)
        else:
            copyreg.dispatch_table[cls] = value
    elif name.startswith("anyio "):
        cls = sys.modules["anyio._backends._asyncio"].AsyncIOBackend
        cls.run_sync_in_worker_thread = value


def _restore_routers(cls: Any, routers: tuple[Any, ...]) -> None:
    cls.routers[:] = routers


def _restore_policy(policy: Any) -> None:
    asyncio.events._event_loop_policy = policy  # type: ignore[attr-defined]


def _restore_loop(loop: Any) -> None:
    with contextlib.suppress(Exception):
        left = _policy_and_loop()[1]
        asyncio.set_event_loop(loop)
        if left is not None and not left.is_running():
            left.close()  # the leaked loop: else a ResourceWarning later, in another test


# module name -> (the module, whether it bound a real clock/random object or a stand-in when first seen)
_may_hold_cache: dict[str, tuple[Any, bool]] = {}


def _stand_ins_left_in_modules() -> list[Leak]:
    """The clock's and ``random``'s stand-ins still bound in other modules (``from time import monotonic``
    rebound by the sweep of ``sys.modules``) once nothing holds them installed. Done per test module, not
    per test; only modules that bound one of the real objects (or a stand-in) when first seen are walked
    again, which is what the plugin's sweep rebinds (walking all of them costs some 30 ms)."""
    clock = sys.modules.get("pytest_agentops.harness.clock")
    pairs = getattr(clock, "_REAL_FOR_FAKE", None)  # id(stand-in) -> (stand-in, real)
    if not pairs or getattr(clock, "_patch_holders", 0):
        return []
    either = pairs.keys() | {id(real) for _, real in pairs.values()}
    found = []
    for module_name, module in list(sys.modules.items()):
        namespace = getattr(module, "__dict__", None)
        if module is clock or not isinstance(namespace, dict):
            continue
        cached = _may_hold_cache.get(module_name)
        if cached is None or cached[0] is not module:
            cached = _may_hold_cache[module_name] = (module, not either.isdisjoint(map(id, namespace.values())))
        if not cached[1] or pairs.keys().isdisjoint(map(id, namespace.values())):
            continue
        for attribute, value in list(namespace.items()):
            pair = pairs.get(id(value))
            if pair is not None and pair[0] is value:
                found.append(Leak("time", f"{module_name}.{attribute} is still the stand-in {_fn(value)}",
                                  functools.partial(setattr, module, attribute, pair[1])))
    for gone in _may_hold_cache.keys() - sys.modules.keys():
        del _may_hold_cache[gone]
    return found


# --- the check a fixture runs -----------------------------------------------------------------------------


class ProcessStateLeak(AssertionError):
    """What a test (or test module) left changed in the process."""


def excused_categories(node: Any) -> dict[str, str]:
    """category -> reason, from the node's ``leaves_process_state`` markers (checked: both must be given)."""
    excused: dict[str, str] = {}
    for mark in node.iter_markers(MARKER):
        reason = mark.kwargs.get("reason")
        unknown = [c for c in mark.args if c not in CATEGORIES]
        if not mark.args or unknown or not isinstance(reason, str) or not reason.strip():
            raise ProcessStateLeak(
                f"{node.nodeid}: @pytest.mark.{MARKER} needs one or more of {CATEGORIES} and a reason=..."
                + (f" (unknown: {unknown})" if unknown else ""))
        for category in mark.args:
            excused[category] = reason
    return excused


class Checker:
    """Runs the checks, and remembers two kinds of threads and child processes across them: those that excused
    tests left behind or that were reported already (not reported again by the module's check), and those
    that fixtures of a wider scope started, possibly in the middle of a test (a module-scoped server set up
    by ``request.getfixturevalue``): no test's leak, checked by the module's check (session-scoped ones: not
    at all)."""

    def __init__(self) -> None:
        self.excused_threads: set[threading.Thread] = set()
        self.excused_children: set[int] = set()
        self.fixture_threads: dict[threading.Thread, str] = {}  # -> the fixture's scope
        self.fixture_children: dict[int, str] = {}

    @contextlib.contextmanager
    def fixture_setup(self, scope: str):
        """Around the set-up of a fixture: what it starts is that fixture's, if its scope is wider than a test."""
        if scope == "function":
            yield
            return
        threads, children = set(threading.enumerate()), _children()
        try:
            yield
        finally:
            self.fixture_threads.update((t, scope) for t in threading.enumerate() if t not in threads)
            self.fixture_children.update((pid, scope) for pid in _children() - children)

    def check(self, before: Snapshot, who: str, excused: dict[str, str] | None = None, *,
              scope: str = "function", patched: set[tuple[int, str]] = frozenset()) -> None:  # type: ignore[assignment]
        """Raise ``ProcessStateLeak`` naming what changed since ``before`` (a snapshot at the start of the
        test, or of the module with ``scope="module"``), but for the ``excused`` categories."""
        excused = excused or {}
        wider = ("session", "package") if scope == "module" else ("session", "package", "module", "class")
        leaks = before.leaks(
            self.excused_threads | {t for t, s in self.fixture_threads.items() if s in wider},
            self.excused_children | {pid for pid, s in self.fixture_children.items() if s in wider}, patched)
        if scope == "module":
            leaks += _stand_ins_left_in_modules()
        reported = []
        for leak in leaks:
            if leak.category in excused:
                continue
            reported.append(leak)
            if leak.thread is not None:  # reported once: not again by the module's check
                self.excused_threads.add(leak.thread)
            if leak.pid is not None:
                self.excused_children.add(leak.pid)
            if leak.repair is not None:
                with contextlib.suppress(Exception):
                    leak.repair()
        if "threads" in excused:
            self.excused_threads.update(t for t in threading.enumerate() if t not in before.threads)
        if "children" in excused:
            self.excused_children.update(_children() - before.children)
        if reported:
            lines = "\n".join(f"  [{leak.category}] {leak.message}" + (" (put back)" if leak.repair else "")
                              for leak in reported)
            raise ProcessStateLeak(
                f"{who} left the process changed:\n{lines}\n"
                f"(tests/process_state.py; a test that must leave something behind says what and why with "
                f"@pytest.mark.{MARKER}(category, reason=...))")


# --- the fixtures (imported into tests/conftest.py, which is how pytest finds them) ------------------------

CHECKER = Checker()


def pytest_configure(config):
    config.addinivalue_line("markers", f"{MARKER}(*categories, reason): the test leaves these kinds of process-wide "
                                       f"state behind on purpose, one or more of {', '.join(CATEGORIES)} "
                                       "(tests/process_state.py checks the others after every test)")
    # a run a script starts in the background (``cmd &``) starts with SIGINT ignored, which Python keeps: Ctrl-C
    # (``_thread.interrupt_main``, a SIGINT to a child pytest, which inherits it) did nothing, and the Ctrl-C tests
    # failed; the suite runs as from a terminal
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN and threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.default_int_handler)


# asyncio makes its default event-loop policy on first use, by whichever test (or plugin thread) asks first:
# made here, it is one object for the whole session, and a test that sets another one is caught
with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)  # the policy API is deprecated from Python 3.14 on
    asyncio.get_event_loop_policy()


@pytest.hookimpl(hookwrapper=True)  # the old-style wrapper: pytest >= 7.4 with any pluggy it accepts
def pytest_fixture_setup(fixturedef, request):
    """A module- or session-scoped fixture set up in the middle of a test starts threads and processes of
    its own: they are no leak of that test (the module's check covers module-scoped ones)."""
    with CHECKER.fixture_setup(fixturedef.scope):
        yield


@pytest.fixture(autouse=True, scope="module")
def _process_state_per_module(request):
    """The same check over a whole test module: catches what module-scoped fixtures leave behind."""
    excused = excused_categories(request.node)
    before = Snapshot.take()
    yield
    CHECKER.check(before, f"test module {request.node.nodeid}", excused, scope="module")


@pytest.fixture(autouse=True)
def _process_state(request):
    """After every test: the clock, random, gc, anyio, respx and asyncio state, the threads and the child
    processes are as before it (set up before, and torn down after, the test's other fixtures)."""
    excused = excused_categories(request.node)
    before = Snapshot.take()
    yield
    monkeypatch = getattr(request.node, "funcargs", {}).get("monkeypatch")  # (undone after this check)
    patched = {(id(owner), name) for owner, name, _ in getattr(monkeypatch, "_setattr", ())}
    CHECKER.check(before, request.node.nodeid, excused, patched=patched)
