"""``MemoryStore``: checkpoints in this process (they do not survive its death)."""

from __future__ import annotations

import json
import threading
from typing import Any

from ...errors import hide_own_frames
from .protocol import check_key, check_namespace, encode

__tracebackhide__ = hide_own_frames


class MemoryStore:
    """An in-process checkpoint store: JSON text per key, per namespace, shared by its ``namespaced`` views."""

    def __init__(self, namespace: str = "default", *, _data: dict[str, dict[str, str]] | None = None,
                 _lock: Any = None) -> None:
        self.namespace = check_namespace(namespace)
        self._data: dict[str, dict[str, str]] = {} if _data is None else _data  # namespace -> key -> JSON
        self._lock = _lock or threading.Lock()

    def save(self, key: str, value: Any) -> None:
        """Store a checkpoint under ``key`` (as JSON text, so later mutation does not leak in)."""
        text = encode(key, value)
        with self._lock:
            self._data.setdefault(self.namespace, {})[key] = text

    def load(self, key: str, default: Any = None) -> Any:
        """The checkpoint under ``key``, or ``default``."""
        check_key(key)
        with self._lock:
            text = self._data.get(self.namespace, {}).get(key)
        return default if text is None else json.loads(text)

    def delete(self, key: str) -> None:
        """Remove ``key`` (no error when it is absent)."""
        check_key(key)
        with self._lock:
            self._data.get(self.namespace, {}).pop(key, None)

    def keys(self) -> list[str]:
        """The keys of this namespace, sorted."""
        with self._lock:
            return sorted(self._data.get(self.namespace, {}))

    def clear(self) -> None:
        """Remove every key of this namespace (and only this namespace)."""
        with self._lock:
            self._data.pop(self.namespace, None)

    def namespaced(self, namespace: str) -> MemoryStore:
        """A store for ``namespace`` on the same storage."""
        return MemoryStore(namespace, _data=self._data, _lock=self._lock)

    def close(self) -> None:
        """Nothing to release: the data lives as long as the store."""

    def __repr__(self) -> str:
        return f"<MemoryStore namespace={self.namespace!r} keys={len(self.keys())}>"


