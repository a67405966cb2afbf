"""A process-wide change held while anyone needs it: made when the first holder enters, undone when the
last one leaves (nestable, and from several threads at once)."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

T = TypeVar("T")


class SharedHold(Generic[T]):
    """``make()`` returns what ``undo`` needs later, or None when there is nothing to undo."""

    def __init__(self, make: Callable[[], T | None], undo: Callable[[T], None]):
        self._make = make
        self._undo = undo
        self._lock = threading.Lock()
        self._holders = 0
        self._made: T | None = None

    @contextlib.contextmanager
    def __call__(self) -> Iterator[None]:
        with self._lock:
            self._holders += 1
            if self._holders == 1:
                self._made = self._make()
        try:
            yield
        finally:
            with self._lock:
                self._holders -= 1
                if self._holders == 0 and self._made is not None:
                    made, self._made = self._made, None
                    self._undo(made)
