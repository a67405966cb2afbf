"""The parent side: ``ChildAgent`` runs a trial's agent in child processes, serves their harness calls
through the trial's real layers, and SIGKILLs a child at the planned crash."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import os
import pickle
import select
import signal
import socket
import subprocess
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from ...errors import RAISED_AT, AgentCrash, AgentMessageRefused, AgentProcessDied, hide_own_frames
from ...process.reaper import REAPER, end_descendants, end_through_keeper
from ...process.trial_random import enter_random, exit_random
from ...vtime.loop import run_virtual
from ...vtime.real import real_monotonic
from .. import secrets
from .child_data import data_loads
from .http_proxy import faulted_hosts
from .protocol import (
    ChildJob,
    ChildLimits,
    MessageTooLarge,
    _Channel,
    describe_exit,
    freeze,
    thaw,
    tool_face,
)
from .unfenced import say_unfenced

__tracebackhide__ = hide_own_frames

if TYPE_CHECKING:
    from ...errors import TrialAborted
    from ...settings.layers import StateSpec
    from ..layer import TrialPort
    from ..state import CheckpointStore

_POLL_S = 0.05  # how often the parent looks up from the pipe (to notice a dead child or an aborted trial)
_CLOCK = frozenset({"now", "monotonic", "advance", "sleep"})
_ENV = frozenset({"confirm", "record_usage", "escalate", "report_confidence"})
_CHECKPOINTED = frozenset({"saved", "deleted", "cleared"})  # what a checkpoint event of the child's store says
#: The module a child process runs (``python -m``): the package's ``__main__``.
CHILD_MODULE = "pytest_agentops.harness.child"
#: The directory this package is imported from (the last entry of the child's ``sys.path`` while it starts)
PACKAGE_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
#: The child's program: ``python -m CHILD_MODULE``, with this package found where the parent found it
_LAUNCH = (f"import sys; sys.path.append({PACKAGE_ROOT!r}); import runpy; "
           f"runpy.run_module({CHILD_MODULE!r}, run_name='__main__', alter_sys=True)")


class CrashBookkeeping(Protocol):
    """What ``ChildAgent`` reports to: the crash layer's part of the trial (``crash.CrashInjector``)."""

    ctx: TrialPort
    exit_codes: list[int | None]

    def died(self, reason: str, **data: Any) -> None: ...

    def resume(self, attempt: int, store: CheckpointStore | None = None) -> None: ...

    def give_up(self, restarts: int) -> TrialAborted: ...


class _Died(Exception):
    """The child process ended without a result."""


class _Refused(_Died):
    """The child sent a message the harness does not read: the attempt ends as if the child had died."""


class ChildAgent:
    """Runs a trial's agent in child processes, serving its harness calls; SIGKILLs it at the planned crash.

    Called by the runner in the trial's worker thread as ``agent(task, env)``, with the trial's real
    ``Env``; returns the agent's output, raises its exception, or ends the trial ``crashed``.
    """

    def __init__(self, agent: Callable[..., Any], injector: CrashBookkeeping, store: CheckpointStore,
                 state: StateSpec, restarts: int, *, scenario: str, index: int, seed: int,
                 limits: ChildLimits | None = None):
        self.agent = agent
        self.limits = limits or ChildLimits()
        self.injector = injector
        self.store = store
        self.state = state
        self.restarts = restarts
        self.scenario = scenario
        self.index = index
        self.seed = seed
        self.pids: list[int] = []  # the child processes started, in order (tests look at them)

    def _job(self, task: str, env: Any) -> ChildJob:
        tools = [tool_face(name, fn) for name, fn in env.tools.items()]  # (each tool's face, as in-process)
        llm = env.llm
        return ChildJob(self.agent, task, self.scenario, self.index, self.seed, str(self.state),
                        self.store.namespace, tuple(tools), env.clock.epoch,
                        None if llm is None else (llm.base_url, llm.api_key, llm.model), secrets.secret_names(),
                        faulted_hosts(env.clock))

    def __call__(self, task: str, env: Any) -> Any:
        """Sync agent: run it to the end (restarts included). Async agent: the coroutine that does so.

        What the harness runs here for the child draws ``random``'s numbers from a stream of its own (the trial's
        ``harness_random``, as the scenario's own layers do in-process; tools and the fake model's policy from
        theirs, as in-process): the child's agent draws from the trial's agent stream, which a copy here would
        repeat number for number."""
        job = pickle.dumps(self._job(task, env))
        if _is_async_callable(self.agent):
            return self._run_async(job, env)
        drawing = enter_random(env._ctx.harness_random)
        try:
            attempt = 0
            while True:
                try:
                    return self._attempt(job, env)
                except AgentCrash:
                    pass  # the planned crash: the child was killed at its step
                except _Died as died:
                    self._died(died)
                attempt = self._next_attempt(attempt)
        finally:
            exit_random(drawing)

    async def _run_async(self, job: bytes, env: Any) -> Any:
        drawing = enter_random(env._ctx.harness_random)  # (in the task's context: as ``__call__``)
        try:
            attempt = 0
            while True:
                try:
                    return await self._attempt_async(job, env)
                except AgentCrash:
                    pass
                except _Died as died:
                    self._died(died)
                attempt = self._next_attempt(attempt)
        finally:
            exit_random(drawing)

    def _died(self, died: _Died) -> None:
        """The child ended without a result (or sent a message refused): a crash to restart from, or (no restarts
        allowed: isolation without crashes) the trial's error."""
        if self.restarts == 0:
            raise (AgentMessageRefused if isinstance(died, _Refused) else AgentProcessDied)(str(died)) from None
        self.injector.died(str(died))

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
            # what the child imports before its fence (``site``'s ``sitecustomize``, the modules of ``_LAUNCH``)
            # comes from the installation alone: no PYTHONPATH, no working directory first (``-P``), this package's
            # directory last; the child takes the parent's ``sys.path`` once fenced in, and puts back the
            # PYTHONPATH its agent's processes inherit (a ``platform.py`` an agent wrote in the working directory,
            # or a ``sitecustomize`` in a directory of the parent's ``sys.path``, ran in the next child unfenced)
            env_vars = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
            # a session (and process group) of its own: killed as a whole, with whatever the agent started
            proc = subprocess.Popen([sys.executable, "-P", "-c", _LAUNCH, str(theirs.fileno())],
                                    pass_fds=(theirs.fileno(),), stdin=subprocess.DEVNULL, env=env_vars,
                                    start_new_session=True)
        finally:
            theirs.close()
        REAPER.register(proc.pid)
        self.pids.append(proc.pid)
        parent = _Channel(ours, from_child=True)  # (what the child sends is taken as data)
        parent.send((list(sys.path), self.limits, job, os.environ.get("PYTHONPATH")))
        return proc, parent

    def _end(self, proc: subprocess.Popen[bytes], parent: _Channel, finished: bool) -> None:
        """After an attempt: reap the child (SIGKILL it if it still runs) and record its exit code."""
        if finished:
            _wait(proc)
        code = _kill(proc)
        self.injector.exit_codes.append(code)  # per attempt: -9 is a SIGKILL, 0 a clean exit
        parent.close()

    def _attempt(self, job: bytes, env: Any) -> Any:
        proc, parent = self._spawn(job)
        finished = False  # the child sent its result and exits by itself
        try:
            while True:
                if not parent.poll(_POLL_S):
                    self.injector.ctx.check_alive()  # the runner gave up on this trial (wall-clock limit)
                    if proc.poll() is not None and not parent.poll(0):
                        raise _Died(f"agent process {describe_exit(proc.returncode)} without a result")
                    continue
                try:
                    request = _checked(parent.recv())
                except (MessageTooLarge, pickle.UnpicklingError) as exc:
                    raise _Refused(str(exc)) from None
                except (EOFError, OSError):
                    raise _Died(f"agent process {describe_exit(_wait(proc))} without a result") from None
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
                    with env.clock.paused():  # (the child's start-up and work: real time, not the trial's)
                        request = _checked(await parent.arecv(loop))
                except (MessageTooLarge, pickle.UnpicklingError) as exc:
                    raise _Refused(str(exc)) from None
                except (EOFError, OSError):
                    raise _Died(f"agent process {describe_exit(_wait(proc))} without a result") from None
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
            if op == "trace":  # the agent's own event (``env.trace.add``: not a kind the harness writes)
                _, kind, name, outcome, data = request
                env.trace.add(kind, name, outcome, **data)
                return "ok", None
            if op == "fence":  # the child could not fence itself in: said once per process
                say_unfenced(str(request[1])[:300])
                return "ok", None
            if op == "checkpoint" and request[2] in _CHECKPOINTED:  # the child's store saved, deleted or cleared
                self.injector.ctx.check_alive()  # (as ``TrialStore``'s guard: an ended trial's child is ended)
                self.injector.ctx.trace.add("checkpoint", str(request[1]), request[2])  # (as ``TrialStore`` does)
                return "ok", None
            if op == "http" and env.llm is not None:
                from .http_proxy import answer, answer_async, answers_async

                if _is_async_callable(self.agent) and answers_async(env.llm.host):  # (a live model's upstream)
                    return "await", answer_async(env.llm.host, *request[1:])
                return "ok", answer(env.llm.host, *request[1:])
            if op == "http_fault":
                from .http_proxy import answer_fault

                return "ok", answer_fault(env.clock, *request[1:])
            raise ValueError(f"unknown request {request[:2]!r}")
        except Exception as exc:  # the agent sees the tool's (or the harness's) exception
            return "raise", freeze(exc)


def _is_async_callable(fn: Any) -> bool:
    return inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(type(fn).__call__)


def _checked(message: Any) -> tuple[Any, ...]:
    """A child's message as the harness takes it: a tuple naming what it is (else the attempt ends)."""
    if not (isinstance(message, tuple) and message and isinstance(message[0], str)):
        raise pickle.UnpicklingError("the agent's process sent a message the harness does not take")
    if message[0] in ("done", "error") and len(message) < (2 if message[0] == "done" else 4):
        raise pickle.UnpicklingError("the agent's process sent a result the harness does not take")
    return message


def _result(message: tuple[Any, ...]) -> Any:
    """The agent's output from the child's last message, or its exception raised."""
    if message[0] == "done":
        return message[1]
    exc = thaw(message[1], data_loads)
    if isinstance(exc, AgentCrash) or not isinstance(exc, Exception):
        frozen = message[1]  # (its text, ``Type: message``, as in-process; not the child's traceback)
        text = frozen[2] if isinstance(frozen, tuple) and len(frozen) == 3 and isinstance(frozen[2], str) else str(exc)
        raise _Died(f"agent process raised {text}{message[3] if isinstance(message[3], str) else ''}")
    if isinstance(message[3], str):
        with contextlib.suppress(Exception):  # (where the child raised it: ``describe`` names it, as in-process)
            setattr(exc, RAISED_AT, message[3])
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
    """SIGKILL the child's whole process group (the child, if it still runs, and every process it started),
    reap the child, and return its exit code (``-9`` when killed)."""
    if proc.poll() is None and not end_through_keeper(proc.pid):  # (the keeper ends all below it, and exits)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(proc.pid, signal.SIGSTOP)  # (stopped first: it starts none while they are ended)
        end_descendants(proc.pid)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    code = _wait(proc)
    REAPER.unregister(proc.pid)
    return code


