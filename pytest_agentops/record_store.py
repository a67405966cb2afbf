"""``RecordStore``: a campaign's trial records kept as columns, read back as ``TrialRecord``s.

Why: a ``TrialRecord`` object with its maps and boxed numbers costs ~0.9 KiB; a campaign of 100,000 trials
kept 90 MiB that way (issue 15). Here a trial costs ~60-90 bytes: its whole numbers in one ``array`` row (as
narrow as they allow), its floats in another, and each of its strings, tuples and layer records as a code
into a table where equal values are kept once; a trace is kept only where there is one. A record is made
again when it is read (indexing, iterating): equal to the one stored, field for field, with the same repr and
report, so nothing downstream sees a difference.
"""

from __future__ import annotations

import dataclasses
from array import array
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from itertools import compress
from types import SimpleNamespace
from typing import Any, overload

from ._frozen import FrozenMap
from .errors import hide_own_frames
from .records import TrialRecord
from .trace_spill import SpilledTrace, TraceSpill

__tracebackhide__ = hide_own_frames

#: The whole-number fields, the float fields (two optional) and the coded fields of a row, in row order.
_INTS = ("index", "input_tokens", "output_tokens", "tool_calls", "tool_failures", "destructive_attempts",
         "unconfirmed_destructive", "blocked_calls")
_FLOATS = ("cost_usd", "duration_s", "escalated_at_s", "unrecovered_fault_s")
_CODED = ("scenario", "outcome", "reason", "faults", "violations", "output", "default_priced", "layers",
          "skeleton")
_FIELDS = tuple(f.name for f in dataclasses.fields(TrialRecord))
#: Each field's slot setter (``_set.index(record, 3)``), and the bare allocation: how ``_make`` builds a record.
_set = SimpleNamespace(**{name: getattr(TrialRecord, name).__set__ for name in _FIELDS})
_new = object.__new__
assert set(_FIELDS) == {*_INTS, *_FLOATS, *_CODED, "seed", "trace"}, "a TrialRecord field has no column"
_NI, _NF, _NC = len(_INTS), len(_FLOATS), len(_CODED)
_OUTCOME, _VIOLATIONS, _LAYERS = _CODED.index("outcome"), _CODED.index("violations"), _CODED.index("layers")
#: Values seen per coded field before equal ones stop being looked for (names an agent makes up, unique
#: outputs: past this they are still kept, only not shared).
_LOOKUP_MAX = 1 << 16
#: Classes whose equal instances are interchangeable (typed fields: equal means the same repr and report);
#: a layer record of another class (a user's layer) is shared only when it is the very same object.
_EXACT_MODULE = __name__.rpartition(".")[0] + "."


class _Table:
    """The distinct values of one coded field, each with its code (its position)."""

    __slots__ = ("by_id", "by_value", "values")

    def __init__(self) -> None:
        self.values: list[Any] = []
        self.by_id: dict[int, int] = {}  # id of a value in ``values`` (alive while the table is) -> code
        self.by_value: dict[Any, int] = {}  # exact values only (``_exact``) -> code

    def code(self, value: Any) -> int:
        found = self.by_id.get(id(value))
        if found is not None:
            return found
        exact = _exact(value)
        if exact:
            try:
                found = self.by_value.get(value)
            except TypeError:  # (a record holding something unhashable: shared by identity only)
                exact, found = False, None
            if found is not None:
                return found
        code = len(self.values)
        self.values.append(value)
        if len(self.by_id) < _LOOKUP_MAX:
            self.by_id[id(value)] = code
            if exact:
                self.by_value[value] = code
        return code


def _exact(value: Any) -> bool:
    """Whether a value equal to this one is the same to every reader (repr, report): strings, tuples of
    strings (and of the bool-ended event keys), layer maps of the package's own record classes. Not so
    for numbers (``1 == 1.0 == True``, ``0.0 == -0.0``), hence a value holding one is shared by identity."""
    kind = type(value)
    if kind is str:
        return True
    if kind is tuple:
        return all(type(v) is str or (type(v) is tuple and all(type(x) is str or type(x) is bool for x in v))
                   for v in value)
    if kind is FrozenMap:
        data = value._data  # (read directly: a Mapping view goes through __getitem__ for each value)
        classes = set(map(type, data.values()))
        return (classes <= _EXACT_CLASSES or all(map(_exact_class, classes))) and set(map(type, data)) <= _STR
    return False


_EXACT_CLASSES: set[type] = set()
_STR = {str}


def _exact_class(cls: type) -> bool:
    """Whether equal instances of ``cls`` are the same to every reader: the package's own record classes."""
    if cls.__module__.startswith(_EXACT_MODULE):
        _EXACT_CLASSES.add(cls)
        return True
    return False


#: The next wider type of an integer column: a column starts narrow and is widened when a value does not fit.
_WIDER = {"b": "h", "h": "i", "i": "q", "B": "H", "H": "I", "I": "Q"}


def _widened(column: array[int] | list[int], values: tuple[int, ...], size: int) -> array[int] | list[int]:
    """``column`` (cut back to ``size`` items) made as wide as ``values`` need, with them added: the next wider
    array type each time, a list past 64 bits (or for a negative code, which never happens)."""
    del column[size:]  # (an array extended from a tuple keeps the items before the one that did not fit)
    while isinstance(column, array) and column.typecode in _WIDER:
        column = array(_WIDER[column.typecode], column)
        try:
            column.extend(values)
            return column
        except OverflowError:
            del column[size:]
    column = list(column)
    column.extend(values)
    return column


class RecordStore(Sequence[TrialRecord]):
    """The trial records of a campaign, in launch order, kept as columns (``append`` while the campaign runs;
    ``freeze`` when its result is made). A ``Sequence`` of ``TrialRecord``: indexable, iterable, sized; equal
    to any sequence of equal records."""

    __slots__ = (
        "_codes",
        "_floats",
        "_frozen",
        "_ids",
        "_ints",
        "_kept_events",
        "_nones",
        "_odd",
        "_seeds",
        "_tables",
        "_traces",
        "_values",
    )

    def __init__(self, records: Iterable[TrialRecord] = ()):
        self._ints: array[int] | list[int] = array("b")  # _NI per row (widened as values need: ``_widened``)
        self._seeds: array[int] | list[int] = array("q")  # (then a list, for a seed beyond 64 bits)
        self._floats = array("d")  # _NF per row; an optional one that is None is 0.0 here, its bit set in _nones
        self._nones = bytearray()  # per row: bit 0 escalated_at_s is None, bit 1 unrecovered_fault_s is None
        self._codes: array[int] | list[int] = array("B")  # _NC per row (widened as codes grow)
        self._tables = tuple(_Table() for _ in _CODED)
        self._values = tuple(t.values for t in self._tables)
        self._ids = tuple(t.by_id for t in self._tables)
        # row -> its trace, where it has one (a ``SpilledTrace`` once moved out of memory: ``spill_traces``)
        self._traces: dict[int, tuple[Any, ...] | SpilledTrace] = {}
        self._kept_events = 0  # the events of those traces, in all
        self._odd: dict[int, TrialRecord] = {}  # row -> a record whose numbers have unusual types, kept whole
        self._frozen = False
        for record in records:
            self.append(record)

    @classmethod
    def of(cls, records: Iterable[TrialRecord]) -> RecordStore:
        """``records`` as a frozen store (the same store when it is one already)."""
        store = records if isinstance(records, RecordStore) else cls(records)
        store._frozen = True
        return store

    @property
    def frozen(self) -> bool:
        """Whether records can no longer be added (a campaign result's store)."""
        return self._frozen

    # -- writing ------------------------------------------------------------------------------------------
    def append(self, record: TrialRecord) -> None:
        """Add the next record (the store keeps its values, not the record)."""
        if self._frozen:
            raise TypeError("RecordStore is frozen: a campaign result's records do not change")
        r = record
        row = len(self._nones)
        esc, unrec = r.escalated_at_s, r.unrecovered_fault_s
        floats = (r.cost_usd, r.duration_s, 0.0 if esc is None else esc, 0.0 if unrec is None else unrec)
        ints = (r.index, r.input_tokens, r.output_tokens, r.tool_calls, r.tool_failures, r.destructive_attempts,
                r.unconfirmed_destructive, r.blocked_calls)
        seed = r.seed
        # (exact types only: an array would turn a bool count into 1, a whole-number cost into 1.0)
        if not (type(floats[0]) is type(floats[1]) is type(floats[2]) is type(floats[3]) is float
                and type(ints[0]) is type(ints[1]) is type(ints[2]) is type(ints[3]) is type(ints[4])
                is type(ints[5]) is type(ints[6]) is type(ints[7]) is type(seed) is int):
            self._odd[row] = record  # kept whole, as it is
            ints, floats, seed = (0,) * _NI, (0.0,) * _NF, 0
        try:
            self._ints.extend(ints)
        except OverflowError:
            self._ints = _widened(self._ints, ints, row * _NI)
        try:
            self._seeds.append(seed)
        except OverflowError:
            self._seeds = _widened(self._seeds, (seed,), row)
        self._floats.extend(floats)
        # a value seen before is most often the very same object (outcome names, shared tuples, ""): by id first;
        # a trial's layer records are its own objects, looked up by value
        ids = self._ids
        codes = [ids[0].get(id(r.scenario)), ids[1].get(id(r.outcome)), ids[2].get(id(r.reason)),
                 ids[3].get(id(r.faults)), ids[4].get(id(r.violations)), ids[5].get(id(r.output)),
                 ids[6].get(id(r.default_priced)), self._tables[7].code(r.layers), ids[8].get(id(r.skeleton))]
        if None in codes:
            for k, code in enumerate(codes):
                if code is None:
                    codes[k] = self._tables[k].code(getattr(r, _CODED[k]))
        try:
            self._codes.extend(codes)
        except OverflowError:
            self._codes = _widened(self._codes, codes, row * _NC)
        if r.trace:
            self._traces[row] = r.trace
            self._kept_events += len(r.trace)
        # last: the row exists from here on (an interrupt before it leaves a part of a row, which
        # ``truncate(len(store))`` removes)
        self._nones.append((esc is None) | (unrec is None) << 1)

    def truncate(self, n: int) -> None:
        """Keep the first ``n`` records only (a spend cap's stop may fall before trials already added)."""
        if self._frozen:
            raise TypeError("RecordStore is frozen: a campaign result's records do not change")
        n = min(n, len(self))
        del self._ints[n * _NI:], self._seeds[n:], self._floats[n * _NF:], self._nones[n:], self._codes[n * _NC:]
        for row in [row for row in (*self._traces, *self._odd) if row >= n]:
            self._kept_events -= len(self._traces.pop(row, ()))
            self._odd.pop(row, None)

    def spill_traces(self, spill: TraceSpill) -> int:
        """Move the traces the store holds in memory to ``spill`` (a session's temporary file): each is read back,
        equal, when its record is read. Returns the events moved. (Records kept whole, ``_odd``, and traces that
        hold values of other than plain types stay as they are: ``TraceSpill.put``.)"""
        rows = [row for row, trace in self._traces.items() if type(trace) is tuple and row not in self._odd]
        moved = 0
        for row, spilled in zip(rows, spill.put([self._traces[row] for row in rows]), strict=True):
            if spilled is not None:  # (None: not made of plain values, kept as it is)
                self._traces[row] = spilled
                moved += len(spilled)
        return moved

    @property
    def kept_events(self) -> int:
        """The events of the traces the store keeps, in all (``engine.trial.within_trace_budget``)."""
        return self._kept_events

    # -- reading ------------------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._nones)

    @overload
    def __getitem__(self, i: int) -> TrialRecord: ...

    @overload
    def __getitem__(self, i: slice) -> tuple[TrialRecord, ...]: ...

    def __getitem__(self, i: int | slice) -> TrialRecord | tuple[TrialRecord, ...]:
        n = len(self)
        if isinstance(i, slice):
            return tuple(self._row(j) for j in range(*i.indices(n)))
        j = i.__index__()
        if j < 0:
            j += n
        if not 0 <= j < n:
            raise IndexError("RecordStore index out of range")
        return self._row(j)

    def _row(self, j: int, traces: bool = True) -> TrialRecord:
        odd = self._odd.get(j)
        if odd is not None:
            return odd if traces else dataclasses.replace(odd, trace=())
        return self._make(self._ints[j * _NI:(j + 1) * _NI], self._seeds[j], self._floats[j * _NF:(j + 1) * _NF],
                          self._nones[j], self._codes[j * _NC:(j + 1) * _NC], self._trace(j) if traces else ())

    def _trace(self, j: int) -> tuple[Any, ...]:
        found = self._traces.get(j, ())
        return found if type(found) is tuple else found.load()

    def _make(self, ints: Sequence[int], seed: int, floats: Sequence[float], nones: int, codes: Sequence[int],
              trace: tuple[Any, ...]) -> TrialRecord:
        """The record of one row, its fields set directly (the values came from a record: nothing to check; a
        frozen dataclass's ``__init__`` costs twice as much)."""
        v = self._values
        r = _new(TrialRecord)
        _set.scenario(r, v[0][codes[0]])
        _set.index(r, ints[0])
        _set.seed(r, seed)
        _set.outcome(r, v[1][codes[1]])
        _set.reason(r, v[2][codes[2]])
        _set.input_tokens(r, ints[1])
        _set.output_tokens(r, ints[2])
        _set.cost_usd(r, floats[0])
        _set.tool_calls(r, ints[3])
        _set.tool_failures(r, ints[4])
        _set.destructive_attempts(r, ints[5])
        _set.unconfirmed_destructive(r, ints[6])
        _set.blocked_calls(r, ints[7])
        _set.escalated_at_s(r, None if nones & 1 else floats[2])
        _set.unrecovered_fault_s(r, None if nones & 2 else floats[3])
        _set.duration_s(r, floats[1])
        _set.faults(r, v[3][codes[3]])
        _set.violations(r, v[4][codes[4]])
        _set.output(r, v[5][codes[5]])
        _set.default_priced(r, v[6][codes[6]])
        _set.layers(r, v[7][codes[7]])
        _set.trace(r, trace)
        _set.skeleton(r, v[8][codes[8]])
        return r

    def __iter__(self) -> Iterator[TrialRecord]:
        return self._iter(True)

    def without_traces(self) -> Iterator[TrialRecord]:
        """Every record in order, each with an empty ``trace`` (``without_trace``): for a pass over them all
        that reads no trace."""
        return self._iter(False)

    def _iter(self, traces: bool) -> Iterator[TrialRecord]:
        rows = zip(_rows(self._ints, _NI), self._seeds, _rows(self._floats, _NF), self._nones, _rows(self._codes, _NC),
                   strict=True)
        traced, odd, make = self._traces if traces else {}, self._odd, self._make
        for j, (ints, seed, floats, nones, codes) in enumerate(rows):
            found = odd.get(j) if odd else None
            if found is not None:
                yield found if traces else dataclasses.replace(found, trace=())
                continue
            trace = traced.get(j, ())
            yield make(ints, seed, floats, nones, codes, trace if type(trace) is tuple else trace.load())

    def __reversed__(self) -> Iterator[TrialRecord]:
        for j in range(len(self) - 1, -1, -1):
            yield self._row(j)

    def column(self, name: str) -> Sequence[Any]:
        """One field of every record, in order (an ``array`` for the numbers without a None, a list otherwise):
        what a computation over all trials reads without making each record (``metrics.collect`` could)."""
        if self._odd:  # records with unusual number types: read from the records themselves
            return [getattr(r, name) for r in self._iter(name == "trace")]
        if name in _CODED:
            k = _CODED.index(name)
            return list(map(self._tables[k].values.__getitem__, self._codes[k::_NC]))
        if name in _INTS:
            k = _INTS.index(name)
            return self._ints[k::_NI]
        if name == "seed":
            return self._seeds[:]
        if name in ("cost_usd", "duration_s"):
            return self._floats[_FLOATS.index(name)::_NF]
        if name in _FLOATS:
            k = _FLOATS.index(name)
            bit = 1 if name == "escalated_at_s" else 2
            return [None if nones & bit else v for v, nones in zip(self._floats[k::_NF], self._nones, strict=True)]
        if name == "trace":
            return [self._trace(j) for j in range(len(self))]
        raise KeyError(f"TrialRecord has no field {name!r}")

    def coded(self, name: str) -> tuple[Sequence[int], list[Any]]:
        """A coded field (strings, tuples, ``layers``, ...) as (each record's code, the values the codes index):
        a value computed from the field is then computed once per distinct value, e.g. a layer's metric from
        ``layers`` (``[f(v) for v in values]``, then read through the codes)."""
        if name not in _CODED:
            raise KeyError(f"{name!r} is not a coded field of TrialRecord (one of {', '.join(_CODED)})")
        if self._odd:  # records with unusual number types: their values are coded like any other
            table = _Table()
            return array("Q", [table.code(getattr(r, name)) for r in self._iter(False)]), table.values
        k = _CODED.index(name)
        return self._codes[k::_NC], self._tables[k].values

    def grouped(self, *names: str) -> Iterator[tuple[TrialRecord, int]]:
        """The records as (record, how many it stands for), for a tally that reads only the named coded fields and
        the trace: each record with a trace (or with unusual number types) on its own, the others one per distinct
        combination of the named fields' values, the first of them standing for all (in the order they first
        come). A campaign of 100,000 trials is then tallied from a few hundred records."""
        ks = [_CODED.index(name) if name in _CODED else -1 for name in names]
        if -1 in ks:
            raise KeyError(f"{names[ks.index(-1)]!r} is not a coded field of TrialRecord (one of {', '.join(_CODED)})")
        columns = [self._codes[k::_NC] for k in ks]
        alone = self._traces.keys() | self._odd.keys()
        first: dict[tuple[int, ...], int] = {}  # the codes of a group -> its first row
        counts: Counter[tuple[int, ...]] = Counter()
        for j, key in enumerate(zip(*columns, strict=True)):
            if j in alone:
                continue
            if key not in first:
                first[key] = j
            counts[key] += 1
        groups = {row: counts[key] for key, row in first.items()}
        for j in sorted(alone | groups.keys()):
            yield self._row(j), groups.get(j, 1)

    def columns(self, *names: str) -> dict[str, Sequence[Any]]:
        """The named fields (every field when none is named) as ``column`` gives each."""
        return {name: self.column(name) for name in names or _FIELDS}

    def outcome_counts(self) -> Counter[str]:
        """How many records ended with each outcome (``CampaignResult.outcome_counts``), without making them."""
        if self._odd:
            return Counter(r.outcome for r in self._iter(False))
        values = self._tables[_OUTCOME].values
        return Counter({values[code]: count for code, count in Counter(self._codes[_OUTCOME::_NC]).items()})

    def not_ok(self) -> Iterator[TrialRecord]:
        """The records that did not pass (``TrialRecord.ok`` false), in order, the passing ones not made."""
        for j in self.not_ok_rows():
            yield self._row(j)

    def not_ok_rows(self) -> list[int]:
        """The positions of the records that did not pass, in order."""
        outcomes, violations = self._tables[_OUTCOME].values, self._tables[_VIOLATIONS].values
        bad = [outcomes[o] != "completed" or bool(violations[v])
               for o, v in zip(self._codes[_OUTCOME::_NC], self._codes[_VIOLATIONS::_NC], strict=True)]
        for row in self._odd:
            bad[row] = not self._odd[row].ok
        return list(compress(range(len(bad)), bad))

    def failing_traces(self) -> Sequence[TrialRecord]:
        """The records as a report reads them when it writes the failing trials' traces only: each passing one
        without its trace (which is then never read back from disk: ``spill_traces``)."""
        return _FailingTraces(self)

    def without_trace(self, j: int) -> TrialRecord:
        """The record at position ``j`` with an empty ``trace`` (and its ``skeleton`` as stored): what a choice
        among records reads (outcome, violations, numbers) without reading a trace back from disk."""
        return self._row(j, False)

    def layer_maps(self) -> list[FrozenMap[str, Any]]:
        """Every distinct ``layers`` mapping of the records (each once: what every layer recorded, for totals
        over the campaign such as the hosts refused)."""
        rows = [r.layers for r in self._odd.values()]
        used = set(self._codes[_LAYERS::_NC])
        return [m for code, m in enumerate(self._tables[_LAYERS].values) if code in used] + rows

    # -- a value ------------------------------------------------------------------------------------------
    def __eq__(self, other: object) -> bool:
        if not isinstance(other, (RecordStore, tuple, list)):
            return NotImplemented
        return len(self) == len(other) and all(a == b for a, b in zip(self, other, strict=True))

    def __hash__(self) -> int:
        return hash(tuple(self))

    def __repr__(self) -> str:
        counts = ", ".join(f"{k}={v}" for k, v in sorted(self.outcome_counts().items()))
        return f"RecordStore(n={len(self)}{', ' if counts else ''}{counts})"

    def __reduce__(self) -> tuple[Any, ...]:  # (identity codes do not survive pickling: rebuilt from the records)
        return _unpickle, (tuple(self),)

    def memory_bytes(self) -> int:
        """Bytes held by the columns themselves (not the distinct values or traces): for the benchmarks."""
        arrays = (self._ints, self._seeds, self._floats, self._codes)
        return sum(a.buffer_info()[1] * a.itemsize if isinstance(a, array) else 8 * len(a) for a in arrays) + \
            len(self._nones)


class _FailingTraces(Sequence[TrialRecord]):
    """``RecordStore.failing_traces``: the records, a passing one without its trace."""

    __slots__ = ("store",)

    def __init__(self, store: RecordStore):
        self.store = store

    def __len__(self) -> int:
        return len(self.store)

    def _at(self, j: int) -> TrialRecord:
        record = self.store._row(j, False)
        return record if record.ok else self.store._row(j)

    def __iter__(self) -> Iterator[TrialRecord]:  # (one pass over the columns, not a row at a time)
        for j, record in enumerate(self.store.without_traces()):
            yield record if record.ok else self.store._row(j)

    @overload
    def __getitem__(self, i: int) -> TrialRecord: ...

    @overload
    def __getitem__(self, i: slice) -> tuple[TrialRecord, ...]: ...

    def __getitem__(self, i: int | slice) -> TrialRecord | tuple[TrialRecord, ...]:
        rows = range(len(self.store))[i]  # (a negative index counts from the end; past it: IndexError)
        return self._at(rows) if isinstance(rows, int) else tuple(map(self._at, rows))


def _rows(column: Iterable[Any], width: int) -> Iterator[tuple[Any, ...]]:
    """A row-major column's rows, ``width`` values each."""
    return zip(*[iter(column)] * width, strict=True)


def _unpickle(records: tuple[TrialRecord, ...]) -> RecordStore:
    return RecordStore.of(records)

