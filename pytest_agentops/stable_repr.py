"""``repr`` as a trial's record and its fault keys need it: the same text in every process.

Python's own ``repr`` differs from process to process in two ways a record must not: a default ``repr`` shows
the object's memory address (`` at 0x7f...``), and a set lists its members in string-hash order, which
changes with ``PYTHONHASHSEED`` (random unless set). ``stable_repr`` is ``repr`` with the addresses left out
and every set's members in the order of their own texts, also where the set sits inside a list, a dict, a
tuple, a named tuple, a dataclass (its generated ``repr``) or a pydantic model. Other objects' own ``repr``
methods are used as they are: a set inside one of those still shows in hash order. For plain values the text
is exactly ``repr``'s.
"""

from __future__ import annotations

import collections
import dataclasses
import re
from typing import Any

from .errors import hide_own_frames

__tracebackhide__ = hide_own_frames

_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")
_LEAVES = frozenset({str, int, float, bool, type(None), bytes, complex})


def without_addresses(text: str) -> str:
    """``text`` (an object's ``repr``) without the memory addresses a default ``repr`` shows (`` at 0x7f...``):
    they differ run to run, and a trial's record must not."""
    return _ADDRESS.sub("", text) if " at 0x" in text else text


def stable_repr(value: Any) -> str:
    """``repr(value)`` without addresses and with sets in a fixed order (module docstring). What ``repr``
    raises (a hostile ``__repr__``) propagates."""
    if type(value) in _LEAVES:
        return repr(value)
    return without_addresses(_shown(value, set()))


def _generated_repr(cls: type) -> bool:
    """Whether ``cls`` is a dataclass whose ``repr`` is the one ``dataclasses`` wrote (its own is used as is)."""
    params = getattr(cls, "__dataclass_params__", None)
    if params is None or not params.repr:
        return False
    method = cls.__dict__.get("__repr__")
    method = getattr(method, "__wrapped__", method)
    return "__create_fn__" in getattr(method, "__qualname__", "")


def _shown(value: Any, path: set[int]) -> str:
    cls = type(value)
    if cls in _LEAVES:
        return repr(value)
    named = isinstance(value, tuple) and getattr(cls.__repr__, "__code__", None) is _NAMEDTUPLE_REPR
    kind = (cls if cls in (list, tuple, dict, set, frozenset) else
            "namedtuple" if named else
            "dataclass" if _generated_repr(cls) else
            "pydantic" if hasattr(value, "__repr_args__") and hasattr(value, "__repr_name__") else None)
    if kind is None:
        return repr(value)
    if id(value) in path:  # (a value that holds itself: as ``repr`` writes it)
        return "[...]" if cls is list else "{...}" if cls is dict else "..."
    path.add(id(value))
    try:
        if cls is list:
            return "[" + ", ".join(_shown(v, path) for v in value) + "]"
        if cls is tuple:
            return "(" + ", ".join(_shown(v, path) for v in value) + (",)" if len(value) == 1 else ")")
        if cls is dict:
            return "{" + ", ".join(f"{_shown(k, path)}: {_shown(v, path)}" for k, v in value.items()) + "}"
        if cls is set or cls is frozenset:
            if not value:
                return f"{cls.__name__}()"
            members = "{" + ", ".join(sorted(_shown(v, path) for v in value)) + "}"
            return members if cls is set else f"frozenset({members})"
        if kind == "namedtuple":
            return f"{cls.__name__}(" + ", ".join(f"{name}={_shown(v, path)}"
                                                 for name, v in zip(cls._fields, value, strict=False)) + ")"
        if kind == "dataclass":
            return f"{cls.__qualname__}(" + ", ".join(
                f"{f.name}={_shown(getattr(value, f.name), path)}" for f in dataclasses.fields(value) if f.repr) + ")"
        args = ", ".join(_shown(v, path) if name is None else f"{name}={_shown(v, path)}"
                         for name, v in value.__repr_args__())
        return f"{value.__repr_name__()}({args})"
    finally:
        path.discard(id(value))


#: the code of every named tuple's generated ``__repr__`` (one ``def`` in ``collections``, a function per class)
_NAMEDTUPLE_REPR = collections.namedtuple("_Probe", "x").__repr__.__code__
