"""Plain data as JSON text, the way ``json.dumps(value, indent=2, sort_keys=True, allow_nan=False)`` writes it,
byte for byte, written in pieces to a file as it goes.

Why: with an indent, the standard library's encoder is its pure-Python generator chain, which made writing
the report of a 2,000-trial campaign cost as much as running it. This writer handles what reports hold
(dicts, lists, tuples, strings, numbers, booleans, None; list subclasses are iterated, so a lazy list streams
its items) with one direct recursion, and hands ``write`` a piece at a time of about 64 KiB. A list with a
``json_pieces(newline)`` method gives its own text, in pieces (``json_report``'s records: ``json_records``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from json.encoder import encode_basestring_ascii  # type: ignore[attr-defined]
from typing import Any

from ..errors import hide_own_frames

__tracebackhide__ = hide_own_frames

_FLUSH = 1 << 16


def _key(key: Any) -> str:
    """A mapping key as ``json`` turns it into a string (``skipkeys`` off)."""
    if isinstance(key, str):
        return key
    if isinstance(key, float):
        return _float(key)
    if key is True:
        return "true"
    if key is False:
        return "false"
    if key is None:
        return "null"
    if isinstance(key, int):
        return int.__repr__(key)
    raise TypeError(f"keys must be str, int, float, bool or None, not {type(key).__name__}")


def _float(value: float) -> str:
    if math.isnan(value) or math.isinf(value):
        raise ValueError(f"Out of range float values are not JSON compliant: {value!r}")
    return float.__repr__(value)


class _Writer:
    __slots__ = ("_pieces", "_size", "_write")

    def __init__(self, write: Callable[[str], Any]):
        self._write = write
        self._pieces: list[str] = []
        self._size = 0

    def flush(self) -> None:
        self._write("".join(self._pieces))
        self._pieces.clear()
        self._size = 0

    def value(self, value: Any, newline: str) -> None:
        """Append ``value`` at the nesting whose line starts are ``newline`` (a newline and the indent)."""
        pieces = self._pieces
        if isinstance(value, str):
            pieces.append(encode_basestring_ascii(value))
        elif value is None:
            pieces.append("null")
        elif value is True:
            pieces.append("true")
        elif value is False:
            pieces.append("false")
        elif isinstance(value, int):
            pieces.append(int.__repr__(value))
        elif isinstance(value, float):
            pieces.append(_float(value))
        elif isinstance(value, (list, tuple)):
            written = getattr(value, "json_pieces", None)
            if written is not None:  # a list that writes its own text (``json_report``: a campaign's records)
                self.flush()  # then its pieces, each as it comes (large: not joined again)
                for piece in written(newline):
                    self._write(piece)
                return
            if not value:
                pieces.append("[]")
                return
            inner = newline + "  "
            separator = "[" + inner
            for item in value:
                pieces.append(separator)
                separator = "," + inner
                self.value(item, inner)
                if len(pieces) > 4096:  # (a long list: its items go out as they are written)
                    self.flush()
                    pieces = self._pieces
            pieces.append(newline + "]")
        elif isinstance(value, dict):
            if not value:
                pieces.append("{}")
                return
            inner = newline + "  "
            separator = "{" + inner
            for key, item in sorted(value.items()):
                pieces.append(separator + encode_basestring_ascii(_key(key)) + ": ")
                separator = "," + inner
                self.value(item, inner)
            pieces.append(newline + "}")
        else:
            raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def write_json(value: Any, write: Callable[[str], Any]) -> None:
    """Write ``value`` as ``json.dumps(value, indent=2, sort_keys=True, allow_nan=False)`` would give it."""
    writer = _Writer(write)
    writer.value(value, "\n")
    writer.flush()
