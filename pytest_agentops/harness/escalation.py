"""Escalation triggers and timing: the harness hands a trial to a human when the agent does not.

A scenario switches the layer on with ``Scenario(escalation=Escalation(...))``. Each trigger is off unless
set:

- ``after_consecutive_failures=N``: N tool calls in a row failed (an injected fault, or the tool raised);
  a successful call resets the count, calls that never reached the tool (blocked, out of scope, bad
  arguments) neither count nor reset;
- ``max_steps=M``: the agent already took M steps (tool calls plus model calls) and starts another;
- ``budget_fraction=F``: the trial has spent F of one of its budgets (``Scenario(budget=Budget(...))``;
  without a budget this trigger never fires);
- ``min_confidence=C``: the agent reported ``env.report_confidence(x)`` with ``x < C``.

A trigger that fires escalates at the agent's next harness call (a tool call, a model call, a
confirmation, a clock advance; ``report_confidence`` and ``max_steps`` escalate in the call itself), the
same ``Escalated`` path as ``env.escalate``: the trial ends with outcome ``escalated`` and the virtual time
is recorded. An agent that returns or raises after a trigger fired, without another harness call, is
escalated when it stops.

``time_to_escalation_s`` is measured on the virtual clock from the onset of the first fault the agent did
not recover from (``unrecovered_fault_onset``) to the escalation; see ``TrialRecord.time_to_escalation_s``.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError, reject_unknown_keys

if TYPE_CHECKING:
    from .budget import TokenMeter, Usage
    from .context import TrialContext
    from .trace import TraceEvent

__all__ = [
    "FAULT_OUTCOMES",
    "Escalation",
    "EscalationMonitor",
    "attach_escalation",
    "report_confidence",
    "unrecovered_fault_onset",
]

#: Tool-call outcomes (as recorded in the trace) that are a failed call: what "a fault" means here.
FAULT_OUTCOMES = frozenset({"error", "timeout", "rate_limit", "outage", "malformed", "empty", "raised"})
#: Tool-call outcomes of calls that never reached the tool: neither a failure nor a success.
_NOT_REACHED = frozenset({"blocked", "denied_scope", "bad_arguments"})


def _count(name: str, value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{name}={value!r} must be a whole number >= 1 (or None to switch it off)")
    return value


def _fraction(name: str, value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= 1:
        raise ConfigError(f"{name}={value!r} must be a number > 0 and <= 1 (or None to switch it off)")
    return float(value)


@dataclass(frozen=True, slots=True)
class Escalation:
    """Escalation triggers of a scenario: the harness escalates for the agent when one fires.

    ``after_consecutive_failures``: that many failed tool calls in a row; ``max_steps``: more steps (tool
    plus model calls) than this; ``budget_fraction``: this share of a budget spent (e.g. 0.9);
    ``min_confidence``: a reported confidence below this. ``None`` switches a trigger off.
    """

    after_consecutive_failures: int | None = None
    max_steps: int | None = None
    budget_fraction: float | None = None
    min_confidence: float | None = None

    def __post_init__(self) -> None:
        _count("after_consecutive_failures", self.after_consecutive_failures)
        _count("max_steps", self.max_steps)
        object.__setattr__(self, "budget_fraction", _fraction("budget_fraction", self.budget_fraction))
        object.__setattr__(self, "min_confidence", _fraction("min_confidence", self.min_confidence))
        if all(getattr(self, f.name) is None for f in fields(self)):
            raise ConfigError("Escalation() needs at least one trigger: after_consecutive_failures, max_steps, "
                              "budget_fraction or min_confidence")

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], where: str = "escalation") -> Escalation:
        """An Escalation from plain data (a scenario file's ``escalation:`` section); unknown keys are errors."""
        if not isinstance(data, Mapping):
            raise ConfigError(f"{where}={data!r} must be a mapping of escalation triggers")
        reject_unknown_keys(data, [f.name for f in fields(cls)], where)
        return cls(**dict(data))


class EscalationMonitor:
    """One trial's escalation layer: watches tool outcomes, steps, spend and confidence; escalates."""

    def __init__(self, settings: Escalation, ctx: TrialContext):
        self.settings = settings
        self.ctx = ctx
        self.steps = 0
        self.consecutive_failures = 0
        self.pending: tuple[str, str] | None = None  # (trigger, reason) waiting for the next harness call
        self.fired: str | None = None  # the trigger that escalated, once it has
        self._lock = threading.Lock()

    # -- what the harness reports ---------------------------------------------------------------------
    def before_step(self, kind: str) -> None:
        """A tool or model call is starting: past ``max_steps`` the harness escalates instead."""
        limit = self.settings.max_steps
        with self._lock:
            over = limit is not None and self.steps >= limit
            if not over:
                self.steps += 1
        if over:
            self._arm("max_steps", f"max_steps={limit} reached: the agent started step {limit + 1} ({kind} call)")
            self.check()

    def on_tool_call(self, outcome: str) -> None:
        """A tool call ended with ``outcome`` (as recorded in the trace)."""
        limit = self.settings.after_consecutive_failures
        if outcome in _NOT_REACHED:
            return
        with self._lock:
            if outcome in FAULT_OUTCOMES:
                self.consecutive_failures += 1
            else:
                self.consecutive_failures = 0
            hit = limit is not None and self.consecutive_failures == limit
        if hit:
            self._arm("consecutive_failures",
                      f"after_consecutive_failures={limit}: {limit} tool calls in a row failed")

    def on_usage(self, usage: Usage, meter: TokenMeter) -> None:
        """A model call was metered: compare the spend with the trial's budgets (the budget layer)."""
        fraction = self.settings.budget_fraction
        guard = getattr(self.ctx, "budget", None)
        if fraction is None or guard is None:
            return
        limits = guard.budget.limits
        if not limits:
            return
        spent = guard.spent(meter)
        name, used = max(((n, spent[n] / limit) for n, limit in limits.items()), key=lambda p: p[1])
        if used >= fraction:
            self._arm("budget", f"budget_fraction={fraction:g}: {used:.0%} of {name}={limits[name]:g} spent")

    def on_confidence(self, confidence: float) -> None:
        """The agent reported its confidence: under ``min_confidence`` the harness escalates now."""
        threshold = self.settings.min_confidence
        if threshold is not None and confidence < threshold:
            self._arm("min_confidence", f"min_confidence={threshold:g}: the agent reported {confidence:g}")
            self.check()

    # -- escalating -----------------------------------------------------------------------------------
    def _arm(self, trigger: str, reason: str) -> None:
        with self._lock:
            if self.pending is not None or self.fired is not None:
                return
            self.pending = (trigger, reason)
        self.ctx.trace.add("escalation_trigger", trigger, "fired", reason=reason)

    def check(self) -> None:
        """Called at each harness call: escalate (raise ``Escalated``) when a trigger has fired."""
        if self.pending is None:
            return
        with self._lock:
            pending, self.pending = self.pending, None
            if pending is None:
                return
            self.fired = pending[0]
        self.ctx.escalate(f"harness escalated: {pending[1]}")

    def settle(self, exc: BaseException | None) -> BaseException | None:
        """At the end of the agent's run: a trigger that fired without a later harness call escalates now.

        Returns the ``Escalated`` to record instead of how the agent ended (``exc``), or ``exc`` unchanged.
        """
        if self.pending is None:
            return exc
        try:
            self.check()
        except BaseException as escalated:  # the Escalated raised by ctx.escalate
            return escalated
        return exc


def attach_escalation(ctx: TrialContext, settings: Escalation | None) -> EscalationMonitor | None:
    """Switch the escalation layer on for a trial (nothing when the scenario has no ``Escalation``)."""
    if settings is None:
        return None
    monitor = EscalationMonitor(settings, ctx)
    ctx.meter.subscribe(monitor.on_usage)
    return monitor


def report_confidence(ctx: TrialContext, confidence: Any) -> None:
    """``env.report_confidence``: validate, trace, and let the escalation layer judge it."""
    ctx.check_alive()
    if isinstance(confidence, bool) or not isinstance(confidence, (int, float)) or not 0 <= confidence <= 1:
        raise ValueError(f"env.report_confidence: confidence={confidence!r} must be a number between 0 and 1")
    value = float(confidence)
    ctx.trace.add("confidence", "agent", "reported", confidence=value)
    monitor = getattr(ctx, "escalation_layer", None)
    if monitor is not None:
        monitor.on_confidence(value)


def unrecovered_fault_onset(events: Iterable[TraceEvent]) -> float | None:
    """Virtual time of the first fault the agent did not recover from, or None.

    Faults are failed tool calls and failed model-API calls (a ``model_call`` event carrying the injected
    ``fault``: a 429, a 500, a timeout, a cut stream). A failed call is *recovered* when a later call of the
    same tool, or of the same model, succeeded. So per tool and per model only the failures after its last
    success count; the onset is the earliest of those.
    """
    first_open: dict[tuple[str, str], float] = {}  # (kind, name) -> its first failure since its last success
    for event in events:
        if event.kind == "tool_call":
            if event.outcome in FAULT_OUTCOMES:
                first_open.setdefault(("tool", event.name), event.t)
            elif event.outcome not in _NOT_REACHED:
                first_open.pop(("tool", event.name), None)
        elif event.kind == "model_call":
            if event.data.get("fault"):
                first_open.setdefault(("model", event.name), event.t)
            elif event.outcome == "ok":
                first_open.pop(("model", event.name), None)
    return min(first_open.values()) if first_open else None
