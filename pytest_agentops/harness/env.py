"""``Env``: what a trial hands the agent. The agent reaches tools, randomness, the human, the meter,
the clock and its checkpoint store only through it, which is what lets the harness inject faults and
measure everything."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from .._frozen import FrozenMap
from ..errors import hide_own_frames
from .trace import AgentTrace

__tracebackhide__ = hide_own_frames

if TYPE_CHECKING:
    import numpy as np

    from ..llm.endpoint import LLMEndpoint
    from ..vtime.clock import VirtualClock
    from .context import TrialContext
    from .state import CheckpointStore


class Env:
    """The trial's environment as the agent sees it.

    ``tools`` maps each tool's name to its wrapped callable; ``rng`` is the trial's own numpy Generator;
    ``confirm(action, **details)`` asks the simulated human; ``record_usage`` meters tokens;
    ``escalate(reason)`` hands over to a human and ends the trial; ``clock`` is virtual time;
    ``state`` the checkpoint store; ``trace`` the trial's trace; ``llm`` the fake model endpoint.
    """

    __slots__ = ("_ctx", "_rng", "llm", "state", "task", "tools")

    def __init__(self, ctx: TrialContext, tools: Mapping[str, Any], task: str):
        self._ctx = ctx
        self._rng: np.random.Generator | None = None
        self.tools: Mapping[str, Any] = FrozenMap(tools)
        self.task = task
        self.llm: LLMEndpoint | None = ctx.service("llm")
        self.state: CheckpointStore = ctx.service("state")

    @property
    def rng(self) -> np.random.Generator:
        """The agent's own randomness, reproducible from the trial seed."""
        if self._rng is None:
            self._rng = self._ctx.plan.agent_rng()
        return self._rng

    def fresh_rng(self) -> None:
        """A restarted agent draws its randomness afresh from the trial seed, as a new process would."""
        self._rng = None

    @property
    def clock(self) -> VirtualClock:
        return self._ctx.clock

    @property
    def trace(self) -> AgentTrace:
        """The trial's trace: its events, and ``add`` for the agent's own (not the kinds the harness writes)."""
        return AgentTrace(self._ctx.trace, self._ctx.stop_if_decided)

    @property
    def world(self) -> Any:
        """The trial's world (for agents that inspect it; success is judged on it)."""
        return self._ctx.world

    @property
    def trial_id(self) -> str:
        return f"trial-{self._ctx.index}"

    @property
    def seed(self) -> int:
        return self._ctx.seed

    def confirm(self, action: str, **details: Any) -> bool:
        """Ask the simulated human to approve ``action`` (a tool name) with these arguments."""
        self._ctx.check_alive()
        return bool(self._ctx.service("confirm")(action, details))

    def record_usage(self, input_tokens: int = 0, output_tokens: int = 0, model: str = "*") -> None:
        """Meter one model call's tokens (cost from the scenario's price table)."""
        self._ctx.begin_step("model")  # liveness, and the layers' step hooks
        self._ctx.meter.record(input_tokens, output_tokens, model)

    def escalate(self, reason: str) -> None:
        """Hand the task to a human: the trial ends with outcome ``escalated``. Does not return."""
        self._ctx.escalate(reason)

    def report_confidence(self, confidence: float) -> None:
        """Report how sure the agent is (0 to 1); under the scenario's ``Escalation(min_confidence=...)``
        the harness escalates (raises, like ``escalate``). Always recorded in the trace."""
        self._ctx.report_confidence(confidence)

    def __repr__(self) -> str:
        return f"<Env {self._ctx.scenario}[{self.trial_id} seed={self._ctx.seed}] tools={list(self.tools)}>"
