"""``os._exit`` and ``os.fork`` (and ``os.forkpty``) inside a trial do not end or split the test run.

An agent (or a library it calls) that calls ``os._exit(0)`` would end pytest on the spot: exit code 0, no
report, a green CI. One that calls ``os.fork()`` would leave a copy of the test process (of its one thread)
running the rest of the trial and then waiting forever. While campaigns run, both are stand-ins (installed
with the time stand-ins) that, inside a trial (a thread or task on the trial's clock), raise instead
(``AgentExited``; ``OSError`` for a fork): the trial is recorded as an ``error`` naming the call, and the run
goes on. ``subprocess`` is unaffected (it does not call ``os.fork``). Outside trials they are the real
functions. Threads an agent starts itself are outside its trial: only a child process per trial contains
them (``docs/harness.md``); they are made daemon threads, at least, so that one left running does not keep
the test process from exiting (``Thread.start``, a stand-in too).
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
from collections.abc import Callable, Iterator
from typing import Any, NoReturn

from ..errors import AgentExited
from .time_patch import active_clock, register_stand_ins

_real_exit = os._exit


def _exit(status: int) -> NoReturn:
    if active_clock() is not None:  # inside a trial
        raise AgentExited(status)
    _real_exit(status)


def _refusing_fork(name: str, real: Callable[[], Any]) -> Callable[[], Any]:
    """``os.fork`` or ``os.forkpty``, refused inside a trial."""

    def fork() -> Any:
        if active_clock() is not None:
            raise OSError(f"os.{name}() inside a trial is refused: a forked copy of the test process would run on; "
                          "start a process with subprocess instead")
        return real()

    fork.__doc__ = real.__doc__
    fork.__name__ = fork.__qualname__ = name
    return fork


_real_start = threading.Thread.start


def _start(self: threading.Thread) -> None:
    """``Thread.start``: a thread an agent starts inside a trial is a daemon thread, so that one it leaves
    running (a loop that never ends) does not keep the test process from exiting when the run is over."""
    if active_clock() is not None and not self.daemon:
        self.daemon = True
    _real_start(self)


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
_exit.__doc__ = _real_exit.__doc__
_exit.__name__ = _exit.__qualname__ = "_exit"
stand_ins: dict[str, Callable[..., Any]] = {"_exit": _exit}
for _name in ("fork", "forkpty"):
    _real = getattr(os, _name, None)
    if _real is not None:
        stand_ins[_name] = _refusing_fork(_name, _real)
register_stand_ins(os, stand_ins)


@contextlib.contextmanager
def refuse_exit(what: str) -> Iterator[None]:
    """While the block runs (importing user code, say), ``os._exit`` raises ``AgentExited`` instead."""

    def refused(status: int) -> NoReturn:
        raise AgentExited(status, what)

    saved, os._exit = os._exit, refused
    try:
        yield
    finally:
        os._exit = saved
