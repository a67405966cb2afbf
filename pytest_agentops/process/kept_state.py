"""Process-wide state a campaign's trials may change, put back when the campaign ends.

In-process trials share the interpreter: an agent (or a world factory, a check) that changes the working
directory, ``os.environ`` (its contents, or the object itself) and the time zone ``time.tzset`` read from it,
``sys.argv`` (an agent driving a command-line entry point), ``sys.stdin``, ``sys.stdout`` and ``sys.stderr``, the
locale, the recursion limit, the thread switch interval and stack size, the exception, display and breakpoint
hooks, the loggers switched off (``logging.config.dictConfig`` disables those it is not told of; a logger's own
level and handlers are its library's, which may set them up on its first use in a trial), the root logger, the
manager and each named logger as objects, the modules the harness stands in for (``sys.modules``), the logger
class, the builtins it replaced or removed, ``tempfile.tempdir`` (set to another directory; one a trial worked
out first is forgotten again, unnamed), ``ssl``'s default HTTPS context or ``sys.path`` would change every later
test of the session. Such state is read when a campaign starts and put back when it ends; what was changed is named in a
``ProcessStateChanged`` warning (pytest shows it in its warnings summary), since the trials after the one that
changed it ran with it; it is given with the warnings filters and ``warnings.showwarning`` the campaign began with
(a trial's ``simplefilter("ignore")`` hid it, its "error" raised it in place of the campaign's result).
``isolation="process"`` keeps each trial's to itself. The umask too where the system shows it without setting it
(Linux's ``/proc/self/status``; elsewhere reading it means setting it, racing other threads). Not covered: the
garbage collector's switch (the harness pauses the collector in other threads), signal handlers (set only from the
main thread, where trials do not run), builtins added (a library's ``gettext.install``), import hooks
(``sys.meta_path``: a library imported in a trial adds its own), other modules' attributes an agent reassigns
(``json.dumps = ...``), and what C extensions keep.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import locale
import logging
import os
import socket
import sys
import tempfile
import threading
import time
import warnings
from collections.abc import Iterator
from typing import Any

from ..errors import ProcessStateChanged, hide_own_frames, warn_at_campaign
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


def _environ() -> tuple[Any, dict[str, str]]:
    return os.environ, dict(os.environ)


def _environ_changed(before: tuple[Any, dict[str, str]]) -> bool:
    return os.environ is not before[0] or dict(os.environ) != before[1]  # (replaced by a dict: its contents alike)


def _put_environ_back(before: tuple[Any, dict[str, str]]) -> None:
    os.environ = before[0]  # noqa: B003  (``os.environ = dict(...)``: the object ``monkeypatch.setenv`` sets comes back)
    _put_environ(before[1])


def _put_handlers(saved: list[logging.Handler]) -> None:
    logging.root.handlers[:] = saved


def _loggers() -> tuple[Any, Any, dict[str, logging.Logger]]:
    """The root logger, the loggers' manager and each named logger: objects an agent may replace or remove
    (``logging.root = RootLogger(...)``, ``loggerDict.pop(name)``: a later test's caplog reached another logger)."""
    return logging.root, logging.Logger.manager, {name: logger for name, logger in
                                                  list(logging.Logger.manager.loggerDict.items())
                                                  if isinstance(logger, logging.Logger)}


def _loggers_replaced(before: tuple[Any, Any, dict[str, logging.Logger]]) -> bool:
    root, manager, named = before
    now = logging.Logger.manager.loggerDict
    return (logging.root is not root or logging.Logger.root is not root or logging.Logger.manager is not manager
            or any(now.get(name) is not logger for name, logger in named.items()))


def _put_loggers(before: tuple[Any, Any, dict[str, logging.Logger]]) -> None:
    root, manager, named = before
    logging.root = logging.Logger.root = root
    logging.Logger.manager = manager
    manager.loggerDict.update(named)


def _disabled_loggers() -> set[str]:
    """The named loggers switched off (``logging.config.dictConfig`` switches off every logger it is not told of).
    Only that: a library's logger's own level, handlers and ``propagate``, which the library may set up on its first
    import or use inside a trial (a ``NullHandler``, a handler it marks as configured), are its own to keep."""
    return {name for name, logger in list(logging.root.manager.loggerDict.items())
            if isinstance(logger, logging.Logger) and logger.disabled}


def _put_enabled(before: set[str]) -> None:
    for name, logger in list(logging.root.manager.loggerDict.items()):
        if isinstance(logger, logging.Logger) and logger.disabled and name not in before:
            logger.disabled = False


def _stood_in_modules() -> dict[str, Any]:
    """``sys.modules``' entries of the modules whose functions the harness stands in for (``random``, ``time``, ...):
    one popped and imported afresh inside a trial has real functions, unseeded, for every later campaign."""
    from .time_patch import stood_in_modules

    names = {getattr(module, "__name__", None) for module in stood_in_modules()}
    return {name: sys.modules[name] for name in names if isinstance(name, str) and name in sys.modules}


def _modules_replaced(before: dict[str, Any]) -> bool:
    return any(sys.modules.get(name) is not module for name, module in before.items())


def _put_modules(before: dict[str, Any]) -> None:
    sys.modules.update(before)


def _builtins() -> dict[str, Any]:
    return dict(vars(builtins))


def _builtins_changed(before: dict[str, Any]) -> bool:
    now = vars(builtins)  # (names added since are left: a library's ``gettext.install`` adds ``_``)
    return any(now.get(name, _GONE) is not value for name, value in before.items())


def _put_builtins(before: dict[str, Any]) -> None:
    now = vars(builtins)
    for name, value in before.items():
        if now.get(name, _GONE) is not value:
            setattr(builtins, name, value)


_GONE = object()


def _tempdir_changed(before: Any) -> bool:
    """Whether ``tempfile.tempdir`` was set to another directory: not worked out in a trial for the first time
    (``gettempdir`` sets it then to the default, which is not named; it is put back to None all the same)."""
    now = tempfile.tempdir
    if before is not None or now is None:
        return now != before
    try:  # (set while it was None: named unless it is what ``gettempdir`` works out, the first usable candidate)
        return os.path.normcase(str(now)) != os.path.normcase(tempfile._get_default_tempdir())  # type: ignore[attr-defined]
    except Exception:
        return False


def _put_tempdir(before: Any) -> None:
    tempfile.tempdir = before


def _default_https_context() -> tuple[Any, Any]:
    ssl = sys.modules.get("ssl")  # (not imported for this: where no one imported it, no one changed it)
    return ssl, getattr(ssl, "_create_default_https_context", None)


def _https_context_changed(before: tuple[Any, Any]) -> bool:
    ssl, context = before
    return ssl is not None and getattr(ssl, "_create_default_https_context", None) is not context


def _put_https_context(before: tuple[Any, Any]) -> None:
    ssl, context = before
    ssl._create_default_https_context = context


def _argv() -> tuple[Any, list[str]]:
    return sys.argv, list(sys.argv)


def _put_argv(before: tuple[Any, list[str]]) -> None:
    argv, saved = before
    argv[:] = saved
    sys.argv = argv


#: id -> (wrapper, the stream it wraps) of the harness's own stream wrappers in place now (``own_stream``)
_OWN_STREAMS: dict[int, tuple[Any, Any]] = {}


def own_stream(wrapper: Any, wrapped: Any) -> None:
    """The harness put ``wrapper`` in place of ``wrapped`` (``secrets.RedactingStream``, while campaigns run):
    the check of the streams reads it as ``wrapped``, this very object only (a class attribute would let an
    agent's stream pass for one)."""
    _OWN_STREAMS[id(wrapper)] = (wrapper, wrapped)


def forget_stream(wrapper: Any) -> None:
    """The harness took ``wrapper`` out again (``own_stream``)."""
    _OWN_STREAMS.pop(id(wrapper), None)


def _streams() -> tuple[Any, Any, Any]:
    """The standard streams, each of the harness's own wrappers read as the stream it wraps (``own_stream``)."""
    found = []
    for stream in (sys.stdin, sys.stdout, sys.stderr):
        own = _OWN_STREAMS.get(id(stream))
        found.append(own[1] if own is not None and own[0] is stream else stream)
    return found[0], found[1], found[2]


def _put_streams(before: tuple[Any, Any, Any]) -> None:
    sys.stdin, sys.stdout, sys.stderr = before


#: (what it is called in the warning, read it, put it back[, whether it changed since ``before``: ``read() !=
#: before`` when not given])
_STATE: tuple[tuple[Any, ...], ...] = (
    ("the working directory", _cwd, lambda cwd: cwd is not None and os.chdir(cwd)),
    ("os.environ", _environ, _put_environ_back, _environ_changed),
    # (after os.environ: ``tzset`` reads the time zone from the environment put back)
    ("the time zone", lambda: (time.timezone, time.altzone, time.daylight, time.tzname), lambda _: time.tzset()),
    ("the locale", lambda: locale.setlocale(locale.LC_ALL), lambda saved: locale.setlocale(locale.LC_ALL, saved)),
    ("sys.path", lambda: list(sys.path), lambda saved: sys.path.__setitem__(slice(None), saved)),
    # (an agent driving a command-line entry point sets ``sys.argv``; one that captures its prints swaps a stream)
    ("sys.argv", _argv, _put_argv, lambda before: sys.argv is not before[0] or sys.argv != before[1]),
    ("sys.stdin, sys.stdout or sys.stderr", _streams, _put_streams,
     lambda before: any(now is not then for now, then in zip(_streams(), before, strict=True))),
    ("the recursion limit", sys.getrecursionlimit, sys.setrecursionlimit),
    ("the thread switch interval", sys.getswitchinterval, sys.setswitchinterval),
    ("the thread stack size", threading.stack_size, threading.stack_size),
    ("the longest int shown as text", sys.get_int_max_str_digits, sys.set_int_max_str_digits),
    ("sys.excepthook", lambda: sys.excepthook, lambda hook: setattr(sys, "excepthook", hook)),
    ("threading.excepthook", lambda: threading.excepthook, lambda hook: setattr(threading, "excepthook", hook)),
    ("sys.unraisablehook", lambda: sys.unraisablehook, lambda hook: setattr(sys, "unraisablehook", hook)),
    ("sys.displayhook", lambda: sys.displayhook, lambda hook: setattr(sys, "displayhook", hook)),
    ("sys.breakpointhook", lambda: sys.breakpointhook, lambda hook: setattr(sys, "breakpointhook", hook)),
    ("the root logger's level", lambda: logging.root.level, logging.root.setLevel),
    ("the root logger's handlers", lambda: list(logging.root.handlers), _put_handlers),
    ("logging.disable", lambda: logging.root.manager.disable, logging.disable),
    ("the loggers replaced or removed", _loggers, _put_loggers, _loggers_replaced),
    ("the loggers switched off", _disabled_loggers, _put_enabled, lambda before: not _disabled_loggers() <= before),
    ("the modules the harness stands in for", _stood_in_modules, _put_modules, _modules_replaced),
    ("the logger class", logging.getLoggerClass, logging.setLoggerClass,
     lambda before: logging.getLoggerClass() is not before),
    ("builtins", _builtins, _put_builtins, _builtins_changed),
    ("tempfile.tempdir", lambda: tempfile.tempdir, _put_tempdir, _tempdir_changed),
    ("ssl's default HTTPS context", _default_https_context, _put_https_context, _https_context_changed),
    ("the default socket timeout", socket.getdefaulttimeout, socket.setdefaulttimeout),
    ("the umask", shown_umask, lambda mask: mask is not None and os.umask(mask)),  # (None both times where unseen)
)
if hasattr(sys, "getdlopenflags"):
    _STATE += (("the dlopen flags", sys.getdlopenflags, sys.setdlopenflags),)
if sys.version_info < (3, 14):  # (the policy system is deprecated from 3.14 on)
    _STATE += (("the asyncio event loop policy", asyncio.get_event_loop_policy, asyncio.set_event_loop_policy),)


_TEMPDIR = next(i for i, entry in enumerate(_STATE) if entry[0] == "tempfile.tempdir")
_lock = threading.Lock()
_held = 0  # campaigns running now (in several threads at once, say): the state is read by the first, put back
_saved: list[Any] = []  # by the last (one campaign's end must not undo what is in use by another still running)
_filters_saved: tuple[list[Any], Any] = ([], None)  # the warnings filters and ``showwarning`` as the first one began


@contextlib.contextmanager
def kept_process_state() -> Iterator[None]:
    """Put the process-wide state back as it was when the first of the campaigns running started, once the last
    of them ends; warn naming what had changed."""
    global _held, _saved, _filters_saved
    filters = _filters_saved
    with _lock:
        if _held == 0:
            _saved = [read() for _, read, *_ in _STATE]
            _filters_saved = (list(warnings.filters), warnings.showwarning)
        _held += 1
    try:
        yield
    finally:
        changed = []
        with _lock:
            _held -= 1
            if _held == 0:
                for (name, read, put, *differs), before in zip(_STATE, _saved, strict=True):
                    try:
                        if differs[0](before) if differs else read() != before:
                            put(before)
                            changed.append(name)
                    except Exception:  # (state that cannot be put back, e.g. a directory gone: named, left)
                        changed.append(f"{name} (could not be put back)")
                if _saved[_TEMPDIR] is None:  # (worked out by a trial, or set by one: worked out afresh by the next)
                    tempfile.tempdir = None
                _saved = []
                filters = _filters_saved
        if changed and sys.exc_info()[0] is None:
            with warnings_as(filters):  # (a trial's "ignore" or "error" filter must not hide or raise it)
                warn_at_campaign(ProcessStateChanged(
                    f"the campaign's trials changed process-wide state, put back at its end: {', '.join(changed)}; "
                    "the trials after the change ran with it (isolation='process' keeps each trial's to itself)"))


@contextlib.contextmanager
def warnings_as(saved: tuple[list[Any], Any]) -> Iterator[None]:
    """The warnings filters and ``warnings.showwarning`` as they were when the campaign (or the test) began, for
    the block; as they are now again after it (what a trial's library set stays as pytest will leave it, at the
    test's end): the plugin's own warnings are shown, or raised, as the user's filters say, not a trial's."""
    filters, show = list(warnings.filters), warnings.showwarning
    warnings.filters[:] = saved[0]
    warnings.showwarning = saved[1]
    warnings._filters_mutated()  # type: ignore[attr-defined]
    try:
        yield
    finally:
        warnings.filters[:] = filters
        warnings.showwarning = show
        warnings._filters_mutated()  # type: ignore[attr-defined]
