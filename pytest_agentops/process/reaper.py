"""Nothing an agent's child process starts outlives the test run, even when pytest itself is killed.

Agents' child processes (isolation ``process``, ``crash_mode="sigkill"``) each lead a process group of their
own, killed as a whole when their attempt ends. If the test process dies first (``kill -9``, an out-of-memory
kill, a CI timeout), nobody would kill them: so while campaigns use child processes, a small watchdog process
holds the list of their groups on a pipe from this process, and when the pipe reaches end of file (this
process is gone: the kernel closed its end) it kills every group still listed. It ignores Ctrl-C (its parent
decides) and exits as soon as the pipe closes, having killed nothing when every group was unregistered.

A process an agent starts in a session of its own (``start_new_session=True``) leaves its group: the child makes
itself a subreaper (``be_subreaper``: such a process, orphaned, becomes its child, not init's), and whoever ends
the child first kills every process below it (``end_descendants``: the child before it exits, the parent and
the watchdog before they kill its group). Linux only (``/proc``, ``prctl``); elsewhere the group alone.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import subprocess
import sys
import threading
from typing import IO

from ..errors import hide_own_frames
from .patch import ProcessPatch

__tracebackhide__ = hide_own_frames

def _parents() -> dict[int, int]:
    """pid -> parent pid of every live process ``/proc`` shows (empty where there is no ``/proc``): not the
    zombies, which a kill does not end (``end_descendants`` killed them already: awaiting their parent's wait,
    they kept it going round after round)."""
    found = {}
    try:
        names = os.listdir("/proc")
    except OSError:
        return found
    for name in names:
        if name.isdigit():
            try:
                with open(f"/proc/{name}/stat", "rb") as f:
                    state, parent = f.read().rsplit(b")", 1)[1].split()[:2]
                if state != b"Z":
                    found[int(name)] = int(parent)
            except (OSError, ValueError, IndexError):
                continue
    return found


def end_descendants(root: int, rounds: int = 20) -> None:
    """SIGKILL every process below ``root`` (not ``root``), again until none is left (one may fork meanwhile)."""
    for _ in range(rounds):
        parents = _parents()
        below, frontier = set(), {root}
        while frontier:
            frontier = {pid for pid, parent in parents.items() if parent in frontier and pid not in below}
            below |= frontier
        below.discard(os.getpid())
        if not below:
            return
        for pid in below:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)


def end_through_keeper(keeper: int, within_s: float = 5.0) -> bool:
    """SIGKILL the children of ``keeper`` (``process.keeper``: the agent's process, and orphans it adopted): the
    keeper then ends every process below it, however they hop from pid to pid, and exits. True once it has
    (the caller reaps it), False if it had no children or still runs after ``within_s`` real seconds."""
    try:
        with open(f"/proc/{keeper}/task/{keeper}/children") as listed:
            children = [int(pid) for pid in listed.read().split()]
    except (OSError, ValueError):
        return False
    if not children:
        return False
    # each held by a pidfd before any is killed: the agent's process dies first, the keeper then reaps the rest,
    # and a pid of the list could be another process's by the time it is signalled
    held = []
    for pid in children:
        try:
            held.append((pid, os.pidfd_open(pid)))
        except ProcessLookupError:  # (gone already)
            continue
        except (OSError, AttributeError):  # (no pidfds here)
            held.append((pid, None))
    for pid, fd in held:
        with contextlib.suppress(OSError):
            if fd is None:
                os.kill(pid, signal.SIGKILL)
            else:
                signal.pidfd_send_signal(fd, signal.SIGKILL)
    for _, fd in held:
        if fd is not None:
            os.close(fd)
    import time

    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{keeper}/stat", "rb") as f:
                if f.read().rsplit(b")", 1)[1].split()[0] in (b"Z", b"X"):
                    return True
        except (OSError, IndexError):
            return True
        select.select([], [], [], 0.002)  # (real time: a trial's ``time.sleep`` may be virtual)
    return False


def be_subreaper() -> None:
    """Make this process the one its orphaned descendants are given to (Linux ``PR_SET_CHILD_SUBREAPER``)."""
    if not sys.platform.startswith("linux"):
        return
    with contextlib.suppress(OSError, AttributeError):
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER


def _watchdog_code() -> str:
    """The watchdog's program: ``_WATCHDOG``, with ``end_descendants`` (its source: where there is none, a
    compiled-only install, the groups alone are killed)."""
    import inspect

    try:
        tree = "\n".join(inspect.getsource(f) for f in (_parents, end_descendants, end_through_keeper))
    except (OSError, TypeError):
        tree = "def end_descendants(root):\n    pass\ndef end_through_keeper(keeper, within_s=0):\n    pass\n"
    return _WATCHDOG.replace("# (end_descendants)", tree)


_WATCHDOG = r"""
import contextlib, os, select, signal, sys
signal.signal(signal.SIGINT, signal.SIG_IGN)
# (end_descendants)
groups = set()
for line in sys.stdin.buffer:
    try:
        pgid = int(line[1:])
    except ValueError:
        continue
    (groups.add if line[:1] == b"+" else groups.discard)(pgid)
for pgid in groups:
    end_through_keeper(pgid)  # (the group's leader is the keeper: it ends what is below it and exits)
    end_descendants(pgid)  # (the group's leader is the agent's process: what it started in sessions of their own)
    try:
        os.killpg(pgid, signal.SIGKILL)
    except OSError:
        pass
"""


class _Reaper:
    """The watchdog process and the pipe to it (started by the first campaign holding ``REAPER``)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._proc: subprocess.Popen[bytes] | None = None
        self._pipe: IO[bytes] | None = None

    def start(self) -> _Reaper:
        self._proc = subprocess.Popen([sys.executable, "-c", _watchdog_code()], stdin=subprocess.PIPE,
                                      stdout=subprocess.DEVNULL, start_new_session=True)
        self._pipe = self._proc.stdin
        return self

    def stop(self) -> None:
        proc, pipe = self._proc, self._pipe
        self._proc = self._pipe = None
        if pipe is not None:
            with contextlib.suppress(OSError):
                pipe.close()
        if proc is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=10)

    def _send(self, line: bytes) -> None:
        with self._lock:
            if self._pipe is not None:
                with contextlib.suppress(OSError):
                    self._pipe.write(line)
                    self._pipe.flush()

    def register(self, pgid: int) -> None:
        """Kill process group ``pgid`` if this process dies before ``unregister``."""
        self._send(b"+%d\n" % pgid)

    def unregister(self, pgid: int) -> None:
        self._send(b"-%d\n" % pgid)

    @property
    def pid(self) -> int | None:
        """The watchdog's process id while it runs (tests look at it)."""
        return self._proc.pid if self._proc is not None else None


WATCHDOG = _Reaper()


class _Held:
    """``REAPER``: the watchdog held while any campaign runs agents in child processes."""

    def __init__(self) -> None:
        self.patch = ProcessPatch("child_reaper", lambda: WATCHDOG.start(), lambda w: w.stop(),
                                  what="a watchdog process that kills the agents' process groups if pytest dies")

    def acquire(self) -> None:
        if os.name == "posix":
            self.patch.acquire()

    def release(self) -> None:
        if os.name == "posix":
            self.patch.release()

    def register(self, pgid: int) -> None:
        WATCHDOG.register(pgid)

    def unregister(self, pgid: int) -> None:
        WATCHDOG.unregister(pgid)


REAPER = _Held()
