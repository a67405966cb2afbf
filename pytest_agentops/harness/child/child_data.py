"""What the test process takes from an agent's child process: data, never code (``data_loads``).

A child's message is unpickled by ``_DataUnpickler``, which builds objects but calls no function other than the
few that rebuild values (``copyreg``'s, numpy's, typing's generics, an enum's member by name) and builds no class
of a module that acts on the system (files, processes, sockets, threads, code), importing nothing but a submodule
of a package loaded already. An agent's output whose ``__reduce__`` was ``(exec, (code,))`` ran that code in
pytest's process, where it reached the trial's world and passed a check it never earned. Nor does it run code
the agent's own files define (``agent_hook``): an instance of a class whose ``__setstate__``, ``__new__``,
``__init__``, ``__setattr__`` or ``__del__`` is written outside the Python installation (the project's modules,
the test files) is refused, not built: its ``__setstate__`` found the trial's world through ``gc`` and filled it
in (a green campaign for an agent that did nothing), or killed pytest through ``ctypes``.
"""

from __future__ import annotations

import array
import collections
import copyreg
import enum
import functools
import io
import operator
import os
import pickle
import re
import sys
import sysconfig
import types
from typing import Any, ClassVar

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
    "doctest", "pydoc", "idlelib", "lib2to3", "itertools", "fractions",
})
#: The classes of ``builtins`` a message may build (the others make code, wrap calls or open files), and of the
#: modules above those that are plain data.
_BUILTIN_DATA = frozenset({int, float, bool, complex, str, bytes, bytearray, list, tuple, dict, set, frozenset,
                           object, types.SimpleNamespace, types.GenericAlias, types.UnionType})
#: Of those, the ones a message may call (the others are values only: ``int(Decimal("1e1200000"))`` took 24 s).
_BUILTIN_CALLED = frozenset({complex, object, types.SimpleNamespace, types.GenericAlias})
#: Classes whose ``__new__`` or ``__init__`` makes an object as large as a number it is given says
#: (``bytearray(2**31)``): called with a number past ``_SIZE_LIMIT`` in a message, refused (a 40-byte message
#: would grow pytest's memory without bound). No lazy iterable can be built at all (``range``, ``itertools``,
#: numpy's iterators), so no class that takes an iterable (``collections.deque(itertools.count())``) can be made to
#: grow without bound; nor a ``Fraction`` (``Fraction("1e100000000")`` works out 10**100000000).
_SIZED = (bytes, bytearray)
#: How deep tuples, the objects calls build and what is added to them may nest in a message
#: (``_DataUnpickler._nest``, ``_deepen``).
MAX_TUPLE_DEPTH = 1000
#: The most memory a child's messages of an attempt may make the test process build beyond their own bytes: the
#: opcodes that build much from a byte or two are charged what they build (``_BUILDS``): an empty set is 1 byte
#: sent and 216 kept (100 MB of them would have grown pytest by 21 GB). Ordinary data is far from it: a million
#: short strings, or 100,000 tool calls with a list argument, build well under 100 MiB of it.
MAX_ATTEMPT_BUILT_BYTES = 512 * 2**20
#: opcode -> the bytes it builds (CPython, 64-bit): empty containers, memo entries, and references (8 bytes each).
_BUILDS = {**dict.fromkeys(b"\x8f\x91", 216), **dict.fromkeys(b"}d", 64), **dict.fromkeys(b"]l", 56),
           **dict.fromkeys(b"\x94pqr", 64), **dict.fromkeys(b"2hjgN\x88\x89)", 8)}
_SIZE_LIMIT = 2**20


def _not_data(module: str) -> bool:
    """Whether ``module`` is one of ``_NOT_DATA`` or below one."""
    parts = module.split(".")
    return any(".".join(parts[:i]) in _NOT_DATA for i in range(1, len(parts) + 1))


def _installation_dirs() -> tuple[str, ...]:
    """The Python installation's library folders (the standard library's, site-packages), each ending in ``/``."""
    paths = sysconfig.get_paths()
    found = {os.path.realpath(paths[key]) for key in ("stdlib", "platstdlib", "purelib", "platlib") if key in paths}
    return tuple(path.rstrip(os.sep) + os.sep for path in found)


_INSTALLATION = _installation_dirs()
_OWN_PACKAGE = __name__.partition(".")[0]
_TRUSTED: dict[str, bool] = {}  # module name -> whether it is part of the Python installation (cached)


def _installed(module: Any) -> bool:
    """Whether the module named ``module`` is part of the Python installation (built in, frozen, or a file in its
    library folders), not code of the project's own (its modules, its tests, a file an agent wrote and imported)."""
    if not isinstance(module, str):
        return False
    known = _TRUSTED.get(module)
    if known is not None:
        return known
    if module.partition(".")[0] == _OWN_PACKAGE:  # (the harness's own, wherever it is installed from)
        return True
    loaded = sys.modules.get(module)
    if loaded is None:
        return False  # (not cached: it may be loaded later)
    spec = getattr(loaded, "__spec__", None)
    origin = getattr(loaded, "__file__", None) or getattr(spec, "origin", None)
    if origin in (None, "built-in", "frozen"):
        trusted = module in sys.builtin_module_names or getattr(spec, "origin", None) in ("built-in", "frozen")
    else:
        trusted = os.path.realpath(origin).startswith(_INSTALLATION)
    _TRUSTED[module] = trusted
    return trusted


#: A class's own namespace, qualified name, module, MRO and flags, read past its metaclass (an agent's metaclass
#: ``__getattribute__`` ran when the unpickler read ``found.__module__``).
_OWN_DICT = type.__dict__["__dict__"].__get__
_QUALNAME = type.__dict__["__qualname__"].__get__
_MODULE = type.__dict__["__module__"].__get__
_MRO = type.__dict__["__mro__"].__get__
_FLAGS = type.__dict__["__flags__"].__get__
_HEAPTYPE = 1 << 9
_GENUINE: dict[int, tuple[type, bool]] = {}  # id of a class -> (it, whether it is the installation's): a cache


def _name(klass: Any) -> str:
    """``module.Class`` of a class, for a message: only when both are plain texts (a ``__module__`` of the agent's
    own would run its ``__format__``)."""
    if not is_class(klass):
        return f"a {type(klass).__name__}" if type(type(klass).__name__) is str else "an object"
    module, path = _MODULE(klass), _QUALNAME(klass)
    return f"{module}.{path}" if type(module) is str and type(path) is str else "a class of the agent's own"


def is_class(value: Any) -> bool:
    """``isinstance(value, type)`` without asking ``value`` (an object's ``__class__`` may be a property of the
    agent's, which ``isinstance`` calls)."""
    return issubclass(type(value), type)


def genuine(klass: type) -> bool:
    """Whether ``klass`` is a class of the Python installation: a static type (C code of the interpreter or an
    installed extension), or a class an installed module (``_installed``) holds under its qualified name, whose
    metaclass is genuine too. A class's ``__module__`` is its author's to write: a class of the agent's own
    saying ``__module__ = "json"`` had its ``__setstate__`` trusted as the standard library's."""
    known = _GENUINE.get(id(klass))
    if known is not None and known[0] is klass:
        return known[1]
    meta = type(klass)
    if meta is not type and not genuine(meta):
        found = False
    elif not _FLAGS(klass) & _HEAPTYPE:
        found = True
    elif type(_MODULE(klass)) is not str or type(_QUALNAME(klass)) is not str:
        found = False  # (a ``__module__`` that is an object of the agent's own: asked nothing)
    else:
        module, path = _MODULE(klass), _QUALNAME(klass)
        held: Any = sys.modules.get(module) if _installed(module) else None
        for part in path.split(".") if held is not None else ():
            space = held.__dict__ if type(held) is types.ModuleType else _OWN_DICT(held) if is_class(held) else {}
            held = space.get(part)
        found = held is klass
    if len(_GENUINE) < 4096:
        _GENUINE[id(klass)] = (klass, found)
    return found


#: The methods of a class that building an instance of it from a message (or dropping one) would run, and that
#: reading its attributes would (pickle's ``getattr(obj, "__setstate__")``, ``isinstance``'s ``obj.__class__``).
_READ = ("__class__", "__getattribute__", "__getattr__", "__sizeof__")
AT_BUILD = ("__new__", "__del__", *_READ)
_AT_CALL = (*AT_BUILD, "__init__", "_missing_")
#: The methods the unpickler calls on a container it fills (a list's ``extend``, a dict's ``__setitem__``)
_FILLING = ("append", "extend", "__setitem__", "add", "update", "__getattribute__", "__getattr__", "__class__")
#: What the interpreter puts in every class's namespace for its instances' ``__dict__`` and ``__weakref__``
_SLOT_KINDS = (types.GetSetDescriptorType, types.MemberDescriptorType)


def _generated() -> frozenset[Any]:
    """Methods the standard library puts on a class it makes for you, which act on the instance's own data only:
    a frozen dataclass with slots pickles through them, an enum class holds ``Enum.__new__`` (a member by value)."""
    import dataclasses

    return frozenset(f for f in (getattr(dataclasses, "_dataclass_setstate", None), enum.Enum.__new__)
                     if f is not None)


_GENERATED = _generated()


def _attrs_made() -> tuple[frozenset[int], Any]:
    """The ids of the code attrs's functions for a class with slots run (``slots_setstate``, ``slots_getstate``,
    ``_frozen_setattrs``, ``_frozen_delattrs``: each class gets functions of its own over that very code), and the
    namespace they run in; empty when attrs is not loaded. Judged by the code objects themselves: a function of
    the agent's whose code says it is attrs's file and name (``code.replace(co_filename=..., co_name=...)``) is
    not attrs's."""
    make = sys.modules.get("attr._make")
    if make is None:
        return frozenset(), None
    if _ATTRS_CODES and _ATTRS_CODES[0] is make:
        return _ATTRS_CODES[1], make.__dict__
    codes: list[Any] = []
    builder = getattr(getattr(make, "_ClassBuilder", None), "_make_getstate_setstate", None)
    code = getattr(builder, "__code__", None)
    if code is not None:
        codes += [c for c in code.co_consts if type(c) is types.CodeType
                  and c.co_name in ("slots_setstate", "slots_getstate")]
    for name in ("_frozen_setattrs", "_frozen_delattrs"):
        fn = make.__dict__.get(name)
        if type(fn) is types.FunctionType:
            codes.append(fn.__code__)
    _ATTRS_CODES[:] = [make, frozenset(map(id, codes)), codes]  # (the code objects kept: their ids stay theirs)
    return _ATTRS_CODES[1], make.__dict__


_ATTRS_CODES: list[Any] = []  # [attr._make, the ids of its generated functions' code, that code] (a cache)


def _made_by_installation(attr: Any) -> bool:
    """Whether ``attr``, found on a class of the agent's, is a function the installation made for it (one of
    ``_GENERATED``, or attrs's ``__setstate__`` of a class with slots), judged by types only (an object of the
    agent's own is asked nothing). Not any function whose code is in an installed file: ``__setstate__ =
    subprocess.call`` on a list of the agent's ran a shell command in pytest (a review)."""
    kind = type(attr)
    fn = attr.__func__ if kind is classmethod or kind is staticmethod else attr
    if type(fn) is not types.FunctionType:  # (compared by identity: hashing an object of the agent's asks it)
        return any(fn is made for made in _GENERATED)
    if fn in _GENERATED:
        return True
    codes, space = _attrs_made()
    if id(fn.__code__) not in codes or fn.__globals__ is not space or fn.__defaults__ or fn.__kwdefaults__:
        return False
    for cell in fn.__closure__ or ():  # (attrs's: a flag and the fields' names; the agent's cells would be asked)
        held = cell.cell_contents
        if not (type(held) is bool or (type(held) is tuple and all(type(name) is str for name in held))):
            return False
    return True


def agent_hook(cls: Any, names: tuple[str, ...]) -> str | None:
    """The first of the methods ``names`` (the ones ``cls`` resolves them to) found on a class of a module outside
    the Python installation (``_installed``), as ``module.Class.method``: code of the agent's choosing (written
    there, or a function put there, ``__setstate__ = os.system``), which the test process never runs for a
    message; None when there is none."""
    if not is_class(cls):
        return None
    mro = _MRO(cls)
    installed: set[int] = set()  # the classes a genuine class of the MRO is made of (a stdlib class's named tuple)
    for klass in mro:
        if id(klass) not in installed and genuine(klass):
            installed.update(map(id, _MRO(klass)))
    for name in names:
        for klass in mro:
            attr = _OWN_DICT(klass).get(name)
            if attr is None:
                continue
            if id(klass) not in installed and type(attr) not in _SLOT_KINDS and not _made_by_installation(attr):
                return f"{_name(klass)}.{name}"
            break  # (the first definition along the MRO is the one called)
    return None


def refuse_agent_hooks(cls: Any, names: tuple[str, ...]) -> None:
    """``UnpicklingError`` when building ``cls`` would run code of the agent's own (``agent_hook``)."""
    hook = agent_hook(cls, names)
    if hook is not None:
        raise _agents_code(hook)


#: Methods installed code reaches on an object without naming them (storing an attribute, an item, hashing ...)
_IMPLIED = ("__setattr__", "__getattr__", "__getattribute__", "__delattr__", "__setitem__", "__getitem__",
            "__delitem__", "__missing__", "__bool__", "__len__", "__iter__", "__contains__")
#: The installation's containers whose C code fills an object through methods a subclass may override
_FILLED_IN_C = (dict, list, set, collections.deque, bytearray)
#: What the C code of the installation's containers calls on ``self`` as it fills one (``OrderedDict``'s
#: ``__init__`` its ``__setitem__``, ``update`` its ``keys``)
_C_REACHED = ("update", "keys", "items", "values", "get", "setdefault", "pop", "append", "extend", "insert",
              "add", "discard", "copy", "__init__", "__setitem__", "__missing__")


def _resolved(cls: type, name: str) -> tuple[type, Any] | None:
    """(the class holding it, the attribute) that ``name`` resolves to along ``cls``'s MRO, or None."""
    for klass in _MRO(cls):
        attr = _OWN_DICT(klass).get(name)
        if attr is not None:
            return klass, attr
    return None


def _names_used(code: types.CodeType, found: set[str]) -> None:
    """The attribute names ``code`` (and the code nested in it) uses, into ``found``."""
    found.update(code.co_names)
    for const in code.co_consts:
        if type(const) is types.CodeType:
            _names_used(const, found)


def refuse_reached_overrides(cls: type, names: tuple[str, ...]) -> None:
    """``UnpicklingError`` when installed Python code that building an object of ``cls`` (a class of the agent's
    own) runs, its methods ``names`` as resolved, reaches a method the agent's classes define: ``random.Random``'s
    ``__init__`` calls ``self.seed``, ``Counter``'s ``self.update``, ``UserList``'s stores ``self.data`` (through
    ``__setattr__``), ``UserString``'s ``__hash__`` hashes ``self.data``. The names that code uses, followed into
    the installed methods they resolve to, with the methods reached implicitly (``_IMPLIED``)."""
    if genuine(cls):
        return
    todo = list(names)
    seen: set[str] = set()
    runs_python = False
    while todo:
        name = todo.pop()
        if name in seen or len(seen) > 512:
            continue
        seen.add(name)
        found = _resolved(cls, name)
        if found is None:
            continue
        klass, attr = found
        fn = attr.__func__ if type(attr) in (classmethod, staticmethod) else attr
        if type(fn) is types.FunctionType and fn in _GENERATED:
            continue  # (known to touch the object's own data only: a frozen dataclass's ``__setstate__``)
        if type(fn) is types.FunctionType and (genuine(klass) or _made_by_installation(attr)):
            runs_python = True
            used: set[str] = set()
            _names_used(fn.__code__, used)
            todo.extend(used)
    if not runs_python:  # (a C base, a container's, fills it through what a subclass may override)
        if not issubclass(cls, _FILLED_IN_C):
            return
        seen.update(_C_REACHED)
    for name in seen | set(_IMPLIED):
        found = _resolved(cls, name)
        if found is None or genuine(found[0]):
            continue
        attr = found[1]
        code = (not genuine(attr) if is_class(attr)  # (a class of the agent's, which installed code would call)
                else type(attr) not in _SLOT_KINDS and not _made_by_installation(attr)
                and (callable(attr) or _resolved(type(attr), "__get__") is not None))
        if code:
            raise _agents_code(f"{_name(found[0])}.{name} (reached by the installation's code "
                               "that builds it)")


def _agents_code(hook: str) -> pickle.UnpicklingError:
    return pickle.UnpicklingError(
        f"{hook} is the agent's own code, which the test process does not run for a message from an isolated "
        "agent: return plain data (built-in values, a dataclass or a class without that method)")


def refuse_agent_setter(cls: type, name: Any) -> None:
    """``UnpicklingError`` when setting the attribute ``name`` of an instance of ``cls`` runs code of the agent's
    own: a property's setter, or a descriptor's ``__set__``, written outside the installation."""
    for klass in _MRO(cls):
        attr = _OWN_DICT(klass).get(name) if type(name) is str else None
        if attr is None:
            continue
        setter = _resolved(type(attr), "__set__")
        if setter is None or type(attr) in _SLOT_KINDS or genuine(klass):  # (judged by the class that holds it)
            return
        # (a class of the agent's: a property's setter, also of a property subclass, is its code; so is what any
        # other data descriptor it holds sets through, an installed one's too: ``DynamicClassAttribute(get, set)``)
        if not issubclass(type(attr), property) or object.__getattribute__(attr, "fset") is not None:
            raise _agents_code(f"{_name(klass)}.{name} (a descriptor's setter)")
        return


#: What every exception holds that the harness and the reports read (an exception class of the agent's may not
#: put something else there: ``__traceback__ = staticmethod(obj)`` was read as a traceback)
_EXCEPTION_DATA = frozenset({"args", "__traceback__", "__context__", "__cause__", "__suppress_context__",
                             "__notes__", "with_traceback", "add_note"})


def refuse_agent_exception_class(cls: type) -> None:
    """``UnpicklingError`` unless the agent's own classes among ``cls``'s (an exception class) hold functions
    (never called: its text is the child's) and plain values only: a property (its ``args``, its
    ``returncode`` an installed ``__str__`` reads, its ``__traceback__`` the reports read), another descriptor, or
    an object of the agent's own (a class attribute an installed ``__str__`` formats) would run its code when the
    exception is rebuilt, marked or shown."""
    for klass in _MRO(cls):
        if genuine(klass):
            continue
        for name, value in _OWN_DICT(klass).items():
            kind = type(value)
            if name in _EXCEPTION_DATA:  # (what the harness and the reports read of every exception)
                raise _agents_code(f"{_name(klass)}.{name} (an exception's own attribute, replaced)")
            if kind in (classmethod, staticmethod):  # (a wrapper hands out what it wraps: a function only)
                kind = type(object.__getattribute__(value, "__func__"))
            if kind is types.FunctionType or kind in _SLOT_KINDS or kind in _LEAVES:
                continue
            if is_class(value) and genuine(value):
                continue
            if kind in (tuple, frozenset, dict) and genuine(kind):
                try:
                    refuse_agents_objects((value,), f"the exception class {_name(klass)}")
                except pickle.UnpicklingError:
                    pass
                else:
                    continue
            raise _agents_code(f"{_name(klass)}.{name if type(name) is str else '?'} (what an exception of the "
                               "agent's holds)")


def _loaded(module: str) -> Any:
    """``module`` as loaded here, or None: nothing is imported for a message (a module the child wrote into a
    folder on ``sys.path``, or a project file that acts when imported, would run in pytest)."""
    return sys.modules.get(module)


def _enum_member(cls: Any, name: Any) -> Any:
    """``getattr`` as a message may call it: an enum's member by its name (how enums pickle), nothing else (a
    bound method, ``Path(...).write_text``, would act; a function's ``__globals__`` would reach everything)."""
    if isinstance(cls, type) and issubclass(cls, enum.Enum) and isinstance(name, str) and name in cls.__members__:
        return cls.__members__[name]
    zoneinfo = sys.modules.get("zoneinfo")
    if zoneinfo is not None and cls is zoneinfo.ZoneInfo and name == "_unpickle":
        return cls._unpickle  # (a datetime's time zone)
    raise pickle.UnpicklingError("getattr: the test process takes an enum's member by its name, nothing else")


def _zone_unpickle(function: Any) -> bool:
    """Whether ``function`` is ``ZoneInfo._unpickle`` (which ``_enum_member`` gives: how a time zone pickles)."""
    zoneinfo = sys.modules.get("zoneinfo")
    return (zoneinfo is not None and issubclass(type(function), (types.MethodType, types.BuiltinMethodType))
            and function == zoneinfo.ZoneInfo._unpickle)  # (a method's ``==``: its function and its object, as such)


def _is_type_form(value: Any, depth: int = 0) -> bool:
    """A class whose subscript and union run no code of the agent's (its ``__class_getitem__``, its metaclass's
    ``__or__``), ``None``, ``...``, or one of typing's forms made of such (what a union or a generic alias is made
    of: a generic alias of an object of the agent's own passed its subscript on to it, ``__typing_subst__``)."""
    if value is None or value is Ellipsis:
        return True
    kind = type(value)
    if kind.__module__ in ("typing", "types") and genuine(kind):
        if depth > 32:
            return False
        parts = (getattr(value, "__origin__", None), *(getattr(value, "__args__", None) or ()))
        return all(part is value or _is_type_form(part, depth + 1) for part in parts)
    return is_class(value) and genuine(kind) and agent_hook(value, ("__class_getitem__",)) is None


def _type_or(left: Any, right: Any) -> Any:
    """``operator.or_`` as a message may call it: a union of types (``int | None``), nothing else."""
    if not (_is_type_form(left) and _is_type_form(right)):
        raise pickle.UnpicklingError("operator.or_: the test process makes a union of types, nothing else")
    return left | right


def _type_item(base: Any, item: Any) -> Any:
    """``operator.getitem`` as a message may call it: a generic alias (``List[int]``), nothing else (a dict's item
    would reach what the dict holds: ``typing.__builtins__["exec"]``)."""
    items = item if isinstance(item, tuple) else (item,)
    if not (_is_type_form(base) and all(_is_type_form(x) or x is Ellipsis for x in items)):
        raise pickle.UnpicklingError("operator.getitem: the test process subscripts a type, nothing else")
    return base[item]


def _small_reduce(function: Any, iterable: Any, *initial: Any) -> Any:
    """``functools.reduce`` as a message may call it: a union over a tuple of at most 64 types."""
    if function is not _type_or or not (isinstance(iterable, tuple) and len(iterable) <= 64):
        raise pickle.UnpicklingError("functools.reduce: the test process makes a union of types, nothing else")
    return functools.reduce(function, iterable, *initial)


def _latin1(text: Any, encoding: Any = "latin1") -> bytes:
    """``codecs.encode`` as protocol 2 pickles bytes: a text in latin-1, nothing else (``'hex'`` doubles it)."""
    if not (isinstance(text, str) and encoding in ("latin1", "latin-1")):
        raise pickle.UnpicklingError("codecs.encode: the test process encodes text in latin-1, nothing else")
    return text.encode("latin-1")


def _numpy_rebuilder(real: Any) -> Any:
    """numpy's ``_reconstruct`` as a message may call it: an empty array of the class it names, filled by its
    state (the data comes in the message), never one of a size an argument asks for."""
    def rebuild(subtype: Any, shape: Any, dtype: Any) -> Any:
        if not (isinstance(shape, tuple) and all(isinstance(n, int) and 0 <= n <= 1 for n in shape)):
            raise pickle.UnpicklingError("numpy: the test process rebuilds an array from its data, not from a shape")
        return real(subtype, shape, dtype)
    return rebuild


def _numpy_scalar(real: Any) -> Any:
    """numpy's ``scalar`` as a message may call it: a scalar of a dtype no larger than the bytes it comes with
    (``scalar(dtype("V134217728"))`` is 128 MiB)."""
    def scalar(dtype: Any, *data: Any) -> Any:
        size = getattr(dtype, "itemsize", None)
        if not isinstance(size, int) or size > max(64, *(len(d) for d in data if isinstance(d, (bytes, bytearray)))):
            raise pickle.UnpicklingError("numpy: the test process rebuilds a scalar from its bytes, nothing larger")
        return real(dtype, *data)
    return scalar


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
    ("_codecs", "encode"): _latin1, ("codecs", "encode"): _latin1,  # (protocol 2's bytes)
    ("builtins", "getattr"): _enum_member, ("builtins", "type"): _type_of,
    ("builtins", "Ellipsis"): Ellipsis, ("builtins", "NotImplemented"): NotImplemented,
    ("_operator", "getitem"): _type_item, ("operator", "getitem"): _type_item,
    ("_operator", "or_"): _type_or, ("operator", "or_"): _type_or,
    ("_functools", "reduce"): _small_reduce, ("functools", "reduce"): _small_reduce,
    ("re", "_compile"): re.compile, ("array", "_array_reconstructor"): array._array_reconstructor,  # type: ignore[attr-defined]
}
_NUMPY_MODULES = ("numpy._core.multiarray", "numpy.core.multiarray")


#: Containers ``refuse_agents_objects`` looks into, each read with its own type's methods (the installation's)
_HOLDERS = (list, tuple, set, frozenset, dict, collections.deque)


def _held(item: Any, kind: type) -> list[Any]:
    """What an object of a genuine class holds in its ``__dict__`` and its slots, read past its own methods."""
    held: list[Any] = []
    try:
        space = object.__getattribute__(item, "__dict__")
    except (AttributeError, TypeError):
        space = None
    if type(space) is dict:
        held += dict.values(space)
    for klass in _MRO(kind):
        for attr in _OWN_DICT(klass).values():
            if type(attr) is types.MemberDescriptorType:
                try:
                    held.append(attr.__get__(item, kind))
                except AttributeError:  # (a slot not set)
                    continue
    return held


def refuse_agents_objects(values: Any, where: str, limit: int = 1_000_000, *, classes: bool = True) -> None:
    """``UnpicklingError`` when an object of a class of the agent's own is among ``values``, or inside the lists,
    tuples, sets, dicts (keys too) and deques they hold, or in the attributes and slots of the installation's
    objects among them (a ``UserList``'s ``data``), however deep: what a call is given (or an
    installed container is filled with) is asked things by it, in C or in installed code (``deque(obj)`` its
    ``__iter__``, ``array("b", [obj])`` its ``__index__``, ``OrderedDict([[obj, 1]])`` its hash, a cookie its
    ``str``). Objects are looked at once each (a container holding itself), at most ``limit`` of them."""
    seen: set[int] = set()
    stack = list(values)
    while stack:
        item = stack.pop()
        kind = type(item)
        if kind in _LEAVES:
            continue
        if id(item) in seen:
            continue
        seen.add(id(item))
        if len(seen) > limit:
            raise pickle.UnpicklingError(f"{where}: more than {limit:,} objects to look at in a message")
        if not genuine(kind) or (classes and is_class(item) and not genuine(item)):  # (a class of the agent's:
            # installed code calls what it is given, ``ArgumentParser(formatter_class=...)``; not for a key's hash)
            raise pickle.UnpicklingError(f"{_name(item if is_class(item) else kind)}: the test process passes no "
                                         f"object or class of the agent's own to {where} for a message")
        if issubclass(kind, dict):
            for pair in dict.items(item):
                stack += pair
        elif issubclass(kind, _HOLDERS):
            base = next(b for b in _HOLDERS if issubclass(kind, b))
            stack.extend(base.__iter__(item))
        if not issubclass(kind, (type, types.ModuleType, types.FunctionType, types.BuiltinFunctionType)):
            stack.extend(_held(item, kind))  # (an installed object's attributes: a ``UserList``'s ``data``)


def _fills_in_python(cls: type) -> bool:
    """Whether the methods pickle fills an object of ``cls`` with (``__setitem__``, ``append``, ``extend``,
    ``add``) are Python code, which may ask the values it is given things (a cookie's ``str`` of each); a deque's,
    a ``defaultdict``'s or an ``OrderedDict``'s are C, which stores them as they are."""
    for name in ("__setitem__", "append", "extend", "add"):
        for klass in _MRO(cls):
            attr = _OWN_DICT(klass).get(name)
            if attr is not None:
                if type(attr) in (types.FunctionType, classmethod, staticmethod):
                    return True
                break
    return False


#: Values ``refuse_agents_objects`` need not look into (nothing of the agent's inside)
_LEAVES = frozenset({str, bytes, int, float, bool, complex, type(None), bytearray, type(Ellipsis)})


def _classes(values: Any) -> None:
    """``UnpicklingError`` unless each of ``values`` is a class (what ``copyreg`` builds an object of)."""
    for value in values:
        if not is_class(value):
            raise pickle.UnpicklingError("copyreg: the test process builds an object of a class, nothing else")


def _check_call(function: Any, args: Any, runs: tuple[str, ...] = _AT_CALL, *, stored: bool = False) -> None:
    """Refuse a call a message makes that would build an object as large as a number says (``_SIZED``), or run
    code of the agent's own (``runs``: the methods of a class it calls that run, ``agent_hook``)."""
    if type(args) is not tuple:
        raise pickle.UnpicklingError("a call's arguments are a tuple: the test process takes no other")
    if function is copyreg.__newobj__:  # type: ignore[attr-defined]
        _classes(args[:1])
        function, args, runs = (args[0], args[1:], AT_BUILD) if args else (None, (), ())
    elif function is copyreg.__newobj_ex__:  # type: ignore[attr-defined]
        _classes(args[:1])
        if len(args) == 3 and (type(args[1]) is not tuple or type(args[2]) is not dict):
            raise pickle.UnpicklingError("__newobj_ex__: the test process takes a tuple and a dict of arguments")
        function, args, runs = (args[0], (*args[1], *args[2].values()), AT_BUILD) if len(args) == 3 else (None, (), ())
    elif function is copyreg._reconstructor:  # type: ignore[attr-defined]
        if len(args) >= 2:  # (``_reconstructor(cls, base, state)``: ``base``'s ``__new__`` and ``__init__`` run)
            _classes(args[:2])
            refuse_agent_hooks(args[0], AT_BUILD)
            if args[1] is not object:
                refuse_agent_hooks(args[1], ("__new__", "__init__"))
        function, args, runs = (args[1], args[2:], ()) if len(args) >= 2 else (None, (), ())
    if is_class(function):
        if issubclass(function, type):
            raise pickle.UnpicklingError(f"{_name(function)}(...): the test process makes no class for a message")
        refuse_agent_hooks(function, runs)
        if not genuine(type(function)):  # (a metaclass of the agent's own: its ``__call__``, its ``__getattribute__``)
            raise _agents_code(f"{_name(type(function))} (a metaclass)")
        refuse_reached_overrides(function, runs)
        if issubclass(function, enum.Enum) and args:  # (called with a value: compared with its members' values)
            for member in dict.values(_OWN_DICT(function).get("_member_map_") or {}):
                value = object.__getattribute__(member, "_value_")
                if not genuine(type(value)):
                    raise pickle.UnpicklingError(f"{_name(function)}(...): the test process takes a member of an "
                                                 "enum whose values are the agent's own objects by its name only")
        for arg in args if type(args) is tuple else ():  # (``Counter(items)`` hashes them all, in C; the keys are
            # plain: no object of the agent's own is anywhere in a call's arguments, ``refuse_agents_objects``)
            if type(arg) in (list, tuple) and len(arg) > MAX_SAME_HASH:
                _refuse_collisions([item for item in arg if type(item) in _PLAIN_KEYS], {},
                                   "values of one call's argument")
    if not stored:  # (``stored``: the call only stores its arguments, a named tuple's ``tuple.__new__``)
        refuse_agents_objects(args, "a call")
    if function is complex and not all(type(arg) in (int, float, str, complex) for arg in args):
        raise pickle.UnpicklingError("complex(...): the test process makes a complex number of numbers, nothing else")
    if function is types.GenericAlias and not (len(args) == 2 and _is_type_form(args[0]) and all(
            _is_type_form(x) for x in (args[1] if type(args[1]) is tuple else (args[1],)))):
        raise pickle.UnpicklingError("GenericAlias(...): the test process makes a generic alias of types, nothing else")
    if is_class(function) and function in _BUILTIN_DATA and function not in _BUILTIN_CALLED:
        raise pickle.UnpicklingError(f"{function.__name__}(...): the test process calls no builtin type for a message")
    numpy = sys.modules.get("numpy")
    if numpy is not None and is_class(function) and issubclass(function, (numpy.ndarray, numpy.generic)):
        raise pickle.UnpicklingError(f"{function.__name__}(...): the test process makes numpy's arrays and scalars "
                                     "from their data only")
    if is_class(function) and issubclass(function, _SIZED):
        for arg in args if type(args) is tuple else ():
            if type(arg) in (bytes, bytearray, str) or not hasattr(type(arg), "__index__"):
                continue
            if type(arg) not in (int, bool):  # (an object's ``__index__`` would run: the agent's own, maybe)
                raise pickle.UnpicklingError(f"{function.__name__}(...): the test process builds such an object from "
                                             "its data, or a number, nothing else")
            if operator.index(arg) > _SIZE_LIMIT:
                raise pickle.UnpicklingError(f"{function.__name__}({arg}): the test process builds no object as "
                                             "large as a number in a message says")


def _nested(load: Any) -> Any:
    """An opcode's loader that builds a tuple, followed by the check of its nesting (``_DataUnpickler._nest``)."""
    def load_and_check(self: _DataUnpickler) -> None:
        load(self)
        self._nest()
    return load_and_check


def _adding(load: Any, target_at: int | None, state: bool = False) -> Any:
    """An opcode's loader that adds items to an object, then the nesting check of that object (``_deepen``):
    ``target_at`` None for the marked ones (APPENDS, SETITEMS, ADDITEMS: the items since the mark, into the
    object below it), else the object's place on the stack, the value added on top (APPEND -2, SETITEM -3;
    BUILD -2, with ``state``: its state's values too)."""
    def load_and_deepen(self: Any) -> None:
        if target_at is None:
            items, target = list(self.stack), self.metastack[-1][-1]
        else:
            value, target = self.stack[-1], self.stack[target_at]
            items = [value, *(value.values() if state and type(value) is dict else ())]
            if state and type(value) is tuple and len(value) == 2 and type(value[1]) is dict:
                items += value[1].values()  # (a state with slots: its slots' values too)
        if not state and type(target) not in (list, dict, set):  # (a list, dict or set of the agent's own class,
            # or an installed one whose own filling asks what it is given: a cookie's ``str`` of each value)
            refuse_agent_hooks(type(target), _FILLING)
            if _fills_in_python(type(target)):
                refuse_agents_objects(items, f"a {type(target).__name__}")
        load(self)
        self._deepen(target, items)
    return load_and_deepen


#: How many different keys of one dict or set in a message may share a hash: keys made to collide (ints
#: ``k * (2**61 - 1)`` all hash to 0) make each insertion walk all the others, in C, holding the GIL: a 3.3 MB
#: frozenset hung pytest for minutes past the trial's limit. Ordinary data has a handful at most.
MAX_SAME_HASH = 64
#: Key types whose hash runs no code of the agent's (a tuple's: its items', checked one by one).
_PLAIN_KEYS = frozenset({str, int, float, bool, bytes, complex, type(None), frozenset})


def _refuse_agent_key(key: Any) -> None:
    """``UnpicklingError`` when hashing ``key`` (or comparing it) would run code of the agent's own."""
    kind = type(key)
    if kind in _PLAIN_KEYS:
        return
    if kind is tuple:
        for item in key:
            _refuse_agent_key(item)
        return
    refuse_agent_hooks(kind, ("__hash__", "__eq__"))
    if genuine(kind):  # (an installed key's hash may hash what it holds: a ``UserString``'s ``data``)
        refuse_agents_objects((key,), "a key", classes=False)
        return
    refuse_reached_overrides(kind, ("__hash__", "__eq__"))
    found = _resolved(kind, "__hash__")
    if found is not None and type(found[1]) is types.FunctionType:  # (an installed hash of an agent's subclass)
        refuse_agents_objects(_held(key, kind), "a key", classes=False)  # (an enum member holds its class)


def _refuse_collisions(items: Any, counts: dict[int, int], what: str) -> None:
    """``UnpicklingError`` when, counted into ``counts`` (hash -> how many so far), more than ``MAX_SAME_HASH`` of
    ``items`` (``what`` they are) share a hash; unhashable ones are left to whatever takes them."""
    for item in items:
        try:
            digest = hash(item)
        except TypeError:
            continue
        counts[digest] = seen = counts.get(digest, 0) + 1
        if seen > MAX_SAME_HASH:
            raise pickle.UnpicklingError(f"more than {MAX_SAME_HASH} {what} share a hash: the test process takes "
                                         "no values made to collide")


def _keyed(load: Any, keys_of: Any) -> Any:
    """An opcode's loader that puts keys into a dict or a set, after they are checked (``_check_keys``):
    ``keys_of(unpickler)`` gives (the container, or None for one about to be made; its new keys)."""
    def load_checked(self: Any) -> None:
        target, keys = keys_of(self)
        self._check_keys(target, keys)
        load(self)
    return load_checked


_TOO_MUCH = (f"the agent's process sent messages that build more than {MAX_ATTEMPT_BUILT_BYTES:,} bytes in the "
             "test process beyond their own (empty containers, memo entries, references, objects its calls make: "
             "MAX_ATTEMPT_BUILT_BYTES)")


def _charged(load: Any, cost: int) -> Any:
    """An opcode's loader, charged ``cost`` bytes against what is left to build (``MAX_ATTEMPT_BUILT_BYTES``)."""
    def load_charged(self: _DataUnpickler) -> None:
        self.build_left -= cost
        if self.build_left < 0:
            raise pickle.UnpicklingError(_TOO_MUCH)
        load(self)
    return load_charged


class _DataUnpickler(pickle._Unpickler):  # type: ignore[name-defined,misc]
    """Unpickles what a child sent as data: a global it names is one of ``_REBUILDERS``, or must be in a module
    loaded here (``_loaded``) and be a class of a module outside ``_NOT_DATA`` (or one of ``_BUILTIN_DATA``, or an
    exception), or numpy's function that rebuilds an array; and no call builds a ``_SIZED`` object from a large
    number. (Python's own unpickler, whose calls can be checked: messages are small, a child's start dominates.)"""

    dispatch: ClassVar[dict[int, Any]] = dict(pickle._Unpickler.dispatch)  # type: ignore[attr-defined]

    def __init__(self, file: Any, build_left: int = 0) -> None:
        super().__init__(file)
        self._depths: dict[int, int] = {}  # id of each tuple built -> how deep it nests
        self._hashes: dict[int, dict[int, int]] = {}  # id of each dict or set filled -> its keys' hashes, counted
        self._rebuilders: dict[int, Any] = {}  # id -> each function ``find_class`` gave (kept: the ids stay theirs)
        self.build_left = build_left

    def _charge(self, built: Any) -> Any:
        """Charge what a call built (its size: ``random.Random()`` is 2,560 bytes from a few sent)."""
        refuse_agent_hooks(type(built), _READ)  # (what a class's ``__new__`` gave may be of another class)
        try:
            self.build_left -= sys.getsizeof(built)
        except Exception:  # (a class whose ``__sizeof__`` fails: the least an object is)
            self.build_left -= 64
        if self.build_left < 0:
            raise pickle.UnpicklingError(_TOO_MUCH)
        return built

    def _callable(self, function: Any) -> None:
        """``UnpicklingError`` unless a message may call ``function``: a class (``_check_call`` judges which), or
        one of the functions ``find_class`` gave that rebuild values. An object's ``__call__`` (the agent's, or an
        installed one's: ``argparse.FileType("w")(path)`` emptied a file) is never called."""
        if not (is_class(function) or id(function) in self._rebuilders or _zone_unpickle(function)):
            raise pickle.UnpicklingError("the test process calls a class or a function that rebuilds a value for a "
                                         "message, nothing else")

    def load_reduce(self) -> None:
        stack = self.stack
        args = stack.pop()
        self._callable(stack[-1])
        _check_call(stack[-1], args)
        stack[-1] = self._deepen(self._charge(stack[-1](*args)), args)

    def load_newobj(self) -> None:
        args = self.stack.pop()
        cls = self.stack.pop()
        if _named_tuple(cls, args):  # (its generated ``__new__`` is a tuple of the arguments: made so, not run)
            _check_call(cls, args, ("__del__",), stored=True)
            self.append(self._deepen(self._charge(tuple.__new__(cls, args)), args))
            return
        _check_call(cls, args, AT_BUILD)
        self.append(self._deepen(self._charge(cls.__new__(cls, *args)), args))

    def load_newobj_ex(self) -> None:
        kwargs = self.stack.pop()
        args = self.stack.pop()
        cls = self.stack.pop()
        _check_call(cls, (*args, *kwargs.values()), AT_BUILD)
        self.append(self._deepen(self._charge(cls.__new__(cls, *args, **kwargs)), (*args, *kwargs.values())))

    def _instantiate(self, klass: Any, idx: int) -> None:  # (protocols 0 and 1: INST, OBJ)
        args = tuple(self.stack[idx:])
        if not is_class(klass):
            raise pickle.UnpicklingError("the test process builds an object of a class, nothing else")
        _check_call(klass, args)
        super()._instantiate(klass, idx)
        self._deepen(self._charge(self.stack[-1]), args)

    def _check_keys(self, target: Any, keys: Any) -> None:
        """Keys about to go into ``target`` (a dict or a set; None: one about to be made): none runs code of the
        agent's own when hashed or compared, and no more than ``MAX_SAME_HASH`` share a hash in one container."""
        for key in keys:
            _refuse_agent_key(key)
        counts = self._hashes.setdefault(id(target), {}) if target is not None else {}
        _refuse_collisions(keys, counts, "keys of one dict or set")

    def _deepen(self, target: Any, items: Any) -> Any:
        """``items`` went into ``target`` (a call's arguments, what is appended or set): refused nested deeper
        than ``MAX_TUPLE_DEPTH``. CPython frees a ``collections.deque`` or ``defaultdict`` recursively in C, with
        no depth guard: a chain of 200,000 sent by an agent's process crashed pytest with a segfault."""
        depths = self._depths
        depth = 1 + max((depths.get(id(item), 0) for item in items), default=0)
        if depth > depths.get(id(target), 0):
            if depth > MAX_TUPLE_DEPTH:
                raise pickle.UnpicklingError(f"objects nested more than {MAX_TUPLE_DEPTH} deep: the test process "
                                             "takes no such message")
            depths[id(target)] = depth
        return target

    def load_build(self) -> None:
        state, target = self.stack[-1], self.stack[-2]
        if issubclass(type(target), (type, types.ModuleType, types.FunctionType, types.BuiltinFunctionType,
                                     types.GenericAlias, types.UnionType)) or type(target).__module__ == "typing":
            # (a generic alias passes what is asked of it on to its origin: ``__setstate__`` of a class of the agent's)
            raise pickle.UnpicklingError("the test process sets no attribute of a class, a type form or a function "
                                         "for a message")
        refuse_agent_hooks(type(target), ("__setstate__", *AT_BUILD))
        refuse_reached_overrides(type(target), ("__setstate__",))
        parts = state if type(state) is tuple and len(state) == 2 else (state,)
        for part in parts:  # (read with its ``items()``, its ``values()``: a dict of the agent's own ran its code)
            if not genuine(type(part)):
                raise pickle.UnpicklingError(f"{_name(type(part))}: an object's state "
                                             "is plain data for the test process, not an object of the agent's own")
        setstate = _resolved(type(target), "__setstate__")
        if setstate is not None and not genuine(setstate[0]) and _made_by_installation(setstate[1]):
            _refuse_generated_setstate(type(target), state)
        stores_only = setstate is not None and _stores_only(setstate[1])
        if stores_only:  # (pydantic's: the names it stores under)
            for name in _PYDANTIC_STORED:
                refuse_agent_setter(type(target), name)
        reads_state = (setstate is not None and genuine(setstate[0]) and type(setstate[1]) is types.FunctionType
                       and not stores_only)  # (an installed ``__setstate__`` of an agent's subclass)
        if (genuine(type(target)) or reads_state) and not _is_numpy_array(target):
            # (an installed object's methods use what it holds, however deep: a ``UserString`` whose ``data`` is, or
            # holds, an object of the agent's own hashed it, a ``UUID``'s ``int`` too; a numpy object array only
            # stores its items)
            refuse_agents_objects(parts, f"an object of the installation's ({_name(type(target))})")
        slots = state[1] if isinstance(state, tuple) and len(state) == 2 and isinstance(state[1], dict) else None
        if slots:  # (set one by one with ``setattr``: through the class's ``__setattr__``, its properties' setters)
            refuse_agent_hooks(type(target), ("__setattr__",))
            for name in slots:
                if type(name) is not str or (name.startswith("__") and name.endswith("__")):
                    # (``__class__`` set so swapped the object's class after every check: its methods then ran)
                    raise pickle.UnpicklingError(f"{name!r}: the test process sets no special attribute for a message")
                refuse_agent_setter(type(target), name)
        super().load_build()

    def _nest(self) -> None:
        """The tuple just built: refused nested deeper than ``MAX_TUPLE_DEPTH`` (CPython hashes a tuple, and frees
        it, recursively in C: one nested a million deep, put in a set, crashed pytest with a segfault)."""
        built = self.stack[-1]
        depths = self._depths
        depth = 1 + max((depths.get(id(item), type(item) is tuple) for item in built), default=0)
        if depth > MAX_TUPLE_DEPTH:
            raise pickle.UnpicklingError(f"tuples nested more than {MAX_TUPLE_DEPTH} deep: the test process takes "
                                         "no such message")
        self._depths[id(built)] = depth

    for _opcode in (pickle.TUPLE, pickle.TUPLE1, pickle.TUPLE2, pickle.TUPLE3):
        dispatch[_opcode[0]] = _nested(dispatch[_opcode[0]])
    del _opcode
    dispatch[pickle.BUILD[0]] = _adding(load_build, -2, state=True)
    for _opcode, _target_at in ((pickle.APPENDS, None), (pickle.SETITEMS, None), (pickle.ADDITEMS, None),
                                (pickle.APPEND, -2), (pickle.SETITEM, -3)):
        dispatch[_opcode[0]] = _adding(dispatch[_opcode[0]], _target_at)
    del _opcode, _target_at
    dispatch[pickle.REDUCE[0]] = load_reduce
    dispatch[pickle.NEWOBJ[0]] = load_newobj
    dispatch[pickle.NEWOBJ_EX[0]] = load_newobj_ex
    dispatch[pickle.SETITEMS[0]] = _keyed(dispatch[pickle.SETITEMS[0]],
                                          lambda u: (u.metastack[-1][-1], u.stack[0::2]))
    dispatch[pickle.SETITEM[0]] = _keyed(dispatch[pickle.SETITEM[0]], lambda u: (u.stack[-3], (u.stack[-2],)))
    dispatch[pickle.ADDITEMS[0]] = _keyed(dispatch[pickle.ADDITEMS[0]], lambda u: (u.metastack[-1][-1], u.stack))
    dispatch[pickle.FROZENSET[0]] = _keyed(dispatch[pickle.FROZENSET[0]], lambda u: (None, u.stack))
    for _opcode, _cost in _BUILDS.items():
        dispatch[_opcode] = _charged(dispatch[_opcode], _cost)
    del _opcode, _cost

    def _rebuilder(self, function: Any) -> Any:
        """``function``, which a message may call (``_callable``)."""
        self._rebuilders[id(function)] = function
        return function

    def find_class(self, module: str, name: str) -> Any:
        rebuilder = _REBUILDERS.get((module, name))
        if rebuilder is not None:
            return self._rebuilder(rebuilder)
        kept = KEPT.get((module, name))
        if kept is not None:
            return kept
        loaded = _loaded(module)
        if loaded is None:
            raise pickle.UnpicklingError(f"{module}.{name}: not a module loaded in the test process")
        found: Any = loaded
        installed = _installed(module)
        try:
            for part in name.split("."):  # (a class's qualified name: never through another module)
                if installed:
                    found = getattr(found, part)
                else:  # (read from the namespaces: a module's ``__getattr__`` of the agent's own is not asked)
                    space = (found.__dict__ if type(found) is types.ModuleType
                             else _OWN_DICT(found) if is_class(found) else {})
                    if part not in space:
                        raise AttributeError(part)
                    found = space[part]
                if issubclass(type(found), types.ModuleType):
                    raise pickle.UnpicklingError(f"{module}.{name}: names a module's attribute through another")
        except AttributeError:
            raise pickle.UnpicklingError(f"{module}.{name}: no such name") from None
        if is_class(found):
            if not genuine(type(found)):  # (before anything is read of it: its metaclass's code would run)
                raise _agents_code(f"{_name(type(found))} (the metaclass of {module}."
                                   f"{name})")
            own = _MODULE(found)
            if found in _BUILTIN_DATA or issubclass(found, BaseException):
                return found
            if (module != "builtins" and not _not_data(module) and type(own) is str and not _not_data(own)
                    and own != "builtins" and not _is_array(found)):
                return found
        elif module in _NUMPY_MODULES and name == "_reconstruct":
            return self._rebuilder(_numpy_rebuilder(found))
        elif module in _NUMPY_MODULES and name == "scalar":
            return self._rebuilder(_numpy_scalar(found))  # (a numpy scalar from its dtype and its bytes)
        elif module in ("numpy._core.numeric", "numpy.core.numeric") and name == "_frombuffer":
            return self._rebuilder(found)  # (protocol 5's array: the buffer in the message, reshaped; never larger)
        elif (module == "typing" and not name.startswith("_") and "." not in name
              and not isinstance(found, (types.FunctionType, types.BuiltinFunctionType, dict))):
            return found  # (``List``, ``Union``: typing's special forms, subscripted by ``operator.getitem``)
        raise pickle.UnpicklingError(f"{module}.{name}: the test process takes data from an agent's process, not "
                                     "a function or a class that acts on the system")


def _named_tuple(cls: Any, args: Any) -> bool:
    """Whether ``cls`` is a ``collections.namedtuple`` class given one value per field (how one pickles)."""
    return (is_class(cls) and issubclass(cls, tuple) and isinstance(getattr(cls, "_fields", None), tuple)
            and isinstance(args, tuple) and len(args) == len(cls._fields) and "__new__" in cls.__dict__
            and getattr(getattr(cls.__dict__["__new__"], "__func__", None), "__module__", "")
            == f"namedtuple_{cls.__name__}")


def _refuse_generated_setstate(cls: type, state: Any) -> None:
    """``UnpicklingError`` when the ``__setstate__`` dataclasses or attrs made for ``cls`` would run code of the
    agent's own: it sets each field with ``object.__setattr__``, which runs a property's setter of the agent's
    (a subclass redefining a field), and a dataclass's reads the class's ``__dataclass_fields__`` (a dict of the
    agent's own type ran its ``values``)."""
    found = _resolved(cls, "__dataclass_fields__")
    names: list[Any] = []
    if found is not None:
        fields = found[1]
        dataclasses = sys.modules.get("dataclasses")
        if type(fields) is not dict or dataclasses is None or any(
                type(field) is not dataclasses.Field for field in dict.values(fields)):
            raise pickle.UnpicklingError(f"{_name(cls)}: the test process rebuilds a dataclass whose fields are "
                                         "the dataclasses module's own, nothing else")
        names += dict.keys(fields)
    if type(state) is dict:
        names += dict.keys(state)
    for name in names:
        refuse_agent_setter(cls, name)


#: What pydantic's ``BaseModel.__setstate__`` stores with ``object.__setattr__`` (through a descriptor there)
_PYDANTIC_STORED = ("__pydantic_fields_set__", "__pydantic_extra__", "__pydantic_private__", "__dict__")


def _stores_only(fn: Any) -> bool:
    """Whether ``fn`` is an installed ``__setstate__`` known to store its state without asking it anything
    (pydantic's: a model holding models of the agent's comes back)."""
    pydantic = sys.modules.get("pydantic")
    base = getattr(pydantic, "BaseModel", None) if pydantic is not None else None
    return base is not None and fn is _OWN_DICT(base).get("__setstate__")


def _is_numpy_array(value: Any) -> bool:
    """Whether ``value`` is a numpy array (its state holds an object array's items as they are: stored, not used)."""
    numpy = sys.modules.get("numpy")
    return numpy is not None and issubclass(type(value), numpy.ndarray)


def _is_array(cls: type) -> bool:
    """Whether ``cls`` is one of numpy's classes other than its dtype, array and scalar types (those are values,
    never called: ``_check_call``; its iterators, ``ndindex((10**5, 10**5))``, would feed a class that takes an
    iterable)."""
    numpy = sys.modules.get("numpy")
    if numpy is None:
        return False
    if issubclass(cls, (numpy.dtype, numpy.ndarray, numpy.generic)):
        return False  # (as values: called, an array's class or ``numpy.void(N)`` is refused by ``_check_call``)
    return (getattr(cls, "__module__", "") or "").split(".")[0] == "numpy"


def data_loads(data: bytes, build_left: int = MAX_ATTEMPT_BUILT_BYTES) -> Any:
    """``pickle.loads`` of what a child sent, as data (``_DataUnpickler``), building at most ``build_left``
    bytes beyond its own (``MAX_ATTEMPT_BUILT_BYTES``)."""
    return data_loads_counted(data, build_left)[0]


def data_loads_counted(data: bytes, build_left: int) -> tuple[Any, int]:
    """``data_loads``, and how much of ``build_left`` is left (``pickle.UnpicklingError`` past it)."""
    unpickler = _DataUnpickler(io.BytesIO(data), build_left)
    return unpickler.load(), unpickler.build_left


#: (module, name) -> a class of the harness's own that a message may name (``protocol`` adds ``ShownDefault``).
KEPT: dict[tuple[str, str], type] = {}
