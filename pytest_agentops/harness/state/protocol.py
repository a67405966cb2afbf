"""What every checkpoint backend offers (``CheckpointStore``), and the JSON-only rule for values.

A store maps string keys to JSON values inside one *namespace*. Values are JSON only (no pickle): what an
agent reads back is exactly what it wrote, on every backend, in this process or another one.
"""

from __future__ import annotations

import json
import math
from typing import Any, Protocol, runtime_checkable

from ...errors import CheckpointError, ConfigError, hide_own_frames

__tracebackhide__ = hide_own_frames


@runtime_checkable
class CheckpointStore(Protocol):
    """What every checkpoint backend offers the agent: JSON values under string keys, in one namespace."""

    namespace: str

    def save(self, key: str, value: Any) -> None:
        """Store ``value`` (JSON data) under ``key``, durably before returning."""

    def load(self, key: str, default: Any = None) -> Any:
        """The value under ``key``, or ``default`` when there is none."""

    def delete(self, key: str) -> None:
        """Remove ``key`` (no error when it is absent)."""

    def keys(self) -> list[str]:
        """The keys of this namespace, sorted."""

    def clear(self) -> None:
        """Remove every key of this namespace (and only this namespace)."""

    def namespaced(self, namespace: str) -> CheckpointStore:
        """A store for ``namespace`` on the same storage (same file, same server)."""

    def close(self) -> None:
        """Release the connection (a no-op for the in-memory store)."""


# --- JSON values only --------------------------------------------------------------------------------


def _check_json(value: Any, where: str) -> None:
    if value is None or isinstance(value, (bool, str, int)):
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise CheckpointError(f"{where}={value!r} must be JSON data: NaN and infinity are not JSON")
        return
    if isinstance(value, list):
        for i, item in enumerate(value):
            _check_json(item, f"{where}[{i}]")
        return
    if isinstance(value, dict):
        for k, item in value.items():
            if not isinstance(k, str):
                raise CheckpointError(f"{where} has key {k!r}: JSON object keys must be strings")
            _check_json(item, f"{where}[{k!r}]")
        return
    raise CheckpointError(f"{where}={value!r} must be JSON data (dict with str keys, list, str, int, float, "
                          f"bool or None), got {type(value).__name__}; checkpoints are JSON, never pickled")


_PLAIN = frozenset({str, int, bool, type(None)})


def _plainly_json(value: Any) -> bool:
    """Whether ``value`` is JSON data made of the exact built-in types (most checkpoints): checked without
    building the path of every element, which only ``_check_json`` needs, to name what is wrong (or to pass
    the subclasses of those types it accepts)."""
    cls = type(value)
    if cls in _PLAIN:
        return True
    if cls is float:
        return math.isfinite(value)
    if cls is list:
        return all(map(_plainly_json, value))
    if cls is dict:
        return all(type(k) is str for k in value) and all(map(_plainly_json, value.values()))
    return False


def encode(key: str, value: Any) -> str:
    """``value`` as JSON text, after checking ``key`` and that ``value`` round-trips unchanged."""
    check_key(key)
    try:
        plain = _plainly_json(value)
    except RecursionError:  # (deeper than its recursion takes: the full check decides, as deep as it goes)
        plain = False
    if not plain:
        _check_json(value, f"value of {key!r}")
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def check_key(key: Any) -> str:
    """``key`` if it is a non-empty string (what every backend takes as a key)."""
    if not isinstance(key, str) or not key:
        raise CheckpointError(f"key={key!r} must be a non-empty string")
    return key


def check_namespace(namespace: Any) -> str:
    if not isinstance(namespace, str) or not namespace:
        raise ConfigError(f"namespace={namespace!r} must be a non-empty string")
    return namespace


