"""``IsolationUnfenced``: said once per process when an isolated agent's process runs without the kernel's fence
(``process.confine``): before the first child, from the kernel's answer, and from a child that could not fence
itself in for another reason (a failed call, an architecture without a system call table)."""

from __future__ import annotations

import sys
import warnings

from ...errors import IsolationUnfenced, hide_own_frames

__tracebackhide__ = hide_own_frames

_UNFENCED_WARNED: list[str] = []


def warn_if_unfenced() -> None:
    """``say_unfenced`` when this machine's kernel cannot fence an isolated agent's process in (``process.confine``),
    before its first child starts (a child that fails to fence itself in for another reason says so itself)."""
    from ...process.confine import why_not_fenced

    if not _UNFENCED_WARNED:
        why = why_not_fenced()
        if why is None:
            _UNFENCED_WARNED.append("")  # (fenced: a child's own word may still come)
        else:
            say_unfenced(why)


def say_unfenced(why: str) -> None:
    """Once per process: ``IsolationUnfenced``, saying ``why`` (isolation then refuses by name only what reaches
    pytest); shown at the first line outside this package (the test's ``run_campaign``), where there is one."""
    if any(_UNFENCED_WARNED):
        return
    _UNFENCED_WARNED.append(why)
    level, frame = 1, sys._getframe(0)
    while frame.f_back is not None and frame.f_globals.get("__name__", "").startswith("pytest_agentops"):
        frame, level = frame.f_back, level + 1
    warnings.warn(IsolationUnfenced(
        f"isolation='process' without the kernel's fence ({why}): an isolated agent's ctypes, a fresh posix module "
        "or a shell's kill can still signal pytest or change its limits (docs/harness.md, \"Hostile agents and "
        "process isolation\")"), stacklevel=level)
