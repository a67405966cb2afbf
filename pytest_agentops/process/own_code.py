"""The harness's own code, kept as it was for the length of a campaign: an in-process agent that reassigns one of
this package's functions or methods (``Trial._judge`` to a function that passes every trial) is found when its
campaign ends, the code is put back, and the campaign raises ``HarnessChanged`` instead of giving verdicts.

What is compared: every function and class in the modules of this package loaded when the campaign starts, the
functions, properties and class and static methods of this package's classes, and each function's code object.
Numbers, texts and containers in module namespaces are the harness's own bookkeeping and change as it runs.
An agent determined to reach the harness (``ctypes``, a function's closure, ``gc``) still can: only
``isolation="process"`` keeps an agent out of the process that judges it.
"""

from __future__ import annotations

import contextlib
import operator
import sys
import threading
from collections.abc import Iterator
from types import FunctionType, ModuleType
from typing import Any

from ..errors import HarnessChanged, hide_own_frames

__tracebackhide__ = hide_own_frames

_PACKAGE = __name__.split(".")[0]
_PREFIX = _PACKAGE + "."
_KINDS = (FunctionType, type, property, classmethod, staticmethod)
_MISSING = object()

_CODE = operator.attrgetter("__code__")
# bound now: an agent's ``operator.is_not = ...`` / ``builtins.any = ...`` must not blind the look
_IS_NOT, _GETITEM, _ANY, _MAP = operator.is_not, operator.getitem, any, map
_MODULE_DICT = ModuleType.__dict__["__dict__"].__get__  # the real namespaces, whatever ``__dict__`` a
_CLASS_DICT = type.__dict__["__dict__"].__get__  # swapped ``__class__`` or metaclass claims


def _namespace(owner: Any) -> Any:
    """The namespace ``owner``'s code lives in: a class's own (a live mapping proxy), a module's ``__dict__``."""
    if isinstance(owner, type):
        return _CLASS_DICT(owner)
    return _MODULE_DICT(owner) if isinstance(owner, ModuleType) else vars(owner)


class Snapshot(list):
    """(namespace owner, attribute name, value, the value's code object or None) of each piece of code kept, and
    the same as flat tuples for ``unchanged``: each piece's namespace (a module's ``__dict__``, a class's live
    mapping proxy), name and value, and the functions with their code objects."""

    __slots__ = ("_codes", "_functions", "_names", "_namespaces", "_values")

    def __init__(self, kept: list[tuple[Any, str, Any, Any]]):
        super().__init__(kept)
        namespaces: dict[int, Any] = {}
        self._namespaces = tuple(namespaces.setdefault(id(owner), _namespace(owner)) for owner, *_ in kept)
        self._names = tuple(attribute for _owner, attribute, _value, _code in kept)
        self._values = tuple(value for _owner, _attribute, value, _code in kept)
        self._functions = tuple(value for _owner, _attribute, value, code in kept if code is not None)
        self._codes = tuple(code for _owner, _attribute, _value, code in kept if code is not None)

    def unchanged(self) -> bool:
        """Whether every piece of code kept is still in its place, with its code object: the same answer as a look
        at each (``put_back``), in two C-level passes (a campaign's start and end looked at some 3,500-5,000 pieces
        one by one: 6 ms of a one-trial campaign's 19-24 ms, ``bench_campaign_fixed.py``)."""
        try:
            if _ANY(_MAP(_IS_NOT, _MAP(_GETITEM, self._namespaces, self._names), self._values)):
                return False
        except KeyError:  # (one was deleted)
            return False
        return not _ANY(_MAP(_IS_NOT, _MAP(_CODE, self._functions), self._codes))


def _ours(name: str) -> bool:
    return name == _PACKAGE or name.startswith(_PREFIX)


def snapshot() -> Snapshot:
    """The package's code as it is now."""
    kept: list[tuple[Any, str, Any, Any]] = []
    for name, module in list(sys.modules.items()):
        if module is None or not _ours(name):
            continue
        for attribute, value in list(_namespace(module).items()):
            if isinstance(value, _KINDS):
                kept.append((module, attribute, value, getattr(value, "__code__", None)))
                if isinstance(value, type) and value.__module__ == name:
                    for member, inner in list(_namespace(value).items()):
                        if isinstance(inner, _KINDS) and not isinstance(inner, type):
                            kept.append((value, member, inner, getattr(inner, "__code__", None)))
    return Snapshot(kept)


def _where(owner: Any, attribute: str) -> str:
    return f"{getattr(owner, '__module__', None) or owner.__name__}.{owner.__qualname__}.{attribute}" \
        if isinstance(owner, type) else f"{owner.__name__}.{attribute}"


def _replaced(owner: Any, attribute: str, value: Any) -> bool:
    return _namespace(owner).get(attribute, _MISSING) is not value


def _recoded(value: Any, code: Any) -> bool:
    return code is not None and value.__code__ is not code


def put_back(kept: Snapshot) -> list[str]:
    """Put back what changed since ``kept`` was taken; the names of what did (in the order found)."""
    changed: list[str] = []
    if kept.unchanged():
        return changed
    for owner, attribute, value, code in kept:
        if _replaced(owner, attribute, value):
            with contextlib.suppress(AttributeError, TypeError):
                setattr(owner, attribute, value)
            changed.append(_where(owner, attribute))
        elif _recoded(value, code):
            value.__code__ = code
            changed.append(_where(owner, attribute) + ".__code__")
    return changed


def _fresh() -> Snapshot:
    """``snapshot()``, or the last one taken when it is still the package's code (the same modules loaded and each
    piece of code the same object): comparing (``Snapshot.unchanged``) costs a small part of looking again."""
    global _last, _last_modules
    modules = len([name for name in list(sys.modules) if _ours(name)])
    last = _last
    if last is None or modules != _last_modules or not last.unchanged():
        last = _last = snapshot()
        _last_modules = modules
    return last


_last: Snapshot | None = None  # the last snapshot taken, and the number of the package's modules loaded then
_last_modules = 0
_lock = threading.Lock()
_kept: Snapshot | None = None  # the code as it was when the first of the campaigns running started
_running: list[list[str]] = []  # the ``found`` list of each campaign running


@contextlib.contextmanager
def own_code_kept(found: list[str]) -> Iterator[None]:
    """For the block (a campaign): the package's code as it was when the first of the campaigns running
    started is put back as each of them ends, and what had changed is appended to the ``found`` list of every
    campaign still running (each of them ran with it; the caller raises ``HarnessChanged``). Campaigns that
    overlap share that first look: a campaign started while another's trial had changed the code does not take
    the change for the harness's."""
    global _kept
    with _lock:
        if not _running:
            _kept = _fresh()
        _running.append(found)
    try:
        yield
    finally:
        with _lock:
            assert _kept is not None
            changed = put_back(_kept)
            for running in _running:
                running.extend(name for name in changed if name not in running)
            _running[:] = [running for running in _running if running is not found]  # (by identity: [] == [])
            if not _running:
                _kept = None


def harness_changed(changed: list[str]) -> HarnessChanged:
    """The error of a campaign during which the harness's own code changed."""
    shown = ", ".join(changed[:5]) + (f" and {len(changed) - 5} more" if len(changed) > 5 else "")
    return HarnessChanged(f"the campaign's trials changed the harness's own code ({shown}): put back, and the "
                          "campaign's results are not given, as they may not be the harness's judgement; an agent "
                          "that must not reach the harness runs with isolation='process'")
