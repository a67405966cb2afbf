"""A harness layer of a test's own, in one module: what it attaches to a trial, what it records, the metric it
defines. Nothing else in the package is edited to add it (tests/test_layer_seam.py uses it)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pytest_agentops.harness.layer import LayerTrial, ToolCall, TrialPort
from pytest_agentops.metrics import MetricDef, register_metric


@dataclass(frozen=True, slots=True)
class StepsRecord:
    """The layer's record of one trial: how many tool calls reached the tools."""

    steps: int

    def to_dict(self) -> dict[str, Any]:
        return {"toy_steps": self.steps}


class _StepsTrial(LayerTrial):
    def __init__(self, trial: TrialPort, note_every: int):
        self.trial = trial
        self.note_every = note_every
        self.steps = 0

    def on_tool_start(self, call: ToolCall) -> None:
        self.steps += 1
        if self.steps % self.note_every == 0:
            self.trial.trace.add("toy", call.spec.name, "noted", steps=self.steps)

    def record(self) -> StepsRecord:
        return StepsRecord(self.steps)


@dataclass(frozen=True, slots=True)
class StepsLayer:
    """Counts the tool calls of each trial that reached their tool; traces every ``note_every``-th."""

    note_every: int = 2
    name: str = "toy_steps"

    def attach(self, trial: TrialPort) -> LayerTrial:
        return _StepsTrial(trial, self.note_every)


register_metric(MetricDef(
    "toy_steps_per_task", "distribution",
    lambda r: None if (rec := r.layers.get("toy_steps")) is None else float(rec.steps),
    "tool calls of a trial that reached their tool (the toy layer of the project's tests)", "calls"))
