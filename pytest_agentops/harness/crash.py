"""Crash injection and resume: the agent dies at a planned step and the runner restarts it on the same store.

The fault plan says whether a trial crashes and where (``FaultPlan.crash``): at its k-th executed tool
call, ``before`` the tool runs or ``after`` it (the effect happened but the agent never sees the result:
the crash between a refund and its checkpoint that makes a naive agent refund twice). In-process, the
tool wrapper raises ``AgentCrash`` there and the agent's run is abandoned; with ``crash_mode="sigkill"``
the agent runs in a child process that is killed with SIGKILL at that point (``harness/child.py``).
Either way the runner restarts the agent with the same world and the same checkpoint store, up to
``crash_restarts`` times, and the trace gets a ``crash`` and a ``resume`` event.

What the layer measures (in ``TrialRecord.extra``): ``crashes``, ``restarts``, ``crash_step``,
``crash_point``, ``tokens_at_crash`` and ``duplicate_side_effects``: executions of a side-effecting or
destructive tool, with the same arguments, in a later attempt than one where it already ran.
"""

from __future__ import annotations

import inspect
import json
import pickle
import signal
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError, TrialAborted
from ..faults import CrashDraw, Faults
from .state import StateSpec

if TYPE_CHECKING:
    from .context import TrialContext
    from .state import CheckpointStore, TrialStore
    from .tools import ToolSpec


class AgentCrash(BaseException):
    """The agent's process 'dies' here: raised inside the agent at its planned tool call.

    A ``BaseException`` so that an agent's ``except Exception`` does not swallow it, as nothing in a
    process survives its own death; the runner catches it and restarts the agent.
    """

    def __init__(self, step: int, tool: str, point: str):
        self.step = step
        self.tool = tool
        self.point = point
        super().__init__(f"injected crash at step {step}, {point} {tool}")


def _effect_key(name: str, arguments: dict[str, Any]) -> tuple[str, str]:
    return name, json.dumps(arguments, sort_keys=True, default=repr)


class CrashInjector:
    """One trial's crash layer: fires the planned crash and keeps the crash and resume bookkeeping."""

    def __init__(self, ctx: TrialContext, draw: CrashDraw | None, mode: str = "in_process"):
        self.ctx = ctx
        self.draw = draw
        self.mode = mode
        self.executed = 0  # tool calls that reached the tool function, over all attempts
        self.attempt = 0
        self.crashes = 0
        self.fired = False
        self.pending: AgentCrash | None = None  # the crash of the current attempt, until it is restarted
        self._armed: tuple[str, dict[str, Any]] | None = None  # an ``after`` crash waiting for its tool
        self._effects: dict[tuple[str, str], int] = {}  # side effect -> the attempt it first happened in
        self._lock = threading.Lock()

    # -- hooks in the tool wrapper --------------------------------------------------------------------
    def guard(self) -> None:
        """Raise the pending crash: a crashed attempt gets no further harness call through."""
        if self.pending is not None:
            raise self.pending

    def before_call(self, spec: ToolSpec, arguments: dict[str, Any]) -> None:
        """A tool call passed every other layer and is about to run: crash here if the plan says ``before``."""
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

    def after_call(self, spec: ToolSpec, arguments: dict[str, Any]) -> None:
        """A tool ran (its effect happened): check for a duplicate effect, then crash if the plan says ``after``."""
        with self._lock:
            if spec.side_effect or spec.destructive:
                key = _effect_key(spec.name, arguments)
                first = self._effects.setdefault(key, self.attempt)
                if first < self.attempt:
                    self._duplicate(spec.name, arguments, first)
            if self._armed is not None and self._armed[0] == spec.name:
                self._fire(spec.name, arguments, "after")

    def _duplicate(self, name: str, arguments: dict[str, Any], first: int) -> None:
        ctx = self.ctx
        ctx.extra["duplicate_side_effects"] = int(ctx.extra.get("duplicate_side_effects", 0)) + 1
        ctx.violations.append(f"duplicate_side_effect:{name}")
        ctx.trace.add("violation", name, "duplicate", kind="duplicate_side_effect", arguments=dict(arguments),
                      first_attempt=first, attempt=self.attempt)

    def _fire(self, tool: str, arguments: dict[str, Any], point: str) -> None:
        assert self.draw is not None
        self.fired = True
        self._armed = None
        crash = AgentCrash(self.draw.step, tool, point)
        self._record(tool, point, step=self.draw.step, arguments=dict(arguments))
        self.pending = crash
        raise crash

    def _record(self, tool: str, outcome: str, **data: Any) -> None:
        ctx = self.ctx
        self.crashes += 1
        extra = ctx.extra
        extra["crashes"] = self.crashes
        extra.setdefault("restarts", 0)
        extra.setdefault("duplicate_side_effects", 0)
        if "tokens_at_crash" not in extra:
            extra["tokens_at_crash"] = ctx.meter.total_tokens
            if "step" in data:
                extra["crash_step"], extra["crash_point"] = data["step"], outcome
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
            self.ctx.extra["restarts"] = attempt
            self.ctx.trace.add("resume", self.ctx.scenario, "restarted", attempt=attempt,
                               checkpoints=len(store.keys()) if store is not None else 0)

    def give_up(self, restarts: int) -> TrialAborted:
        """The outcome ``crashed``: the agent did not finish within ``restarts`` restarts."""
        where = f" at step {self.draw.step}" if self.draw is not None and self.fired else ""
        return TrialAborted("crashed", f"the agent crashed{where} and did not finish after crash_restarts="
                                       f"{restarts} restart(s)")


def attach_crash(ctx: TrialContext, faults: Faults) -> CrashInjector | None:
    """Put the crash layer on the trial when the fault plan can crash it (nothing otherwise: zero cost)."""
    if not faults.crash and faults.crash_mode != "sigkill":
        return None
    injector = CrashInjector(ctx, ctx.plan.crash(), faults.crash_mode)
    ctx.crash = injector
    return injector


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
        _fresh_rng(env)

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
                    from .clock import run_virtual
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


def _fresh_rng(env: Any) -> None:
    """A restarted process draws its randomness afresh from the trial seed (the ``Env`` caches its Generator)."""
    if hasattr(env, "_rng"):
        env._rng = None


def resolve_state(state: StateSpec | None, faults: Faults) -> StateSpec:
    """The scenario's state backend; unset means memory, or a temporary SQLite file when crashes are real."""
    if state is None:
        return StateSpec("sqlite") if faults.crash_mode == "sigkill" else StateSpec("memory")
    return StateSpec.parse(state)


def check_crash_setup(agent: Callable[..., Any], state: StateSpec, faults: Faults) -> None:
    """Reject crash settings that cannot work, before any trial runs."""
    if faults.crash_mode != "sigkill":
        return
    if not state.durable:
        raise ConfigError("state='memory' does not survive a process kill: crash_mode='sigkill' needs "
                          "state='sqlite' (the default when state is unset), 'sqlite:PATH' or a redis:// URL")
    if faults.crash_mode == "sigkill" and not hasattr(signal, "SIGKILL"):
        raise ConfigError("crash_mode='sigkill' needs a POSIX system (SIGKILL); use crash_mode='in_process'")
    try:
        pickle.dumps(agent)
    except Exception as exc:
        raise ConfigError(f"crash_mode='sigkill' runs the agent in a child process, so agent={agent!r} must be "
                          f"importable: a module-level function or an instance of a module-level class "
                          f"({type(exc).__name__}: {exc})") from exc


def _is_async(agent: Callable[..., Any]) -> bool:
    return inspect.iscoroutinefunction(agent) or inspect.iscoroutinefunction(type(agent).__call__)


def crash_layer(ctx: TrialContext, agent: Callable[..., Any], faults: Faults, store: TrialStore,
                state: StateSpec) -> Callable[..., Any]:
    """The callable the runner runs as the trial's agent: ``agent`` itself, or with the crash layer around it.

    In-process, crashed runs are restarted in the same thread or task; with ``crash_mode="sigkill"`` the
    agent runs in child processes (``ChildAgent``) that read and write ``state`` themselves.
    """
    injector = attach_crash(ctx, faults)
    if injector is None:
        return agent
    if faults.crash_mode == "sigkill":
        from .child import ChildAgent

        return ChildAgent(agent, injector, store.inner, state, faults.crash_restarts, scenario=ctx.scenario,
                          index=ctx.index, seed=ctx.seed)
    return with_restarts(agent, injector, store, faults.crash_restarts, is_async=_is_async(agent))
