"""The process's umask, read without being set where the system allows it, and files written as ordinary ones.

Reading the umask with ``os.umask`` means setting it (to 0, then back): another thread creating a file in
between gets it world-writable. Linux shows it in ``/proc/self/status``; elsewhere the set-and-reset remains.
"""

from __future__ import annotations

import os

from ..errors import hide_own_frames

__tracebackhide__ = hide_own_frames


def shown_umask() -> int | None:
    """The umask as the system shows it, without setting it (None where it does not: not Linux)."""
    try:
        with open("/proc/self/status", "rb") as status:
            for line in status:
                if line.startswith(b"Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    return None


def current_umask() -> int:
    """The umask: as shown, else read by setting it and putting it back."""
    shown = shown_umask()
    if shown is not None:
        return shown
    mask = os.umask(0)
    os.umask(mask)
    return mask


def as_ordinary_file(path: str | os.PathLike[str]) -> None:
    """Give a file made by ``tempfile.mkstemp`` (mode 0600) the mode an ordinary new file gets (0666 less the
    umask), before it is moved into place."""
    os.chmod(path, 0o666 & ~current_umask())
