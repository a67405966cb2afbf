"""Checkpoint stores the agent saves its progress to, so that a restarted agent can resume."""

from __future__ import annotations

import copy
import threading
from typing import Any


class MemoryStore:
    """An in-process checkpoint store (keys to deep-copied values)."""

    def __init__(self) -> None:
        self._data: dict[str, Any] = {}
        self._lock = threading.Lock()

    def save(self, key: str, value: Any) -> None:
        """Store a checkpoint under ``key`` (a copy, so later mutation does not leak in)."""
        with self._lock:
            self._data[key] = copy.deepcopy(value)

    def load(self, key: str, default: Any = None) -> Any:
        """The checkpoint under ``key``, or ``default``."""
        with self._lock:
            return copy.deepcopy(self._data.get(key, default))

    def delete(self, key: str) -> None:
        with self._lock:
            self._data.pop(key, None)

    def keys(self) -> list[str]:
        with self._lock:
            return sorted(self._data)
