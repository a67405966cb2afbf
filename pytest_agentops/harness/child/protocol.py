"""What parent and child say to each other: length-prefixed pickles over a socket pair, exceptions as data,
the job a child runs (``ChildJob``) and the face of each of its tools (``ToolFace``).

The parent takes what a child sends as data (``from_child``): a message is at most ``MAX_MESSAGE_BYTES``, all of
an attempt's messages at most ``MAX_ATTEMPT_BYTES``, and each is unpickled by ``child_data.data_loads``."""

from __future__ import annotations

import asyncio
import dataclasses
import inspect
import pickle
import select
import socket
import struct
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ...errors import ChildAgentError, hide_own_frames
from ...settings.tools import ToolSpec
from .child_data import (
    AT_BUILD,
    KEPT,
    MAX_ATTEMPT_BUILT_BYTES,
    data_loads_counted,
    is_class,
    refuse_agent_exception_class,
    refuse_agent_hooks,
    refuse_agent_setter,
    refuse_agents_objects,
)

__tracebackhide__ = hide_own_frames

_HEADER = struct.Struct("!Q")
#: The largest message the parent takes from a child (a header saying more ends the attempt: it would grow
#: pytest's memory with whatever the agent sends, beyond the child's own memory limit).
MAX_MESSAGE_BYTES = 256 * 2**20
#: The most the parent takes from one child in all its messages (what it sends is kept: the trace's events, the
#: tools' arguments; one 100 MB trace event sent over and over grew pytest by 2 GB in 14 s, the child's memory flat).
MAX_ATTEMPT_BYTES = 256 * 2**20

class _Channel:
    """One end of the parent-child socket: whole pickled messages, each prefixed by its length. The parent's end
    (``from_child``) takes messages of at most ``MAX_MESSAGE_BYTES``, as data (``data_loads``)."""

    def __init__(self, sock: socket.socket, *, from_child: bool = False):
        self.sock = sock
        self._from_child = from_child
        self._build_left = MAX_ATTEMPT_BUILT_BYTES  # (what the rest of a child's messages may build in all)
        self._limit = MAX_MESSAGE_BYTES if from_child else None
        self._left = MAX_ATTEMPT_BYTES if from_child else None  # what the rest of its messages may hold in all

    def _size(self, header: bytes) -> int:
        (size,) = _HEADER.unpack(header)
        if self._limit is not None and size > self._limit:
            raise MessageTooLarge(f"the agent's process sent a message of {size:,} bytes, more than the "
                                  f"{self._limit:,} one may have")
        if self._left is not None:
            if size > self._left:
                raise MessageTooLarge(f"the agent's process sent more than the {MAX_ATTEMPT_BYTES:,} bytes its "
                                      "messages may hold in all")
            self._left -= size
        return int(size)

    @staticmethod
    def frame(message: Any) -> bytes:
        """``message`` as sent: pickled, prefixed by its length."""
        data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
        return _HEADER.pack(len(data)) + data

    def send(self, message: Any) -> None:
        self.sock.sendall(self.frame(message))

    def _exact(self, n: int) -> bytes:
        chunks = []
        while n:
            chunk = self.sock.recv(min(n, 1 << 20))
            if not chunk:
                raise EOFError("the other process closed the channel")
            chunks.append(chunk)
            n -= len(chunk)
        return b"".join(chunks)

    def _loads(self, data: bytes) -> Any:
        if not self._from_child:
            return pickle.loads(data)
        try:
            value, self._build_left = data_loads_counted(data, self._build_left)
        except (pickle.UnpicklingError, MessageTooLarge):
            raise
        except Exception as exc:  # a frame that is no pickle: pickle's own ``ValueError``, ``EOFError``, ...
            raise pickle.UnpicklingError(f"the agent's process sent a message that is not one "
                                         f"({type(exc).__name__}: {str(exc)[:200]})") from None
        return value

    def recv(self) -> Any:
        return self._loads(self._exact(self._size(self._exact(_HEADER.size))))

    async def _aexact(self, loop: asyncio.AbstractEventLoop, n: int) -> bytes:
        chunks = []
        while n:
            chunk = await loop.sock_recv(self.sock, min(n, 1 << 20))
            if not chunk:
                raise EOFError("the other process closed the channel")
            chunks.append(chunk)
            n -= len(chunk)
        return b"".join(chunks)

    async def arecv(self, loop: asyncio.AbstractEventLoop) -> Any:
        """``recv`` for a non-blocking socket, from a task on ``loop`` (the loop waits for real meanwhile)."""
        size = self._size(await self._aexact(loop, _HEADER.size))
        return self._loads(await self._aexact(loop, size))

    def poll(self, timeout: float) -> bool:
        """Whether a message (or the end of the channel) is waiting, after at most ``timeout`` seconds."""
        return bool(select.select([self.sock], [], [], timeout)[0])

    def close(self) -> None:
        self.sock.close()


# --- exceptions across the socket ------------------------------------------------------------------------


def freeze(exc: BaseException) -> tuple[str, Any, str]:
    """``exc`` as picklable data: (class, args, attributes) when possible, else its text."""
    text = f"{type(exc).__name__}: {exc}"
    try:
        attrs = {k: v for k, v in vars(exc).items() if not k.startswith("__")}
        return "exc", pickle.dumps((type(exc), exc.args, attrs)), text
    except Exception:
        return "text", None, text


class MessageTooLarge(OSError):
    """A child's message header says more than ``MAX_MESSAGE_BYTES``."""


def thaw(frozen: Any, loads: Callable[[bytes], Any] = pickle.loads) -> BaseException:
    """The exception ``freeze`` described, rebuilt without calling its ``__init__`` (whose signature varies);
    ``loads``: ``data_loads`` for what a child sent. Anything else than an exception class with its arguments and
    attributes, or one whose rebuilding or showing would run code of the agent's own (its ``__new__``,
    ``__setattr__``, ``__del__``, ``__str__``, ``__repr__``, a property's setter: ``child_data.agent_hook``): a
    ``ChildAgentError`` with the text the child made."""
    try:
        how, data, text = frozen
    except (TypeError, ValueError):
        return ChildAgentError("an exception the agent's process sent in a form the harness does not take")
    text = text if isinstance(text, str) else "an exception the agent's process sent without its text"
    if how == "exc":
        try:
            cls, args, attrs = loads(data)
            if not (is_class(cls) and issubclass(cls, BaseException) and type(args) is tuple
                    and type(attrs) is dict):
                return ChildAgentError(text)
            # (its text, as the reports show it, is the one the child made: an exception's own ``__str__`` or
            # ``__repr__`` would run here, when the trial is judged)
            refuse_agent_hooks(cls, ("__new__", "__setattr__", "__del__", "__str__", "__repr__", *AT_BUILD))
            refuse_agent_exception_class(cls)  # (what its installed ``__str__`` reads, what ``describe`` reads)
            refuse_agents_objects((args, attrs), "an exception")  # (``BaseException.__str__`` shows its arguments)
            for key in attrs:
                if type(key) is not str or (key.startswith("__") and key.endswith("__")):
                    return ChildAgentError(text)  # (``__class__`` set so swapped the class after every check)
                refuse_agent_setter(cls, key)
            exc = cls.__new__(cls, *args)
            exc.args = args
            for key, value in attrs.items():
                setattr(exc, key, value)
            return exc  # type: ignore[no-any-return]
        except Exception:
            pass
    return ChildAgentError(text)


@dataclass(frozen=True, slots=True)
class ToolFace:
    """How one of the trial's tools looks to the agent, sent to its process, where ``env.tools`` are proxies of
    the parent's: the same face as in-process (``harness.tools.dress``), so frameworks that introspect tools (and
    the schemas a model is shown) see the same function isolated or not.

    ``spec`` is the tool's ``ToolSpec`` pickled (its function by reference, as the agent's): the child imports
    it and dresses its proxy from it, exactly as in-process. Where that cannot be (a tool defined in a function
    or in ``__main__``, whose module the child cannot import), ``attrs`` is the face as data: the wrapper's name,
    qualified name, module, docstring, annotations and signature (an annotation that cannot be pickled as its
    text), and its own attributes that can; ``meta`` the spec's fields other than its function and signature.
    """

    name: str  # the key in ``env.tools``
    is_async: bool
    spec: bytes | None
    attrs: dict[str, Any]
    meta: dict[str, Any]
    origin: tuple[Any, ...] = ()  # the spec's function's module, qualified name and name, as the parent sees it


_FACE = ("__name__", "__qualname__", "__module__", "__doc__")


def tool_face(name: str, fn: Callable[..., Any]) -> ToolFace:
    """The face of ``fn``, one of the trial's ``env.tools`` (a ``ToolTemplate``'s wrapper), to send to a child."""
    spec = getattr(fn, "__agentops_tool__", None)
    data: bytes | None = None
    meta: dict[str, Any] = {}
    origin: tuple[Any, ...] = ()
    if isinstance(spec, ToolSpec):
        origin = _origin(spec.fn)
        meta = {f.name: getattr(spec, f.name) for f in dataclasses.fields(spec) if f.name not in ("fn", "signature")}
        try:
            data = pickle.dumps(spec, protocol=pickle.HIGHEST_PROTOCOL)
        except Exception:  # a local function, an unpicklable default: the face as data only
            data = None
    attrs: dict[str, Any] = {key: getattr(fn, key, None) for key in _FACE}
    attrs["__annotations__"] = {key: _portable(value) for key, value in getattr(fn, "__annotations__", {}).items()}
    for key, value in getattr(fn, "__dict__", {}).items():
        if key == "__agentops_tool__":
            continue
        if key == "__signature__" and isinstance(value, inspect.Signature):
            value = _portable_signature(value)
        if _picklable(value):
            attrs[key] = value
    return ToolFace(name, inspect.iscoroutinefunction(fn), data, attrs, meta, origin)


def _origin(fn: Any) -> tuple[Any, ...]:
    return tuple(str(getattr(fn, key, "")) for key in ("__module__", "__qualname__", "__name__"))


def _picklable(value: Any) -> bool:
    try:
        pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception:
        return False
    return True


def _portable(annotation: Any) -> Any:
    """An annotation that can cross to the child: itself, or its text (``inspect.formatannotation``)."""
    return annotation if _picklable(annotation) else inspect.formatannotation(annotation)


class ShownDefault:
    """A parameter's default that cannot cross to the child, as it shows in the signature (its ``repr``)."""

    __slots__ = ("text",)

    def __init__(self, text: str):
        self.text = text

    def __repr__(self) -> str:
        return self.text

    def __reduce__(self) -> tuple[Any, ...]:
        return ShownDefault, (self.text,)


KEPT[(__name__, "ShownDefault")] = ShownDefault  # (a tool's signature the agent sends back may hold one)


def _portable_default(default: Any) -> Any:
    if default is inspect.Parameter.empty or _picklable(default):
        return default
    try:
        return ShownDefault(repr(default))
    except Exception:
        return ShownDefault(f"<{type(default).__name__}>")


def _portable_signature(sig: inspect.Signature) -> inspect.Signature:
    params = [p.replace(annotation=_portable(p.annotation), default=_portable_default(p.default))
              for p in sig.parameters.values()]
    return sig.replace(parameters=params, return_annotation=_portable(sig.return_annotation))


def load_spec(face: ToolFace) -> ToolSpec | None:
    """In the child: the tool's ``ToolSpec``, its function from its module when the agent's import brought that
    module here; None otherwise (a tool module the agent does not import is not imported for its face, which
    then comes as data: a slow import would cost every isolated trial), or when it names something else here
    (the child's ``__main__`` is not the parent's)."""
    if face.spec is None or not face.origin or face.origin[0] not in sys.modules:
        return None
    try:
        spec = pickle.loads(face.spec)
    except Exception:
        return None
    if not isinstance(spec, ToolSpec) or _origin(spec.fn) != face.origin:
        return None
    return spec


@dataclass(frozen=True, slots=True)
class ChildJob:
    """What a child process needs to run one attempt of a trial's agent."""

    agent: Callable[..., Any]
    task: str
    scenario: str
    index: int
    seed: int
    state: str  # a concrete StateSpec: the file or server the parent's store uses
    namespace: str
    tools: tuple[ToolFace, ...]  # what the agent's ``env.tools`` look like (each a proxy of the parent's tool)
    epoch: float
    llm: tuple[str, str, str] | None = None  # the trial's fake model (``env.llm``): base URL, fake key, model name
    secret_names: tuple[str, ...] = ()  # variables whose values are secrets whatever their names (``secrets``)
    fault_hosts: tuple[str, ...] = ()  # hosts the trial injects transport faults into (answered by the parent)




@dataclass(frozen=True, slots=True)
class ChildLimits:
    """Limits a child process sets on itself before it imports the agent (``resource.setrlimit``)."""

    memory_limit_mb: int | None = None  # address space (RLIMIT_AS), MiB; None: no limit


def describe_exit(code: int | None) -> str:
    """``exited with code 3``, ``was killed by SIGSEGV``: how a child process ended."""
    if code is None:
        return "is still running"
    if code < 0:
        import signal

        try:
            return f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with code {code}"
