"""The child side: a fresh interpreter that runs one attempt of the agent, with an ``env`` served by the
parent over the socket; its checkpoint store it opens itself."""

from __future__ import annotations

import contextlib
import errno
import inspect
import os
import pickle
import signal
import socket
import sys
import threading
import traceback
from collections.abc import Callable, Iterator, Mapping
from types import MappingProxyType
from typing import Any

from ...errors import hide_own_frames, user_code_at
from ...process.after_import import after_import, catch_up
from ...process.anyio_threads import track_anyio_threads
from ...process.pidfd import pidfd_target
from ...process.reaper import be_subreaper, end_descendants
from ...process.time_patch import time_patch, virtual_time
from ...process.trial_random import TrialRandom, enter_random, exit_random
from ...seeding import Stream, stream
from ...settings.layers import StateSpec
from ...settings.tools import ToolSpec
from ...vtime.clock import VirtualClock
from ...vtime.lanes import end_lane, new_lane
from ...vtime.loop import VirtualTimeLoop, run_virtual, wind_down
from .. import secrets
from ..state import CheckpointStore, TrialStore, open_store
from ..tools import dress
from ..trace import shown_repr
from .protocol import ChildJob, ChildLimits, ToolFace, _Channel, freeze, load_spec, thaw

__tracebackhide__ = hide_own_frames

# numpy's stand-ins (``process.numpy_random``) come with the agent's first import of ``numpy.random``: this process
# loads no numpy for an agent that never imports it (~0.14 s of its start-up on the CI machine)
_NUMPY = ("numpy.random", "pytest_agentops.process.numpy_random")
after_import(*_NUMPY)
# freezegun neither (~50 ms): imported by the agent, inside its trial, it would take the time stand-ins for the real
# clock for good (``process.freezegun_captures`` puts the real functions back into it, right after its import;
# imported before the trial, it took the real ones: the stand-ins are in only while the trial runs)
_FREEZEGUN = ("freezegun.api", "pytest_agentops.process.freezegun_captures")
after_import(*_FREEZEGUN)


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


def _llm_endpoint(base_url: str, api_key: str, model: str) -> Any:
    """The trial's fake model as ``env.llm`` shows it, imported for a trial that has one: the ``llm`` package brings
    the model's settings and policies, ~10 ms of start-up an agent without a fake model does not pay."""
    from ...llm.endpoint import LLMEndpoint

    return LLMEndpoint(base_url, api_key, model)


def _tool_proxy(rpc: _Rpc, face: ToolFace) -> Callable[..., Any]:
    """The agent's ``env.tools[name]`` here: a call of the parent's tool, with that tool's face (``ToolFace``)."""
    name = face.name

    def call(*args: Any, **kwargs: Any) -> Any:
        return rpc.call("tool", name, args, kwargs)

    proxy: Callable[..., Any] = call
    if face.is_async:
        async def acall(*args: Any, **kwargs: Any) -> Any:
            return call(*args, **kwargs)
        proxy = acall
    spec = load_spec(face)
    if spec is not None:  # the tool's function imported here: the face made as in-process
        return dress(proxy, spec)
    for key, value in face.attrs.items():  # the face as the parent saw it
        with contextlib.suppress(AttributeError, TypeError):
            setattr(proxy, key, value)
    if face.meta:  # the tool's declaration as declared, but over this proxy: its function is the parent's
        signature = getattr(proxy, "__signature__", None) or inspect.signature(proxy)
        proxy.__agentops_tool__ = ToolSpec(fn=proxy, signature=signature, **face.meta)  # type: ignore[attr-defined]
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
        self.llm = None if job.llm is None else _llm_endpoint(*job.llm)  # (served by the parent: ``http_proxy``)
        self.tools: Mapping[str, Callable[..., Any]] = MappingProxyType(
            {face.name: _tool_proxy(rpc, face) for face in job.tools})
        self.state = TrialStore(store, lambda kind, name, outcome: rpc.call("checkpoint", name, outcome))
        self.clock = _RemoteClock(rpc, job.epoch)
        self.trace = _RemoteTrace(rpc)

    @property
    def rng(self) -> Any:
        """The agent's own randomness, from the trial seed (afresh in each process, as after a restart)."""
        if self._rng is None:
            self._rng = stream(self._job.seed, Stream.AGENT)
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


class _Jumps:
    """The moves of the child loop's time (jumps to its next timer, real waits on I/O), told to the trial's clock as
    the parent's loop would show them: its time since the start to the microsecond (``LoopOrigin`` reads so)."""

    __slots__ = ("clock", "shown", "total")

    def __init__(self, clock: _RemoteClock):
        self.clock = clock
        self.total = self.shown = 0.0

    def __call__(self, seconds: float) -> None:
        self.total += seconds
        shown = round(self.total, 6)
        if shown > self.shown:
            self.clock.advance(shown - self.shown)
            self.shown = shown


def _run_here(coro: Any, clock: _RemoteClock) -> Any:
    """Run an async agent's coroutine in this process: its loop's jumps to the next timer (``asyncio.sleep``)
    advance the trial's clock in the parent, as they would on the parent's own loop; its thread jobs take turns
    as in the parent (``vtime.lanes``; anyio's worker threads too), so an isolated trial replays as one in
    process does (a review: parallel sync tools' calls reached the parent in their threads' order)."""
    loop = VirtualTimeLoop()
    loop.on_jump = _Jumps(clock)
    lane, token = new_lane(loop)
    try:
        with track_anyio_threads():
            return run_virtual(coro, loop=loop)
    finally:
        end_lane(lane, token)
        wind_down(loop)


@contextlib.contextmanager
def _served_hosts(env: ChildEnv, job: ChildJob, rpc: _Rpc) -> Iterator[None]:
    """While the agent runs, the parent answers the trial's model host (``env.llm``) and decides the transport
    faults of the hosts the trial faults (nothing to do without either)."""
    if env.llm is None and not job.fault_hosts:
        yield
        return
    from ...process.http_hub import HTTP_PATCH, HUB
    from .http_proxy import ParentAnswers

    if env.llm is not None:
        HUB.add_host(env.llm.host, ParentAnswers(rpc.call))
    if job.fault_hosts:  # (found, as in the parent, through the clock of the calling thread or task: the trial's)
        HUB.add_faults(env.clock, frozenset(job.fault_hosts), ParentAnswers(rpc.call, "http_fault"))
    with HTTP_PATCH():
        yield


def child_main(conn: _Channel, job: ChildJob, unfenced: str | None = None,
               refused: Callable[[], str | None] = lambda: None) -> None:
    """The child process: run the agent once and send back its output or its exception. ``refused``: the first
    call ``guard_the_test_process`` refused, if any (the trial is then an error, whatever the agent caught)."""
    rpc = _Rpc(conn)
    if unfenced is not None:
        rpc.call("fence", unfenced)
    for name in job.secret_names:  # (what the parent treats as secret whatever its name: a live model's key)
        secrets.treat_as_secret(name)
    secrets.refresh()  # (the parent's environment: what the child prints is redacted as in the parent)
    store = open_store(StateSpec.parse(job.state), job.namespace)
    try:
        env = ChildEnv(rpc, job, store)
        random_token = enter_random(TrialRandom(job.seed))  # as in the parent: the trial's own stdlib random
        catch_up(*_NUMPY)  # (numpy imported with the agent's module past the watch: in before the trial starts)
        try:
            with time_patch(), virtual_time(env.clock), secrets.redacted_output(), _served_hosts(env, job, rpc):
                output = job.agent(job.task, env)
                if inspect.isawaitable(output):  # an async agent: on a virtual-time loop of its own
                    output = _run_here(output, env.clock)
        finally:
            exit_random(random_token)
        if catch_up(*_NUMPY):  # imported in the trial past the watch: its numpy draws were not the trial's
            raise ImportError("numpy.random was imported inside the trial past the harness's import watch (an "
                              "import hook ahead of it on sys.meta_path, or the watch removed): numpy's global "
                              "random functions were not seeded by the trial, so it would not replay; import "
                              "numpy.random before the trial (at the top of the agent's module)")
        try:
            pickle.dumps(output)
        except Exception:
            output = shown_repr(output)  # (as the parent shows an output: its address left out)
        message: tuple[Any, ...] = ("done", output)
        first_refused = refused()
        if first_refused is not None:  # (whatever the agent caught: as in-process, the trial is an error)
            raise PermissionError(errno.EPERM, first_refused)
    except BaseException as exc:
        message = ("error", freeze(exc), "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)),
                   user_code_at(exc.__traceback__))  # (where it was raised: the trial's reason names it)
    finally:
        store.close()
    conn.send(message)
    conn.close()
    end_descendants(os.getpid())  # (what the agent started in sessions of their own: not left to init)


def guard_the_test_process(parent: int, keeper: int | None = None) -> Callable[[], str | None]:
    """``os.kill`` and ``os.killpg`` (and ``posix``'s, the same functions) refused when they would reach the test
    process (its pid, its process group, or every process: ``-1``), and ``os.pidfd_open`` of its pid and
    ``signal.pidfd_send_signal`` to a descriptor of it (``os.open("/proc/PID")``): an isolated agent's
    ``os.kill(os.getppid(), SIGKILL)`` ended pytest, and its ``SIGSTOP`` froze the run. And ``os._exit`` ends
    what the agent started in sessions of their own first; ``resource.prlimit`` setting pytest's limits is refused
    too. (A ``kill`` command run through a shell, ``ctypes``, or a fresh copy of the ``posix`` module gets past this:
    only another user, or a PID namespace, could not signal pytest; the kernel's fence, ``process.confine``,
    refuses those.) ``parent``: pytest's pid; ``keeper``: this process's keeper, refused as pytest is. Returns a
    function giving the first call refused, if any (kept in its closure: clearing a module's list undid it)."""
    import operator
    import posix

    try:
        group: int | None = os.getpgid(parent)
    except OSError:
        group = None
    protected = (parent, -1) if keeper is None else (parent, keeper, -1)
    real_kill, real_killpg, real_exit = os.kill, os.killpg, os._exit
    first: list[str] = []  # (the first call refused: kept here, out of the reach of a module's name)

    def refuse(name: str, target: Any, sig: Any) -> None:
        message = f"{name}({target}, {sig}) in an isolated trial is refused: it signals the test process"
        if not first:
            first.append(message)
        raise PermissionError(errno.EPERM, message)

    def number(value: Any) -> int | None:  # (a numpy integer is a pid too)
        try:
            return operator.index(value)
        except TypeError:
            return None

    def kill(pid: Any, sig: Any, /) -> None:
        target = number(pid)
        if sig != 0 and target is not None and (target in protected or (group is not None and target == -group)):
            refuse("os.kill", pid, sig)
        real_kill(pid, sig)

    def killpg(pgid: Any, sig: Any, /) -> None:
        if sig != 0 and group is not None and number(pgid) == group:
            refuse("os.killpg", pgid, sig)
        real_killpg(pgid, sig)

    def _exit(status: int, /) -> None:
        end_descendants(os.getpid())
        real_exit(status)

    for module in (os, posix):
        module.kill, module.killpg, module._exit = kill, killpg, _exit  # type: ignore[assignment]
    if hasattr(os, "pidfd_open"):
        real_open = os.pidfd_open

        def pidfd_open(pid: Any, flags: int = 0, /) -> int:
            if number(pid) in protected:
                refuse("os.pidfd_open", pid, "-")
            return real_open(pid, flags)

        os.pidfd_open = posix.pidfd_open = pidfd_open  # type: ignore[attr-defined]
    try:
        import resource
    except ImportError:  # (not POSIX)
        resource = None  # type: ignore[assignment]
    if resource is not None and hasattr(resource, "prlimit"):
        real_prlimit = resource.prlimit

        def prlimit(pid: Any, which: int, *limits: Any) -> Any:
            if limits and number(pid) in protected:  # (setting pytest's limits: RLIMIT_CPU (1, 2) killed it)
                refuse("resource.prlimit", pid, which)
            return real_prlimit(pid, which, *limits)

        resource.prlimit = prlimit
    if hasattr(signal, "pidfd_send_signal"):
        real_send = signal.pidfd_send_signal

        def pidfd_send_signal(pidfd: int, sig: int, siginfo: Any = None, flags: int = 0, /) -> None:
            if sig != 0 and pidfd_target(pidfd) in protected:
                refuse("signal.pidfd_send_signal", pidfd, sig)
            real_send(pidfd, sig, siginfo, flags)

        signal.pidfd_send_signal = pidfd_send_signal
    return lambda: first[0] if first else None


def main(argv: list[str] | None = None, *, test_process: int | None = None, keeper: int | None = None,
         unfenced: str | None = None) -> None:
    """The entry point of a child process: ``python -m pytest_agentops.harness.child FD``. ``test_process``:
    pytest's pid (default: this process's parent); ``keeper``: the pid of the keeper between them, if any
    (``process.keeper``); ``unfenced``: why ``confine.fence_in`` could not fence this process in (told to the
    parent, which warns)."""
    fd = int((argv if argv is not None else sys.argv[1:])[0])
    conn = _Channel(socket.socket(fileno=fd))
    sys_path, limits, job_data, pythonpath = conn.recv()
    if pythonpath is None:  # (the parent's: what the processes the agent starts inherit, as in-process)
        os.environ.pop("PYTHONPATH", None)
    else:
        os.environ["PYTHONPATH"] = pythonpath
    be_subreaper()  # (an orphan of what the agent starts becomes this process's child, not init's)
    refused = guard_the_test_process(os.getppid() if test_process is None else test_process, keeper)
    apply_limits(limits)  # before the agent's module is imported (unpickling the job imports it)
    sys.path[:] = sys_path  # the parent's, so the agent's module imports as it did there
    child_main(conn, pickle.loads(job_data), unfenced, refused)


def apply_limits(limits: ChildLimits) -> None:
    """Set this process's limits: its address space (a runaway allocation is a ``MemoryError`` in the agent,
    not a machine out of memory) and no core files."""
    try:
        import resource
    except ImportError:  # not POSIX
        return
    if limits.memory_limit_mb is not None:
        size = limits.memory_limit_mb * 2**20
        _, hard = resource.getrlimit(resource.RLIMIT_AS)
        if hard != resource.RLIM_INFINITY:
            size = min(size, hard)
        resource.setrlimit(resource.RLIMIT_AS, (size, size))  # (the hard limit too: the agent cannot lift it)
    resource.setrlimit(resource.RLIMIT_CORE, (0, resource.getrlimit(resource.RLIMIT_CORE)[1]))


