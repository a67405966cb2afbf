"""The kernel's fence around an isolated agent's process: no signal, ``ptrace``, memory write, resource limit,
scheduling change or write under ``/proc`` and ``/sys`` reaches a process outside it (pytest, its xdist
siblings, the keeper, the watchdog), whatever the agent calls.

The child's own refusals (``child_side.guard_the_test_process``) stop the Python calls by name; ``ctypes``, a
fresh copy of ``posix``, a shell's ``kill`` or ``open("/proc/PPID/mem", "r+b")`` go past names. Linux Landlock
(ABI 6, Linux 6.12+):

- scopes signals to the process's own domain (itself and what it starts), and denies ``ptrace`` access
  (``/proc/PID/mem``, ``process_vm_writev``, ``pidfd_getfd``) to processes outside it, for root too;
- denies writing, creating, removing and renaming under ``/proc`` and ``/sys`` and any other mount of such a
  file system (pytest moved into a cgroup and killed or frozen there, its ``oom_score_adj`` or timer slack
  set): everywhere else may be written as before (the rules grant whole hierarchies: fencing off a deeper
  directory, the Python installation, would also forbid creating files in each directory above it, the
  project's or the home directory);
- forbids mounting (a cgroup file system mounted elsewhere).

A seccomp filter (``syscall_filter``) refuses what Landlock leaves open: another process's resource limits
(pytest's ``RLIMIT_CPU``), ``ptrace`` itself, ``TIOCSTI``, another process's priority and scheduling. Both bind
every thread and process started after them, with no way back, and need ``no_new_privs`` (set first): a
set-user-ID program (``sudo``) run by the agent gains no privilege. Before them, a root agent's capabilities
are cut to those acting on files, users and its own processes (``capabilities``). Reads, executing and the
network are not restricted. Where the kernel has no Landlock scopes, nothing more is done and the reason is
returned.
"""

from __future__ import annotations

import contextlib
import os
import platform
import struct
import sys
from collections.abc import Iterable
from typing import Any

from ..errors import hide_own_frames

__tracebackhide__ = hide_own_frames

#: ``landlock_ruleset_attr.scoped``: signals sent out of the domain are refused (``EPERM``).
LANDLOCK_SCOPE_SIGNAL = 1 << 1
_SCOPE_ABI = 6  # the first Landlock ABI with ``scoped``
_CREATE_RULESET, _RESTRICT_SELF = 444, 446  # (numbered alike on the architectures below)
_ARCHITECTURES = frozenset({"x86_64", "amd64", "aarch64", "arm64", "riscv64", "ppc64le", "s390x", "armv7l",
                            "armv8l", "i386", "i686"})
_PR_SET_NO_NEW_PRIVS = 38
_CREATE_RULESET_VERSION = 1
_ADD_RULE, _RULE_PATH_BENEATH = 445, 1
#: ``LANDLOCK_ACCESS_FS_*`` handled (and granted, outside what is fenced off): writing, truncating, creating,
#: removing, and moving between directories (``REFER``: denied between any two directories if not handled)
_FILE_WRITES = (1 << 1) | (1 << 14)  # WRITE_FILE, TRUNCATE
_REFER = 1 << 13
_WRITES = _FILE_WRITES | (1 << 4) | (1 << 5) | sum(1 << b for b in range(6, 13)) | _REFER
#: fenced off for writing whatever else is allowed: the kernel's views of processes and of the system
FENCED_OFF = ("/proc", "/sys")


def _libc() -> Any:
    """The C library, its ``syscall`` returning a ``long`` and ``errno`` kept for ``ctypes.get_errno``."""
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


#: File systems that are views of processes or of the system: fenced off wherever they are mounted
_SYSTEM_FILE_SYSTEMS = frozenset({"proc", "sysfs", "cgroup", "cgroup2", "debugfs", "tracefs", "securityfs",
                                  "bpf", "configfs"})


def fenced_off(mountinfo: str = "/proc/self/mountinfo") -> tuple[str, ...]:
    """``FENCED_OFF`` and every other mount point of such a file system (``/host/proc`` in a container, a cgroup
    file system mounted outside ``/sys``), from this process's mount table."""
    found = set(FENCED_OFF)
    try:
        with open(mountinfo) as table:
            for line in table:
                fields = line.split()
                if " - " not in line or len(fields) < 5:
                    continue
                kind = line.split(" - ", 1)[1].split()[0]
                point = fields[4].replace("\\040", " ")
                if kind in _SYSTEM_FILE_SYSTEMS and not any(point == f or point.startswith(f + "/") for f in found):
                    found.add(point)
    except OSError:
        pass
    return tuple(sorted(found))


def writable_roots(off: tuple[str, ...] = FENCED_OFF) -> list[tuple[str, bool]]:
    """(path, is a directory) of the hierarchies an agent's process may write under: everything but ``/`` itself
    and ``off``: the other entries of ``/``, and of each directory above a path of ``off`` (new entries of such
    a directory may then not be made). Symbolic links are left out (what they lead to has its own path)."""
    found: list[tuple[str, bool]] = []

    def walk(directory: str) -> None:
        try:
            entries = list(os.scandir(directory))
        except OSError:
            return
        for entry in entries:
            path = entry.path
            if path in off or entry.is_symlink():
                continue
            try:
                is_dir = entry.is_dir(follow_symlinks=False)
            except OSError:
                continue
            if is_dir and any(o.startswith(path + "/") for o in off):
                walk(path)
            else:
                found.append((path, is_dir))

    walk("/")
    return found


def scope_signals() -> bool:
    """Put this process (and what it starts) in a Landlock domain of its own that scopes nothing but signals: it
    may signal only what it starts. The keeper's, before it forks the agent's half (whose fence then nests in
    it): ``kill(-1)`` from the keeper reaches every process below it and no other, however many times they
    changed pid or session. True when done."""
    if why_not_fenced() is not None:
        return False
    # (moving between directories is denied by every domain that does not grant it: granted under ``/``)
    return _restrict_self(_libc(), _REFER, [("/", _REFER)], strict=True) is None


def _restrict_self(libc: Any, handled: int, rules: Iterable[tuple[str, int]], strict: bool) -> str | None:
    """Set ``no_new_privs`` and enter a Landlock domain scoping signals, handling ``handled`` file-system rights
    and granting each ``(path, rights)`` of ``rules`` (a path that cannot be opened is left out; a rule the
    kernel refuses too, unless ``strict``). None when done; else why not."""
    import ctypes

    if libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        return f"prctl(PR_SET_NO_NEW_PRIVS): {os.strerror(ctypes.get_errno())}"
    attr = struct.pack("=QQQ", handled, 0, LANDLOCK_SCOPE_SIGNAL)  # (no network access handled)
    fd = libc.syscall(_CREATE_RULESET, attr, ctypes.c_size_t(len(attr)), ctypes.c_uint32(0))
    if fd < 0:
        return f"landlock_create_ruleset: {os.strerror(ctypes.get_errno())}"
    try:
        for path, rights in rules:
            try:
                beneath = os.open(path, os.O_PATH | os.O_CLOEXEC | os.O_NOFOLLOW)
            except OSError:
                continue
            try:
                rule = struct.pack("=Qi", rights, beneath)
                if libc.syscall(_ADD_RULE, ctypes.c_int(fd), ctypes.c_int(_RULE_PATH_BENEATH), rule,
                                ctypes.c_uint32(0)) != 0 and strict:
                    return f"landlock_add_rule({path}): {os.strerror(ctypes.get_errno())}"
            finally:
                os.close(beneath)
        if libc.syscall(_RESTRICT_SELF, ctypes.c_int(fd), ctypes.c_uint32(0)) != 0:
            return f"landlock_restrict_self: {os.strerror(ctypes.get_errno())}"
    finally:
        with contextlib.suppress(OSError):
            os.close(fd)
    return None


def fence_in() -> str | None:
    """Confine this process (call it while it has one thread: Landlock and seccomp bind the calling thread and
    what it starts later). None when done; else why not (no Linux, an older kernel, a failed call)."""
    dropped = None
    why = why_not_fenced()
    if sys.platform.startswith("linux"):
        from . import capabilities

        # (root's capabilities reach past the fence: see ``capabilities``; KILL kept under its signal scope only)
        dropped = capabilities.drop(_libc(), scoped=why is None)
    fenced = why if why is not None else _fence()  # (fenced in whether or not the capabilities were dropped)
    return "; ".join(reason for reason in (fenced, dropped) if reason) or None


def _fence() -> str | None:
    """Landlock and the seccomp filter (``fence_in``), whether or not the capabilities could be dropped."""
    from . import syscall_filter

    libc = _libc()
    rules = ((path, _WRITES if is_dir else _FILE_WRITES) for path, is_dir in writable_roots(fenced_off()))
    return _restrict_self(libc, _WRITES, rules, strict=False) or syscall_filter.install(libc)
