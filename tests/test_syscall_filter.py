"""The isolated child's seccomp filter (``process/syscall_filter.py``) run by a small BPF interpreter written
here, for each architecture it knows: every call it must refuse, and what it must let through (the real filter
is exercised on this machine's own architecture by ``test_isolation.py``)."""

from __future__ import annotations

import struct

import pytest

from pytest_agentops.process.syscall_filter import _TABLES, program

ALLOW, DENY = 0x7FFF_0000, 0x0005_0001
TIOCSTI, TIOCSCTTY, FIONREAD = 0x5412, 0x540E, 0x541B


def run(instructions, nr: int, arch: int, *args: int) -> int:
    """What the filter returns for ``struct seccomp_data`` (nr, arch, instruction pointer 0, args)."""
    data = struct.pack("=iIQ6Q", nr, arch, 0, *(list(args) + [0] * (6 - len(args))))
    a, pc = 0, 0
    while True:
        code, jt, jf, k = instructions[pc]
        if code == 0x20:  # ld [k]
            (a,) = struct.unpack_from("=I", data, k)
            pc += 1
        elif code in (0x15, 0x35):  # jeq / jge #k
            taken = a == k if code == 0x15 else a >= k
            pc += 1 + (jt if taken else jf)
        elif code == 0x06:
            return k
        else:
            raise AssertionError(f"unknown instruction {code:#x}")


@pytest.mark.parametrize("machine", sorted(_TABLES))
def test_the_filter_refuses_what_acts_on_other_processes_and_lets_the_rest_through(machine):
    arch, nr = _TABLES[machine]
    code = program(machine)
    assert code is not None and all(jt < 256 and jf < 256 for _, jt, jf, _ in code)

    def verdict(name: str, *args: int) -> int:
        return run(code, nr[name], arch, *args)

    assert run(code, nr["ioctl"], arch ^ 1, 0, FIONREAD) == DENY  # (another architecture's calls)
    assert verdict("ptrace", 0) == DENY and verdict("vhangup") == DENY
    assert verdict("prlimit64", 0, 0, 0x7FFF_0000_1000) == ALLOW  # its own limits
    assert verdict("prlimit64", 4242, 0, 0) == ALLOW  # reading another's
    assert verdict("prlimit64", 4242, 0, 0x7FFF_0000_1000) == DENY
    assert verdict("prlimit64", 4242, 0, 1 << 40) == DENY  # (a pointer whose low 32 bits are 0)
    assert verdict("ioctl", 1, TIOCSTI, 0x1000) == DENY
    assert verdict("ioctl", 1, TIOCSCTTY, 1) == DENY and verdict("ioctl", 1, TIOCSCTTY, 0) == ALLOW
    assert verdict("ioctl", 1, FIONREAD, 0x1000) == ALLOW
    assert verdict("setpriority", 0, 0, 5) == ALLOW and verdict("setpriority", 0, 4242, 5) == DENY
    assert verdict("setpriority", 2, 0, 5) == DENY  # (PRIO_USER: every process of the user)
    assert verdict("ioprio_set", 1, 0, 4) == ALLOW and verdict("ioprio_set", 1, 4242, 4) == DENY
    assert verdict("ioprio_set", 3, 0, 4) == DENY  # (IOPRIO_WHO_USER)
    for name in ("sched_setparam", "sched_setscheduler", "sched_setaffinity", "sched_setattr"):
        assert verdict(name, 0) == ALLOW and verdict(name, 4242) == DENY
    read = {"x86_64": 0, "aarch64": 63}[machine]
    assert run(code, read, arch, 0, 0x1000, 10) == ALLOW
    if machine == "x86_64":
        assert run(code, 0x4000_0000 | nr["prlimit64"], arch, 4242, 0, 0x1000) == DENY  # (x32)


def test_no_filter_for_an_architecture_without_a_table():
    assert program("riscv64") is None
