"""A campaign a pytest-xdist worker spooled (``spool.put_campaign``), as the controller reads it: the campaign's
report data at once, its records from the file when a report reads them (8 bytes kept per record: where its line
starts). Imported only when a worker spooled a campaign."""

from __future__ import annotations

import errno
import json
from array import array
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..errors import hide_own_frames
from ..report.lazy_records import LazyRecords

__tracebackhide__ = hide_own_frames


class SpooledRecords(LazyRecords):
    """The records of a campaign a worker spooled (``put_campaign``), read from its file when a report reads
    them (the controller keeps each record's offset in the file: 8 bytes)."""

    __slots__ = ("_offsets", "path")

    def __init__(self, path: Path, offsets: array[int]):
        self.path = path
        self._offsets = offsets

    def __len__(self) -> int:
        return len(self._offsets)

    def _item(self, row: int) -> dict[str, Any]:
        return next(self._lines(row, 1))

    def _block(self, start: int, count: int) -> list[dict[str, Any]]:
        return list(self._lines(start, count))  # (one seek)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return self._lines(0, len(self._offsets))

    def _lines(self, start: int, count: int) -> Iterator[dict[str, Any]]:
        if count <= 0:
            return
        with open(self.path, "rb") as fh:
            fh.seek(self._offsets[start])
            for _ in range(count):
                line = fh.readline()
                try:
                    yield json.loads(line)
                except ValueError:  # (damage from outside: an error naming the file, as an unreadable one gets)
                    raise OSError(errno.EIO, "a spooled campaign record is damaged", str(self.path)) from None

    def __repr__(self) -> str:
        return f"SpooledRecords({self.path.name!r}, {len(self)} records)"


def spooled_campaign(file: Path) -> list[Any]:
    """``[nodeid, data]`` of a campaign file (``put_campaign``): its records read when they are read. A file cut
    short raises ``ValueError`` (``take`` leaves it out, and the report lists its test as missing)."""
    offsets: array[int] = array("q")
    with open(file, "rb") as fh:
        nodeid, data, has_records = json.loads(fh.readline())
        at = fh.tell()
        line = b"\n"
        for line in fh:
            offsets.append(at)
            at += len(line)
    if not line.endswith(b"\n"):  # cut short (written whole, then renamed: only damage from outside does this)
        raise ValueError(f"{file}: the spooled campaign ends in the middle of a record")
    if has_records:
        data["records"] = SpooledRecords(file, offsets)
    return [nodeid, data]
