"""The keeper: an isolated agent's child process forks before it runs anything of the agent's, and the first
half stays as the agent process's parent, running nothing but this.

It is a subreaper (Linux ``PR_SET_CHILD_SUBREAPER``) and stays outside the agent's fence (``confine.fence_in``
comes after the fork, in the agent's half): whatever the agent starts, in sessions of its own or as its
sibling (``clone`` with ``CLONE_PARENT``), is below it, and orphaned it becomes the keeper's child. When the
agent's process ends, however it ends (returning, ``os._exit``, a segfault, ``SIGKILL``), the keeper ends every
process below it and exits as the agent's process did (its exit code, or the same signal), so pytest sees
the child end as before. The agent's own clean-up at exit (``reaper.end_descendants``) cannot cover a death by
signal; the keeper does. Where the kernel has Landlock scopes, the keeper scopes its signals before it forks
(``confine.scope_signals``) and ends what is below it with one ``kill(-1)``: it reaches nothing else, and a
process hopping from pid to pid faster than ``/proc`` is read cannot escape it. pytest, to end an attempt,
kills the keeper's children and lets the keeper do the rest (``reaper.end_through_keeper``). It ignores the
signals an agent's ``killpg`` of its own group would end it with (``SIGKILL`` aside): pytest ends it with
``SIGKILL``.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time

from ..errors import hide_own_frames
from .confine import scope_signals
from .reaper import be_subreaper, end_descendants

__tracebackhide__ = hide_own_frames

#: Signals the keeper ignores (``SIGCHLD`` keeps its default: the keeper waits for its child).
_IGNORED = ("SIGHUP", "SIGINT", "SIGQUIT", "SIGTERM", "SIGUSR1", "SIGUSR2", "SIGPIPE", "SIGALRM", "SIGTSTP",
            "SIGTTIN", "SIGTTOU", "SIGURG", "SIGWINCH", "SIGXCPU", "SIGXFSZ", "SIGVTALRM", "SIGPROF")


def keep(channel_fd: int) -> int | None:
    """Fork. In the agent's half: returns the keeper's pid. In the keeper: never returns (see the module).
    Elsewhere than Linux (no subreaper): None, and no fork. ``channel_fd``: the channel to pytest, closed in
    the keeper (pytest reads end of file there when the agent's process dies)."""
    if not sys.platform.startswith("linux"):
        return None
    be_subreaper()
    keeper = os.getpid()
    scoped = scope_signals()
    pid = os.fork()
    if pid == 0:
        return keeper
    try:
        os.close(channel_fd)
        for name in _IGNORED:
            with contextlib.suppress(AttributeError, OSError, ValueError):
                signal.signal(getattr(signal, name), signal.SIG_IGN)
        status = _wait_for(pid)
        if scoped:
            _end_scope()
        if _may_have_children(keeper):  # (every process left below is below one of its children now)
            end_descendants(keeper)
        _reap_all()
    except BaseException:  # (nothing of the keeper's own may outlive it either)
        status = 1 << 8
        with contextlib.suppress(BaseException):
            end_descendants(keeper)
    _exit_as(status)
    raise AssertionError("unreachable")  # pragma: no cover


def _wait_for(pid: int) -> int:
    """The wait status of child ``pid`` once it has ended (other children, adopted orphans, are reaped meanwhile
    by ``_reap_all`` at the end)."""
    while True:
        try:
            _, status = os.waitpid(pid, 0)
            return status
        except InterruptedError:
            continue
        except ChildProcessError:
            return 1 << 8


def _may_have_children(pid: int) -> bool:
    """Whether ``pid`` (single-threaded) may have children: False only when ``/proc`` lists none (its list,
    unlike a scan of every process, costs nothing)."""
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as children:
            return bool(children.read().split())
    except OSError:
        return True


def _end_scope(within_s: float = 10.0) -> None:
    """SIGKILL every process of the keeper's signal scope (``confine.scope_signals``: every process below it,
    and no other) with one ``kill(-1)``, and reap them: a process that changes pid faster than ``/proc`` is read
    (``end_descendants``) cannot get away. Once signalled, none of them can fork (a fork with a fatal signal
    pending fails), and while any is left the keeper has a child: the killed, orphaned, become its children.
    ``within_s`` real seconds at most (one stuck in the kernel)."""
    try:
        os.kill(os.getppid(), 0)  # (outside the scope: refused, or the scope is not what it was said to be)
        return  # (then ``kill(-1)`` would end every process of the user: left to ``end_descendants``)
    except PermissionError:
        pass
    except OSError:
        return
    with contextlib.suppress(OSError):  # (not the keeper itself; it succeeds even with nothing in its scope)
        os.kill(-1, signal.SIGKILL)
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        try:
            if os.waitpid(-1, os.WNOHANG)[0] == 0:
                time.sleep(0.001)
        except ChildProcessError:
            return
        except InterruptedError:
            continue


def _reap_all() -> None:
    """Wait for every ended child (the orphans the keeper adopted and killed), without blocking."""
    with contextlib.suppress(ChildProcessError):
        while os.waitpid(-1, os.WNOHANG)[0] > 0:
            pass


def _exit_as(status: int) -> None:
    """Exit as the child with wait status ``status`` did: its exit code, or killed by the same signal (no core)."""
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        with contextlib.suppress(Exception):
            import resource

            resource.setrlimit(resource.RLIMIT_CORE, (0, resource.getrlimit(resource.RLIMIT_CORE)[1]))
        with contextlib.suppress(Exception):  # (not for SIGKILL and SIGSTOP, whose handling cannot change)
            signal.signal(sig, signal.SIG_DFL)
        with contextlib.suppress(Exception):
            os.kill(os.getpid(), sig)
        os._exit(128 + sig)
    os._exit(os.WEXITSTATUS(status) if os.WIFEXITED(status) else 1)
