"""The crash layer: the agent dies at a planned step and is restarted on the same world and store.

The fault plan says whether a trial crashes and where (``FaultPlan.crash``): at its k-th executed tool
call, ``before`` the tool runs or ``after`` it (the effect happened but the agent never sees the result:
the crash between a refund and its checkpoint that makes a naive agent refund twice). In-process, the
tool wrapper raises ``AgentCrash`` there and the agent's run is abandoned; with ``crash_mode="sigkill"``
the agent runs in a child process that is killed with SIGKILL at that point (``harness/child``).
Either way the agent is restarted with the same world and the same checkpoint store, up to
``crash_restarts`` times, and the trace gets a ``crash`` and a ``resume`` event.

What the layer records (``settings.faults.CrashRecord``): crashes, restarts, where the planned crash hit,
the tokens at the first crash, ``duplicate_side_effects`` (executions of a side-effecting or destructive
tool, with the same arguments, in a later attempt than one where it already ran) and child exit codes.
"""

from __future__ import annotations

import inspect
import json
import pickle
import signal
import threading
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from ..errors import AgentCrash, ConfigError, TrialAborted
from ..settings.faults import CrashRecord, Faults
from ..settings.layers import StateSpec
from ..vtime.loop import run_virtual
from .child.parent import ChildAgent
from .context import RAN
from .layer import LayerTrial, ToolCall, TrialPort
from .state.layer import resolve_state

if TYPE_CHECKING:
    from ..plan import CrashDraw
    from ..scenario import Scenario
    from ..settings.run import RunSettings
    from ..settings.tools import ToolSpec
    from .state import CheckpointStore


def _effect_key(name: str, arguments: dict[str, Any]) -> tuple[str, str]:
    return name, json.dumps(arguments, sort_keys=True, default=repr)


class CrashInjector(LayerTrial):
    """One trial's crash layer: fires the planned crash and keeps the crash and resume bookkeeping."""

    def __init__(self, ctx: TrialPort, draw: CrashDraw | None, mode: str = "in_process", restarts: int = 1):
        self.ctx = ctx
        self.restarts = restarts
        self.restarted = 0
        self.duplicates = 0
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
        self._effects: dict[tuple[str, str], int] = {}  # side effect -> the attempt it first happened in
        self._lock = threading.Lock()

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
        """A tool ran (its effect happened): check for a duplicate effect, then crash if the plan says ``after``."""
        if outcome not in RAN:
            return
        with self._lock:
            if spec.side_effect or spec.destructive:
                key = _effect_key(spec.name, arguments)
                first = self._effects.setdefault(key, self.attempt)
                if first < self.attempt:
                    self._duplicate(spec.name, arguments, first)
            if self._armed is not None and self._armed[0] == spec.name:
                self._fire(spec.name, arguments, "after")

    def _duplicate(self, name: str, arguments: Mapping[str, Any], first: int) -> None:
        self.duplicates += 1
        self.ctx.record_violation("duplicate_side_effect", name, arguments, blocked=False,
                                  outcome="duplicate", first_attempt=first, attempt=self.attempt)

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
        """The agent restarted after each crash (in-process), or run in child processes (``sigkill``)."""
        store = self.ctx.service("state")
        if self.mode == "sigkill":
            campaign = self.ctx.service("state_campaign")
            return ChildAgent(agent, self, store.inner, campaign.spec, self.restarts, scenario=self.ctx.scenario,
                              index=self.ctx.index, seed=self.ctx.seed)
        return with_restarts(agent, self, store, self.restarts, is_async=is_async)

    def record(self) -> CrashRecord:
        return CrashRecord(crashes=self.crashes, restarts=self.restarted, crash_step=self.crash_step,
                           crash_point=self.crash_point, tokens_at_crash=self.tokens_at_crash,
                           duplicate_side_effects=self.duplicates, exit_codes=tuple(self.exit_codes))

    def give_up(self, restarts: int) -> TrialAborted:
        """The outcome ``crashed``: the agent did not finish within ``restarts`` restarts."""
        where = f" at step {self.draw.step}" if self.draw is not None and self.fired else ""
        return TrialAborted("crashed", f"the agent crashed{where} and did not finish after crash_restarts="
                                       f"{restarts} restart(s)")


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


def check_crash_setup(agent: Callable[..., Any], state: StateSpec, faults: Faults) -> None:
    """Reject crash settings that cannot work, before any trial runs."""
    if faults.crash_mode != "sigkill":
        return
    if not state.durable:
        raise ConfigError("state='memory' does not survive a process kill: crash_mode='sigkill' needs "
                          "state='sqlite' (the default when state is unset), 'sqlite:PATH' or a redis:// URL")
    if not hasattr(signal, "SIGKILL"):
        raise ConfigError("crash_mode='sigkill' needs a POSIX system (SIGKILL); use crash_mode='in_process'")
    try:
        pickle.dumps(agent)
    except Exception as exc:
        raise ConfigError(f"crash_mode='sigkill' runs the agent in a child process, so agent={agent!r} must be "
                          f"importable: a module-level function or an instance of a module-level class "
                          f"({type(exc).__name__}: {exc})") from exc


class _Crashes:
    __slots__ = ("faults",)
    name = "crash"

    def __init__(self, faults: Faults):
        self.faults = faults

    def attach(self, trial: TrialPort) -> LayerTrial:
        f = self.faults
        return CrashInjector(trial, trial.plan.crash(), f.crash_mode, f.crash_restarts)


class CrashLayer:
    """On when the run's faults can crash the agent (``crash > 0``) or run it in a child (``sigkill``).

    Ordered after the state layer, whose checkpoint store a restarted agent resumes from.
    """

    name = "crash"

    def for_campaign(self, scenario: Scenario, run: RunSettings) -> _Crashes | None:
        f = run.faults
        if not f.crash and f.crash_mode != "sigkill":
            return None
        check_crash_setup(scenario.agent, resolve_state(scenario.state, f), f)
        return _Crashes(f)


LAYER = CrashLayer()
