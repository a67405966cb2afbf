"""``ProcessPatch``: a process-wide change held while anyone needs it, and the inventory of all of them.

A patch is made when its first holder enters and undone when its last holder leaves (nestable, and from
several threads at once). Every patch registers itself in ``INVENTORY`` under its name, so that the whole
set of changes a campaign can make to the interpreter is listed in one place and a test can check that
none is left installed (``installed()``).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from typing import Any, Generic, TypeVar

from ..errors import hide_own_frames

__tracebackhide__ = hide_own_frames

T = TypeVar("T")

#: name -> patch, for every process-wide change pytest-agentops can make
INVENTORY: dict[str, ProcessPatch[Any]] = {}


class ProcessPatch(Generic[T]):
    """``make()`` does the change and returns what ``undo`` needs later (None: nothing to undo)."""

    def __init__(self, name: str, make: Callable[[], T | None], undo: Callable[[T], None], *, what: str = ""):
        registered = INVENTORY.get(name)
        if registered is not None and registered.holders:  # (one not held is replaced: its module imported again,
            # as after pytester's in-process run restores ``sys.modules`` and a later run imports the module anew)
            raise ValueError(f"process patch {name!r} is already registered, and held")
        self.name = name
        self.what = what
        self._make = make
        self._undo = undo
        self._lock = threading.RLock()
        self._holders = 0
        self._made: T | None = None
        INVENTORY[name] = self

    @property
    def holders(self) -> int:
        """How many holders are inside the patch right now."""
        return self._holders

    @property
    def lock(self) -> threading.RLock:
        """Held while the patch is made or undone (and by anyone who must not race with that)."""
        return self._lock

    def acquire(self) -> None:
        """Enter: the first holder makes the change (if making it raises, nothing is held)."""
        with self._lock:
            if self._holders == 0:
                self._made = self._make()
            self._holders += 1

    def release(self) -> None:
        """Leave: the last holder undoes the change."""
        with self._lock:
            if self._holders <= 0:
                raise RuntimeError(f"process patch {self.name!r} released more often than acquired")
            self._holders -= 1
            if self._holders == 0:
                made, self._made = self._made, None
                if made is not None:
                    self._undo(made)

    @contextlib.contextmanager
    def __call__(self) -> Iterator[None]:
        self.acquire()
        try:
            yield
        finally:
            self.release()

    def __repr__(self) -> str:
        return f"<ProcessPatch {self.name} holders={self._holders}>"


def installed() -> list[str]:
    """The names of the patches held right now (empty between campaigns)."""
    return [name for name, patch in INVENTORY.items() if patch.holders]
