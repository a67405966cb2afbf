"""``TraceSpill``: an anonymous temporary file a pytest session moves its finished campaigns' kept traces to.

Why: a session keeps every campaign's records until its reports are written, at its end, and a campaign keeps up
to ``CAMPAIGN_TRACE_EVENTS`` trace events (~130 MiB of runaway loops); held in memory they added up campaign
after campaign (six such campaigns: 854 MiB). Moved here (``RecordStore.spill_traces``), a trace costs a small
``SpilledTrace`` in memory and is read back, equal event for event, whenever its record is read. The file is a
``tempfile.TemporaryFile``: unlinked as it is made, so a killed run leaves nothing on disk, and closed when the
last trace moved to it is gone.
"""

from __future__ import annotations

import io
import pickle
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
    _DATA(event, data)
    return event


def _frozen_map(data: dict[Any, Any]) -> FrozenMap[Any, Any]:
    """A ``FrozenMap`` over ``data`` (a dict unpickling just made: nobody else holds it)."""
    kept = _new(FrozenMap)
    kept._data = data
    kept._hash = None
    return kept


# how events and their frozen data are written: a tuple of values each, remade without running their
# constructors (pickle's default for a slotted frozen dataclass costs ~4 us an event to read back)
_DISPATCH = {TraceEvent: lambda e: (_event, (e.seq, e.t, e.kind, e.name, e.outcome, e.input_tokens, e.output_tokens,
                                             e.data)),
             FrozenMap: lambda m: (_frozen_map, (m._data,))}


class TraceSpill:
    """Appends traces to one temporary file and reads them back (thread-safe)."""

    __slots__ = ("__weakref__", "_end", "_file", "_lock")

    def __init__(self) -> None:
        self._file = tempfile.TemporaryFile(prefix="agentops-traces-")  # noqa: SIM115  (closed by ``finalize``)
        self._lock = threading.Lock()
        self._end = 0
        weakref.finalize(self, self._file.close)  # (closed with the last trace that refers to it)

    def put(self, traces: Iterable[tuple[Any, ...]]) -> list[SpilledTrace]:
        """Write ``traces`` (tuples of events) to the file; what stands for each of them in memory."""
        out = []
        with self._lock:
            self._file.seek(self._end)
            for trace in traces:
                buffer = io.BytesIO()
                pickler = pickle.Pickler(buffer, protocol=pickle.HIGHEST_PROTOCOL)
                pickler.dispatch_table = _DISPATCH
                pickler.dump(trace)
                blob = buffer.getvalue()
                self._file.write(blob)
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
        return pickle.loads(blob)  # (written by this process, in this session: see the module's docstring)

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
