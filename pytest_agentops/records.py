"""``TrialRecord``: the plain, frozen result of one trial."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .harness.trace import TraceEvent

OUTCOMES = ("completed", "failed", "escalated", "budget_exceeded", "timed_out", "crashed", "error")


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
    extra: Mapping[str, Any] = field(default_factory=dict)
    trace: tuple[TraceEvent, ...] = field(default=(), repr=False, compare=True)

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

    def to_dict(self, *, with_trace: bool = False) -> dict[str, Any]:
        """The record as plain JSON data (the trace only when asked: it can be long)."""
        out: dict[str, Any] = {
            "id": self.id, "index": self.index, "seed": self.seed, "outcome": self.outcome,
            "reason": self.reason, "input_tokens": self.input_tokens, "output_tokens": self.output_tokens,
            "tokens": self.tokens, "cost_usd": round(self.cost_usd, 10), "tool_calls": self.tool_calls,
            "tool_failures": self.tool_failures, "destructive_attempts": self.destructive_attempts,
            "unconfirmed_destructive_calls": self.unconfirmed_destructive, "blocked_calls": self.blocked_calls,
            "escalated_at_s": self.escalated_at_s, "unrecovered_fault_s": self.unrecovered_fault_s,
            "duration_s": round(self.duration_s, 6),
            "faults": list(self.faults), "violations": list(self.violations),
        }
        if self.extra:
            out["extra"] = dict(self.extra)
        if with_trace:
            out["trace"] = [e.to_dict() for e in self.trace]
        return out
