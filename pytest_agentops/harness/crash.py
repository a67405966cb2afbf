"""The crash layer: the agent dies at a planned step and is restarted on the same world and store.

The fault plan says whether a trial crashes and where (``FaultPlan.crash``): at its k-th executed tool
call, ``before`` the tool runs or ``after`` it (the effect happened but the agent never sees the result:
the crash between a refund and its checkpoint that makes a naive agent refund twice). In-process, the
tool wrapper raises ``AgentCrash`` there and the agent's run is abandoned; with ``crash_mode="sigkill"``
the agent runs in a child process that is killed with SIGKILL at that point (``harness/child``).
Either way the agent is restarted with the same world and the same checkpoint store, up to
``crash_restarts`` times, and the trace gets a ``crash`` and a ``resume`` event.

What the layer records (``settings.faults.CrashRecord``): crashes, restarts, where the planned crash hit,
the tokens at the first crash, ``duplicate_side_effects`` (runs of a side-effecting tool repeating an earlier
run's arguments: the trajectory layer's ledger, ``harness/effects.py``, which it tells the attempt through the
``attempt`` service) and child exit codes.
"""

from __future__ import annotations

import inspect
import io
import os
import pickle
import signal
import sys
import threading
import types
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from ..errors import AgentCrash, ConfigError, TrialAborted, hide_own_frames
from ..plan import fault_id
from ..process.reaper import REAPER
from ..settings.faults import CrashRecord, Faults
from ..settings.layers import StateSpec
from ..vtime.loop import run_virtual
from .child.parent import ChildAgent
from .child.protocol import ChildLimits
from .child.unfenced import warn_if_unfenced
from .context import RAN
from .layer import LayerTrial, ToolCall, TrialPort
from .state.campaign import backend_of
from .state.layer import resolve_state

__tracebackhide__ = hide_own_frames

if TYPE_CHECKING:
    from ..plan import CrashDraw
    from ..scenario import Scenario
    from ..settings.run import RunSettings
    from ..settings.tools import ToolSpec
    from .state import CheckpointStore


class CrashInjector(LayerTrial):
    """One trial's crash layer: fires the planned crash and keeps the crash and resume bookkeeping."""

    def __init__(self, ctx: TrialPort, draw: CrashDraw | None, mode: str = "in_process", restarts: int = 1,
                 child: ChildLimits | None = None):
        self.ctx = ctx
        self.restarts = restarts
        self.child = child  # run the agent in child processes, with these limits (None: in this process)
        self.restarted = 0
        self.tokens_at_crash: int | None = None
        self.crash_step: int | None = None
        self.crash_point: str | None = None
        self.exit_codes: list[int | None] = []
        self.draw = draw
        self.mode = mode
        self.executed = 0  # tool calls that reached the tool function, over all attempts
        self.attempt = 0
        self.crashes = 0
        self.fired = False
        self.pending: AgentCrash | None = None  # the crash of the current attempt, until it is restarted
        self._armed: tuple[str, dict[str, Any]] | None = None  # an ``after`` crash waiting for its tool
        self._lock = threading.Lock()
        ctx.provide("attempt", self.current_attempt)  # which run of the agent a call belongs to

    def current_attempt(self) -> int:
        """0 for the agent's first run, k after its k-th restart."""
        return self.attempt

    # -- hooks in the tool wrapper --------------------------------------------------------------------
    def check(self) -> None:
        """Raise the pending crash: a crashed attempt gets no further harness call through."""
        if self.pending is not None:
            raise self.pending

    guard = check

    def on_tool_start(self, call: ToolCall) -> None:
        """A tool call passed every other layer and is about to run: crash here if the plan says ``before``."""
        spec, arguments = call.spec, call.arguments
        with self._lock:
            self.guard()
            if self._armed is not None:  # the armed call raised instead of returning: it dies now
                name, armed_args = self._armed
                self._fire(name, armed_args, "after")
            self.executed += 1
            draw = self.draw
            if draw is not None and not self.fired and self.executed == draw.step:
                if draw.point == "before":
                    self._fire(spec.name, arguments, "before")
                self._armed = (spec.name, dict(arguments))

    def on_tool_recorded(self, spec: ToolSpec, arguments: Mapping[str, Any], outcome: str) -> None:
        """A tool ran (its effect happened; the ledger has counted it): crash if the plan says ``after``."""
        if outcome not in RAN:
            return
        with self._lock:
            if self._armed is not None and self._armed[0] == spec.name:
                self._fire(spec.name, arguments, "after")

    def _fire(self, tool: str, arguments: dict[str, Any], point: str) -> None:
        assert self.draw is not None
        self.fired = True
        self._armed = None
        crash = AgentCrash(self.draw.step, tool, point)
        self._record(tool, point, step=self.draw.step, arguments=dict(arguments), fid=fault_id("crash"))
        self.pending = crash
        raise crash

    def _record(self, tool: str, outcome: str, **data: Any) -> None:
        ctx = self.ctx
        self.crashes += 1
        if self.tokens_at_crash is None:
            self.tokens_at_crash = ctx.meter.total_tokens
            if "step" in data:
                self.crash_step, self.crash_point = data["step"], outcome
        ctx.trace.add("crash", tool, outcome, mode=self.mode, attempt=self.attempt, **data)

    def died(self, reason: str, **data: Any) -> None:
        """The agent's process ended without finishing and without a planned crash (a real crash)."""
        with self._lock:
            self._record("", "died", reason=reason, **data)

    def resume(self, attempt: int, store: CheckpointStore | None = None) -> None:
        """The runner restarts the agent (attempt ``attempt``, 1-based) on the same world and store."""
        with self._lock:
            self.attempt = attempt
            self.pending = None
            self._armed = None
            self.restarted = attempt
            self.ctx.trace.add("resume", self.ctx.scenario, "restarted", attempt=attempt,
                               checkpoints=len(store.keys()) if store is not None else 0)

    def wrap_agent(self, agent: Callable[..., Any], is_async: bool) -> Callable[..., Any]:
        """The agent restarted after each crash (in-process), or run in child processes (``sigkill``, or
        isolation ``process``)."""
        store = self.ctx.service("state")
        if self.child is not None:
            campaign = self.ctx.service("state_campaign")
            return ChildAgent(agent, self, backend_of(store), campaign.spec, self.restarts, scenario=self.ctx.scenario,
                              index=self.ctx.index, seed=self.ctx.seed, limits=self.child)
        return with_restarts(agent, self, store, self.restarts, is_async=is_async)

    def record(self) -> CrashRecord:
        ledger = self.ctx.service("effects")  # the trajectory layer's (always on)
        return CrashRecord(crashes=self.crashes, restarts=self.restarted, crash_step=self.crash_step,
                           crash_point=self.crash_point, tokens_at_crash=self.tokens_at_crash,
                           duplicate_side_effects=ledger.duplicates if ledger is not None else 0,
                           exit_codes=tuple(self.exit_codes))

    def give_up(self, restarts: int) -> TrialAborted:
        """The outcome ``crashed``: the agent did not finish within ``restarts`` restarts."""
        where = f" at step {self.draw.step}" if self.draw is not None and self.fired else ""
        reason = f"the agent crashed{where} and did not finish after crash_restarts={restarts} restart(s)"
        self.ctx.abort("crashed", reason)  # (the harness's decision: the trial is judged by it)
        return TrialAborted("crashed", reason)


def with_restarts(agent: Callable[..., Any], injector: CrashInjector | None, store: CheckpointStore | None,
                  restarts: int, *, is_async: bool) -> Callable[..., Any]:
    """``agent`` wrapped so that a crashed run is restarted (same task, env, world and store)."""
    if injector is None:
        return agent

    def crashed(exc: BaseException | None) -> bool:
        # AgentCrash, or an agent that caught it and raised something else / returned anyway
        return isinstance(exc, AgentCrash) or (injector.pending is not None
                                               and (exc is None or isinstance(exc, Exception)))

    def restart(env: Any, attempt: int) -> None:
        if attempt > restarts:
            raise injector.give_up(restarts)
        injector.resume(attempt, store)
        env.fresh_rng()

    if is_async:
        async def run_async(task: str, env: Any) -> Any:
            attempt = 0
            while True:
                try:
                    output = await agent(task, env)
                except BaseException as exc:
                    if not crashed(exc):
                        raise
                else:
                    if not crashed(None):
                        return output
                attempt += 1
                restart(env, attempt)
        return run_async

    def run(task: str, env: Any) -> Any:
        attempt = 0
        while True:
            try:
                output = agent(task, env)
                if inspect.isawaitable(output):  # a sync callable that returned a coroutine
                    output = run_virtual(output)
            except BaseException as exc:
                if not crashed(exc):
                    raise
            else:
                if not crashed(None):
                    return output
            attempt += 1
            restart(env, attempt)
    return run


def check_crash_setup(agent: Callable[..., Any], state: StateSpec, faults: Faults, isolation: str = "none") -> None:
    """Reject crash and isolation settings that cannot work, before any trial runs."""
    why = "crash_mode='sigkill'" if faults.crash_mode == "sigkill" else "isolation='process'"
    if faults.crash_mode != "sigkill" and isolation != "process":
        return
    if (faults.crash_mode == "sigkill" or faults.crash) and not state.durable:
        raise ConfigError(f"state='memory' does not survive a process kill: {why} with crashes needs "
                          "state='sqlite' (the default when state is unset), 'sqlite:PATH' or a redis:// URL")
    if not hasattr(signal, "SIGKILL"):
        raise ConfigError(f"{why} needs a POSIX system (SIGKILL); use crash_mode='in_process' and isolation='none'")
    try:
        in_main = _of_main(agent)
    except Exception as exc:
        raise ConfigError(f"{why} runs the agent in a child process, so agent={agent!r} must be "
                          f"importable: a module-level function or an instance of a module-level class "
                          f"({type(exc).__name__}: {exc})") from exc
    if in_main is not None:
        script = getattr(sys.modules.get("__main__"), "__file__", None)
        raise ConfigError(f"{why} runs the agent in a child process, which cannot import {in_main} (of agent="
                          f"{agent!r}): it is defined in the script being run"
                          f"{f' ({os.path.basename(script)})' if script else ''}, not in a module the child can "
                          "import; move it to a module of its own and import it from there")


class _MainFinder(pickle.Pickler):
    """Pickles to nowhere, noting the first function or class it meets that lives in ``__main__``."""

    def __init__(self) -> None:
        super().__init__(io.BytesIO())
        self.found: Any = None

    def persistent_id(self, obj: Any) -> None:
        if self.found is None and isinstance(obj, (type, types.FunctionType)) and \
                getattr(obj, "__module__", None) == "__main__":
            self.found = obj
        return None


def _of_main(agent: Any) -> str | None:
    """The qualified name of the first function or class of ``__main__`` that pickling ``agent`` refers to (a
    child process imports them by module and name: its ``__main__`` is not the script's), or None. Raises what
    pickling raises."""
    finder = _MainFinder()
    finder.dump(agent)
    found = finder.found
    return None if found is None else f"__main__.{getattr(found, '__qualname__', found)}"


class _Crashes:
    __slots__ = ("child", "faults", "restarts")
    name = "crash"

    def __init__(self, faults: Faults, child: ChildLimits | None):
        self.faults = faults
        self.child = child
        # a child that dies on its own is restarted only where crashes are part of the run
        self.restarts = faults.crash_restarts if faults.crash or faults.crash_mode == "sigkill" else 0
        if child is not None:
            REAPER.acquire()  # the agents' process groups are killed if this process dies

    def attach(self, trial: TrialPort) -> LayerTrial:
        f = self.faults
        mode = f.crash_mode if f.crash_mode == "sigkill" or self.child is None else "process"
        return CrashInjector(trial, trial.plan.crash(), mode, self.restarts, self.child)

    def close(self) -> None:
        if self.child is not None:
            self.child = None
            REAPER.release()


class CrashLayer:
    """On when the run's faults can crash the agent (``crash > 0``) or when it runs in child processes
    (``crash_mode="sigkill"``, or isolation ``process``).

    Ordered after the state layer, whose checkpoint store a restarted agent resumes from.
    """

    name = "crash"

    def for_campaign(self, scenario: Scenario, run: RunSettings) -> _Crashes | None:
        f = run.faults
        in_child = f.crash_mode == "sigkill" or run.isolation == "process"
        if not f.crash and not in_child:
            return None
        check_crash_setup(scenario.agent, resolve_state(scenario.state, f), f, run.isolation)
        if run.isolation == "process":
            warn_if_unfenced()
        return _Crashes(f, ChildLimits(memory_limit_mb=scenario.memory_limit_mb) if in_child else None)


LAYER = CrashLayer()
