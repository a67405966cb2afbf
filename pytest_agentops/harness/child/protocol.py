"""What parent and child say to each other: length-prefixed pickles over a socket pair, exceptions as data,
and the job a child runs (``ChildJob``)."""

from __future__ import annotations

import asyncio
import pickle
import select
import socket
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ...errors import ChildAgentError, hide_own_frames

__tracebackhide__ = hide_own_frames

_HEADER = struct.Struct("!Q")


class _Channel:
    """One end of the parent-child socket: whole pickled messages, each prefixed by its length."""

    def __init__(self, sock: socket.socket):
        self.sock = sock

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

    def recv(self) -> Any:
        (size,) = _HEADER.unpack(self._exact(_HEADER.size))
        return pickle.loads(self._exact(size))

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
        (size,) = _HEADER.unpack(await self._aexact(loop, _HEADER.size))
        return pickle.loads(await self._aexact(loop, size))

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


def thaw(frozen: tuple[str, Any, str]) -> BaseException:
    """The exception ``freeze`` described, rebuilt without calling its ``__init__`` (whose signature varies)."""
    how, data, text = frozen
    if how == "exc":
        try:
            cls, args, attrs = pickle.loads(data)
            exc = cls.__new__(cls, *args)
            exc.args = args
            for key, value in attrs.items():
                setattr(exc, key, value)
            return exc  # type: ignore[no-any-return]
        except Exception:
            pass
    return ChildAgentError(text)


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
    tools: tuple[tuple[str, str | None, Any, bool], ...]  # name, docstring, signature (or None), is_async
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
