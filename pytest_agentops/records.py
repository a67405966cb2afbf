"""What a trial leaves behind, as deeply frozen values: ``TrialRecord``, its ``TraceEvent``s, and the typed
data each harness layer records (``LayerRecord``)."""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from ._frozen import EMPTY, FrozenMap, slot_maker, thaw
from .errors import hide_own_frames

__tracebackhide__ = hide_own_frames

OUTCOMES = ("completed", "failed", "escalated", "budget_exceeded", "timed_out", "crashed", "error")


@runtime_checkable
class LayerRecord(Protocol):
    """What one harness layer recorded about one trial: a frozen dataclass of the layer's own.

    ``to_dict()`` gives its plain JSON form; the report writes the entries of every layer's record under
    the trial's ``extra`` (flat, as the report schema has always had them).
    """

    def to_dict(self) -> dict[str, Any]: ...


@dataclass(frozen=True, slots=True)
class TraceEvent:
    """One thing that happened in a trial, at virtual time ``t`` (seconds since the trial started)."""

    seq: int
    t: float
    kind: str  # model_call, tool_call, fault, confirmation, escalation, checkpoint, crash, budget, agent, ...
    name: str = ""
    outcome: str = "ok"
    input_tokens: int = 0
    output_tokens: int = 0
    data: Mapping[str, Any] = field(default=EMPTY)

    def to_dict(self) -> dict[str, Any]:
        """The event as plain JSON data."""
        out: dict[str, Any] = {"seq": self.seq, "t": round(self.t, 6), "kind": self.kind, "name": self.name,
                               "outcome": self.outcome}
        if self.input_tokens or self.output_tokens:
            out["input_tokens"] = self.input_tokens
            out["output_tokens"] = self.output_tokens
        if self.data:
            out["data"] = thaw(self.data)
        return out


#: What the fault tallies read of an event: its kind, name, outcome, and whether it concerns the whole trial
#: (a tool's outage notice, ``scope="trial"``).
EventKey = tuple[str, str, str, bool]


def event_key(event: TraceEvent) -> EventKey:
    """The ``EventKey`` of an event."""
    return event.kind, event.name, event.outcome, event.kind == "fault" and event.data.get("scope") == "trial"


@dataclass(frozen=True, slots=True)
class TrialRecord:
    """What one seeded trial did and how it ended."""

    scenario: str
    index: int
    seed: int
    outcome: str
    reason: str = ""
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    tool_calls: int = 0
    tool_failures: int = 0
    destructive_attempts: int = 0
    unconfirmed_destructive: int = 0
    blocked_calls: int = 0
    escalated_at_s: float | None = None
    unrecovered_fault_s: float | None = None  # onset of the first fault the agent did not recover from
    duration_s: float = 0.0  # virtual seconds
    faults: tuple[str, ...] = ()
    violations: tuple[str, ...] = ()
    output: str = ""
    default_priced: tuple[str, ...] = ()  # models whose tokens were priced at the ``*`` fallback price
    layers: Mapping[str, LayerRecord] = field(default=EMPTY)  # layer name -> what it recorded
    trace: tuple[TraceEvent, ...] = field(default=(), repr=False, compare=True)
    # a trace not kept (``Scenario.keep_traces``): each event's (kind, name, outcome, trial-wide), for the fault
    # tallies; the tuples are shared between trials, so a passing trial costs a few pointers, not its events
    skeleton: tuple[EventKey, ...] = field(default=(), repr=False, compare=True)

    def __post_init__(self) -> None:
        if not isinstance(self.layers, FrozenMap):
            object.__setattr__(self, "layers", FrozenMap(self.layers))
        for name in ("faults", "violations", "trace", "default_priced", "skeleton"):
            value = getattr(self, name)
            if not isinstance(value, tuple):
                object.__setattr__(self, name, tuple(value))

    @property
    def id(self) -> str:
        return f"trial-{self.index}"

    @property
    def label(self) -> str:
        """How a trial is named everywhere: ``refund[trial-17 seed=...]``."""
        return f"{self.scenario}[{self.id} seed={self.seed}]"

    @property
    def tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    @property
    def ok(self) -> bool:
        return self.outcome == "completed" and not self.violations

    @property
    def trace_kept(self) -> bool:
        """Whether the trial's trace was kept (``Scenario.keep_traces``); else only its ``skeleton`` was."""
        return not self.skeleton

    def event_keys(self) -> Iterator[EventKey]:
        """(kind, name, outcome, trial-wide) of each event of the trial, from its trace or its skeleton."""
        if self.skeleton:
            yield from self.skeleton
            return
        for event in self.trace:
            yield event_key(event)

    def layer(self, name: str) -> Any:
        """What the layer ``name`` recorded in this trial, or None (the layer was off)."""
        return self.layers.get(name)

    @property
    def extra(self) -> FrozenMap[str, Any]:
        """Every layer's record as one flat mapping (the report's ``extra``)."""
        return FrozenMap(layer_extra(self.layers))

    @property
    def time_to_escalation_s(self) -> float | None:
        """Virtual seconds from the onset of the first unrecovered fault to the escalation.

        ``+inf`` when a fault went unrecovered and the trial neither escalated nor completed (it failed,
        raised, hung, ...): it never handed over, an exceedance of any escalation-time threshold. ``None``
        (not counted) when no fault went unrecovered, or the agent completed the task regardless.
        """
        onset = self.unrecovered_fault_s
        if onset is None:
            return None
        if self.escalated_at_s is not None:
            return max(0.0, self.escalated_at_s - onset)
        return None if self.outcome == "completed" else math.inf

    def to_dict(self, *, with_trace: bool = False, with_extra: bool = True) -> dict[str, Any]:
        """The record as plain JSON data (the trace only when asked: it can be long; ``with_extra=False``: without
        the layers' ``extra``, for a reader that has no use for it, such as the HTML report)."""
        out: dict[str, Any] = {
            "id": self.id, "index": self.index, "seed": self.seed, "outcome": self.outcome,
            "reason": self.reason, "input_tokens": self.input_tokens, "output_tokens": self.output_tokens,
            "tokens": self.tokens, "cost_usd": round(self.cost_usd, 10), "tool_calls": self.tool_calls,
            "tool_failures": self.tool_failures, "destructive_attempts": self.destructive_attempts,
            "unconfirmed_destructive_calls": self.unconfirmed_destructive, "blocked_calls": self.blocked_calls,
            "escalated_at_s": self.escalated_at_s, "unrecovered_fault_s": self.unrecovered_fault_s,
            "duration_s": round(self.duration_s, 6),
            "faults": list(self.faults), "violations": list(self.violations), "output": self.output,
        }
        extra = thaw(self.extra) if with_extra else None
        if extra:
            out["extra"] = extra
        if self.default_priced:
            out["default_priced_models"] = list(self.default_priced)
        if with_trace:
            out["trace"] = [e.to_dict() for e in self.trace]
            if self.skeleton:  # asked for, but not kept (``Scenario.keep_traces``): the replay command re-makes it
                out["trace_kept"] = False
        return out


#: ``TrialRecord(...)`` for the engine, which gives every field in its final form (``slot_maker``)
make_trial_record = slot_maker(TrialRecord)


_JSON_LEAVES = (str, int, float, bool, type(None))
_LONGEST = 2 ** 64  # (ints ``not_json`` passes: from -2**63 to below this, what 64-bit readers hold)


def not_json(value: Any, at: str = "") -> str | None:
    """What in ``value`` is not JSON data (str, int, float, bool, None, and lists, tuples and str-keyed dicts of
    them), and where, as ``a frozenset at ['tags']``; None when it all is."""
    if isinstance(value, float):  # (a report writes no nan or infinity)
        return None if math.isfinite(value) else f"the float {float.__repr__(value)} at {at or 'the top'}"
    if isinstance(value, int) and not isinstance(value, bool) and not -(2 ** 63) <= value < _LONGEST:
        return f"an int of {int(value).bit_length()} bits at {at or 'the top'} (a report writes at most 64)"
    if isinstance(value, _JSON_LEAVES):
        return None
    if isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            found = not_json(item, f"{at}[{i}]")
            if found:
                return found
        return None
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                return f"the key {key!r:.60} ({type(key).__name__}) at {at or 'the top'}"
            found = not_json(item, f"{at}[{key!r:.60}]")
            if found:
                return found
        return None
    return f"a {type(value).__name__} at {at or 'the top'}"


def layer_extra(layers: Mapping[str, LayerRecord]) -> dict[str, Any]:
    """The layers' records of a trial as one flat dict (``TrialRecord.extra``; a later layer's entry wins)."""
    merged: dict[str, Any] = {}
    for record in layers.values():
        merged.update(record.to_dict())
    return merged


@dataclass(frozen=True, slots=True)
class MinimalFaults:
    """The faults a failing trial needs to fail (``engine.shrink``): what is left when no single one of them can
    be removed with the trial still failing the same way."""

    index: int
    failure: str  # the failure kept while shrinking: the outcome, or ``violation:KIND`` of a completed trial
    faults: tuple[str, ...]  # readable: "refund_order call 2 -> timeout"
    fault_ids: tuple[str, ...]  # the same faults' ids (``plan.fault_id``), for ``allowed_faults``
    fired: int  # faults that fired in the trial as it ran
    runs: int  # re-runs spent
    minimal: bool  # True: removing any one of ``faults`` makes the trial pass (or fail otherwise)

    def describe(self) -> str:
        """One line, e.g. ``fails with just: refund_order call 2 -> timeout (1 of 7 faults, minimal)``."""
        if not self.faults:
            return f"fails with no fault at all ({self.fired} fired in the trial): the agent fails on its own"
        how = "minimal" if self.minimal else f"search stopped after {self.runs} re-runs, may not be minimal"
        return f"fails with just: {'; '.join(self.faults)} ({len(self.faults)} of {self.fired} faults, {how})"

    def to_dict(self) -> dict[str, Any]:
        return {"index": self.index, "failure": self.failure, "faults": list(self.faults),
                "fault_ids": list(self.fault_ids), "fired": self.fired, "runs": self.runs, "minimal": self.minimal}
