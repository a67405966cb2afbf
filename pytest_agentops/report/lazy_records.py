"""A campaign's ``records`` in its report data made when read, never all held: the sequences every report
(JSON, HTML, OpenTelemetry, the terminal) walks like the plain list of the same dicts (``campaign_data.RecordDicts``
for a campaign of this process, the plugin's spooled records for one a pytest-xdist worker ran). Light: the
plugin's spool imports it in every session."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any, overload

from ..errors import hide_own_frames

__tracebackhide__ = hide_own_frames


class LazyRecords(Sequence[dict[str, Any]]):
    """A campaign's ``records`` in its report data, each made when it is read and not kept (``RecordDicts``, a
    pytest-xdist worker's spooled campaign): a report walks them without ever holding them all. Equal to a list
    of the same dicts."""

    __slots__ = ()

    def __len__(self) -> int:
        raise NotImplementedError

    def _item(self, row: int) -> dict[str, Any]:
        """The record at ``row`` (0 <= row < len)."""
        raise NotImplementedError

    def _block(self, start: int, count: int) -> list[dict[str, Any]]:
        """The ``count`` records from ``start`` on (as the report writers read them: a block at a time)."""
        return [self._item(row) for row in range(start, start + count)]

    @overload
    def __getitem__(self, index: int) -> dict[str, Any]: ...
    @overload
    def __getitem__(self, index: slice) -> list[dict[str, Any]]: ...
    def __getitem__(self, index: int | slice) -> dict[str, Any] | list[dict[str, Any]]:
        rows = range(len(self))[index]  # (a negative index counts from the end; one past it: IndexError)
        if isinstance(rows, int):
            return self._item(rows)
        return self._block(rows.start, len(rows)) if rows.step == 1 else [self._item(row) for row in rows]

    def lean(self) -> Sequence[dict[str, Any]]:
        """The same records for a reader that does not read their ``extra`` (the HTML report): without it where
        leaving it out saves work (``RecordDicts``), else these very records."""
        return self

    def traceless(self) -> Sequence[dict[str, Any]]:
        """The same records for a reader that reads no trace (the HTML report's table of trials): without them
        where leaving them out saves work (``RecordDicts``), else these very records."""
        return self

    def __eq__(self, other: object) -> bool:
        if self is other:
            return True
        return isinstance(other, (list, LazyRecords)) and list(self) == list(other)  # (as a list: not a tuple)

    __hash__ = None  # type: ignore[assignment]


class MappedRecords(LazyRecords):
    """``fn`` of each of ``records``, made when read (``json_form`` of lazy records)."""

    __slots__ = ("fn", "records")

    def __init__(self, records: Sequence[dict[str, Any]], fn: Callable[[dict[str, Any]], dict[str, Any]]):
        self.records = records
        self.fn = fn

    def __len__(self) -> int:
        return len(self.records)

    def _item(self, row: int) -> dict[str, Any]:
        return self.fn(self.records[row])

    def _block(self, start: int, count: int) -> list[dict[str, Any]]:
        return list(map(self.fn, self.records[start:start + count]))

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return map(self.fn, self.records)

    def __repr__(self) -> str:
        return f"MappedRecords({self.records!r}, {getattr(self.fn, '__name__', self.fn)})"
