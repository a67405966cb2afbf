"""``os._exit``, ``os.fork`` (and ``os.forkpty``) and ``os.exec*`` inside a trial do not end, split or replace
the test run.

An agent (or a library it calls) that calls ``os._exit(0)`` would end pytest on the spot: exit code 0, no
report, a green CI. One that calls ``os.fork()`` would leave a copy of the test process (of its one thread)
running the rest of the trial and then waiting forever; one that calls ``os.execv("/bin/true", ...)`` would
replace pytest with a program that exits 0. While campaigns run, these are stand-ins (installed with the time
stand-ins) that, inside a trial (a thread or task on the trial's clock), raise instead (``AgentExited``;
``OSError`` for a fork or an exec): the trial is recorded as an ``error`` naming the call, and the run goes
on. ``subprocess`` is unaffected (it calls neither). Outside trials they are the real functions.

Threads an agent starts itself are outside its trial: only a child process per trial contains them
(``docs/harness.md``). They are made daemon threads, so that one left running does not keep the test process
from exiting (``Thread.start``, a stand-in too), and the calls above are refused on them as well: while their
trial runs, it is an ``error`` naming the call; after it (the campaign over, other tests running) the thread
ends with the exception, which pytest reports as an unhandled thread exception, and these ``os`` stand-ins
stay until the last of those threads ends. A handler the agent registers with ``atexit`` runs at the
interpreter's exit with ``os._exit`` refused (a message on stderr): ``atexit.register(os._exit, 0)`` would
otherwise turn a failed run's exit status into 0.
"""

from __future__ import annotations

import _thread as _thread_module
import atexit
import contextlib
import os
import sys
import threading
from collections.abc import Callable, Iterator
from typing import Any, NoReturn

from ..errors import AgentExited, hide_own_frames
from .time_patch import TIME_PATCH, active_clock, register_stand_ins

__tracebackhide__ = hide_own_frames

_real_exit = os._exit
# what the current thread is, if not plain: its ``refusing`` is what ``os._exit`` does there instead of exiting
# (a thread an agent started; an atexit handler an agent registered; user code being imported); on a thread an
# agent started, ``end_trial`` ends the trial that started it
_thread: threading.local = threading.local()
_lock = threading.Lock()
_running = 0  # threads agents started that still run (each counted before it starts, and uncounted as it ends)


def _exit(status: int) -> NoReturn:
    if active_clock() is not None:  # inside a trial
        raise AgentExited(status)
    refusing = getattr(_thread, "refusing", None)
    if refusing is not None:
        refusing(status)
    _real_exit(status)


def _refused_in_agent_thread(end_trial: Callable[[str, str], None]) -> Callable[[int], NoReturn]:
    def refused(status: int) -> NoReturn:
        exited = AgentExited(status, f"a thread the agent started ({threading.current_thread().name})")
        end_trial("error", str(exited))  # (a trial already judged keeps its outcome: the decision came too late)
        raise exited

    return refused


def _agent_thread_run(function: Callable[..., Any], end_trial: Callable[[str, str], None]) -> Callable[..., Any]:
    """What a thread an agent starts runs: ``function``, with ``os._exit``, forks and execs refused on it, and
    their stand-ins kept (past its campaign too) until it ends."""

    def agent_thread_run(*args: Any, **kwargs: Any) -> Any:
        _thread.refusing, _thread.end_trial = _refused_in_agent_thread(end_trial), end_trial
        try:
            return function(*args, **kwargs)
        finally:
            _thread.refusing = _thread.end_trial = None
            _left()

    return agent_thread_run


def _started(start: Callable[[Callable[..., Any]], Any], function: Callable[..., Any],
             end_trial: Callable[[str, str], None]) -> Any:
    """``start(function as an agent's thread runs it)``, the thread counted from before it starts."""
    global _running
    with _lock:
        _running += 1
    try:
        return start(_agent_thread_run(function, end_trial))
    except BaseException:
        _left()
        raise


def _starting(real: Callable[..., Any]) -> Callable[..., Any]:
    """``_thread.start_new_thread`` (and ``start_joinable_thread``) called directly: a thread started inside a
    trial is an agent's thread (``threading.Thread.start`` calls the real one: ``threading`` is not swept)."""

    def start(function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        end_trial = getattr(active_clock(), "end_trial", None)
        if end_trial is None:
            return real(function, *args, **kwargs)
        return _started(lambda run: real(run, *args, **kwargs), function, end_trial)

    start.__doc__ = real.__doc__
    start.__name__ = start.__qualname__ = real.__name__
    return start


def _left() -> None:
    """An agent's thread ended: the ``os`` functions are the real ones again once none is left and no campaign
    runs."""
    global _running
    with TIME_PATCH.lock, _lock:  # (the patch's lock first, as ``_after_removal`` is called: no campaign starts now)
        _running -= 1
        if not _running and not TIME_PATCH.holders:
            _keep_stand_ins(False)


def _after_removal() -> None:
    """(The stand-ins were just removed.) The ``os`` ones stay while an agent's thread runs on, and only then."""
    with _lock:
        _keep_stand_ins(_running > 0)


def _keep_stand_ins(kept: bool) -> None:
    """The ``os`` stand-ins of this module installed over the real functions (``kept``), or the real ones put
    back (only there: in ``os``; a name some module bound to one of them stays as it is)."""
    for name, stand_in in stand_ins.items():
        real = _REAL[name]
        current = os.__dict__.get(name)
        if kept and current is real:
            setattr(os, name, stand_in)
        elif not kept and current is stand_in:  # (also one kept over a campaign whose start found it installed)
            setattr(os, name, real)


#: why each process-level call is refused inside a trial
_WHY = {"fork": "a forked copy of the test process would run on",
        "exec": "it would replace the test process with another program, whose exit status (0) CI would take "
                "for the run's"}


def _refusing(name: str, why: str, real: Callable[..., Any]) -> Callable[..., Any]:
    """``os.NAME`` (a fork or an exec), refused inside a trial and on a thread an agent started (whose trial is
    then an error); the real function elsewhere."""

    def refused(*args: Any, **kwargs: Any) -> Any:
        if active_clock() is None and getattr(_thread, "refusing", None) is None:
            return real(*args, **kwargs)
        message = f"os.{name}() inside a trial is refused: {why}; start a process with subprocess instead"
        end_trial = getattr(_thread, "end_trial", None)
        if end_trial is not None:  # (a thread the agent started: its trial ends as an error naming the call)
            end_trial("error", f"a thread the agent started ({threading.current_thread().name}) called {message}")
        raise OSError(message)

    refused.__doc__ = real.__doc__
    refused.__name__ = refused.__qualname__ = name
    return refused


_real_start = threading.Thread.start


def _start(self: threading.Thread) -> None:
    """``Thread.start``: a thread an agent starts inside a trial is a daemon thread, so that one it leaves
    running (a loop that never ends) does not keep the test process from exiting when the run is over; and it
    runs as an agent's thread (``_agent_thread_run``)."""
    clock = active_clock()
    end_trial = getattr(clock, "end_trial", None)
    if clock is not None and not self.daemon:
        self.daemon = True
    if end_trial is None or self.is_alive():
        _real_start(self)
        return
    run = self.run

    def start(agent_run: Callable[[], None]) -> None:
        self.run = agent_run  # type: ignore[method-assign]
        try:
            _real_start(self)
        except BaseException:
            self.run = run  # type: ignore[method-assign]
            raise

    _started(start, run, end_trial)


#: the lowest recursion limit a trial may set: the interpreter's default (the harness's own calls, on the threads
#: the trial shares, need that much stack; a limit of 60 made its teardown fail and left its patches installed)
RECURSION_FLOOR = 1000
_real_setrecursionlimit = sys.setrecursionlimit


def _setrecursionlimit(limit: int) -> None:
    if active_clock() is not None and isinstance(limit, int) and limit < RECURSION_FLOOR:
        raise RuntimeError(f"sys.setrecursionlimit({limit}) inside a trial is refused: below {RECURSION_FLOOR} the "
                           "harness's own calls on the threads the trials share could fail")
    _real_setrecursionlimit(limit)


_setrecursionlimit.__doc__ = _real_setrecursionlimit.__doc__
_setrecursionlimit.__name__ = _setrecursionlimit.__qualname__ = "setrecursionlimit"
register_stand_ins(sys, {"setrecursionlimit": _setrecursionlimit})
_start.__doc__ = _real_start.__doc__
_start.__name__, _start.__qualname__ = "start", "Thread.start"
register_stand_ins(threading.Thread, {"start": _start})  # type: ignore[arg-type]
register_stand_ins(_thread_module, {name: _starting(getattr(_thread_module, name))
                                    for name in ("start_new_thread", "start_new", "start_joinable_thread")
                                    if hasattr(_thread_module, name)})
_exit.__doc__ = _real_exit.__doc__
_exit.__name__ = _exit.__qualname__ = "_exit"
stand_ins: dict[str, Callable[..., Any]] = {"_exit": _exit}
# (``os.execl``, ``execlp``, ``execvp`` and the rest call ``execv`` or ``execve`` through the module)
for _name, _why in (("fork", "fork"), ("forkpty", "fork"), ("execv", "exec"), ("execve", "exec")):
    _real = getattr(os, _name, None)
    if _real is not None:
        stand_ins[_name] = _refusing(_name, _WHY[_why], _real)
_REAL: dict[str, Callable[..., Any]] = {name: getattr(os, name) for name in stand_ins}
register_stand_ins(os, stand_ins, after_removal=_after_removal)


@contextlib.contextmanager
def refuse_exit(what: str) -> Iterator[None]:
    """While the block runs (importing user code, say), ``os._exit`` raises ``AgentExited`` instead (the stand-in
    too, where the block's code captured it, on this thread)."""

    def refused(status: int) -> NoReturn:
        raise AgentExited(status, what)

    saved, os._exit = os._exit, refused
    saved_refusing, _thread.refusing = getattr(_thread, "refusing", None), refused
    try:
        yield
    finally:
        os._exit = saved
        _thread.refusing = saved_refusing


class _GuardedAtExit:
    """A handler registered with ``atexit`` inside a trial: run at the interpreter's exit with ``os._exit``
    refused. Equal to the handler, so that ``atexit.unregister(handler)`` removes it."""

    __slots__ = ("handler",)

    def __init__(self, handler: Callable[..., Any]):
        self.handler = handler

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        try:
            with refuse_exit("an atexit handler registered inside a trial"):
                return self.handler(*args, **kwargs)
        except AgentExited as exc:
            print(f"pytest-agentops: {exc} (the test run's exit status stands)", file=sys.stderr)
        return None

    def __eq__(self, other: object) -> bool:
        return other is self or bool(other == self.handler)

    __hash__ = None  # type: ignore[assignment]


_real_register = atexit.register


def _register(func: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Callable[..., Any]:
    """``atexit.register``: a handler registered inside a trial (or on an agent's thread) is guarded."""
    if callable(func) and (active_clock() is not None or getattr(_thread, "refusing", None) is not None):
        _real_register(_GuardedAtExit(func), *args, **kwargs)
        return func
    return _real_register(func, *args, **kwargs)


_register.__doc__ = _real_register.__doc__
_register.__name__ = _register.__qualname__ = "register"
register_stand_ins(atexit, {"register": _register})
