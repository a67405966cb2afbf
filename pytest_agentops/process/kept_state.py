"""Process-wide state a campaign's trials may change, put back when the campaign ends.

In-process trials share the interpreter: an agent (or a world factory, a check) that changes the working
directory, ``os.environ`` (and the time zone ``time.tzset`` read from it), the locale, the recursion limit, the
thread switch interval and stack size, the exception hooks, the root logger or ``sys.path`` would
change every later test of the session. Such state is read when a campaign starts and put back when it ends;
what was changed is named in a ``ProcessStateChanged`` warning (pytest shows it in its warnings summary), since
the trials after the one that changed it ran with it. ``isolation="process"`` keeps each trial's to itself.
The umask too where the system shows it without setting it (Linux's ``/proc/self/status``; elsewhere reading
it means setting it, racing other threads). Not covered: the garbage collector's switch (the harness pauses
the collector in other threads), signal handlers (set only from the main thread, where trials do not run),
and what C extensions keep.
"""

from __future__ import annotations

import asyncio
import contextlib
import locale
import logging
import os
import socket
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from typing import Any

from ..errors import ProcessStateChanged, hide_own_frames
from .umask import shown_umask

__tracebackhide__ = hide_own_frames


def _cwd() -> str | None:
    try:
        return os.getcwd()
    except OSError:  # the directory was removed: nothing to go back to
        return None


def _put_environ(saved: dict[str, str]) -> None:
    for name in [n for n in os.environ if n not in saved]:
        del os.environ[name]
    for name, value in saved.items():
        if os.environ.get(name) != value:
            os.environ[name] = value


def _put_handlers(saved: list[logging.Handler]) -> None:
    logging.root.handlers[:] = saved


#: (what it is called in the warning, read it, put it back)
_STATE: tuple[tuple[str, Callable[[], Any], Callable[[Any], Any]], ...] = (
    ("the working directory", _cwd, lambda cwd: cwd is not None and os.chdir(cwd)),
    ("os.environ", lambda: dict(os.environ), _put_environ),
    # (after os.environ: ``tzset`` reads the time zone from the environment put back)
    ("the time zone", lambda: (time.timezone, time.altzone, time.daylight, time.tzname), lambda _: time.tzset()),
    ("the locale", lambda: locale.setlocale(locale.LC_ALL), lambda saved: locale.setlocale(locale.LC_ALL, saved)),
    ("sys.path", lambda: list(sys.path), lambda saved: sys.path.__setitem__(slice(None), saved)),
    ("the recursion limit", sys.getrecursionlimit, sys.setrecursionlimit),
    ("the thread switch interval", sys.getswitchinterval, sys.setswitchinterval),
    ("the thread stack size", threading.stack_size, threading.stack_size),
    ("the longest int shown as text", sys.get_int_max_str_digits, sys.set_int_max_str_digits),
    ("sys.excepthook", lambda: sys.excepthook, lambda hook: setattr(sys, "excepthook", hook)),
    ("threading.excepthook", lambda: threading.excepthook, lambda hook: setattr(threading, "excepthook", hook)),
    ("sys.unraisablehook", lambda: sys.unraisablehook, lambda hook: setattr(sys, "unraisablehook", hook)),
    ("the root logger's level", lambda: logging.root.level, logging.root.setLevel),
    ("the root logger's handlers", lambda: list(logging.root.handlers), _put_handlers),
    ("logging.disable", lambda: logging.root.manager.disable, logging.disable),
    ("the default socket timeout", socket.getdefaulttimeout, socket.setdefaulttimeout),
    ("the umask", shown_umask, lambda mask: mask is not None and os.umask(mask)),  # (None both times where unseen)
)
if hasattr(sys, "getdlopenflags"):
    _STATE += (("the dlopen flags", sys.getdlopenflags, sys.setdlopenflags),)
if sys.version_info < (3, 14):  # (the policy system is deprecated from 3.14 on)
    _STATE += (("the asyncio event loop policy", asyncio.get_event_loop_policy, asyncio.set_event_loop_policy),)


_lock = threading.Lock()
_held = 0  # campaigns running now (in several threads at once, say): the state is read by the first, put back
_saved: list[Any] = []  # by the last (one campaign's end must not undo what is in use by another still running)


@contextlib.contextmanager
def kept_process_state() -> Iterator[None]:
    """Put the process-wide state back as it was when the first of the campaigns running started, once the last
    of them ends; warn naming what had changed."""
    global _held, _saved
    with _lock:
        if _held == 0:
            _saved = [read() for _, read, _ in _STATE]
        _held += 1
    try:
        yield
    finally:
        changed = []
        with _lock:
            _held -= 1
            if _held == 0:
                for (name, read, put), before in zip(_STATE, _saved, strict=True):
                    try:
                        if read() != before:
                            put(before)
                            changed.append(name)
                    except Exception:  # (state that cannot be put back, e.g. a directory gone: named, left)
                        changed.append(f"{name} (could not be put back)")
                _saved = []
        if changed and sys.exc_info()[0] is None:
            warnings.warn(ProcessStateChanged(
                f"the campaign's trials changed process-wide state, put back at its end: {', '.join(changed)}; "
                "the trials after the change ran with it (isolation='process' keeps each trial's to itself)"),
                stacklevel=2)
