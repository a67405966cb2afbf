"""The kernel's fence around an isolated agent's process: no signal, ``ptrace`` or memory write reaches a
process outside it (pytest, its xdist siblings, the watchdog), whatever the agent calls.

The child's own refusals (``child_side.guard_the_test_process``) stop the Python calls by name; ``ctypes``, a
fresh copy of ``posix``, a shell's ``kill`` or ``open("/proc/PPID/mem", "r+b")`` go past names. Linux Landlock
(ABI 6, Linux 6.12+) scopes signals to the process's own domain (itself and what it starts) and denies
``ptrace`` access (``/proc/PID/mem``, ``process_vm_writev``, ``pidfd_getfd``) to processes outside it, for root
too, for every thread and process started after it, with no way back. It needs ``no_new_privs`` (set first): a
set-user-ID program (``sudo``) run by the agent gains no privilege. No filesystem or network access is
restricted. Where the kernel has no such Landlock, nothing is done and the reason is returned.
"""

from __future__ import annotations

import contextlib
import os
import platform
import struct
import sys
from typing import Any

#: ``landlock_ruleset_attr.scoped``: signals sent out of the domain are refused (``EPERM``).
LANDLOCK_SCOPE_SIGNAL = 1 << 1
_SCOPE_ABI = 6  # the first Landlock ABI with ``scoped``
_CREATE_RULESET, _RESTRICT_SELF = 444, 446  # (numbered alike on the architectures below)
_ARCHITECTURES = frozenset({"x86_64", "amd64", "aarch64", "arm64", "riscv64", "ppc64le", "s390x", "armv7l",
                            "armv8l", "i386", "i686"})
_PR_SET_NO_NEW_PRIVS = 38
_CREATE_RULESET_VERSION = 1


def _libc() -> Any:
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    return libc


def why_not_fenced() -> str | None:
    """Why ``fence_in`` would do nothing here (not Linux, a kernel without Landlock scopes), or None. Changes
    nothing: the test process may ask."""
    if not sys.platform.startswith("linux") or platform.machine().lower() not in _ARCHITECTURES:
        return f"no Landlock on {sys.platform} {platform.machine()}"
    try:
        import ctypes
    except ImportError:
        return "no ctypes"
    abi = _libc().syscall(_CREATE_RULESET, None, ctypes.c_size_t(0), ctypes.c_uint32(_CREATE_RULESET_VERSION))
    if abi < _SCOPE_ABI:
        return "Landlock is not enabled in this kernel" if abi < 0 else f"Landlock ABI {abi} has no scopes (6+)"
    return None


def fence_in() -> str | None:
    """Confine this process (call it while it has one thread: Landlock binds the calling thread and what it
    starts later). None when done; else why not (no Linux, an older kernel, a failed call)."""
    why = why_not_fenced()
    if why is not None:
        return why
    import ctypes

    libc = _libc()
    if libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        return f"prctl(PR_SET_NO_NEW_PRIVS): {os.strerror(ctypes.get_errno())}"
    attr = struct.pack("=QQQ", 0, 0, LANDLOCK_SCOPE_SIGNAL)  # (no filesystem or network access handled)
    fd = libc.syscall(_CREATE_RULESET, attr, ctypes.c_size_t(len(attr)), ctypes.c_uint32(0))
    if fd < 0:
        return f"landlock_create_ruleset: {os.strerror(ctypes.get_errno())}"
    try:
        if libc.syscall(_RESTRICT_SELF, ctypes.c_int(fd), ctypes.c_uint32(0)) != 0:
            return f"landlock_restrict_self: {os.strerror(ctypes.get_errno())}"
    finally:
        with contextlib.suppress(OSError):
            os.close(fd)
    return None
