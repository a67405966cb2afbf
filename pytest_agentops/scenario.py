"""``Scenario``: agent + task(s) + world + tools + check + faults + harness layers + expectations.

Validated when it is built, so a mistake is reported where the scenario is written, not mid-campaign.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from .errors import ConfigError
from .expect import Expectation
from .faults import Faults
from .harness.budget import Budget  # budget layer
from .harness.escalation import Escalation  # escalation layer
from .harness.gates import Approver
from .harness.state import StateSpec  # state layer
from .harness.tools import ToolSpec, tool_spec
from .llm.boundary import FakeLLM  # model boundary (also registers the context_utilization metric)


def _positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{name}={value!r} must be a whole number >= 1")
    return value


def _seconds(name: str, value: Any, allow_none: bool = False) -> float | None:
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise ConfigError(f"{name}={value!r} must be a number of seconds > 0")
    return float(value)


@dataclass(frozen=True, slots=True)
class Scenario:
    """One thing an agent must do, and what must hold over many seeded trials of it.

    ``faults=None`` takes the run's fault profile (``--agent-chaos-profile``, default ``mid``).
    ``timeout_s`` is the wall-clock limit per trial (protection against hangs and busy loops);
    ``virtual_timeout_s`` the limit in the agent's own virtual seconds.
    """

    name: str
    agent: Callable[..., Any]
    task: str | Sequence[str] = ""
    world: Callable[[], Any] | None = None
    tools: Sequence[Callable[..., Any]] = ()
    check: Callable[[Any, Any], bool] | None = None
    faults: Faults | None = None
    approver: Approver = field(default_factory=Approver)
    enforce: bool = False
    scopes: Sequence[str] | None = None
    expect: Mapping[str, str] = field(default_factory=dict)
    trials: int = 100
    seed: int | None = None
    confidence: float = 0.95
    concurrency: int = 1
    timeout_s: float = 30.0
    virtual_timeout_s: float | None = 3600.0
    prices: Mapping[str, Any] | None = None
    early_stop: bool = True
    xfail: str | None = None
    budget: Budget | None = None  # token/cost limits and circuit breaker (harness/budget.py)
    escalation: Escalation | None = None  # escalation triggers (harness/escalation.py)
    # checkpoint store (harness/state.py): "memory", "sqlite", "sqlite:PATH" or "redis://..."; None is memory,
    # or a temporary SQLite file when Faults(crash_mode="sigkill") kills the agent's process
    state: str | StateSpec | None = None
    # model boundary (llm/): the fake model served to the agent as ``env.llm`` (a FakeLLM or a bare policy)
    llm: FakeLLM | Callable[..., Any] | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip():
            raise ConfigError(f"name={self.name!r} must be a non-empty string")
        if not callable(self.agent):
            raise ConfigError(f"agent={self.agent!r} must be a callable agent(task, env)")
        tasks = (self.task,) if isinstance(self.task, str) else tuple(self.task)
        if not tasks or not all(isinstance(t, str) for t in tasks):
            raise ConfigError(f"task={self.task!r} must be a string or a non-empty list of strings")
        if self.world is not None and not callable(self.world):
            raise ConfigError(f"world={self.world!r} must be a zero-argument factory (a class or function)")
        if self.check is not None and not callable(self.check):
            raise ConfigError(f"check={self.check!r} must be a callable check(world, output) -> bool")
        specs = tuple(tool_spec(t) for t in self.tools)
        names = [s.name for s in specs]
        duplicate = {n for n in names if names.count(n) > 1}
        if duplicate:
            raise ConfigError(f"tools: duplicate tool name(s) {sorted(duplicate)}")
        if self.faults is not None and not isinstance(self.faults, Faults):
            raise ConfigError(f"faults={self.faults!r} must be a Faults (e.g. Faults.profile('mid'))")
        if not isinstance(self.approver, Approver):
            raise ConfigError(f"approver={self.approver!r} must be an Approver")
        _positive_int("trials", self.trials)
        _positive_int("concurrency", self.concurrency)
        if self.seed is not None and (isinstance(self.seed, bool) or not isinstance(self.seed, int)
                                      or self.seed < 0):
            raise ConfigError(f"seed={self.seed!r} must be a whole number >= 0")
        if isinstance(self.confidence, bool) or not isinstance(self.confidence, float) \
                or not 0.5 <= self.confidence < 1:
            raise ConfigError(f"confidence={self.confidence!r} must be a number in [0.5, 1), e.g. 0.95")
        _seconds("timeout_s", self.timeout_s)
        _seconds("virtual_timeout_s", self.virtual_timeout_s, allow_none=True)
        if not isinstance(self.expect, Mapping):
            raise ConfigError(f"expect={self.expect!r} must map metric names to threshold strings")
        for key, expr in self.expect.items():
            Expectation.parse(key, expr)
        object.__setattr__(self, "expect", MappingProxyType(dict(self.expect)))
        if self.budget is not None and not isinstance(self.budget, Budget):  # budget layer
            raise ConfigError(f"budget={self.budget!r} must be a Budget, e.g. Budget(per_task_tokens=20000)")
        if self.escalation is not None and not isinstance(self.escalation, Escalation):  # escalation layer
            raise ConfigError(f"escalation={self.escalation!r} must be an Escalation, "
                              "e.g. Escalation(after_consecutive_failures=3)")
        if self.scopes is not None:
            object.__setattr__(self, "scopes", tuple(self.scopes))
        if self.state is not None:  # state layer
            object.__setattr__(self, "state", StateSpec.parse(self.state))
        if self.llm is not None:  # model boundary
            object.__setattr__(self, "llm", FakeLLM.coerce(self.llm))

    @property
    def tasks(self) -> tuple[str, ...]:
        return (self.task,) if isinstance(self.task, str) else tuple(self.task)

    @property
    def tool_specs(self) -> tuple[ToolSpec, ...]:
        return tuple(tool_spec(t) for t in self.tools)

    @property
    def expectations(self) -> tuple[Expectation, ...]:
        return tuple(Expectation.parse(k, v) for k, v in self.expect.items())

    def replace(self, **changes: Any) -> Scenario:
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)
