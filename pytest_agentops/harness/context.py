"""The per-trial harness state behind ``Env``: world, plan, trace, gate, meter, clock and counters.

One ``TrialContext`` lives for one trial. The tool wrappers, the gate and the meter report into it;
the runner reads the finished record out of it. Once the runner closes it, an abandoned agent thread
that keeps calling tools gets ``TrialAborted`` and changes nothing.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from ..errors import TrialAborted
from ..faults import STREAM_AGENT, STREAM_APPROVER, FaultPlan, trial_stream
from .budget import BudgetGuard, TokenMeter, Usage
from .clock import VirtualClock
from .escalation import EscalationMonitor
from .gates import Approver, Gate
from .tools import ToolSpec
from .trace import Trace

if TYPE_CHECKING:
    from .crash import CrashInjector


def _weak(method: Callable[..., Any]) -> Callable[..., Any]:
    """``method`` of the context, called through a weak reference: the clock, meter and gate the context
    owns then hold no reference back to it, so a finished trial is freed at once, not by the collector."""
    ref = weakref.WeakMethod(method)

    def call(*args: Any, **kwargs: Any) -> Any:
        bound = ref()
        return None if bound is None else bound(*args, **kwargs)

    return call


class Escalated(TrialAborted):
    """Raised by ``env.escalate``: the task is handed to a human and the trial ends."""

    def __init__(self, reason: str):
        super().__init__("escalated", reason)


class TrialClock(VirtualClock):
    """The trial's virtual clock; passing the virtual time limit ends the trial as ``timed_out``."""

    def __init__(self, *args: Any, limit_s: float | None = None, on_advance: Callable[[], None] | None = None,
                 **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.limit_s = limit_s
        self._on_advance = on_advance
        self.listeners: list[Callable[[], None]] = []  # told after each advance (the async virtual deadline)

    def advance(self, seconds: float) -> None:
        super().advance(seconds)
        for listener in self.listeners:
            listener()
        if self._on_advance is not None:
            self._on_advance()
        if self.limit_s is not None and self.monotonic() > self.limit_s:
            raise TrialAborted("timed_out", f"virtual time limit of {self.limit_s:g}s exceeded")


class TrialContext:
    """Everything one trial's harness layers share."""

    def __init__(self, *, scenario: str, index: int, seed: int, world: Any, plan: FaultPlan,
                 approver: Approver, enforce: bool, scopes: Iterable[str] | None,
                 prices: Mapping[str, Any], virtual_timeout_s: float | None,
                 clock_source: Callable[[], float] | None = None):
        self.scenario = scenario
        self.index = index
        self.seed = seed
        self.world = world
        self.plan = plan
        self.enforce = enforce
        self.scopes = None if scopes is None else frozenset(scopes)
        self._abort: TrialAborted | None = None
        self.clock = TrialClock(source=clock_source, limit_s=virtual_timeout_s,
                                on_advance=_weak(self.check_alive))
        self.trace = Trace(self.clock.monotonic)
        self.meter = TokenMeter(prices)
        self.meter.subscribe(_weak(self._on_usage))
        self.budget: BudgetGuard | None = None  # budget layer: set by the runner (attach_budget)
        self.escalation_layer: EscalationMonitor | None = None  # escalation layer: set by the runner
        self.crash: CrashInjector | None = None  # crash layer: set by the runner (harness/crash.py attach_crash)
        self.gate = Gate(approver, lambda: trial_stream(seed, STREAM_APPROVER), _weak(self._gate_event),
                         self.clock.advance)
        self.tool_calls = 0
        self.tool_failures = 0
        self.destructive_attempts = 0
        self.violations: list[str] = []
        self.unconfirmed_destructive = 0
        self.blocked = 0
        self.escalation: tuple[float, str] | None = None
        self.extra: dict[str, Any] = {}
        self._lock = threading.Lock()
        self.usage_traced = threading.local()  # model boundary: ``.on`` while the HTTP fake meters (it traces itself)

    # -- liveness -------------------------------------------------------------------------------------
    def abort(self, outcome: str, reason: str) -> None:
        """Mark the trial as given up by the runner; the agent's next harness call raises."""
        if self._abort is None:
            self._abort = TrialAborted(outcome, reason)

    def check_alive(self) -> None:
        """Raise ``TrialAborted`` in the agent when the runner has ended this trial."""
        if self._abort is not None:
            raise TrialAborted(self._abort.outcome, self._abort.reason)
        if self.crash is not None:  # crash layer: a crashed attempt gets no further harness call through
            self.crash.guard()
        if self.escalation_layer is not None:  # escalation layer: a fired trigger escalates at the next call
            self.escalation_layer.check()

    def begin_step(self, kind: str) -> None:
        """A tool (``kind="tool"``) or model (``"model"``) call starts: liveness, then the step triggers."""
        self.check_alive()
        if self.escalation_layer is not None:
            self.escalation_layer.before_step(kind)

    @property
    def aborted(self) -> TrialAborted | None:
        return self._abort

    def clock_advance(self, seconds: float) -> None:
        self.clock.advance(seconds)

    # -- layers report here ---------------------------------------------------------------------------
    def scope_allows(self, spec: ToolSpec) -> bool:
        return self.scopes is None or spec.scope is None or spec.scope in self.scopes

    def record_tool_call(self, spec: ToolSpec, arguments: Mapping[str, Any], outcome: str, *,
                         result: Any = None, error: str | None = None) -> None:
        """Count and trace one tool call; ``ok``/``malformed``/``empty`` went through, the rest did not."""
        with self._lock:
            if outcome not in ("blocked", "denied_scope", "bad_arguments"):
                self.tool_calls += 1
                if outcome != "ok":
                    self.tool_failures += 1
            if spec.destructive:
                self.destructive_attempts += 1
        data: dict[str, Any] = {"arguments": dict(arguments)}
        if error is not None:
            data["error"] = error
        if outcome in ("ok", "malformed", "empty") and result is not None:
            data["result"] = _short(result)
        self.trace.add("tool_call", spec.name, outcome, destructive=spec.destructive, **data)
        if self.escalation_layer is not None:  # escalation layer: consecutive failures
            self.escalation_layer.on_tool_call(outcome)

    def record_violation(self, kind: str, tool: str, arguments: Mapping[str, Any], *, blocked: bool) -> None:
        with self._lock:
            self.unconfirmed_destructive += 1
            if blocked:
                self.blocked += 1
            self.violations.append(f"{kind}:{tool}")
        self.trace.add("violation", tool, "blocked" if blocked else "allowed", kind=kind,
                       arguments=dict(arguments))

    def _gate_event(self, kind: str, name: str, outcome: str, **data: Any) -> None:
        self.trace.add(kind, name, outcome, **data)

    def _on_usage(self, usage: Usage, meter: TokenMeter) -> None:
        if getattr(self.usage_traced, "on", False):  # the fake model wrote this call's model_call event
            return
        self.trace.add("model_call", usage.model, "ok", input_tokens=usage.input_tokens,
                       output_tokens=usage.output_tokens)

    def escalate(self, reason: str) -> None:
        """Hand the task to a human: record when and why, then end the trial."""
        self.check_alive()
        t = self.clock.monotonic()
        with self._lock:
            if self.escalation is None:
                self.escalation = (t, str(reason))
        self.trace.add("escalation", "human", "escalated", reason=str(reason))
        raise Escalated(str(reason))

    def agent_rng_factory(self) -> Any:
        return trial_stream(self.seed, STREAM_AGENT)


def _short(value: Any, limit: int = 200) -> Any:
    if isinstance(value, (int, float, bool)) or value is None:
        return value
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= limit else text[:limit] + "..."
