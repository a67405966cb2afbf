"""``TraceSpill``: an anonymous temporary file a pytest session moves its finished campaigns' kept traces to.

Why: a session keeps every campaign's records until its reports are written, at its end, and a campaign keeps up
to ``CAMPAIGN_TRACE_EVENTS`` trace events (~130 MiB of runaway loops); held in memory they added up campaign
after campaign (six such campaigns: 854 MiB). Moved here (``RecordStore.spill_traces``), a trace costs a small
``SpilledTrace`` in memory and is read back, equal event for event, whenever its record is read.

Only a trace made of exact plain values is moved (``marshal``'s, which calls no method of any object: strings,
numbers, ``None``, tuples, ``FrozenMap``\\ s of them); one holding anything else (a tool argument of the agent's
own ``int`` subclass, whose pickling could run the agent's code outside its trial) stays in memory. The file is a
``tempfile.TemporaryFile``: unlinked as it is made, so a killed run leaves nothing on disk; closed when the last
trace moved to it is gone.
"""

from __future__ import annotations

import marshal
import tempfile
import threading
import weakref
from collections.abc import Iterable
from typing import Any

from ._frozen import FrozenMap
from .errors import hide_own_frames
from .records import TraceEvent

__tracebackhide__ = hide_own_frames

_new = object.__new__
_SEQ, _T, _KIND, _NAME, _OUTCOME, _IN, _OUT, _DATA = (getattr(TraceEvent, name).__set__ for name in
                                                     TraceEvent.__slots__)
assert TraceEvent.__slots__ == ("seq", "t", "kind", "name", "outcome", "input_tokens", "output_tokens", "data")
#: the exact types a moved trace may hold besides tuples and ``FrozenMap``\ s (subclasses stay in memory)
_SCALARS = frozenset({str, int, float, bool, type(None)})


class _NotPlain(Exception):
    """A trace holds a value ``marshal`` would not write as it is: the trace stays in memory."""


def _value(value: Any) -> Any:
    """A frozen value as ``marshal`` writes it: a ``FrozenMap`` as a dict (a trace's data holds no dict of its
    own: ``freeze`` made every mapping a ``FrozenMap``), tuples and frozensets of scalars as they are."""
    cls = type(value)
    if cls in _SCALARS:
        return value
    if cls is FrozenMap:
        out = {}
        for key, item in value._data.items():
            if type(key) not in _SCALARS:
                raise _NotPlain
            out[key] = item if type(item) in _SCALARS else _value(item)
        return out
    if cls is tuple:
        return tuple([_value(item) for item in value])
    if cls is frozenset and all(type(item) in _SCALARS for item in value):
        return value
    raise _NotPlain


def _frozen(value: Any) -> Any:
    """``_value``'s inverse."""
    cls = type(value)
    if cls is dict:
        kept = _new(FrozenMap)
        kept._data = {key: item if type(item) in _SCALARS else _frozen(item) for key, item in value.items()}
        kept._hash = None
        return kept
    if cls is tuple:
        return tuple([_frozen(item) for item in value])
    return value


def _fields(event: Any) -> tuple[Any, ...]:
    if type(event) is not TraceEvent:
        raise _NotPlain
    fields = (event.seq, event.t, event.kind, event.name, event.outcome, event.input_tokens, event.output_tokens)
    if not all(type(f) in _SCALARS for f in fields):
        raise _NotPlain
    return (*fields, _value(event.data))


def _event(seq: int, t: float, kind: str, name: str, outcome: str, input_tokens: int, output_tokens: int,
           data: Any) -> TraceEvent:
    """A ``TraceEvent`` of its fields' values, set directly (they came from one)."""
    event = _new(TraceEvent)
    _SEQ(event, seq)
    _T(event, t)
    _KIND(event, kind)
    _NAME(event, name)
    _OUTCOME(event, outcome)
    _IN(event, input_tokens)
    _OUT(event, output_tokens)
    _DATA(event, _frozen(data))
    return event


class TraceSpill:
    """Appends traces to one temporary file and reads them back (thread-safe)."""

    __slots__ = ("__weakref__", "_end", "_file", "_lock")

    def __init__(self) -> None:
        # (unbuffered: a write that fails leaves nothing pending, which the next read would try to write first)
        self._file = tempfile.TemporaryFile(prefix="agentops-traces-", buffering=0)  # noqa: SIM115 (``finalize``)
        self._lock = threading.Lock()
        self._end = 0
        weakref.finalize(self, self._file.close)  # (closed with the last trace that refers to it)

    def put(self, traces: Iterable[tuple[Any, ...]]) -> list[SpilledTrace | None]:
        """Write ``traces`` (tuples of events) to the file: what stands for each in memory, None for one that is
        not made of plain values (it stays as it is). An ``OSError`` (a full disk) leaves those not written yet
        as they are too."""
        out: list[SpilledTrace | None] = []
        with self._lock:
            self._file.seek(self._end)
            for trace in traces:
                try:
                    blob = marshal.dumps(tuple([_fields(event) for event in trace]))
                except (_NotPlain, ValueError, RecursionError):
                    out.append(None)
                    continue
                view, at = memoryview(blob), 0
                while at < len(blob):  # (unbuffered: a failed write leaves nothing pending for a later read)
                    at += self._file.write(view[at:])
                out.append(SpilledTrace(self, self._end, len(blob), len(trace)))
                self._end += len(blob)
            self._file.flush()
        return out

    def read(self, offset: int, length: int) -> tuple[Any, ...]:
        """The trace written at ``offset`` (``length`` bytes)."""
        with self._lock:
            self._file.seek(offset)
            blob = self._file.read(length)
        if len(blob) != length:
            raise OSError(f"the session's trace file ended {length - len(blob)} bytes early at offset {offset}")
        return tuple([_event(*fields) for fields in marshal.loads(blob)])

    @property
    def size(self) -> int:
        """Bytes written so far."""
        return self._end


class SpilledTrace:
    """A trace in a ``TraceSpill``: ``load()`` reads it back; ``len`` is its number of events."""

    __slots__ = ("events", "length", "offset", "spill")

    def __init__(self, spill: TraceSpill, offset: int, length: int, events: int):
        self.spill = spill
        self.offset = offset
        self.length = length
        self.events = events

    def __len__(self) -> int:
        return self.events

    def load(self) -> tuple[Any, ...]:
        return self.spill.read(self.offset, self.length)

    def __repr__(self) -> str:
        return f"SpilledTrace(events={self.events}, bytes={self.length})"
