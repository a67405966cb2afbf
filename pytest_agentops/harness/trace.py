"""The trace of one trial as it is written: ordered events (``records.TraceEvent``) with virtual time, tokens
and outcome, secrets redacted (``harness.secrets``: secret shapes, the environment's secret values, the
values of secret-named keys).

Events carry only values that are a pure function of the trial seed (virtual time, never wall time),
so the same seed gives the same trace and a replayed trial can be compared event by event.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator, Mapping
from typing import Any

from .._frozen import FrozenMap, freeze
from ..records import TraceEvent
from .secrets import REDACTED, SECRET_KEY, redact, redact_text

__all__ = ["REDACTED", "Trace", "redact"]


def _plain(value: Any) -> Any:
    """A JSON-friendly, deterministic rendering of an event payload value."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        items = [_plain(v) for v in value]
        return sorted(items, key=repr) if isinstance(value, (set, frozenset)) else items
    if hasattr(value, "item") and callable(value.item):  # numpy scalars
        return value.item()
    text = redact_text(repr(value))  # (an object's repr may show a secret it holds)
    return re.sub(r" at 0x[0-9a-f]+", "", text)  # object addresses differ run to run


_secret_keys: dict[str, bool] = {}  # key -> whether it names a secret (a cache: the same few keys recur)


def _scrub(value: Any) -> Any:
    """``freeze(_plain(redact(value)))`` in one pass, with fast paths for the plain values events mostly
    carry: the result is deeply frozen (mappings as ``FrozenMap``, sequences as tuples)."""
    cls = type(value)
    if cls is str:
        return redact_text(value)
    if value is None or cls is int or cls is float or cls is bool:
        return value
    if cls is dict:
        out = {}
        for k, v in value.items():
            if type(k) is str:
                secret = _secret_keys.get(k)
                if secret is None:
                    secret = bool(SECRET_KEY.search(k))
                    if len(_secret_keys) < 4096:
                        _secret_keys[k] = secret
                out[k] = REDACTED if secret else _scrub(v)
            else:
                out[str(k)] = freeze(_plain(redact(v)))
        return FrozenMap(out)
    if cls is list or cls is tuple:
        return tuple(_scrub(v) for v in value)
    return freeze(_plain(redact(value)))


class Trace:
    """Append-only event log of one trial; thread-safe; closed when the trial ends."""

    def __init__(self, now: Any = None):
        self._now = now or (lambda: 0.0)
        self._events: list[TraceEvent] = []
        self._lock = threading.Lock()
        self._closed = False

    def add(self, kind: str, name: str = "", outcome: str = "ok", /, *, input_tokens: int = 0,
            output_tokens: int = 0, **data: Any) -> TraceEvent | None:
        """Record an event (secrets redacted); ignored once the trial is over (an abandoned agent thread)."""
        with self._lock:
            if self._closed:
                return None
            event = TraceEvent(len(self._events), float(self._now()), kind, name, outcome,
                               int(input_tokens), int(output_tokens), _scrub(data))
            self._events.append(event)
            return event

    def close(self) -> tuple[TraceEvent, ...]:
        """Stop recording and return the events."""
        with self._lock:
            self._closed = True
            return tuple(self._events)

    @property
    def closed(self) -> bool:
        return self._closed

    def events(self, kind: str | None = None) -> list[TraceEvent]:
        """The events so far, optionally only those of one kind."""
        with self._lock:
            return [e for e in self._events if kind is None or e.kind == kind]

    def __iter__(self) -> Iterator[TraceEvent]:
        return iter(self.events())

    def __len__(self) -> int:
        return len(self._events)
