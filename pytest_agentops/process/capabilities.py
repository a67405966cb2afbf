"""The capabilities an isolated agent's process keeps (Linux): what a process of a default container may do with
files and users, and nothing that reaches other processes or the kernel.

As root, the fence (``confine``) left open what capabilities allow past it: a BPF program sending signals to
pytest (``CAP_BPF``/``CAP_SYS_ADMIN``), a CPU-wide perf event raising ``SIGTRAP`` in whatever runs there
(``CAP_PERFMON``), fanotify permission events stalling pytest's ``open`` calls and ``TIOCVHANGUP`` on its
terminal (``CAP_SYS_ADMIN``), a ``SCHED_FIFO`` busy loop starving it (``CAP_SYS_NICE``), another process's
memory map and environment read (``CAP_PERFMON``). ``drop`` takes every capability but ``KEPT`` out of the
effective, permitted, inheritable, ambient and bounding sets: no program the agent runs gets one back (with
``no_new_privs``, set next by ``confine.fence_in``, nor through set-user-ID or file capabilities).
"""

from __future__ import annotations

import ctypes
import os
import struct
from typing import Any

from ..errors import hide_own_frames

__tracebackhide__ = hide_own_frames

#: Capabilities kept (those of Docker's default set that act on files, users and the agent's own processes):
#: CHOWN, DAC_OVERRIDE, FOWNER, FSETID, KILL, SETGID, SETUID, SETPCAP, NET_BIND_SERVICE, AUDIT_WRITE. ``KILL``
#: signals the agent's own processes run as another user (``subprocess.run(..., user="nobody")`` timed out
#: without it), and is kept only under the fence's signal scope, which holds whatever the capabilities.
KEPT = frozenset({0, 1, 3, 4, 5, 6, 7, 8, 10, 29})
_KILL = 5
_PR_CAPBSET_READ, _PR_CAPBSET_DROP = 23, 24
_PR_CAP_AMBIENT, _PR_CAP_AMBIENT_CLEAR_ALL = 47, 4
_VERSION_3 = 0x2008_0522
_LAST_CAP = "/proc/sys/kernel/cap_last_cap"


def _mask(caps: frozenset[int] | set[int]) -> int:
    return sum(1 << c for c in caps)


def drop(libc: Any, scoped: bool = True) -> str | None:
    """Leave this process (and what it starts) only ``KEPT`` of the capabilities it has (without ``KILL`` when
    its signals are not ``scoped`` by the fence: then it would reach other users' processes). None when done,
    or when there was nothing to drop; else why not. ``libc``: ``ctypes.CDLL(None, use_errno=True)``."""
    kept = KEPT if scoped else KEPT - {_KILL}
    capget, capset = getattr(libc, "capget", None), getattr(libc, "capset", None)  # (the C library's: any
    if capget is None or capset is None:  # architecture)
        return "no capget/capset in the C library"
    header = struct.pack("=Ii", _VERSION_3, 0)
    data = ctypes.create_string_buffer(24)  # (two of {effective, permitted, inheritable}: capabilities 0-63)
    if capget(header, data) != 0:
        return f"capget: {os.strerror(ctypes.get_errno())}"
    effective, permitted, inheritable = _sets(data.raw)
    try:
        with open(_LAST_CAP) as f:
            last = int(f.read())
    except (OSError, ValueError):
        last = 40
    keep = _mask(kept)
    # the bounding set first (dropping from it needs CAP_SETPCAP); nothing to drop without it
    if permitted & (1 << 8):
        for cap in range(last + 1):
            if cap not in kept and libc.prctl(_PR_CAPBSET_READ, cap, 0, 0, 0) == 1 \
                    and libc.prctl(_PR_CAPBSET_DROP, cap, 0, 0, 0) != 0:
                return f"prctl(PR_CAPBSET_DROP, {cap}): {os.strerror(ctypes.get_errno())}"
    libc.prctl(_PR_CAP_AMBIENT, _PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0)  # (EINVAL before Linux 4.3: none to clear)
    if not (effective | permitted | inheritable) & ~keep:
        return None
    left = [value & keep for value in (effective, permitted, inheritable)]
    packed = b"".join(struct.pack("=III", *(v >> shift & 0xFFFF_FFFF for v in left)) for shift in (0, 32))
    if capset(header, packed) != 0:
        return f"capset: {os.strerror(ctypes.get_errno())}"
    return None


def _sets(raw: bytes) -> tuple[int, int, int]:
    """(effective, permitted, inheritable) from capget's two ``__user_cap_data_struct``s."""
    low, high = struct.unpack("=III", raw[:12]), struct.unpack("=III", raw[12:24])
    return tuple(lo | hi << 32 for lo, hi in zip(low, high, strict=True))  # type: ignore[return-value]
