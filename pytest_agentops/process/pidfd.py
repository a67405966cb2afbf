"""Which process a pidfd refers to (the signalling refusals, in pytest's process and in an isolated child's)."""

from __future__ import annotations

import os
from typing import Any

from ..errors import hide_own_frames

__tracebackhide__ = hide_own_frames

def pidfd_target(fd: Any) -> int | None:
    """The process a pidfd (``Pid:`` in its fdinfo) or an open ``/proc/PID`` directory refers to, if any."""
    try:
        with open(f"/proc/self/fdinfo/{int(fd)}") as info:
            for line in info:
                if line.startswith("Pid:"):
                    return int(line.split()[1])
        target = os.readlink(f"/proc/self/fd/{int(fd)}")
    except (OSError, ValueError, TypeError):
        return None
    head, _, pid = target.rpartition("/")
    return int(pid) if head == "/proc" and pid.isdigit() else None
