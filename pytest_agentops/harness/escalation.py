"""Escalation triggers and timing: the harness hands a trial to a human when the agent does not.

A scenario switches the layer on with ``Scenario(escalation=Escalation(...))`` (``settings.layers``). Each
trigger is off unless set:

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
from typing import TYPE_CHECKING, Any

from ..errors import TrialAbandoned, TrialAborted, hide_own_frames
from ..settings.layers import Escalation
from .context import NOT_REACHED
from .layer import LayerTrial, TrialPort, without_hooks

__tracebackhide__ = hide_own_frames

if TYPE_CHECKING:
    from ..records import TraceEvent
    from ..scenario import Scenario
    from ..settings.run import RunSettings
    from ..settings.tools import ToolSpec
    from .meter import TokenMeter, Usage

#: Tool-call outcomes (as recorded in the trace) that are a failed call: what "a fault" means here.
FAULT_OUTCOMES = frozenset({"error", "timeout", "rate_limit", "outage", "malformed", "empty", "raised"})
_NOT_REACHED = NOT_REACHED


class EscalationMonitor(LayerTrial):
    """One trial's escalation layer: watches tool outcomes, steps, spend and confidence; escalates."""

    __slots__ = ("_lock", "consecutive_failures", "ctx", "fired", "pending", "settings", "steps")

    def __init__(self, settings: Escalation, ctx: TrialPort):
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

    def on_tool_recorded(self, spec: ToolSpec, arguments: Mapping[str, Any], outcome: str) -> None:
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
        guard = self.ctx.service("budget")
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
        A trial the harness already ended (timed out, abandoned, aborted) keeps that ending.
        """
        if self.pending is None or isinstance(exc, (TrialAborted, TrialAbandoned)) or self.ctx.aborted is not None:
            return exc
        try:
            self.check()
        except BaseException as escalated:  # the Escalated raised by ctx.escalate
            # (without its traceback, whose frames reach the judging frame that holds it: a reference cycle)
            return escalated.with_traceback(None)
        return exc


class _Escalations:
    __slots__ = ("monitor", "settings")
    name = "escalation"

    def __init__(self, settings: Escalation):
        self.settings = settings
        # the hooks of the triggers that are off are never called (``check`` and ``settle`` stay: a trigger that
        # fired, ``report_confidence``'s included, escalates at the next harness call or when the agent stops)
        unused = (("before_step",) if settings.max_steps is None else ()) + \
            (("on_tool_recorded",) if settings.after_consecutive_failures is None else ()) + \
            (("on_usage",) if settings.budget_fraction is None else ())
        self.monitor = without_hooks(EscalationMonitor, unused)

    def attach(self, trial: TrialPort) -> LayerTrial:
        monitor = self.monitor(self.settings, trial)
        trial.provide("on_confidence", monitor.on_confidence)
        return monitor


class EscalationLayer:
    """On for scenarios with ``Escalation`` triggers."""

    name = "escalation"

    def for_campaign(self, scenario: Scenario, run: RunSettings) -> _Escalations | None:
        return None if scenario.escalation is None else _Escalations(scenario.escalation)


LAYER = EscalationLayer()


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
            elif first_open and event.outcome not in _NOT_REACHED:
                first_open.pop(("tool", event.name), None)
        elif event.kind == "model_call":
            if event.data.get("fault"):
                first_open.setdefault(("model", event.name), event.t)
            elif first_open and event.outcome == "ok":
                first_open.pop(("model", event.name), None)
    return min(first_open.values()) if first_open else None
