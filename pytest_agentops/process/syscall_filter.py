"""The system calls an isolated agent's process may not make on other processes: a seccomp filter (Linux,
x86-64 and AArch64) that Landlock's fence (``confine``) leaves open, each refused with ``EPERM``.

- ``prlimit64`` setting another process's limits (pytest's ``RLIMIT_CPU`` at 1 s: the kernel killed it);
- ``ptrace`` (``PTRACE_TRACEME`` made the agent's parent its tracer: a stop then read as its death);
- ``ioctl(TIOCSTI)`` (a command pushed into the user's terminal, run by their shell after pytest), and
  ``ioctl(TIOCSCTTY, 1)`` and ``vhangup`` (as root: another session's terminal stolen and hung up, pytest's output
  with it; ``TIOCSCTTY`` with 0, as ``pty.fork``/``forkpty`` takes a new terminal, is allowed);
- ``setpriority`` of another process, or of every process of the user, and ``ioprio_set`` alike;
  ``sched_setscheduler``/``sched_setparam``/``sched_setaffinity``/``sched_setattr`` of another thread or process
  (pytest's threads at ``SCHED_IDLE``, pinned to one CPU): only pid 0 (the caller itself) may be named, so the
  agent's own pid or its children's are refused too (``psutil.Process().nice(...)``);
- on x86-64, the x32 system calls, and any call of another architecture (``int 0x80``): the same calls under
  other numbers.

The filter binds the calling thread and every thread and process it starts later (no way back); it needs
``no_new_privs``, set by ``confine.fence_in`` before it installs this.
"""

from __future__ import annotations

import platform
import struct
import sys
from typing import Any

from ..errors import hide_own_frames

__tracebackhide__ = hide_own_frames

_EPERM = 1
_RET_ALLOW = 0x7FFF_0000
_RET_ERRNO = 0x0005_0000
_LD_W_ABS, _JEQ_K, _JGE_K, _RET_K = 0x20, 0x15, 0x35, 0x06
_TIOCSTI, _TIOCSCTTY = 0x5412, 0x540E
_X32_BIT = 0x4000_0000
_PRIO_USER, _IOPRIO_WHO_USER = 2, 3
_PR_SET_SECCOMP, _SECCOMP_MODE_FILTER = 22, 2

#: (``AUDIT_ARCH_*``, system call numbers) of the architectures the filter knows.
_TABLES: dict[str, tuple[int, dict[str, int]]] = {
    "x86_64": (0xC000_003E, {"ptrace": 101, "prlimit64": 302, "ioctl": 16, "setpriority": 141, "ioprio_set": 251,
                             "sched_setparam": 142, "sched_setscheduler": 144, "sched_setaffinity": 203,
                             "sched_setattr": 314, "vhangup": 153}),
    "aarch64": (0xC000_00B7, {"ptrace": 117, "prlimit64": 261, "ioctl": 29, "setpriority": 140, "ioprio_set": 30,
                              "sched_setparam": 118, "sched_setscheduler": 119, "sched_setaffinity": 122,
                              "sched_setattr": 274, "vhangup": 58}),
}
_ALIASES = {"amd64": "x86_64", "arm64": "aarch64"}


def _arg(i: int, high: bool = False) -> int:
    """Offset of argument ``i``'s low (or high) 32 bits in ``struct seccomp_data`` (little-endian)."""
    return 16 + 8 * i + (4 if high else 0)


def program(machine: str) -> list[tuple[int, int, int, int]] | None:
    """The filter for ``machine`` as ``(code, jt, jf, k)`` instructions, or None for an architecture it does not
    know."""
    table = _TABLES.get(_ALIASES.get(machine, machine))
    if table is None:
        return None
    arch, nr = table
    # assembled with labels: ("jeq", k, label_if_true, label_if_false), ("ld", offset), ("ret", k), ("label", name)
    source: list[tuple[Any, ...]] = [
        ("ld", 4), ("jeq", arch, None, "deny"),
        ("ld", 0),
        *([("jge", _X32_BIT, "deny", None)] if arch == _TABLES["x86_64"][0] else []),
        ("jeq", nr["ptrace"], "deny", None),
        ("jeq", nr["vhangup"], "deny", None),
        ("jeq", nr["prlimit64"], "prlimit", None),
        ("jeq", nr["ioctl"], "ioctl", None),
        ("jeq", nr["setpriority"], "setpriority", None),
        ("jeq", nr["ioprio_set"], "ioprio", None),
        *(("jeq", nr[name], "own", None)
          for name in ("sched_setparam", "sched_setscheduler", "sched_setaffinity", "sched_setattr")),
        ("ret", _RET_ALLOW),
        ("label", "prlimit"),  # prlimit64(pid, resource, new, old): another's limits set
        ("ld", _arg(0)), ("jeq", 0, "allow", None),
        ("ld", _arg(2)), ("jeq", 0, None, "deny"),
        ("ld", _arg(2, high=True)), ("jeq", 0, "allow", "deny"),
        ("label", "ioctl"),  # ioctl(fd, request, ...)
        ("ld", _arg(1)), ("jeq", _TIOCSTI, "deny", None), ("jeq", _TIOCSCTTY, None, "allow"),
        ("ld", _arg(2)), ("jeq", 0, None, "deny"),  # (TIOCSCTTY with 0, as ``forkpty`` takes a new terminal: allowed;
        ("ld", _arg(2, high=True)), ("jeq", 0, "allow", "deny"),  # with 1, another session's terminal is stolen)
        ("label", "setpriority"),  # setpriority(which, who, prio)
        ("ld", _arg(0)), ("jeq", _PRIO_USER, "deny", None),
        ("ld", _arg(1)), ("jeq", 0, "allow", "deny"),
        ("label", "ioprio"),  # ioprio_set(which, who, prio)
        ("ld", _arg(0)), ("jeq", _IOPRIO_WHO_USER, "deny", None),
        ("ld", _arg(1)), ("jeq", 0, "allow", "deny"),
        ("label", "own"),  # sched_*(pid, ...): the caller's own thread only
        ("ld", _arg(0)), ("jeq", 0, "allow", "deny"),
        ("label", "allow"), ("ret", _RET_ALLOW),
        ("label", "deny"), ("ret", _RET_ERRNO | _EPERM),
    ]
    at: dict[str, int] = {}
    position = 0
    for step in source:
        if step[0] == "label":
            at[step[1]] = position
        else:
            position += 1
    out: list[tuple[int, int, int, int]] = []
    for step in source:
        kind = step[0]
        if kind == "label":
            continue
        here = len(out)
        if kind == "ld":
            out.append((_LD_W_ABS, 0, 0, step[1]))
        elif kind == "ret":
            out.append((_RET_K, 0, 0, step[1]))
        else:
            _, k, if_true, if_false = step
            jt = 0 if if_true is None else at[if_true] - here - 1
            jf = 0 if if_false is None else at[if_false] - here - 1
            out.append((_JEQ_K if kind == "jeq" else _JGE_K, jt, jf, k))
    return out


def install(libc: Any) -> str | None:
    """Install the filter on the calling thread (``no_new_privs`` must be set; ``libc``: ``ctypes.CDLL(None,
    use_errno=True)``). None when done; else why not."""
    if not sys.platform.startswith("linux"):
        return f"no seccomp on {sys.platform}"
    machine = platform.machine().lower()
    if struct.calcsize("P") != 8:  # (a 32-bit interpreter on a 64-bit kernel: its calls are the other table's)
        return f"a 32-bit interpreter on {machine}: no system call table for it"
    instructions = program(machine)
    if instructions is None:
        return f"no system call table for {machine}"
    import ctypes
    import os

    packed = b"".join(struct.pack("=HBBI", *i) for i in instructions)
    buffer = ctypes.create_string_buffer(packed, len(packed))

    class _Program(ctypes.Structure):
        _fields_ = (("len", ctypes.c_ushort), ("filter", ctypes.c_void_p))

    prog = _Program(len(instructions), ctypes.addressof(buffer))
    if libc.prctl(_PR_SET_SECCOMP, _SECCOMP_MODE_FILTER, ctypes.byref(prog), 0, 0) != 0:
        return f"prctl(PR_SET_SECCOMP): {os.strerror(ctypes.get_errno())}"
    return None
