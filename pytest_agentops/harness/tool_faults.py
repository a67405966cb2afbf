"""The tool-fault layer: the faults the trial's plan holds for each tool call, injected where a flaky API
would fail (an exception, a timeout, a rate limit, an outage), be slow, or answer with a wrong-shaped or
empty result. ``error``/``timeout``/``rate_limit``/``outage`` fail the call before the tool runs;
``malformed``/``empty`` let the tool run (its effect happens) and change what the agent gets back."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from ..errors import RateLimited, ToolError, ToolTimeout, ToolUnavailable, hide_own_frames
from ..plan import NO_FAULT as _NO_FAULT
from ..plan import FaultPlan, fault_id
from .layer import LayerTrial, ToolCall, TrialPort
from .trace import shown_repr

__tracebackhide__ = hide_own_frames

if TYPE_CHECKING:
    from ..scenario import Scenario
    from ..settings.run import RunSettings

_key_of = FaultPlan.key_of

#: Fault kinds that fail the call before the tool runs.
FAIL_BEFORE = frozenset({"error", "timeout", "rate_limit", "outage"})


def garble(result: Any) -> Any:
    """A wrong-shaped version of a result, as a misbehaving API would return it."""
    text = shown_repr(result)
    cut = text[: max(1, len(text) // 2)]
    if isinstance(result, dict):
        return {"unexpected": cut}
    if isinstance(result, (list, tuple)):
        return [{"unexpected": cut}]
    return "<html><body>502 Bad Gateway</body></html>" if isinstance(result, str) else cut


def empty_like(result: Any) -> Any:
    """An empty result of the same type, or of its built-in base where the type cannot be made empty (a
    ``NamedTuple``, a ``StrEnum``: their constructors need values); None for other values."""
    for base in (dict, list, str, tuple):
        if isinstance(result, base):
            if type(result) is base:
                return base()
            try:
                return type(result)()
            except Exception:
                return base()
    return None


class _ToolFaultsTrial(LayerTrial):
    __slots__ = ("counts", "plan", "trial")

    def __init__(self, trial: TrialPort):
        self.trial = trial
        self.plan = trial.plan  # (the plan holds nothing of the trial: kept directly, not through the proxy)
        self.counts: dict[tuple[str, int], Iterator[int]] = {}  # (tool, arguments' key) -> its occurrences so far
        outage = self.plan.outage_tool
        if outage:
            trial.trace.add("fault", outage, "outage", scope="trial", fid=fault_id("outage", outage))

    def before_tool(self, call: ToolCall) -> None:
        plan, name = self.plan, call.spec.name
        args_key = _key_of(call.arguments)
        counts, key = self.counts, (name, args_key)  # (``Occurrences.next``, written out: this runs at every call)
        counter = counts.get(key)
        if counter is None:
            counter = counts.setdefault(key, itertools.count())
        occurrence = next(counter)
        draw = plan.tool_fault(name, occurrence, args_key)
        if draw is _NO_FAULT:
            return
        trial = self.trial
        if draw.latency_s:
            trial.clock_advance(draw.latency_s)
            trial.trace.add("fault", name, "latency", call=call.index, latency_s=round(draw.latency_s, 6),
                            fid=fault_id("latency", name, args_key, occurrence))
        kind = draw.kind
        if kind is None:
            return
        call.fault_id = fault_id("outage", name) if kind == "outage" else fault_id("tool", name, args_key, occurrence)
        if kind in FAIL_BEFORE:
            faults = plan.faults
            trial.trace.add("fault", name, kind, call=call.index, fid=call.fault_id)
            trial.record_tool_call(call.spec, call.arguments, kind)
            if kind == "timeout":
                trial.clock_advance(faults.timeout_s)
                raise ToolTimeout(name, faults.timeout_s)
            if kind == "rate_limit":
                raise RateLimited(name, faults.retry_after_s)
            if kind == "outage":
                raise ToolUnavailable(name)
            raise ToolError(name)
        call.fault = kind

    def after_tool(self, call: ToolCall, result: Any) -> Any:
        kind = call.fault
        if kind is None:
            return result
        result = garble(result) if kind == "malformed" else empty_like(result)
        self.trial.trace.add("fault", call.spec.name, kind, call=call.index, fid=call.fault_id)
        return result


class ToolFaultsLayer:
    """Injects the plan's tool faults; off when the run's faults cannot fail or slow a tool call."""

    name = "tool_faults"

    def for_campaign(self, scenario: Scenario, run: RunSettings) -> ToolFaultsLayer | None:
        f = run.faults
        on = f.rate or f.latency or f.outage or any(t.rate for t in f.per_tool.values())
        return self if on else None

    def attach(self, trial: TrialPort) -> LayerTrial:
        return _ToolFaultsTrial(trial)


LAYER = ToolFaultsLayer()
