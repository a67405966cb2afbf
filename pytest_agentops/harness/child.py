"""Real crashes: the agent runs in a child process that is killed with SIGKILL at the planned step.

The design, chosen as the simplest honest one: the parent (the runner's trial thread or task) owns everything
that must outlive the agent's process (the world, the fault plan, the trace, the meter, the gate and
the virtual clock), as a real deployment's payment API and database outlive the agent's worker. The
child process runs only the agent. Its ``env`` looks like the in-process ``Env``, but every tool call,
confirmation, usage report, clock read and trace event is a request over a pipe that the parent serves
through the same harness layers as in-process. The one thing the child owns is its checkpoint store:
it opens the campaign's SQLite file (or Redis server) itself and writes its checkpoints there, so
what survives the kill is exactly what the agent committed.

At the planned tool call the parent runs the tool (``after``) or not (``before``), then sends SIGKILL
instead of the result: the child dies mid-step, between the side effect and its checkpoint. The parent
then starts a new child on the same world and store, up to ``crash_restarts`` times. A child that dies
on its own (``os._exit``, a segfault) is a crash too and is restarted the same way.

Each child is a fresh interpreter running this module (``python -m pytest_agentops.harness.child FD``),
never a ``fork`` of the runner's threaded process; parent and child talk over a socket pair, one
length-prefixed pickle per message (between a process and its own child: checkpoints stay JSON). The
child takes the parent's ``sys.path`` and imports the agent by reference, so the agent must be importable
(a module-level function or an instance of a module-level class).

An async agent runs in the child on a ``VirtualTimeLoop`` of its own, whose jumps to the next timer advance
the trial's clock in the parent (``asyncio.sleep(30)`` in the child is 30 virtual seconds of the trial). In
the parent its attempts are tasks on the trial loop that await the child's requests, so the watchdog and the
virtual deadline end them by cancelling the task, which kills the child.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import os
import pickle
import select
import signal
import socket
import struct
import subprocess
import sys
import threading
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from ..errors import AgentOpsError
from ..faults import STREAM_AGENT, trial_stream
from .clock import VirtualClock, VirtualTimeLoop, real_monotonic, run_virtual, time_patch, virtual_time
from .crash import AgentCrash, CrashInjector
from .state import StateSpec, TrialStore
from .trial_random import TrialRandom, enter_random, exit_random

if TYPE_CHECKING:
    from .state import CheckpointStore

_POLL_S = 0.05  # how often the parent looks up from the pipe (to notice a dead child or an aborted trial)
_CLOCK = frozenset({"now", "monotonic", "advance", "sleep"})
_ENV = frozenset({"confirm", "record_usage", "escalate", "report_confidence"})


class ChildAgentError(AgentOpsError):
    """An exception the agent raised in its child process that could not be sent back as itself."""


# --- messages across the socket --------------------------------------------------------------------------

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


# --- the child side ------------------------------------------------------------------------------------


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


class _Rpc:
    """The child's end of the socket: one request, one reply, one at a time."""

    def __init__(self, conn: _Channel):
        self.conn = conn
        self.lock = threading.Lock()

    def call(self, *request: Any) -> Any:
        with self.lock:
            self.conn.send(request)
            status, value = self.conn.recv()
        if status == "ok":
            return value
        raise thaw(value)


class _RemoteClock(VirtualClock):
    """The trial's virtual clock, read and advanced in the parent."""

    __slots__ = ("_rpc",)

    def __init__(self, rpc: _Rpc, epoch: float):
        super().__init__(epoch, source=lambda: float(rpc.call("clock", "monotonic", ())))
        self._rpc = rpc

    def advance(self, seconds: float) -> None:
        self._rpc.call("clock", "advance", (seconds,))

    def sleep(self, seconds: float) -> None:
        self._rpc.call("clock", "sleep", (seconds,))


class _RemoteTrace:
    """The trial's trace, kept in the parent: the agent can add its own events."""

    def __init__(self, rpc: _Rpc):
        self._rpc = rpc

    def add(self, kind: str, name: str = "", outcome: str = "ok", /, **data: Any) -> None:
        self._rpc.call("trace", kind, name, outcome, data)


def _tool_proxy(rpc: _Rpc, name: str, doc: str | None, sig: Any, is_async: bool) -> Callable[..., Any]:
    def call(*args: Any, **kwargs: Any) -> Any:
        return rpc.call("tool", name, args, kwargs)

    proxy: Callable[..., Any] = call
    if is_async:
        async def acall(*args: Any, **kwargs: Any) -> Any:
            return call(*args, **kwargs)
        proxy = acall
    proxy.__name__ = proxy.__qualname__ = name
    proxy.__doc__ = doc
    if sig is not None:
        proxy.__signature__ = sig  # type: ignore[attr-defined]
    return proxy


class ChildEnv:
    """The ``env`` an agent gets in its child process: the ``Env`` API, served by the parent over a pipe.

    ``state`` is the trial's checkpoint store, opened in this process; ``world`` is not here (it lives in
    the parent: reach it through tools).
    """

    __slots__ = ("_job", "_rng", "_rpc", "clock", "llm", "state", "task", "tools", "trace")

    def __init__(self, rpc: _Rpc, job: ChildJob, store: CheckpointStore):
        self._rpc = rpc
        self._job = job
        self._rng: Any = None
        self.task = job.task
        self.llm = None
        self.tools: Mapping[str, Callable[..., Any]] = MappingProxyType(
            {name: _tool_proxy(rpc, name, doc, sig, is_async) for name, doc, sig, is_async in job.tools})
        self.state = TrialStore(store, lambda kind, name, outcome: rpc.call("trace", kind, name, outcome, {}))
        self.clock = _RemoteClock(rpc, job.epoch)
        self.trace = _RemoteTrace(rpc)

    @property
    def rng(self) -> Any:
        """The agent's own randomness, from the trial seed (afresh in each process, as after a restart)."""
        if self._rng is None:
            self._rng = trial_stream(self._job.seed, STREAM_AGENT)
        return self._rng

    @property
    def world(self) -> Any:
        raise AttributeError("env.world lives in the parent process under crash_mode='sigkill'; the agent "
                             "reaches it through its tools")

    @property
    def trial_id(self) -> str:
        return f"trial-{self._job.index}"

    @property
    def seed(self) -> int:
        return self._job.seed

    def confirm(self, action: str, **details: Any) -> bool:
        """Ask the simulated human (in the parent) to approve ``action`` with these arguments."""
        return bool(self._rpc.call("env", "confirm", (action,), details))

    def record_usage(self, input_tokens: int = 0, output_tokens: int = 0, model: str = "*") -> None:
        """Meter one model call's tokens (the meter and its budgets are in the parent)."""
        self._rpc.call("env", "record_usage", (), {"input_tokens": input_tokens, "output_tokens": output_tokens,
                                                    "model": model})

    def report_confidence(self, confidence: float) -> None:
        """Report how sure the agent is (0 to 1) to the escalation layer in the parent (which may escalate)."""
        self._rpc.call("env", "report_confidence", (confidence,), {})

    def escalate(self, reason: str) -> None:
        """Hand the task to a human: the parent ends the trial (and this process). Does not return."""
        self._rpc.call("env", "escalate", (reason,), {})
        raise SystemExit(0)  # not reached: the parent kills this process first

    def __repr__(self) -> str:
        return f"<ChildEnv {self._job.scenario}[{self.trial_id} seed={self._job.seed}] pid={os.getpid()}>"


def _run_here(coro: Any, clock: _RemoteClock) -> Any:
    """Run an async agent's coroutine in this process: its loop's jumps to the next timer (``asyncio.sleep``)
    advance the trial's clock in the parent, as they would on the parent's own loop."""
    loop = VirtualTimeLoop()
    loop.on_jump = clock.advance
    try:
        return run_virtual(coro, loop=loop)
    finally:
        loop.close()


def child_main(conn: _Channel, job: ChildJob) -> None:
    """The child process: run the agent once and send back its output or its exception."""
    rpc = _Rpc(conn)
    store = StateSpec.parse(job.state).open(job.namespace)
    try:
        env = ChildEnv(rpc, job, store)
        random_token = enter_random(TrialRandom(job.seed))  # as in the parent: the trial's own stdlib random
        try:
            with time_patch(), virtual_time(env.clock):
                output = job.agent(job.task, env)
                if inspect.isawaitable(output):  # an async agent: on a virtual-time loop of its own
                    output = _run_here(output, env.clock)
        finally:
            exit_random(random_token)
        try:
            pickle.dumps(output)
        except Exception:
            output = repr(output)
        message: tuple[Any, ...] = ("done", output)
    except BaseException as exc:
        message = ("error", freeze(exc), "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)))
    finally:
        store.close()
    conn.send(message)
    conn.close()


def main(argv: list[str] | None = None) -> None:
    """The entry point of a child process: ``python -m pytest_agentops.harness.child FD``."""
    fd = int((argv if argv is not None else sys.argv[1:])[0])
    conn = _Channel(socket.socket(fileno=fd))
    sys_path, job_data = conn.recv()
    sys.path[:] = sys_path  # the parent's, so the agent's module imports as it did there
    child_main(conn, pickle.loads(job_data))


# --- the parent side -----------------------------------------------------------------------------------


class _Died(Exception):
    """The child process ended without a result."""


class ChildAgent:
    """Runs a trial's agent in child processes, serving its harness calls; SIGKILLs it at the planned crash.

    Called by the runner in the trial's worker thread as ``agent(task, env)``, with the trial's real
    ``Env``; returns the agent's output, raises its exception, or ends the trial ``crashed``.
    """

    def __init__(self, agent: Callable[..., Any], injector: CrashInjector, store: CheckpointStore,
                 state: StateSpec, restarts: int, *, scenario: str, index: int, seed: int):
        self.agent = agent
        self.injector = injector
        self.store = store
        self.state = state
        self.restarts = restarts
        self.scenario = scenario
        self.index = index
        self.seed = seed
        self.pids: list[int] = []  # the child processes started, in order (tests look at them)

    def _job(self, task: str, env: Any) -> ChildJob:
        tools = []
        for name, fn in env.tools.items():
            sig: Any = getattr(fn, "__signature__", None)
            try:
                pickle.dumps(sig)
            except Exception:
                sig = None
            tools.append((name, fn.__doc__, sig, inspect.iscoroutinefunction(fn)))
        return ChildJob(self.agent, task, self.scenario, self.index, self.seed, str(self.state),
                        self.store.namespace, tuple(tools), env.clock.epoch)

    def __call__(self, task: str, env: Any) -> Any:
        """Sync agent: run it to the end (restarts included). Async agent: the coroutine that does so."""
        job = pickle.dumps(self._job(task, env))
        if _is_async_callable(self.agent):
            return self._run_async(job, env)
        attempt = 0
        while True:
            try:
                return self._attempt(job, env)
            except AgentCrash:
                pass  # the planned crash: the child was killed at its step
            except _Died as died:
                self.injector.died(str(died))
            attempt = self._next_attempt(attempt)

    async def _run_async(self, job: bytes, env: Any) -> Any:
        attempt = 0
        while True:
            try:
                return await self._attempt_async(job, env)
            except AgentCrash:
                pass
            except _Died as died:
                self.injector.died(str(died))
            attempt = self._next_attempt(attempt)

    def _next_attempt(self, attempt: int) -> int:
        attempt += 1
        if attempt > self.restarts:
            raise self.injector.give_up(self.restarts)
        self.injector.resume(attempt, self.store)
        return attempt

    def _spawn(self, job: bytes) -> tuple[subprocess.Popen[bytes], _Channel]:
        """A fresh child process, given its job; and the parent's end of the channel."""
        ours, theirs = socket.socketpair()
        try:
            # PYTHONPATH: the child finds this package (and the agent's module) wherever the parent did
            env_vars = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
            proc = subprocess.Popen([sys.executable, "-m", __name__, str(theirs.fileno())],
                                    pass_fds=(theirs.fileno(),), stdin=subprocess.DEVNULL, env=env_vars)
        finally:
            theirs.close()
        self.pids.append(proc.pid)
        parent = _Channel(ours)
        parent.send((list(sys.path), job))
        return proc, parent

    def _end(self, proc: subprocess.Popen[bytes], parent: _Channel, finished: bool) -> None:
        """After an attempt: reap the child (SIGKILL it if it still runs) and record its exit code."""
        if finished:
            _wait(proc)
        code = _kill(proc)
        codes = self.injector.ctx.extra.setdefault("exit_codes", [])
        codes.append(code)  # per attempt: -9 is a SIGKILL, 0 a clean exit
        parent.close()

    def _attempt(self, job: bytes, env: Any) -> Any:
        proc, parent = self._spawn(job)
        finished = False  # the child sent its result and exits by itself
        try:
            while True:
                if not parent.poll(_POLL_S):
                    self.injector.ctx.check_alive()  # the runner gave up on this trial (wall-clock limit)
                    if proc.poll() is not None and not parent.poll(0):
                        raise _Died(f"agent process exited with code {proc.returncode} without a result")
                    continue
                try:
                    request = parent.recv()
                except (EOFError, OSError):
                    raise _Died(f"agent process exited with code {_wait(proc)} without a result") from None
                finished = request[0] in ("done", "error")
                if finished:
                    return _result(request)
                parent.sock.sendall(_reply_frame(request, self._serve(env, request)))
        finally:
            self._end(proc, parent, finished)

    async def _attempt_async(self, job: bytes, env: Any) -> Any:
        """``_attempt`` as a task on the trial loop: the runner's watchdog and the virtual deadline end it by
        cancelling the task (the child is killed on the way out); async tools are awaited here."""
        loop = asyncio.get_running_loop()
        proc, parent = self._spawn(job)
        parent.sock.setblocking(False)
        finished = False
        try:
            while True:
                try:
                    request = await parent.arecv(loop)
                except (EOFError, OSError):
                    raise _Died(f"agent process exited with code {_wait(proc)} without a result") from None
                finished = request[0] in ("done", "error")
                if finished:
                    return _result(request)
                reply = self._serve(env, request)
                if reply[0] == "await":
                    reply = await _awaited(reply[1])
                await loop.sock_sendall(parent.sock, _reply_frame(request, reply))
        finally:
            self._end(proc, parent, finished)

    def _serve(self, env: Any, request: tuple[Any, ...]) -> tuple[str, Any]:
        """One harness call of the child, made here through the trial's real layers. An async tool's
        awaitable comes back as ``("await", awaitable)`` when the trial runs on a loop, else is run here."""
        op = request[0]
        try:
            if op == "tool":
                _, name, args, kwargs = request
                tool = env.tools.get(name)
                if tool is None:
                    raise KeyError(f"no tool named {name!r}")
                result = tool(*args, **kwargs)
                if inspect.isawaitable(result):  # an async tool, on the trial's virtual clock
                    if _is_async_callable(self.agent):
                        return "await", result
                    result = run_virtual(result)
                return "ok", result
            if op == "env" and request[1] in _ENV:
                _, method, args, kwargs = request
                return "ok", getattr(env, method)(*args, **kwargs)
            if op == "clock" and request[1] in _CLOCK:
                _, method, args = request
                return "ok", getattr(env.clock, method)(*args)
            if op == "trace":
                _, kind, name, outcome, data = request
                env.trace.add(kind, name, outcome, **data)
                return "ok", None
            raise ValueError(f"unknown request {request[:2]!r}")
        except Exception as exc:  # the agent sees the tool's (or the harness's) exception
            return "raise", freeze(exc)


def _is_async_callable(fn: Any) -> bool:
    return inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(type(fn).__call__)


def _result(message: tuple[Any, ...]) -> Any:
    """The agent's output from the child's last message, or its exception raised."""
    if message[0] == "done":
        return message[1]
    exc = thaw(message[1])
    if isinstance(exc, AgentCrash) or not isinstance(exc, Exception):
        raise _Died(f"agent process raised {message[2]}")
    raise exc


async def _awaited(awaitable: Any) -> tuple[str, Any]:
    try:
        return "ok", await awaitable
    except Exception as exc:  # the agent sees the tool's (or the harness's) exception
        return "raise", freeze(exc)


def _reply_frame(request: tuple[Any, ...], reply: tuple[str, Any]) -> bytes:
    """The reply to one of the child's requests, ready to send (an exception when it cannot be pickled)."""
    try:
        return _Channel.frame(reply)
    except Exception as exc:
        return _Channel.frame(("raise", freeze(TypeError(f"{request[1]!r}: its result cannot be sent to the "
                                                         f"agent's process: {exc}"))))


def _wait(proc: subprocess.Popen[bytes], timeout: float = 10.0) -> int | None:
    """The child's exit code once it has exited (None if it still runs after ``timeout`` real seconds).

    Polls with real time only: this runs in the trial's thread, whose ``time`` functions read the trial's
    virtual clock (``Popen.wait(timeout)`` would sleep in virtual time).
    """
    deadline = real_monotonic() + timeout
    while proc.poll() is None and real_monotonic() < deadline:
        select.select([], [], [], 0.005)
    return proc.returncode


def _kill(proc: subprocess.Popen[bytes]) -> int | None:
    """SIGKILL the child if it still runs, reap it, and return its exit code (``-9`` when killed)."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGKILL)
    return _wait(proc)


if __name__ == "__main__":  # run the canonical module's main, so that pickled names resolve to one module
    from pytest_agentops.harness.child import main as _main

    _main()

