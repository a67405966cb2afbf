"""``repr`` as a trial's record and its fault keys need it: the same text in every process.

Python's own ``repr`` differs from process to process in two ways a record must not: a default ``repr`` shows
the object's memory address (`` at 0x7f...``), and a set lists its members in string-hash order, which
changes with ``PYTHONHASHSEED`` (random unless set). ``stable_repr`` is ``repr`` with the addresses left out
and every set's members in the order of their own texts, also where the set sits inside a list, a dict, a
tuple, a named tuple, a dataclass (its generated ``repr``), a pydantic model (pydantic's ``repr``) or one of the
standard library's containers (``defaultdict``, ``OrderedDict``, ``Counter``, ``deque``, ``SimpleNamespace``;
not a ``mappingproxy``, whose mapping is read only through its own methods). Other
objects' own ``repr`` methods are used as they are (addresses left out): a set inside one of those still shows
in hash order. For values of builtin types without sets (and strings inside, as they are) the text is exactly
``repr``'s.
"""

from __future__ import annotations

import collections
import dataclasses
import re
import sys
import types
from typing import Any

from .errors import hide_own_frames

__tracebackhide__ = hide_own_frames

_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")
_PYDANTIC_RECURSION = re.compile(r"(<Recursion on .+?) with id=\d+>")  # (pydantic's marker of a model in itself)
_LEAVES = frozenset({str, int, float, bool, type(None), bytes, complex})


def exact_str(text: str) -> str:
    """``text`` as an exact ``str``: of a subclass (an agent's own), its characters, without asking any method of
    the subclass. What a record or trace keeps is exact: an agent's ``str`` kept there would have its methods run
    by the reports after its trial, and print differently in process and under pytest-xdist."""
    return text if type(text) is str else str.__str__(text)


#: characters a terminal acts on rather than shows: C0 controls but the tab, DEL and the C1 controls
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f-\x9f]")


def printable(text: str) -> str:
    """``text`` (an agent's words: an exception's text, an escalation's reason, a tool's result) as one line a
    terminal or a CI log shows and does not act on: its control characters written as escapes (``\x1b``,
    ``\n``), so that it cannot move the cursor, retitle the window or start a line of its own (a CI log's
    ``::error::`` workflow command)."""
    if not _CONTROL.search(text):
        return text
    return _CONTROL.sub(lambda m: {"\n": "\\n", "\r": "\\r"}.get(m.group(), f"\\x{ord(m.group()):02x}"), text)


def without_addresses(text: str) -> str:
    """``text`` (an object's ``repr``) without the memory addresses a default ``repr`` shows (`` at 0x7f...``):
    they differ run to run, and a trial's record must not."""
    return _ADDRESS.sub("", text) if " at 0x" in text else text


def stable_repr(value: Any) -> str:
    """``repr(value)`` with sets in a fixed order and no addresses in the ``repr`` of objects (module
    docstring). What ``repr`` raises (a hostile ``__repr__``) propagates; a value nested too deep for this
    walk (it takes a few frames per level where ``repr`` takes one) is shown by ``repr``, addresses left out."""
    if type(value) in _LEAVES:
        return repr(value)
    try:
        return _shown(value, set())
    except RecursionError:
        return without_addresses(repr(value))


def _generated_repr(cls: type) -> bool:
    """Whether ``cls`` is a dataclass whose ``repr`` is the one ``dataclasses`` wrote (its own is used as is)."""
    params = getattr(cls, "__dataclass_params__", None)
    if params is None or not params.repr:
        return False
    method = cls.__dict__.get("__repr__")
    method = getattr(method, "__wrapped__", method)
    return "__create_fn__" in getattr(method, "__qualname__", "")


def _pydantic_repr(cls: type) -> bool:
    """Whether ``cls`` is a pydantic model (v2) whose ``repr`` is pydantic's own (a model's own is used as is;
    pydantic is not imported for this: a model exists only where it was)."""
    pydantic = sys.modules.get("pydantic")
    base = getattr(pydantic, "BaseModel", None)
    return base is not None and issubclass(cls, base) and cls.__repr__ is base.__repr__


def _kind(value: Any, cls: type) -> Any:
    """How ``_shown`` walks ``value``: its builtin container type, ``namedtuple``, ``dataclass``, ``pydantic``,
    or None (its own ``repr``). A class is never walked (a model class has the attributes of its instances)."""
    if cls in (list, tuple, dict, set, frozenset) or cls in _STDLIB:
        return cls
    if isinstance(value, type):
        return None
    if isinstance(value, tuple) and getattr(cls.__repr__, "__code__", None) is _NAMEDTUPLE_REPR:
        return "namedtuple"
    if _generated_repr(cls):
        return "dataclass"
    return "pydantic" if _pydantic_repr(cls) else None


#: the standard library's containers walked as well (their exact classes, whose ``repr`` is the one they define)
_STDLIB = frozenset({collections.defaultdict, collections.OrderedDict, collections.Counter, collections.deque,
                     types.SimpleNamespace})
#: what ``repr`` writes for a container met again inside itself (each guards itself: ``Py_ReprEnter``)
_AGAIN = {list: "[...]", dict: "{...}", tuple: "(...)", "dataclass": "...", collections.deque: "[...]",
          collections.OrderedDict: "...", collections.defaultdict: "...", types.SimpleNamespace: "namespace(...)"}
#: ``OrderedDict``'s ``repr`` lists its items as a dict from Python 3.12, as a list of pairs before
_ORDERED_AS_DICT = repr(collections.OrderedDict(a=1)).startswith("OrderedDict({")


def _shown(value: Any, path: set[int]) -> str:
    cls = type(value)
    if cls in _LEAVES or cls.__repr__ in (str.__repr__, bytes.__repr__):  # (a str subclass: its text as it is)
        return repr(value)
    kind = _kind(value, cls)
    if kind is None:
        if isinstance(value, (set, frozenset)) and cls.__repr__ in (set.__repr__, frozenset.__repr__):
            # (a set's own ``repr`` lists it through the subclass's ``__iter__``, in one C call: an endless one
            # grew the process until the kernel killed it; the built-in iteration, in members' order, as a set's)
            members = _set_members(value, set if isinstance(value, set) else frozenset, path)
            return f"{cls.__name__}({members})" if value else f"{cls.__name__}()"
        if isinstance(value, _ITERATED_BY_REPR) and _iteration_overridden(cls):
            # (the same for a deque, OrderedDict or Counter of a class that iterates itself its own way: read as the
            # built-in type holds it; one that keeps the built-in iteration shows its own ``repr``, as before)
            if isinstance(value, collections.deque):
                return _deque_text(cls.__name__, value, path)
            return f"{cls.__name__}({{{_items(dict(dict.items(value)), path)}}})"
        return without_addresses(repr(value))
    guarded = kind in _AGAIN  # (as ``repr``: a named tuple or a model is not guarded, the list inside it is)
    if guarded:
        if id(value) in path:
            return _AGAIN[kind]
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
            members = _set_members(value, cls, path)
            return members if cls is set else f"frozenset({members})"
        if cls in _STDLIB:
            return _shown_stdlib(value, cls, path)
        if kind == "namedtuple":
            return f"{cls.__name__}(" + ", ".join(f"{name}={_shown(v, path)}"
                                                 for name, v in zip(cls._fields, value, strict=False)) + ")"
        if kind == "dataclass":
            return f"{cls.__qualname__}(" + ", ".join(
                f"{f.name}={_shown(getattr(value, f.name), path)}" for f in dataclasses.fields(value) if f.repr) + ")"
        args = ", ".join(_shown(v, path) if name is None else f"{name}={_shown(v, path)}"
                         for name, v in value.__repr_args__())
        return _PYDANTIC_RECURSION.sub(r"\1>", f"{value.__repr_name__()}({args})")
    finally:
        if guarded:
            path.discard(id(value))


#: containers whose own ``repr`` reads them through their class's iteration (``__iter__``, ``keys``, ``items``)
_ITERATED_BY_REPR = (collections.deque, collections.OrderedDict, collections.Counter)


def _iteration_overridden(cls: type) -> bool:
    """Whether ``cls`` (a subclass of one of ``_ITERATED_BY_REPR``) iterates itself otherwise than its base."""
    base = next(b for b in _ITERATED_BY_REPR if issubclass(cls, b))
    return any(getattr(cls, name, None) is not getattr(base, name, None)
               for name in ("__iter__", "keys", "items", "most_common"))


def _set_members(value: Any, base: type, path: set[int]) -> str:
    """``{...}`` of a set's members in the order of their texts, read through ``base``'s own iteration (a subclass's
    ``__iter__`` is not asked)."""
    return "{" + ", ".join(sorted(_shown(v, path) for v in base.__iter__(value))) + "}"


def _deque_text(name: str, value: Any, path: set[int]) -> str:
    """``name([...])`` of a deque (with its ``maxlen``), read through the deque's own iteration."""
    members = ", ".join(_shown(v, path) for v in collections.deque.__iter__(value))
    return f"{name}([{members}])" if value.maxlen is None else f"{name}([{members}], maxlen={value.maxlen})"


def _items(value: Any, path: set[int]) -> str:
    return ", ".join(f"{_shown(k, path)}: {_shown(v, path)}" for k, v in value.items())


def _shown_stdlib(value: Any, cls: type, path: set[int]) -> str:
    """``repr`` of a standard library container (``_STDLIB``), its values walked as ``_shown`` walks them."""
    if cls is collections.defaultdict:
        return f"defaultdict({_shown(value.default_factory, path)}, {{{_items(value, path)}}})"
    if cls is collections.OrderedDict:
        if not value:
            return "OrderedDict()"
        if _ORDERED_AS_DICT:
            return f"OrderedDict({{{_items(value, path)}}})"
        return "OrderedDict([" + ", ".join(f"({_shown(k, path)}, {_shown(v, path)})" for k, v in value.items()) + "])"
    if cls is collections.Counter:
        if not value:
            return "Counter()"
        try:
            items = value.most_common()  # (its own order: by count, then as inserted)
        except TypeError:  # (counts that do not compare: as inserted, as its ``repr`` shows them then)
            return f"Counter({{{_items(value, path)}}})"
        return "Counter({" + ", ".join(f"{_shown(k, path)}: {_shown(v, path)}" for k, v in items) + "})"
    if cls is collections.deque:
        return _deque_text("deque", value, path)
    return "namespace(" + ", ".join(f"{k}={_shown(v, path)}" for k, v in vars(value).items()) + ")"


#: the code of every named tuple's generated ``__repr__`` (one ``def`` in ``collections``, a function per class)
_NAMEDTUPLE_REPR = collections.namedtuple("_Probe", "x").__repr__.__code__


_EXACT = (list, tuple, dict, set, frozenset)


def exact_containers(value: Any) -> Any:
    """``value`` with every list, tuple, dict, set and frozenset of a subclass (an agent's own) made an exact one
    of the same items, read through the built-in type's own iteration, not the subclass's: the encoder then asks
    no method of the agent's (a list whose ``__iter__`` never ends made the JSON encoder grow the process in one
    C call, which nothing interrupts, until the kernel killed pytest). Exact containers holding none are kept as
    they are (the same object)."""
    cls = type(value)
    if cls is str or cls is int or cls is float or cls is bool or value is None:
        return value
    if not isinstance(value, _EXACT):
        return value
    if isinstance(value, dict):
        items = [(exact_containers(k), exact_containers(v)) for k, v in dict.items(value)]
        if cls is dict and all(k is k0 and v is v0 for (k, v), (k0, v0) in zip(items, dict.items(value),
                                                                                strict=True)):
            return value
        return dict(items)
    base = next(b for b in _EXACT if isinstance(value, b))
    members = [exact_containers(v) for v in base.__iter__(value)]
    if cls is base and all(m is v for m, v in zip(members, base.__iter__(value), strict=True)):
        return value
    return base(members) if base is not list else members
