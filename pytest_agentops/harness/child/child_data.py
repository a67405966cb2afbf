"""What the test process takes from an agent's child process: data, never code (``data_loads``).

A child's message is unpickled by ``_DataUnpickler``, which builds objects but calls no function other than the
few that rebuild values (``copyreg``'s, numpy's, typing's generics, an enum's member by name) and builds no class
of a module that acts on the system (files, processes, sockets, threads, code), importing nothing but a submodule
of a package loaded already. An agent's output whose ``__reduce__`` was ``(exec, (code,))`` ran that code in
pytest's process, where it reached the trial's world and passed a check it never earned.
"""

from __future__ import annotations

import array
import codecs
import copyreg
import enum
import functools
import io
import operator
import pickle
import re
import sys
import types
from typing import Any

from ...errors import hide_own_frames

__tracebackhide__ = hide_own_frames

#: Modules (and packages: a dotted entry, that module and below) whose classes a child's message may not name:
#: constructing them acts on the system (opens files, starts processes or threads, binds sockets, maps memory,
#: makes code) or reaches the harness.
_NOT_DATA = frozenset({
    "os", "posix", "nt", "sys", "subprocess", "io", "_io", "socket", "_socket", "ssl", "_ssl", "select",
    "selectors", "mmap", "signal", "threading", "_thread", "multiprocessing", "concurrent", "asyncio", "ctypes",
    "_ctypes", "types", "functools", "_functools", "operator", "_operator", "importlib", "pkgutil", "zipimport",
    "runpy", "code", "codeop", "pickle", "_pickle", "marshal", "gc", "weakref", "_weakref", "atexit",
    "builtins", "shutil", "tempfile", "zipfile", "tarfile", "gzip", "bz2", "lzma", "zlib", "shelve", "dbm",
    "sqlite3", "_sqlite3", "logging", "fileinput", "mailbox", "wave", "aifc", "sunau", "webbrowser", "http.server",
    "ftplib", "smtplib", "poplib", "imaplib", "telnetlib", "socketserver", "xmlrpc", "wsgiref", "pty", "tty",
    "termios", "fcntl", "resource", "pdb", "bdb", "trace", "profile", "cProfile", "timeit", "unittest",
    "pytest", "_pytest", "pluggy", "pytest_agentops", "faulthandler", "readline",
    "curses", "tkinter", "turtle", "venv", "ensurepip", "distutils", "setuptools", "pip", "site", "sysconfig",
    "doctest", "pydoc", "idlelib", "lib2to3",
})
#: The classes of ``builtins`` a message may build (the others make code, wrap calls or open files), and of the
#: modules above those that are plain data.
_BUILTIN_DATA = frozenset({dict, list, tuple, set, frozenset, str, bytes, bytearray, int, float, complex, bool,
                           slice, range, object, type(None), type(NotImplemented), type(Ellipsis),
                           types.SimpleNamespace})


def _not_data(module: str) -> bool:
    """Whether ``module`` is one of ``_NOT_DATA`` or below one."""
    parts = module.split(".")
    return any(".".join(parts[:i]) in _NOT_DATA for i in range(1, len(parts) + 1))


def _loaded(module: str) -> Any:
    """``module`` as loaded here; a submodule of a package loaded here (and outside ``_NOT_DATA``) is imported (an
    agent's ``pydantic_ai.messages``, imported lazily in its own process); None for any other."""
    found = sys.modules.get(module)
    if found is None and "." in module and module.split(".")[0] in sys.modules and not _not_data(module):
        import importlib

        try:
            found = importlib.import_module(module)
        except Exception:
            return None
    return found


def _enum_member(cls: Any, name: Any) -> Any:
    """``getattr`` as a message may call it: an enum's member by its name (how enums pickle), nothing else (a
    bound method, ``Path(...).write_text``, would act; a function's ``__globals__`` would reach everything)."""
    if isinstance(cls, type) and issubclass(cls, enum.Enum) and isinstance(name, str) and not name.startswith("_"):
        return getattr(cls, name)
    zoneinfo = sys.modules.get("zoneinfo")
    if zoneinfo is not None and cls is zoneinfo.ZoneInfo and name == "_unpickle":
        return cls._unpickle  # (a datetime's time zone)
    raise pickle.UnpicklingError("getattr: the test process takes an enum's member by its name, nothing else")


def _type_of(value: Any) -> type:
    """``type`` as a message may call it: the type of ``None``, ``...`` or ``NotImplemented`` (how those pickle)."""
    if value is None or value is Ellipsis or value is NotImplemented:
        return type(value)
    raise pickle.UnpicklingError("type: the test process takes the type of None, ... or NotImplemented, nothing else")


#: (module, name) -> what a message naming it gets: the functions that rebuild values (typing's generics pickle
#: as ``operator.getitem``, unions as ``functools.reduce(operator.or_, ...)``; enums as ``getattr``, checked).
_REBUILDERS: dict[tuple[str, str], Any] = {
    ("copyreg", "_reconstructor"): copyreg._reconstructor,  # type: ignore[attr-defined]
    ("copyreg", "__newobj__"): copyreg.__newobj__, ("copyreg", "__newobj_ex__"): copyreg.__newobj_ex__,
    ("_codecs", "encode"): codecs.encode, ("codecs", "encode"): codecs.encode,  # (protocol 2's bytes)
    ("builtins", "getattr"): _enum_member, ("builtins", "type"): _type_of,
    ("_operator", "getitem"): operator.getitem, ("operator", "getitem"): operator.getitem,
    ("_operator", "or_"): operator.or_, ("operator", "or_"): operator.or_,
    ("_functools", "reduce"): functools.reduce, ("functools", "reduce"): functools.reduce,
    ("re", "_compile"): re.compile, ("array", "_array_reconstructor"): array._array_reconstructor,  # type: ignore[attr-defined]
}
_NUMPY_REBUILDERS = frozenset({"_reconstruct", "scalar", "_frombuffer"})


class _DataUnpickler(pickle.Unpickler):
    """Unpickles what a child sent as data: a global it names is one of ``_REBUILDERS``, or must be in a module
    already loaded here (nothing is imported for it) and be a class of a module outside ``_NOT_DATA`` (or one of
    ``_BUILTIN_DATA``, or an exception), or numpy's function that rebuilds an array."""

    def find_class(self, module: str, name: str) -> Any:
        rebuilder = _REBUILDERS.get((module, name))
        if rebuilder is not None:
            return rebuilder
        kept = KEPT.get((module, name))
        if kept is not None:
            return kept
        loaded = _loaded(module)
        if loaded is None:
            raise pickle.UnpicklingError(f"{module}.{name}: not a module loaded in the test process")
        found: Any = loaded
        try:
            for part in name.split("."):
                found = getattr(found, part)
        except AttributeError:
            raise pickle.UnpicklingError(f"{module}.{name}: no such name") from None
        if isinstance(found, type):
            if (found in _BUILTIN_DATA or issubclass(found, BaseException)
                    or (module != "builtins" and not _not_data(module))):
                return found
        elif module.split(".")[0] == "numpy" and name in _NUMPY_REBUILDERS:
            return found
        elif module == "typing" and not isinstance(found, (types.FunctionType, types.BuiltinFunctionType)):
            return found  # (``List``, ``Union``: typing's special forms, subscripted by ``operator.getitem``)
        raise pickle.UnpicklingError(f"{module}.{name}: the test process takes data from an agent's process, not "
                                     "a function or a class that acts on the system")


def data_loads(data: bytes) -> Any:
    """``pickle.loads`` of what a child sent, as data (``_DataUnpickler``)."""
    return _DataUnpickler(io.BytesIO(data)).load()


#: (module, name) -> a class of the harness's own that a message may name (``protocol`` adds ``ShownDefault``).
KEPT: dict[tuple[str, str], type] = {}
