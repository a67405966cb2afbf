"""``os._exit``, ``os.abort``, ``os.fork`` (and ``os.forkpty``) and ``os.exec*`` inside a trial do not end, kill,
split or replace the test run.

An agent (or a library it calls) that calls ``os._exit(0)`` would end pytest on the spot: exit code 0, no
report, a green CI. One that calls ``os.fork()`` would leave a copy of the test process (of its one thread)
running the rest of the trial and then waiting forever; one that calls ``os.execv("/bin/true", ...)`` would
replace pytest with a program that exits 0. While campaigns run, these are stand-ins (installed with the time
stand-ins) that, inside a trial (a thread or task on the trial's clock), raise instead (``AgentExited``;
``OSError`` for an abort, a fork or an exec): the trial is recorded as an ``error`` naming the call, and the run goes
on. ``subprocess`` is unaffected (it calls neither). A signal to the test process itself (``os.kill``,
``os.killpg``, ``signal.raise_signal``, ``signal.pthread_kill``, ``_thread.interrupt_main``: ``SIGSTOP`` stopped
pytest for good) raises ``PermissionError``. ``os.closerange`` (which closed pytest's own pipes and files) and
``resource.setrlimit`` lowering a limit (``RLIMIT_CPU`` killed pytest) raise ``OSError``. Outside trials they
are the real functions.

Threads an agent starts itself are outside its trial: only a child process per trial contains them
(``docs/harness.md``). They are made daemon threads, so that one left running does not keep the test process
from exiting (``Thread.start``, a stand-in too), and the calls above are refused on them as well: while their
trial runs, it is an ``error`` naming the call; after it (the campaign over, other tests running) the thread
ends with the exception, which pytest reports as an unhandled thread exception, and these ``os`` stand-ins
stay until the last of those threads ends. A handler the agent registers with ``atexit`` runs at the
interpreter's exit with ``os._exit`` refused (a message on stderr): ``atexit.register(os._exit, 0)`` would
otherwise turn a failed run's exit status into 0. So do the logging handlers and ``weakref.finalize`` functions a
campaign leaves for the exit (``watch_exit_hooks``), and the fork hooks a trial registers (``os.register_at_fork``);
after a campaign and a failed pytest run, ``os._exit(0)`` at the exit keeps the run's status (``note_run_status``).
"""

from __future__ import annotations

import _thread as _thread_module
import atexit
import concurrent.futures.thread  # noqa: F401 (its exit hook, which joins pools' threads, is registered before ours)
import contextlib
import errno
import faulthandler
import gc
import importlib
import logging
import math
import operator
import os
import signal
import sys
import threading
import weakref
from collections.abc import Callable
from typing import Any, NoReturn

from ..errors import AgentExited, hide_own_frames, user_code_at
from ..vtime.real import real_monotonic
from .pidfd import pidfd_target
from .time_patch import REBOUND, TIME_PATCH, active_clock, register_stand_ins, stood_in_modules

__tracebackhide__ = hide_own_frames

_real_exit = os._exit
_thread: threading.local = threading.local()  # ``.refusal``: the ``Refusal`` in force on this thread, if any
_lock = threading.Lock()
_running = 0  # threads agents started that still run (each counted before it starts, and uncounted as it ends)


def _nothing(outcome: str, reason: str) -> None:
    pass


class Refusal:
    """On the thread that enters it: ``os._exit``, forks and execs raise instead (``AgentExited``; ``OSError``),
    each refusal is listed in ``refused`` and told to ``end_trial`` (outcome ``error``, the reason), and threads
    started from it are agents' threads of the same trial (unless not ``adopts``). Entered by an agent's thread
    for its whole run, by the campaign's worker and loop threads for theirs, around the judging of what a trial
    left (its output's ``repr``, its exception's text, the check), around a guarded atexit handler, and while
    user code is imported. Nestable; cheap (two attribute writes)."""

    __slots__ = ("_saved", "adopts", "end_trial", "refused", "what")

    def __init__(self, what: str, end_trial: Callable[[str, str], None] | None = None, *, adopts: bool = True):
        self.what = what  # who calls: "a thread the agent started (Thread-3)", "the trial's output, judged", ...
        self.end_trial = end_trial or _nothing
        self.adopts = adopts  # threads started under it are agents' threads (not those of code being imported)
        self.refused: list[str] = []
        self._saved: Refusal | None = None

    def __enter__(self) -> Refusal:
        self._saved = getattr(_thread, "refusal", None)
        _thread.refusal = self
        return self

    def __exit__(self, *exc: object) -> None:
        _thread.refusal = self._saved

    def tell(self, reason: str) -> None:
        self.refused.append(reason)
        self.end_trial("error", reason)  # (a trial already judged keeps its outcome: the decision came too late)

    def exit(self, status: int) -> NoReturn:
        exited = AgentExited(status, self.what)
        self.tell(str(exited))
        raise exited


def _refusal() -> Refusal | None:
    return getattr(_thread, "refusal", None)


def in_a_trial() -> bool:
    """Whether the caller runs in a trial (on its clock: its thread or task, or a thread it handed work to with the
    context) or under a ``Refusal`` (an agent's thread, what a trial left to be judged)."""
    return getattr(active_clock(), "end_trial", None) is not None or _refusal() is not None


_PID = os.getpid()  # (a forked child, which inherits the refusals of the thread that forked, exits for real)


def _end_trial(reason: str, refusal: Refusal | None) -> None:
    """A refused call decides its trial (an error, whatever the agent catches): the trial whose thread or task
    this is (its clock; the reason names the caller's line), else the one whose agent started this thread (its
    ``Refusal``)."""
    end_trial = getattr(active_clock(), "end_trial", None)  # (a trial's clock; not a user's own virtual_time)
    if end_trial is not None:
        end_trial("error", f"{reason}{user_code_at(frame=sys._getframe(2))}")
    elif refusal is not None:
        refusal.tell(f"{refusal.what} called {reason}")


def _exit(status: int) -> NoReturn:
    if os.getpid() == _PID:
        clock = active_clock()
        if getattr(clock, "end_trial", None) is not None:  # inside a trial: an error naming the call, even if caught
            exited = AgentExited(status)
            _end_trial(f"AgentExited: {exited}", None)
            raise exited
        refusal = _refusal()
        if refusal is not None:  # an agent's thread, what a trial left to be judged (the check), ...
            refusal.exit(status)
        if clock is not None:  # a virtual_time block of the user's own
            raise AgentExited(status)
        if _exiting_with and not status:  # past a failed run, at the exit: it stays failed
            with contextlib.suppress(Exception):
                sys.__stderr__.write(f"pytest-agentops: os._exit(0) at the interpreter's exit after a failed run: "  # type: ignore[union-attr]
                                     f"the process exits with the run's status, {_exiting_with}\n")
            _real_exit(_exiting_with)
    _real_exit(status)


class _Counted:
    """One agent's thread in ``_running``: uncounted once, whether by its end or by a start that failed."""

    __slots__ = ("counted",)

    def __init__(self) -> None:
        self.counted = True


def _agent_thread_run(function: Callable[..., Any], end_trial: Callable[[str, str], None],
                      counted: _Counted) -> Callable[..., Any]:
    """What a thread an agent starts runs: ``function`` under a ``Refusal`` told to the trial, the ``os``,
    ``atexit`` and thread stand-ins kept (past its campaign too) until it ends."""

    def agent_thread_run(*args: Any, **kwargs: Any) -> Any:
        me = threading.current_thread()
        _alive.add(me)
        try:
            with Refusal(f"a thread the agent started ({me.name})", end_trial):
                return function(*args, **kwargs)
        finally:
            _alive.discard(me)
            _left(counted)

    return agent_thread_run


def _trial_of_new_thread() -> Callable[[str, str], None] | None:
    """Whom a thread started here belongs to: the trial running here (its ``end_trial``), or the one of the
    agent's thread (or harness thread in a trial) starting it; None for a thread of no trial."""
    end_trial = getattr(active_clock(), "end_trial", None)
    if end_trial is not None:
        return end_trial
    refusal = _refusal()
    return refusal.end_trial if refusal is not None and refusal.adopts else None


_alive: weakref.WeakSet[threading.Thread] = weakref.WeakSet()  # the agents' threads running now
_forgetting = False  # ``_forget_at_exit`` registered


#: how long, at the interpreter's exit, the pools' threads that agents' code started may take to finish their work
EXIT_JOIN_S = 5.0


def _forget_at_exit() -> None:
    """(At the interpreter's exit, just before ``concurrent.futures`` joins its pools' threads, for ever.) The pools'
    threads started inside trials get ``EXIT_JOIN_S`` to finish their queued work; those still running then are
    not joined: a pool an agent left with a task that never ends hung pytest at exit, after its report (the
    threads are daemon threads: the interpreter does not wait for them otherwise)."""
    pools = sys.modules.get("concurrent.futures.thread")
    queues = getattr(pools, "_threads_queues", None)
    if queues is None:
        return
    mine = [(thread, queue) for thread, queue in list(queues.items()) if thread in _alive]
    if not mine:
        return
    with getattr(pools, "_global_shutdown_lock", contextlib.nullcontext()):
        pools._shutdown = True  # type: ignore[union-attr]  (as the pools' own hook starts: idle workers return)
    for _, queue in mine:
        queue.put(None)
    deadline = real_monotonic() + EXIT_JOIN_S
    for thread, _queue in mine:
        thread.join(max(0.0, deadline - real_monotonic()))
        if thread.is_alive():
            queues.pop(thread, None)


def _started(start: Callable[[Callable[..., Any]], Any], function: Callable[..., Any],
             end_trial: Callable[[str, str], None]) -> Any:
    """``start(function as an agent's thread runs it)``, the thread counted from before it starts."""
    global _forgetting
    with _lock:
        if not _forgetting:  # (registered late: called before the pools' own hook, which threading calls after)
            _forgetting = True
            register_at_exit = getattr(threading, "_register_atexit", None)
            if register_at_exit is not None:
                with contextlib.suppress(RuntimeError):  # (the interpreter is shutting down already)
                    register_at_exit(_forget_at_exit)
    return _counting(lambda counted: start(_agent_thread_run(function, end_trial, counted)))


def _counting(start: Callable[[_Counted], Any]) -> Any:
    """``start(counted)``: a thread that keeps this module's stand-ins installed while it runs, counted in
    ``_running`` from before it starts (uncounted by ``_left(counted)`` as it ends, or here if it did not start)."""
    global _running
    with _lock:
        _running += 1
    counted = _Counted()
    try:
        return start(counted)
    except BaseException:
        _left(counted)  # (a no-op if the thread did run, and ended)
        raise


def _starting(real: Callable[..., Any]) -> Callable[..., Any]:
    """``_thread.start_new_thread`` (and ``start_joinable_thread``) called directly: a thread started inside a
    trial is an agent's thread (``threading.Thread.start`` calls the real one: ``threading`` is not swept)."""

    def start(function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        end_trial = _trial_of_new_thread()
        if end_trial is None:
            return real(function, *args, **kwargs)
        return _started(lambda run: real(run, *args, **kwargs), function, end_trial)

    start.__doc__ = real.__doc__
    start.__name__ = start.__qualname__ = real.__name__
    return start


_real_start = threading.Thread.start


def _start(self: threading.Thread) -> None:
    """``Thread.start``: a thread an agent starts inside a trial (or from its own threads) is a daemon thread, so
    that one it leaves running (a loop that never ends) does not keep the test process from exiting when the run
    is over; and it runs as an agent's thread (``_agent_thread_run``)."""
    end_trial = _trial_of_new_thread()
    if end_trial is None or self._started.is_set():  # type: ignore[attr-defined]
        _real_start(self)  # (started twice: the real one says so)
        return
    if not self.daemon:
        self.daemon = True
    run = self.run

    def start(agent_run: Callable[[], None]) -> None:
        self.run = agent_run  # type: ignore[method-assign]
        try:
            _real_start(self)
        except BaseException:
            self.run = run  # type: ignore[method-assign]
            raise

    _started(start, run, end_trial)


def _left(counted: _Counted) -> None:
    """An agent's thread ended: the real functions are back once none is left and no campaign runs."""
    global _running
    with _lock:
        if not counted.counted:
            return
        counted.counted = False
        _running -= 1
    _settle()


def _settle() -> None:
    """This module's stand-ins installed while a campaign, an agent's thread or a refusing block needs them, the
    real functions otherwise (also ``after_removal`` of the time patch: the stand-ins were just removed). Put
    over the real functions only where they are, and back only where a stand-in is: a name some module bound
    to one of them stays as it is."""
    with TIME_PATCH.lock, _lock:  # (the patch's lock first, as the time patch calls this: no campaign starts now)
        kept = _running > 0 or _module_holds > 0 or TIME_PATCH.holders > 0
        for entry in _LINGERING:
            owner, name, real, stand_in = entry
            current = owner.__dict__.get(name)
            if kept and current is real:
                setattr(owner, name, stand_in)
                _put_over.add(id(entry))
            elif not kept and current is stand_in:  # (also one kept over a campaign whose start found it installed)
                setattr(owner, name, real)
                _put_over.discard(id(entry))
            elif not kept and id(entry) in _put_over:  # rebound while ours was in (``os._exit = lambda c: None``)
                setattr(owner, name, real)
                _put_over.discard(id(entry))
                REBOUND.append(f"{getattr(owner, '__name__', owner)}.{name}")


#: why each process-level call is refused inside a trial
_SUBPROCESS = "; start a process with subprocess instead"
#: the lowest recursion limit a trial may set: the interpreter's default (the harness's own calls, on the threads
#: the trial shares, need that much stack; a limit of 60 made its teardown fail and left its patches installed)
RECURSION_FLOOR = 1000
#: the longest thread switch interval a trial may set (seconds): with a longer one a thread that never gives up the
#: GIL (a busy loop) keeps the harness's watchdog from running, and the wall-clock limit never ends it
SWITCH_INTERVAL_CEILING = 0.1
#: the smallest stack a trial may give the threads started after it (bytes; 0, the platform's default, is fine):
#: the harness's own worker threads are among them, and one of 32 KiB crashed the test process (SIGSEGV)
THREAD_STACK_FLOOR = 1 << 20


_WHY = {"fork": "a forked copy of the test process would run on" + _SUBPROCESS,
        "exec": "it would replace the test process with another program, whose exit status (0) CI would take "
                "for the run's" + _SUBPROCESS,
        "abort": "it would kill the test process on the spot (SIGABRT), the run's later tests and report with it",
        "thread hook": "every thread started after it would run the function, the harness's and the other trials' "
                       "too; sys.settrace and sys.setprofile reach the trial's own thread",
        "closerange": "it would close the test process's own files and pipes (pytest's captured output, "
                      "pytest-xdist's channel), which ended the run with no report; close the descriptors you "
                      "opened with os.close",
        "identity": "it would change the test process's user or groups, for good as root: the later tests, the "
                    "reports and pytest itself would run without their rights; start the code that needs it with "
                    "subprocess",
        "session": "it would move the test process to another process group or session, for good: the signal a "
                   "terminal's Ctrl-C or a CI's cancel sends to the job's group would no longer reach pytest; start "
                   "the code that needs it with subprocess (start_new_session=True)",
        "root": "it would change the test process's root directory or namespaces, for good: pytest could no longer "
                "find its own files (it crashed at the end of the run) and the later tests would see another "
                "system; start the code that needs it with subprocess",
        "recursion limit": f"below {RECURSION_FLOOR} the harness's own calls on the threads the trials share could "
                           "fail",
        "switch interval": f"above {SWITCH_INTERVAL_CEILING}s a busy thread keeps the harness's watchdog (and so the "
                           "wall-clock limit) from running",
        "faulthandler": "it would end or crash the test process (the run's later tests and report with it), "
                        "switch off or redirect pytest's own report of a crash, print tracebacks into later tests, or "
                        "take a signal over (SIGTERM and SIGINT no longer ended the run)",
        "stack size": f"the threads started after it, the harness's own among them, would get a stack smaller than "
                      f"{THREAD_STACK_FLOOR // 1024} KiB (one of 32 KiB crashed the test process)",
        "putenv": "it changes the environment behind os.environ, which is put back when the campaign ends and "
                  "this is not (a TZ set so reached every later test); set os.environ[name] instead",
        "reload": "it would replace the functions the harness stands in for (the trial's seeded random, its virtual "
                  "clock) with real ones, for every later trial",
        "rlimit": "lowering a limit lowers the test process's: a CPU-time limit below what the run has used "
                  "killed pytest (SIGXCPU), a file limit failed every later test's files; set it before the run, "
                  "or start the code that needs it with subprocess"}


def _refusing(name: str, why: str, real: Callable[..., Any], owner: str = "os",
              error: type[Exception] = OSError, when: Callable[..., bool] | None = None) -> Callable[..., Any]:
    """``OWNER.NAME`` (a fork, an exec, an abort, ``os.closerange``, ``resource.setrlimit``; ``threading``'s
    trace and profile hooks), refused with ``error`` inside a trial and under a ``Refusal`` (an agent's thread:
    its trial is then an error) where ``when(*args)`` holds (always without it); the real function elsewhere."""

    def refused(*args: Any, **kwargs: Any) -> Any:
        refusal = _refusal()
        if (active_clock() is None and refusal is None) or os.getpid() != _PID:
            return real(*args, **kwargs)
        if when is not None and not when(*args, **kwargs):
            return real(*args, **kwargs)
        message = f"{owner}.{name}() inside a trial is refused: {why}"
        if refusal is not None:
            refusal.tell(f"{refusal.what} called {message}" if active_clock() is None else message)
        raise error(message)

    refused.__doc__ = real.__doc__
    refused.__name__ = refused.__qualname__ = name
    return refused


def _own_pid(pid: Any = None, *more: Any, **given: Any) -> bool:
    """Whether ``os.setpgid(pid, ...)`` moves this process (pid 0 or its own): another process's group is left
    to the real function (an agent's own child's)."""
    try:
        return operator.index(pid) in (0, os.getpid())
    except TypeError:
        return False


def _signal_name(sig: Any) -> str:
    try:
        return signal.Signals(sig).name
    except (ValueError, TypeError):
        return repr(sig)


def _own_group(pgid: Any) -> bool:
    try:
        return pgid == 0 or pgid == os.getpgid(0)
    except OSError:
        return False


def _reaches_us(pid: Any) -> bool:
    """Whether ``os.kill(pid, ...)`` signals the test process or its parent: their pids, 0, -1, this process
    group, or (Linux) the id of one of their threads (``kill`` of a thread id signals its whole process: an
    agent's ``os.kill(threading.get_native_id(), SIGKILL)`` ended the run)."""
    if pid in (os.getpid(), 0, -1, os.getppid()):
        return True
    if not isinstance(pid, int):
        return False
    if pid < -1:
        return _own_group(-pid)
    return pid > 0 and (os.path.exists(f"/proc/self/task/{pid}") or os.path.exists(f"/proc/{os.getppid()}/task/{pid}"))


#: name -> (the signal a call sends, whether the call reaches the test process itself or its parent), of the
#: functions refused
_SIGNALLING: dict[str, tuple[Callable[..., Any], Callable[..., bool]]] = {
    "kill": (lambda pid, sig: sig, lambda pid, sig: _reaches_us(pid)),
    "killpg": (lambda pgid, sig: sig, lambda pgid, sig: _own_group(pgid)),
    "raise_signal": (lambda sig: sig, lambda sig: True),
    "pthread_kill": (lambda thread_id, sig: sig, lambda thread_id, sig: True),  # (a thread of this process)
    # (a pidfd of this process, or of its parent: ``os.pidfd_open(os.getpid())``, or ``os.open("/proc/PID")``)
    "pidfd_send_signal": (lambda pidfd, sig, siginfo=None, flags=0: sig,
                          lambda pidfd, sig, siginfo=None, flags=0: _reaches_us(pidfd_target(pidfd))),
    "interrupt_main": (lambda signum=signal.SIGINT: signum, lambda signum=signal.SIGINT: True),
}


def _refusing_signal(owner: str, name: str, real: Callable[..., Any]) -> Callable[..., Any]:
    """``OWNER.NAME`` (``os.kill``, ``signal.raise_signal``, ...) refused inside a trial and under a ``Refusal``
    when it would signal the test process itself (``SIGSTOP`` stopped pytest for good; ``SIGTERM``, ``SIGINT`` or
    ``SIGKILL`` ended the run with the later tests not run): a ``PermissionError``, and the trial an error
    (whatever the agent catches); signal 0 (a liveness check) and other processes pass."""
    which, reaches_self = _SIGNALLING[name]

    def refused(*args: Any, **kwargs: Any) -> Any:
        refusal = _refusal()
        if (active_clock() is None and refusal is None) or os.getpid() != _PID:
            return real(*args, **kwargs)
        try:
            sig, own = which(*args, **kwargs), reaches_self(*args, **kwargs)
        except TypeError:  # (arguments the real function refuses: it says how)
            return real(*args, **kwargs)
        if not own or sig == 0:
            return real(*args, **kwargs)
        parent = name == "kill" and args[:1] == (os.getppid(),) and args[0] != os.getpid()
        message = (f"{owner}.{name}() with {_signal_name(sig)} inside a trial is refused: it signals the "
                   + ("process that started the test process (pytest-xdist's controller, the shell)" if parent
                      else "test process itself"))
        _end_trial(message, refusal)
        raise PermissionError(errno.EPERM, message)

    refused.__doc__ = real.__doc__
    refused.__name__ = refused.__qualname__ = name
    return refused


def _too_low(limit: Any = None, *more: Any, **given: Any) -> bool:
    """Whether ``sys.setrecursionlimit(limit)`` sets less than ``RECURSION_FLOOR`` (an int as the C function reads
    it: a numpy integer too); arguments it refuses are left to it."""
    if more or given:
        return False
    try:
        return operator.index(limit) < RECURSION_FLOOR
    except TypeError:
        return False


def _too_long(interval: Any = None, *more: Any, **given: Any) -> bool:
    """Whether ``sys.setswitchinterval(interval)`` sets more than ``SWITCH_INTERVAL_CEILING`` (read as the C
    function reads it, as a float: a ``Fraction`` or a numpy number too); arguments it refuses are left to it."""
    kind = type(interval)
    if more or given or not (hasattr(kind, "__float__") or hasattr(kind, "__index__")):  # (a str: its TypeError)
        return False
    try:
        return not float(interval) <= SWITCH_INTERVAL_CEILING  # (NaN too)
    except (TypeError, ValueError, OverflowError):
        return False


def _too_small(size: Any = 0, *more: Any, **given: Any) -> bool:
    """Whether ``threading.stack_size(size)`` sets a stack smaller than ``THREAD_STACK_FLOOR`` (0, the default, and
    arguments the real function refuses are left to it)."""
    if more or given:
        return False
    try:
        size = operator.index(size)
    except TypeError:
        return False
    return 0 < size < THREAD_STACK_FLOOR


def _not_through_environ(*args: Any, **kwargs: Any) -> bool:
    """Whether ``os.putenv``/``os.unsetenv`` is called otherwise than by ``os.environ`` (whose item assignment and
    deletion call them: those are put back with ``os.environ`` when the campaign ends); by the process's own
    ``os.environ`` object, not another ``_Environ`` an agent made (whose changes nothing would put back)."""
    caller = sys._getframe(2)  # (0: this, 1: the stand-in, 2: who called it)
    code = caller.f_code
    environ = caller.f_locals.get("self")
    return (code is not _ENVIRON_SET and code is not _ENVIRON_DEL) or (environ is not _ENVIRON
                                                                       and environ is not _ENVIRONB)


_ENVIRON_SET = os._Environ.__setitem__.__code__  # type: ignore[attr-defined]
_ENVIRON_DEL = os._Environ.__delitem__.__code__  # type: ignore[attr-defined]
_ENVIRON = os.environ  # (the process's: put back in place of another by ``kept_state``)
_ENVIRONB = getattr(os, "environb", None)  # (the bytes view of the same data: put back with it)


def _reloads_stood_in(module: Any = None, *more: Any, **given: Any) -> bool:
    """Whether ``importlib.reload(module)`` reloads a module whose functions the harness stands in for."""
    return not (more or given) and any(module is owner for owner in stood_in_modules())


def refuse_exit(what: str) -> Refusal:
    """A ``Refusal`` for a block that may run outside any campaign (importing user code): ``os._exit`` raises
    ``AgentExited`` there even where the stand-in is not installed; a thread the block starts is left as it is."""
    return _ModuleRefusal(what, adopts=False)


#: who calls, in the message of a process-level call refused in a finalizer the campaign's end collects
LEFT_GARBAGE = "a finalizer (__del__, weakref.finalize) of an object the campaign's trials left for the collector"


#: how long the collection of the garbage a campaign's trials left may take (its finalizers run in it), in seconds
LEFT_GARBAGE_S = 5.0


def collect_left_garbage() -> bool:
    """Collect the cyclic garbage the campaign's trials left, while their refusals hold (call it before the
    campaign's stand-ins are removed): a reference cycle holding an object whose ``__del__`` calls ``os._exit(0)``
    was otherwise collected in a later test, outside any campaign, and ended the run with status 0 whatever had
    failed. The objects frozen before the campaign are not walked; a call refused shows as an unraisable
    exception of the finalizer. Collected in a thread of its own, waited for up to ``LEFT_GARBAGE_S``: a finalizer
    that never returns hung the campaign's end (it is left running, the stand-ins kept while it runs, as an
    agent's thread's are); False then."""
    if not gc.isenabled():
        return True
    done = threading.Event()

    def collect(counted: _Counted) -> None:
        try:
            with Refusal(LEFT_GARBAGE, adopts=False):
                gc.collect()
        finally:
            done.set()
            _left(counted)

    _counting(lambda counted: _real_start(threading.Thread(target=collect, args=(counted,), daemon=True,
                                                           name="agentops-left-garbage")))
    return done.wait(LEFT_GARBAGE_S)


_module_holds = 0  # ``_ModuleRefusal`` blocks running now (their stand-ins stay installed until the last ends)


class _ModuleRefusal(Refusal):
    """A ``Refusal`` that also has this module's stand-ins installed for the block (no campaign may be running):
    ``os._exit`` refused on this thread, the real one for every other thread (a watchdog's)."""

    __slots__ = ()

    def __enter__(self) -> Refusal:
        global _module_holds
        with _lock:
            _module_holds += 1
        _settle()
        return super().__enter__()

    def __exit__(self, *exc: object) -> None:
        global _module_holds
        super().__exit__(*exc)
        with _lock:
            _module_holds -= 1
        _settle()


#: how long an atexit handler registered inside a trial may run at the interpreter's exit: past it, the threads'
#: stacks are printed and the process exits with status 1 (a handler that never returns hung pytest after its report)
ATEXIT_LIMIT_S = 10.0


def _within_limit(call: Callable[[], Any], what: str = "an atexit handler registered inside a trial") -> Any:
    """``call()`` (an atexit handler, on the main thread at the interpreter's exit) cut off after
    ``ATEXIT_LIMIT_S``: the threads' stacks are printed and the process exits with status 1. A timer signal, put
    back after: no thread can start at the interpreter's exit, and faulthandler's one timer may be the user's.
    Not limited where there is no ``signal.setitimer`` (Windows), nor off the main thread."""
    if not hasattr(signal, "setitimer") or threading.current_thread() is not threading.main_thread():
        return call()

    def cut_off(signum: int, frame: Any) -> None:
        with contextlib.suppress(Exception):
            sys.__stderr__.write(f"pytest-agentops: {what} did not return "  # type: ignore[union-attr]
                                 f"within {ATEXIT_LIMIT_S:g} s: the process exits with status 1\n")
            sys.__stderr__.flush()  # type: ignore[union-attr]
            faulthandler.dump_traceback(file=sys.__stderr__, all_threads=True)
        _real_exit(1)

    try:
        previous = signal.signal(signal.SIGALRM, cut_off)
    except (ValueError, OSError):  # (not the main thread of the main interpreter)
        return call()
    started = real_monotonic()
    remaining, interval = signal.setitimer(signal.ITIMER_REAL, ATEXIT_LIMIT_S)
    try:
        return call()
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        if remaining:  # someone's timer was running: it goes on where it was
            signal.setitimer(signal.ITIMER_REAL, max(remaining - (real_monotonic() - started), 1e-3), interval)


class _GuardedAtExit:
    """A handler registered with ``atexit`` inside a trial: run at the interpreter's exit with ``os._exit``
    refused. Equal to the handler, so that ``atexit.unregister(handler)`` removes it."""

    __slots__ = ("handler", "what")

    def __init__(self, handler: Callable[..., Any], what: str = "an atexit handler registered inside a trial"):
        self.handler = handler
        self.what = what

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        for stream in (sys.stdout, sys.stderr):  # (what pytest wrote is out before a handler that hangs is cut off)
            with contextlib.suppress(Exception):
                stream.flush()
        try:
            # (a thread the handler starts is refused the same, as an agent's thread is: ``adopts``)
            with _ModuleRefusal(self.what):
                return _within_limit(lambda: self.handler(*args, **kwargs), self.what)
        except AgentExited as exc:
            print(f"pytest-agentops: {exc} (the test run's exit status stands)", file=sys.stderr)
        return None

    def __eq__(self, other: object) -> bool:
        return other is self or bool(other == self.handler)

    __hash__ = None  # type: ignore[assignment]


_real_register = atexit.register


def _register(func: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Callable[..., Any]:
    """``atexit.register``: a handler registered inside a trial (or under a ``Refusal``) is guarded."""
    if callable(func) and (active_clock() is not None or _refusal() is not None):
        _real_register(_GuardedAtExit(func), *args, **kwargs)
        return func
    return _real_register(func, *args, **kwargs)


class _GuardedForkHook:
    """A function registered with ``os.register_at_fork(before=..., after_in_parent=...)`` inside a trial: it runs
    in the test process at every later fork (a later test's ``multiprocessing``), so it runs with ``os._exit``,
    forks and signals to the test process refused, as an atexit handler of a trial's does (refused, it is an
    unraisable exception of the hook, and the fork goes on)."""

    __slots__ = ("hook",)

    def __init__(self, hook: Callable[[], Any]):
        self.hook = hook

    def __call__(self) -> Any:
        if os.getpid() != _PID:  # (a fork's child running the parent's hooks: not the test process)
            return self.hook()
        with _ModuleRefusal("a fork hook registered inside a trial"):
            return self.hook()


_real_register_at_fork = getattr(os, "register_at_fork", None)


def _register_at_fork(**hooks: Any) -> None:
    """``os.register_at_fork``: inside a trial (or under a ``Refusal``) the hooks that run in the test process
    (``before``, ``after_in_parent``) are guarded; ``after_in_child`` runs in the new process, as it is."""
    if active_clock() is not None or _refusal() is not None:
        hooks = {when: _GuardedForkHook(hook) if when != "after_in_child" and callable(hook) else hook
                 for when, hook in hooks.items()}
    return _real_register_at_fork(**hooks)  # type: ignore[misc]  (its own errors for a bad call)


_before: tuple[list[Any], list[Any]] | None = None  # logging's handlers and weakref's finalizers before any campaign
HANDLER_MADE = "a logging handler made since the first campaign"
FINALIZER_MADE = "a weakref.finalize function made since the first campaign"


def watch_exit_hooks() -> None:
    """(As a campaign starts.) ``logging.shutdown`` flushes and closes every handler still alive at the interpreter's
    exit, and weakref's exit hook calls every pending ``weakref.finalize``, both with the real ``os._exit``: an
    agent's handler whose ``flush`` called ``os._exit(0)`` turned a failed run's exit status into 0. The first
    campaign notes those there are (kept: no id is reused) and registers ``_guard_exit_hooks``, which runs at the
    exit before both (registered after them) and guards the ones made since, in place (their order, and an
    explicit ``logging.shutdown()`` of the user's, unchanged): ``os._exit`` refused, cut off after
    ``ATEXIT_LIMIT_S``, as a trial's atexit handler is. A handler made by an agent's thread after its campaign
    is among them."""
    global _before
    if _before is not None:
        return
    weakref.finalize(_guard_exit_hooks, _no_op)  # (weakref's exit hook registered now, if it was not: before ours)
    _before = list(logging._handlerList), list(weakref.finalize._registry)  # type: ignore[attr-defined]
    _real_register(_guard_exit_hooks)


def _no_op() -> None:
    pass


_run_status: Callable[[], int] | None = None  # the test run's exit status, read at the exit (``note_run_status``)
_exiting_with = 0  # (at the exit, after a failed run) the status an ``os._exit(0)`` exits with instead
_exit_watch: threading.Thread | None = None  # waits for the exit (``_exiting``), then cuts it off (``_cut_off_exit``)
_exiting = threading.Event()
#: how long the rest of the interpreter's exit may take after a campaign's run (seconds): past it, the threads'
#: stacks are printed and the process exits with the run's status, or 1 (an agent's handler that cancelled the
#: per-handler timer and waited for ever hung pytest after its report)
EXIT_LIMIT_S = 120.0


def note_run_status(status: Callable[[], int]) -> None:
    """The test run's exit status, as ``status()`` will say it at the interpreter's exit (pytest's session): past a
    campaign, an ``os._exit(0)`` at the exit then exits with it, however it is reached (a handler's ``emit`` or
    ``acquire``, a finalizer made during the exit): a failed run stays failed; and the exit is cut off after
    ``EXIT_LIMIT_S``. (Not before the exit: a ``pytest_unconfigure`` that flushes an agent's handler by hand
    runs with the real ``os._exit``.)"""
    global _run_status, _exit_watch
    _run_status = status
    if _exit_watch is None and _before is not None:  # (started now: Python 3.12 starts no thread at the exit)
        _exit_watch = threading.Thread(target=_cut_off_exit, daemon=True, name="agentops-exit-watch")
        _real_start(_exit_watch)


def _cut_off_exit() -> None:
    """(A daemon thread, from a run's end.) The interpreter's exit still running ``EXIT_LIMIT_S`` after it began:
    say so and exit, with the run's status or 1."""
    _exiting.wait()
    threading.Event().wait(EXIT_LIMIT_S)
    status = _exiting_with
    with contextlib.suppress(Exception):
        sys.__stderr__.write(f"pytest-agentops: the interpreter's exit did not end within {EXIT_LIMIT_S:g} s of the "  # type: ignore[union-attr]
                             f"run's end: the process exits with status {status or 1}\n")
        faulthandler.dump_traceback(file=sys.__stderr__, all_threads=True)
    _real_exit(status or 1)


def _keep_failed(status: Callable[[], int]) -> None:
    """(At the exit.) After a campaign and a failed run: ``os._exit(0)`` exits with the run's status from now on."""
    global _exiting_with
    code = 0
    with contextlib.suppress(Exception):
        code = int(status())
    if code and _before is not None:
        _exiting_with = code
        os._exit = _os_stand_ins["_exit"]  # type: ignore[assignment]  (for good: the run is over)


def _guard_exit_hooks() -> None:
    """(At the interpreter's exit, before logging's and weakref's exit hooks.) The handlers and finalizers made since
    the first campaign run guarded (``watch_exit_hooks``); after a failed run, ``os._exit(0)`` keeps its status."""
    if _before is None:
        return
    if _run_status is not None:
        _keep_failed(_run_status)
        _exiting.set()  # (the watch counts from here)
    handlers, finalizers = set(map(id, _before[0])), set(map(id, _before[1]))
    for ref in list(logging._handlerList):  # type: ignore[attr-defined]
        handler = ref() if id(ref) not in handlers else None
        if handler is None:
            continue
        for name in ("flush", "close"):
            with contextlib.suppress(AttributeError, TypeError):  # (a handler with __slots__: left as it is)
                setattr(handler, name, _GuardedAtExit(getattr(handler, name), HANDLER_MADE))
    for finalizer, info in list(weakref.finalize._registry.items()):  # type: ignore[attr-defined]
        if id(finalizer) not in finalizers and info.atexit:
            info.func = _GuardedAtExit(info.func, FINALIZER_MADE)


def _named(stand_in: Callable[..., Any], real: Callable[..., Any], name: str, qualname: str | None = None) -> Any:
    stand_in.__doc__ = real.__doc__
    stand_in.__name__, stand_in.__qualname__ = name, qualname or name
    return stand_in


# owner, name, real function, stand-in: the stand-ins that stay while an agent's thread runs on after its campaign
_LINGERING: list[tuple[Any, str, Any, Any]] = []
_put_over: set[int] = set()  # ids of the ``_LINGERING`` entries whose stand-in ``_settle`` installed (not removed yet)


def _register_lingering(owner: Any, stand_ins: dict[str, Callable[..., Any]], **kwargs: Any) -> None:
    _LINGERING.extend((owner, name, getattr(owner, name), fake) for name, fake in stand_ins.items())
    register_stand_ins(owner, stand_ins, **kwargs)


_register_lingering(atexit, {"register": _named(_register, _real_register, "register")})
_register_lingering(threading.Thread, {"start": _named(_start, _real_start, "start", "Thread.start")})
_register_lingering(_thread_module, {name: _starting(getattr(_thread_module, name))
                                     for name in ("start_new_thread", "start_new", "start_joinable_thread")
                                     if hasattr(_thread_module, name)})
_os_stand_ins: dict[str, Callable[..., Any]] = {"_exit": _named(_exit, _real_exit, "_exit")}
# (``os.execl``, ``execlp``, ``execvp`` and the rest call ``execv`` or ``execve`` through the module)
for _name, _why in (("fork", "fork"), ("forkpty", "fork"), ("execv", "exec"), ("execve", "exec"), ("abort", "abort"),
                    ("closerange", "closerange")):
    _real = getattr(os, _name, None)
    if _real is not None:
        _os_stand_ins[_name] = _refusing(_name, _WHY[_why], _real)
for _name in ("setuid", "setgid", "seteuid", "setegid", "setreuid", "setregid", "setresuid", "setresgid", "setgroups",
              "initgroups"):
    _real = getattr(os, _name, None)
    if _real is not None:
        _os_stand_ins[_name] = _refusing(_name, _WHY["identity"], _real)
for _name, _why, _when in (("setsid", "session", None), ("setpgrp", "session", None),
                           ("setpgid", "session", _own_pid), ("chroot", "root", None), ("unshare", "root", None),
                           ("setns", "root", None)):
    _real = getattr(os, _name, None)
    if _real is not None:
        _os_stand_ins[_name] = _refusing(_name, _WHY[_why], _real, when=_when)
if _real_register_at_fork is not None:
    _os_stand_ins["register_at_fork"] = _named(_register_at_fork, _real_register_at_fork, "register_at_fork")
for _name in ("kill", "killpg"):
    _real = getattr(os, _name, None)
    if _real is not None:
        _os_stand_ins[_name] = _refusing_signal("os", _name, _real)
for _name in ("putenv", "unsetenv"):
    _real = getattr(os, _name, None)
    if _real is not None:
        _os_stand_ins[_name] = _refusing(_name, _WHY["putenv"], _real, when=_not_through_environ)
_register_lingering(os, _os_stand_ins, after_removal=_settle)


# (``disable`` switched off pytest's report of a crash for the rest of the run, as ``enable(file=...)`` did by
# sending it elsewhere; ``dump_traceback_later(exit=True)`` ended the run during a later test, with ``repeat=True``
# it printed tracebacks into every later test, and ``cancel_dump_traceback_later`` cancels pytest's own
# ``faulthandler_timeout``; ``register(SIGTERM)`` took the signal over; the private ``_sigabrt`` and the like crash
# the process as ``os.abort`` does)
_register_lingering(faulthandler, {
    name: _refusing(name, _WHY["faulthandler"], getattr(faulthandler, name), "faulthandler")
    for name in ("disable", "enable", "register", "unregister", "dump_traceback_later", "cancel_dump_traceback_later",
                 "_sigabrt", "_sigsegv", "_sigfpe", "_fatal_error", "_fatal_error_c_thread", "_read_null",
                 "_stack_overflow") if hasattr(faulthandler, name)})
for _owner in (threading, _thread_module):
    _register_lingering(_owner, {"stack_size": _refusing("stack_size", _WHY["stack size"], _owner.stack_size,
                                                         _owner.__name__, ValueError, when=_too_small)})
_register_lingering(importlib, {"reload": _refusing("reload", _WHY["reload"], importlib.reload, "importlib",
                                                    RuntimeError, when=_reloads_stood_in)})
_register_lingering(signal, {name: _refusing_signal("signal", name, getattr(signal, name))
                             for name in ("raise_signal", "pthread_kill", "pidfd_send_signal")
                             if hasattr(signal, name)})
# (also on a thread the agent started, and whatever number type: a Fraction(3600) and a busy loop hung the run)
_register_lingering(sys, {
    "setrecursionlimit": _refusing("setrecursionlimit", _WHY["recursion limit"], sys.setrecursionlimit, "sys",
                                   RuntimeError, when=_too_low),
    "setswitchinterval": _refusing("setswitchinterval", _WHY["switch interval"], sys.setswitchinterval, "sys",
                                   RuntimeError, when=_too_long)})
# (kept while an agent's thread outlives its campaign: set from there, the hook hung the next campaign)
_register_lingering(threading, {name: _refusing(name, _WHY["thread hook"], getattr(threading, name), "threading",
                                                RuntimeError)
                                for name in ("settrace", "setprofile", "settrace_all_threads", "setprofile_all_threads")
                                if hasattr(threading, name)})
_register_lingering(_thread_module, {"interrupt_main": _refusing_signal("_thread", "interrupt_main",
                                                                        _thread_module.interrupt_main)})
if os.name == "posix":
    import resource

    def _limit(value: int) -> float:
        """A limit as a number to compare: ``RLIM_INFINITY`` (-1 on Linux) as infinity."""
        return math.inf if value == resource.RLIM_INFINITY else value

    def _lowers(which: Any = None, limits: Any = None, *more: Any, **given: Any) -> bool:
        """Whether setting ``limits`` (soft, hard) on resource ``which`` lowers either of the process's (raising
        one, as some libraries do with the file limit on import, harms nothing; nor does lowering the core-dump
        size). Limits not given as a pair (an iterator: it would be used up here) count as lowering; arguments
        the real function refuses are left to it, which says how."""
        if more or given or which is None or limits is None:
            return False
        try:  # (as the C function reads them: exact ints, whatever ``<`` or ``==`` an int subclass defines)
            which = operator.index(which)
        except TypeError:
            return False
        if which == resource.RLIMIT_CORE:
            return False
        if not isinstance(limits, (tuple, list)):
            return True
        try:
            soft, hard = (operator.index(limit) for limit in limits)
            now = resource.getrlimit(which)
        except (TypeError, ValueError, OSError):
            return False
        return any(_limit(new) < _limit(old) for new, old in zip((soft, hard), now, strict=True))

    def _lowers_own_limit(pid: Any = None, which: Any = None, limits: Any = None, *more: Any, **given: Any) -> bool:
        """Whether ``resource.prlimit(pid, resource, limits)`` lowers a limit of this process (not only reads it);
        arguments the real function refuses are left to it."""
        try:
            pid = operator.index(pid)
        except TypeError:
            return False
        return not (more or given) and limits is not None and pid in (0, os.getpid()) and _lowers(which, limits)

    _register_lingering(resource, {"setrlimit": _refusing("setrlimit", _WHY["rlimit"], resource.setrlimit, "resource",
                                                          when=_lowers),
                                   **({"prlimit": _refusing("prlimit", _WHY["rlimit"], resource.prlimit, "resource",
                                                            when=_lowers_own_limit)}
                                      if hasattr(resource, "prlimit") else {})})
if os.name == "posix":  # (``posix._exit`` is the same function: swept during campaigns, kept while lingering)
    import posix

    _LINGERING.extend((posix, name, getattr(posix, name), fake) for name, fake in _os_stand_ins.items()
                      if name in posix.__dict__)
