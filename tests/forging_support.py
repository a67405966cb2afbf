"""An isolated agent's objects that would run its code in the test process as they are rebuilt there, each in a
way an outside review found past the first refusals (module-level, so that a child process can import them)."""

from __future__ import annotations

import argparse
import collections
import copyreg
import enum
import os
import types

from isolation_support import _fake_refund


class CallMe:
    def __call__(self, *args):
        _fake_refund()
        return "called"


class CallsAnObject:
    """Rebuilt by calling an object of the agent's class (its ``__call__``)."""

    def __reduce__(self):
        return (CallMe(), ())


class CallsAnInstalledObject:
    """Rebuilt by calling an installed class's object: ``argparse.FileType("w")(path)`` empties ``path``."""

    def __reduce__(self):
        return (argparse.FileType("w"), (os.environ["AGENTOPS_VICTIM"],))


class _Ghost:
    def __reduce__(self):
        return "Phantom"  # (pickled by name: ``forging_support.Phantom``, which only ``__getattr__`` gives)


_GHOST = _Ghost()


def __getattr__(name):
    if name == "Phantom":
        _fake_refund()
        return _GHOST
    raise AttributeError(name)


class Spoof:
    """Says it is the standard library's ``json``'s (in the test process; the child's copy says where it is)."""

    __module__ = "json"

    def __init__(self):
        self.x = 1

    def __setstate__(self, state):
        _fake_refund()
        self.__dict__.update(state)


class Lazy:
    def __init__(self):
        self.x = 1

    def __getattr__(self, name):  # (pickle asks ``getattr(obj, "__setstate__")``)
        _fake_refund()
        raise AttributeError(name)


class OwnDict(dict):
    def __setitem__(self, key, value):
        _fake_refund()
        super().__setitem__(key, value)


class OwnList(list):
    def extend(self, items):
        _fake_refund()
        super().extend(items)


class Meta(type):
    def __getattribute__(cls, name):
        _fake_refund()
        return super().__getattribute__(name)


class WithMeta(metaclass=Meta):
    pass


class Mood(enum.Enum):
    OK = "ok"

    @classmethod
    def _missing_(cls, value):
        _fake_refund()
        return cls.OK


class CallsTheEnum:
    def __reduce__(self):
        return (Mood, ("nope",))


class Key:
    def __hash__(self):
        _fake_refund()
        return 1

    def __eq__(self, other):
        return self is other


class KeysAnOrderedDict:
    """Rebuilt as ``OrderedDict([(Key(), 1)])``: the key hashed as the call's argument, not as a dict's item."""

    def __reduce__(self):
        return (collections.OrderedDict, ([(Key(), 1)],))


class StateDict(dict):
    def items(self):
        _fake_refund()
        return super().items()

    def values(self):
        _fake_refund()
        return super().values()


class WithStateDict:
    def __reduce__(self):
        return (copyreg.__newobj__, (WithStateDict,), StateDict(x=1))


class Masquerade:
    @property
    def __class__(self):  # (``isinstance`` reads it)
        _fake_refund()
        return Masquerade


class Oops(Exception):
    def __str__(self):
        _fake_refund()
        return "oops"


def forges_more(task, env):
    """Returns (or raises) one of the objects above (``task`` picks which)."""
    if task == "spoofed_module":
        Spoof.__module__ = __name__  # (the child's copy pickles by where it is; the test process's says json)
        return Spoof()
    if task == "exception_text":
        raise Oops()
    if task == "exception_argument":
        raise ValueError(Stringed())
    made = {"call": CallsAnObject, "installed_call": CallsAnInstalledObject, "module_getattr": lambda: _GHOST,
            "getattr": Lazy, "dict": lambda: OwnDict(a=1), "list": lambda: OwnList([1, 2]),
            "metaclass": lambda: WithMeta,
            "enum_missing": CallsTheEnum, "key_argument": KeysAnOrderedDict, "state_dict": WithStateDict,
            "class_property": Masquerade}
    return made[task]()


class Generic:
    def __class_getitem__(cls, item):
        _fake_refund()
        return cls


class OrMeta(type):
    def __or__(cls, other):
        _fake_refund()
        return cls


class WithOr(metaclass=OrMeta):
    pass


class OwnBytes(bytes):
    pass


class Index:
    def __index__(self):
        _fake_refund()
        return 1


class Reduces:
    """An object pickled as ``function(*args)``: a message a child could send."""

    def __init__(self, function, args):
        self.function, self.args = function, args

    def __reduce__(self):
        return (self.function, self.args)


# a third review's ways, fed straight to the unpickler (``Reduces``): an object of the agent's own as a call's
# argument, which the call asks things of (its ``__complex__``, ``__iter__``, ``keys``, ``__hash__``)
class AsComplex:
    def __complex__(self):
        _fake_refund()
        return 1j


class Iterated:
    def __iter__(self):
        _fake_refund()
        return iter([1, 2])


class Keyed:
    def keys(self):
        _fake_refund()
        return ["a"]

    def __getitem__(self, key):
        return 1


class Colour(enum.Enum):
    RED = 1


class Setter:
    def __setstate__(self, state):
        _fake_refund()


class Substituted:
    def __typing_subst__(self, arg):
        _fake_refund()
        return arg


class Plain:
    pass


class Evil:
    def __eq__(self, other):
        _fake_refund()
        return True

    __hash__ = object.__hash__


class Builds:
    """An object pickled as ``function(*args)`` then set from ``state`` (pickle's BUILD)."""

    def __init__(self, function, args, state):
        self.function, self.args, self.state = function, args, state

    def __reduce__(self):
        return (self.function, self.args, self.state)


# a fourth review's ways: an object of the agent's own one level down, in a call's list, tuple or dict argument
# or in what an installed container whose filling is Python code is filled with
class Stringed:
    def __str__(self):
        _fake_refund()
        return "1.2.3.4"


class Truthy:
    def __bool__(self):
        _fake_refund()
        return True



# a seventh review's ways: a subclass of an installed class whose installed building code calls a method it
# overrides; an installed hash hashing what an agent's subclass holds; an enum called with a value compared with
# its members' values
import random  # noqa: E402


class OwnRandom(random.Random):
    def seed(self, *args, **kwargs):  # (``Random.__init__`` calls it)
        _fake_refund()
        return super().seed(*args, **kwargs)


class OwnCounter(collections.Counter):
    def update(self, *args, **kwargs):  # (``Counter.__init__`` calls it)
        _fake_refund()
        return super().update(*args, **kwargs)


class OwnUserString(collections.UserString):
    pass


class EqualsFive:
    def __hash__(self):
        return hash(5)

    def __eq__(self, other):
        _fake_refund()
        return True


class ValuedByObject(enum.Enum):
    A = EqualsFive()


# an eighth review's ways: an installed function put on a class of the agent's (a shell command ran), a dunder
# the installation's code reaches without naming it (``if self:``), a C base filling through an override, the
# state an installed ``__setstate__`` of an agent's subclass reads
import uuid  # noqa: E402


class MakesDirectories(list):
    __setstate__ = os.makedirs  # (pickle's BUILD calls it with the state: a path)


class TruthyCounter(collections.Counter):
    def __bool__(self):  # (``Counter.update`` asks ``if self:``)
        _fake_refund()
        return True


class OwnOrderedDict(collections.OrderedDict):
    def __setitem__(self, key, value):  # (``OrderedDict``'s C ``__init__`` fills through it)
        _fake_refund()
        super().__setitem__(key, value)

    def __reduce__(self):
        return (OwnOrderedDict, ({"a": 1},))


class OwnUUID(uuid.UUID):
    pass


# a ninth review's ways: a function whose code says it is attrs's generated ``__setstate__`` (its file and name
# rewritten), and the setter of a field a dataclass's generated ``__setstate__`` sets (a subclass redefining it)
import dataclasses  # noqa: E402
import sysconfig  # noqa: E402


def _set_from(self, state):
    _fake_refund()
    self.__dict__.update(state)


class Disguised:
    __setstate__ = types.FunctionType(
        _set_from.__code__.replace(co_filename=os.path.join(sysconfig.get_paths()["purelib"], "attr", "_make.py"),
                                   co_name="slots_setstate"), globals(), "slots_setstate")


@dataclasses.dataclass(frozen=True, slots=True)
class Point:
    x: int


class PointWithSetter(Point):
    __slots__ = ()

    @property
    def x(self):
        return 0

    @x.setter
    def x(self, value):
        _fake_refund()


# a tenth review's ways: a setter held by a property subclass of the agent's, or by an installed descriptor
def _sets(self, value):
    _fake_refund()


class OwnProperty(property):
    pass


class SetByOwnProperty:
    x = OwnProperty(lambda self: 0, _sets)


class SetByInstalledDescriptor:
    x = types.DynamicClassAttribute(lambda self: 0, _sets)


# an eleventh review's ways: through the exception the harness rebuilds and shows, and a class of the agent's an
# installed constructor calls
class ArgsSetter(Exception):
    @property
    def args(self):
        return ("x",)

    @args.setter
    def args(self, value):  # (the harness sets an exception's ``args``)
        _fake_refund()


class Stringed2(Exception):
    pass


class Formatter:
    def __init__(self, *args, **kwargs):  # (``ArgumentParser`` makes its help formatter)
        _fake_refund()


# a twelfth review's ways: what an exception class of the agent's wraps in a staticmethod (an installed ``__str__``
# reads it), and its ``__traceback__`` replaced
import subprocess  # noqa: E402


class Shown:
    def __str__(self):
        _fake_refund()
        return "c"


class WrapsAnObject(subprocess.CalledProcessError):
    cmd = staticmethod(Shown())
    returncode = 1


class ReplacesItsTraceback(Exception):
    __traceback__ = staticmethod(Shown())
