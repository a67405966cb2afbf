"""Deeply frozen containers for results and settings: immutable, hashable, with a readable repr.

``FrozenMap`` is a read-only mapping that hashes by its items (a ``MappingProxyType`` does not hash, so a
frozen dataclass holding one could not be hashed). ``freeze`` turns plain data (dicts, lists, sets) into
frozen data all the way down; ``thaw`` turns it back into plain JSON-ready data.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator, Mapping
from typing import Any, TypeVar

from .errors import hide_own_frames

__tracebackhide__ = hide_own_frames

K = TypeVar("K")
V = TypeVar("V")
T = TypeVar("T")


class FrozenMap(Mapping[K, V]):
    """An immutable mapping (insertion order kept); hashable when its values are."""

    __slots__ = ("_data", "_hash")

    def __init__(self, data: Mapping[K, V] | Any = (), /, **kwargs: V):
        self._data: dict[K, V] = dict(data, **kwargs)
        self._hash: int | None = None

    def __getitem__(self, key: K) -> V:
        return self._data[key]

    def __iter__(self) -> Iterator[K]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __contains__(self, key: object) -> bool:
        return key in self._data

    def get(self, key: K, default: Any = None) -> Any:  # faster than Mapping's, called per trial
        return self._data.get(key, default)

    def __hash__(self) -> int:
        if self._hash is None:
            self._hash = hash(frozenset(self._data.items()))
        return self._hash

    def __eq__(self, other: object) -> bool:
        if isinstance(other, FrozenMap):
            return self._data == other._data
        if isinstance(other, Mapping):
            return self._data == dict(other.items())
        return NotImplemented

    def __repr__(self) -> str:
        return repr(self._data)

    def __reduce__(self) -> tuple[Any, ...]:
        return FrozenMap, (self._data,)

    def __or__(self, other: Mapping[K, V]) -> FrozenMap[K, V]:
        return FrozenMap({**self._data, **other})


EMPTY: FrozenMap[Any, Any] = FrozenMap()


class Shared(dict):  # type: ignore[type-arg]
    """Equal frozen values kept once, by a key that says what makes them equal (a campaign's layer records:
    most trials end with one equal to an earlier trial's). ``get(key)`` (a dict's) gives the value kept, ``add``
    keeps one. Bounded: past ``limit`` keys a value is given back without being kept (keys made of what agents
    do must not grow it for ever)."""

    __slots__ = ("limit",)

    def __init__(self, limit: int = 4096):
        super().__init__()
        self.limit = limit

    def add(self, key: Any, value: T) -> T:
        """Keep ``value`` for ``key`` (unless full) and return the value kept: an equal one another thread kept
        first wins."""
        if len(self) < self.limit:
            return self.setdefault(key, value)  # type: ignore[no-any-return]
        return value


def freeze(value: Any) -> Any:
    """Plain data made immutable all the way down: dict -> FrozenMap, list/tuple -> tuple, set -> frozenset."""
    if isinstance(value, FrozenMap):
        return value
    if isinstance(value, Mapping):
        return FrozenMap({k: freeze(v) for k, v in value.items()})
    if isinstance(value, (list, tuple)):
        return tuple(freeze(v) for v in value)
    if isinstance(value, (set, frozenset)):
        return frozenset(freeze(v) for v in value)
    return value


def thaw(value: Any) -> Any:
    """Frozen data back to plain JSON-ready data: mappings -> dict, tuples/lists -> list."""
    if isinstance(value, Mapping):
        return {k: thaw(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [thaw(v) for v in value]
    return value


def slot_maker(cls: type[T]) -> Callable[..., T]:
    """A keyword constructor of the frozen, slotted dataclass ``cls`` for the harness's hot path: it sets the
    instance's slots directly, where the dataclass's ``__init__`` goes through ``object.__setattr__`` field
    by field and then ``__post_init__`` (2-3x the cost; ~6 us for a ``TrialRecord``). Every field must be
    given, in its final form: nothing is converted or checked (``__post_init__`` is not called)."""
    names = [f.name for f in dataclasses.fields(cls)]  # type: ignore[arg-type]
    if set(names) != set(getattr(cls, "__slots__", ())):
        raise TypeError(f"slot_maker({cls.__name__}): a dataclass with slots=True and no other slots is needed")
    if any(name.startswith("_slot_maker_") for name in names):
        raise TypeError(f"slot_maker({cls.__name__}): a field's name starts with _slot_maker_ (the maker's own)")
    scope: dict[str, Any] = {"_slot_maker_new": object.__new__, "_slot_maker_cls": cls}
    # (each slot's descriptor; the maker's own names cannot be a field's)
    scope.update((f"_slot_maker_set_{name}", getattr(cls, name).__set__) for name in names)
    body = "".join(f"    _slot_maker_set_{name}(_slot_maker_made, {name})\n" for name in names)
    exec(f"def make(*, {', '.join(names)}):\n    _slot_maker_made = _slot_maker_new(_slot_maker_cls)\n{body}"
         "    return _slot_maker_made\n", scope)
    make = scope["make"]
    make.__qualname__ = make.__name__ = f"make_{cls.__name__}"
    make.__doc__ = f"A {cls.__name__} of the given fields (``slot_maker``)."
    return make  # type: ignore[no-any-return]
