"""Settings of the harness layers, as frozen values: the simulated human (``Approver``), token and cost
limits (``Budget``, ``DailyUsers``), escalation triggers (``Escalation``) and the checkpoint store
(``StateSpec``). What each layer does with them lives in ``pytest_agentops.harness``.
"""

from __future__ import annotations

import itertools
import operator
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any, Literal

from .._validation import (
    check_fraction,
    check_non_negative,
    check_seconds,
    check_whole,
    is_number,
    reject_unknown_keys,
)
from ..errors import ConfigError, hide_own_frames
from ..metrics import MetricDef, register_metric, trial_rate
from ._meta import setting

__tracebackhide__ = hide_own_frames

#: the most earlier tasks a day a user may have on average (each trial draws each one's spend: 10^8 took 846 MB)
MAX_EARLIER_TASKS = 10_000


def _from_plain(cls: type, data: Any, where: str) -> Any:
    """A settings object from plain data (a scenario file's section); unknown keys are errors."""
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where}={data!r} must be a mapping of {cls.__name__} settings")
    reject_unknown_keys(data, [f.name for f in fields(cls)], where)
    return cls(**dict(data))


@dataclass(frozen=True, slots=True)
class Approver:
    """The simulated human who answers ``env.confirm``: approves with probability ``approve``, answering after
    a delay drawn from an exponential distribution with mean ``latency_s`` virtual seconds."""

    approve: float = setting(1.0, doc="probability that the human approves a confirmation", kind="share")
    latency_s: float = setting(0.0, doc="mean virtual seconds the human takes to answer", kind="seconds")

    def __post_init__(self) -> None:
        if not is_number(self.approve) or not 0.0 <= self.approve <= 1.0:
            raise ConfigError(f"approve={self.approve!r} must be a probability between 0 and 1")
        check_seconds("latency_s", self.latency_s)


@dataclass(frozen=True, slots=True)
class DailyUsers:
    """Where a trial's task falls in its user's day, for the per-user-per-day budgets.

    A trial is one task of user ``user-<k>`` (``k`` uniform in ``[0, count)``) who already ran
    ``N ~ Poisson(earlier_tasks)`` tasks today; each earlier task spent ``x * tokens_per_task`` tokens
    and ``x * usd_per_task`` USD with ``x ~ Exponential(1)`` (one draw per task). Drawn from the trial's
    own seed, so trials stay independent and replayable: a campaign's ``budget_exceeded_rate`` estimates
    the share of tasks, arriving at a random point of a random user's day, that the daily cap stops.
    """

    count: int = setting(100, doc="users a trial's user is drawn from (uniformly)", kind="whole", minimum=1)
    earlier_tasks: float = setting(3.0, doc=f"mean number of tasks the user already ran that day (Poisson, at most "
                                            f"{MAX_EARLIER_TASKS:,})", kind="number", minimum=0,
                                   schema={"maximum": MAX_EARLIER_TASKS})
    tokens_per_task: int = setting(2000, doc="mean tokens of an earlier task", kind="whole", minimum=0)
    usd_per_task: float = setting(0.01, doc="mean USD of an earlier task", kind="number", minimum=0)

    def __post_init__(self) -> None:
        check_whole("count", self.count, 1, what="users")
        for name in ("earlier_tasks", "usd_per_task"):
            object.__setattr__(self, name, check_non_negative(name, getattr(self, name)))
        if self.earlier_tasks > MAX_EARLIER_TASKS:
            raise ConfigError(f"earlier_tasks={self.earlier_tasks:g} is too large: at most {MAX_EARLIER_TASKS:,} "
                              "tasks a day (each trial draws every earlier task's spend)")
        check_whole("tokens_per_task", self.tokens_per_task, 0, what="tokens")


_USD = {"type": "number", "exclusiveMinimum": 0}
_OFF = "leave the key out to switch this trigger off"

#: The cumulative budgets, in the order they are checked (the per-request limit is checked first).
BUDGET_NAMES = ("per_task_tokens", "per_task_usd", "per_user_day_tokens", "per_user_day_usd")


def _usd_limit(name: str, value: Any) -> float | None:
    if value is None:
        return None
    if not is_number(value) or not value > 0 or value == float("inf"):
        raise ConfigError(f"{name}={value!r} must be an amount of USD > 0 (or None for no limit)")
    return float(value)


@dataclass(frozen=True, slots=True)
class Budget:
    """Token and cost limits of a trial: the circuit breaker behind outcome ``budget_exceeded``.

    ``per_request_tokens`` caps one model call (input + output tokens; default 4,000, the common
    circuit-breaker setting). ``per_task_*`` cap the whole trial; ``per_user_day_*`` cap the trial's user
    over the day, counting the earlier spend ``users`` draws for it. ``None`` turns a limit off. The first
    time spend reaches ``alert_fraction`` of a cumulative budget, an ``alert`` event is recorded.
    """

    per_request_tokens: int | None = setting(4000, doc="input + output tokens of one model call (default 4000)",
                                             kind="whole", minimum=1, nullable=True)
    per_task_tokens: int | None = setting(None, doc="tokens of a whole trial", kind="whole", minimum=1,
                                          nullable=True)
    per_task_usd: float | None = setting(None, doc="USD of a whole trial (from the price table)", kind="number",
                                         nullable=True, schema=_USD)
    per_user_day_tokens: int | None = setting(None, doc="tokens of the trial's user over the day", kind="whole",
                                              minimum=1, nullable=True)
    per_user_day_usd: float | None = setting(None, doc="USD of the trial's user over the day", kind="number",
                                             nullable=True, schema=_USD)
    alert_fraction: float = setting(0.8, doc="share of a budget at which an alert event is recorded (default 0.8)",
                                    kind="fraction", schema={"type": "number", "exclusiveMinimum": 0,
                                                             "exclusiveMaximum": 1})
    users: DailyUsers = setting(doc="the user population of the per-user-per-day budgets", kind="section",
                                of=DailyUsers, default_factory=DailyUsers)

    def __post_init__(self) -> None:
        for name in ("per_request_tokens", "per_task_tokens", "per_user_day_tokens"):
            check_whole(name, getattr(self, name), 1, what="tokens", optional=True)
        for name in ("per_task_usd", "per_user_day_usd"):
            object.__setattr__(self, name, _usd_limit(name, getattr(self, name)))
        a = self.alert_fraction
        if not is_number(a) or not 0 < a < 1:
            raise ConfigError(f"alert_fraction={a!r} must be a number between 0 and 1 (exclusive), e.g. 0.8")
        object.__setattr__(self, "alert_fraction", float(a))
        if not isinstance(self.users, DailyUsers):
            raise ConfigError(f"users={self.users!r} must be a DailyUsers(count=..., earlier_tasks=..., ...)")

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], where: str = "budget") -> Budget:
        """A Budget from plain data (a scenario file's ``budget:`` section); unknown keys are errors."""
        if isinstance(data, Mapping) and isinstance(data.get("users"), Mapping):
            data = {**data, "users": _from_plain(DailyUsers, data["users"], f"{where}.users")}
        return _from_plain(cls, data, where)  # type: ignore[no-any-return]

    @property
    def limits(self) -> dict[str, float]:
        """The cumulative budgets that are set, by name."""
        return {name: getattr(self, name) for name in BUDGET_NAMES if getattr(self, name) is not None}

    @property
    def per_user_day(self) -> bool:
        return self.per_user_day_tokens is not None or self.per_user_day_usd is not None


@dataclass(frozen=True, slots=True)
class BudgetRecord:
    """What the budget layer recorded about a trial: how many budgets alerted, which one tripped (if any)."""

    alerts: int = 0
    exceeded: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"budget_alerts": self.alerts}
        if self.exceeded is not None:
            out["budget_exceeded"] = self.exceeded
        return out


def _budget_alerts(columns: Any) -> tuple[int, int, tuple[()]]:
    budgets = columns.present("budget")
    return sum(map(bool, map(operator.gt, map(_ALERTS, budgets), itertools.repeat(0)))), len(budgets), ()


_ALERTS = operator.attrgetter("alerts")


register_metric(MetricDef(
    "budget_alert_rate", "rate",
    trial_rate(lambda r: None if (b := r.layers.get("budget")) is None else b.alerts > 0),
    "share of trials whose spend crossed the alert fraction (80%) of a budget (trials with a budget only)",
    counting_unit="trial with a budget", batch=_budget_alerts), builtin=True)


@dataclass(frozen=True, slots=True)
class Escalation:
    """Escalation triggers of a scenario: the harness escalates for the agent when one fires.

    ``after_consecutive_failures``: that many failed tool calls in a row; ``max_steps``: more steps (tool
    plus model calls) than this; ``budget_fraction``: this share of a budget spent (e.g. 0.9);
    ``min_confidence``: a reported confidence below this. ``None`` switches a trigger off.
    """

    after_consecutive_failures: int | None = setting(None, doc="escalate after this many failed tool calls in a "
                                                               "row", kind="whole", minimum=1, null_hint=_OFF)
    max_steps: int | None = setting(None, doc="escalate instead of a step (tool or model call) past this many",
                                    kind="whole", minimum=1, null_hint=_OFF)
    budget_fraction: float | None = setting(None, doc="escalate once this share of a budget is spent, e.g. 0.9",
                                            kind="fraction", null_hint=_OFF)
    min_confidence: float | None = setting(None, doc="escalate when the agent reports (env.report_confidence) a "
                                                     "confidence under this", kind="fraction", null_hint=_OFF)

    def __post_init__(self) -> None:
        check_whole("after_consecutive_failures", self.after_consecutive_failures, 1, optional=True)
        check_whole("max_steps", self.max_steps, 1, optional=True)
        object.__setattr__(self, "budget_fraction",
                           check_fraction("budget_fraction", self.budget_fraction, optional=True))
        object.__setattr__(self, "min_confidence", check_fraction("min_confidence", self.min_confidence, optional=True))
        if all(getattr(self, f.name) is None for f in fields(self)):
            raise ConfigError("Escalation() needs at least one trigger: after_consecutive_failures, max_steps, "
                              "budget_fraction or min_confidence")

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], where: str = "escalation") -> Escalation:
        """An Escalation from plain data (a scenario file's ``escalation:`` section); unknown keys are errors."""
        return _from_plain(cls, data, where)  # type: ignore[no-any-return]


StateKind = Literal["memory", "sqlite", "redis"]
#: Where each trial's agent runs: ``none`` in the test process, ``process`` in a child process of its own.
ISOLATIONS = ("none", "process")


def check_isolation(name: str, value: Any) -> str:
    """One of ``ISOLATIONS``."""
    if value not in ISOLATIONS:
        raise ConfigError(f"{name}={value!r} must be one of {', '.join(ISOLATIONS)}")
    return value

REDIS_SCHEMES = ("redis://", "rediss://", "unix://")


@dataclass(frozen=True, slots=True)
class StateSpec:
    """Which checkpoint backend a scenario uses: ``kind`` and its ``target`` (file path or Redis URL).

    ``sqlite`` with no path means a fresh temporary file per campaign (removed when the campaign ends).
    """

    kind: StateKind = "memory"
    target: str = ""

    def __post_init__(self) -> None:
        if self.kind not in ("memory", "sqlite", "redis"):
            raise ConfigError(f"state kind={self.kind!r} must be 'memory', 'sqlite' or 'redis'")
        if not isinstance(self.target, str):
            raise ConfigError(f"state target={self.target!r} must be a string (a file path or a Redis URL)")
        if self.kind == "redis" and not self.target.startswith(REDIS_SCHEMES):
            raise ConfigError(f"state={self.target!r} must be a Redis URL such as 'redis://127.0.0.1:6379/0'")
        if self.kind == "memory" and self.target:
            raise ConfigError(f"state='memory:{self.target}': the in-memory store takes no target")

    @classmethod
    def parse(cls, value: Any, name: str = "state") -> StateSpec:
        """``"memory"``, ``"sqlite"``, ``"sqlite:PATH"`` or a ``redis://`` URL (or a StateSpec) as a StateSpec."""
        if isinstance(value, StateSpec):
            return value
        if isinstance(value, str):
            text = value.strip()
            if text == "memory":
                return cls("memory")
            if text == "sqlite":
                return cls("sqlite")
            if text.startswith("sqlite:") and text[len("sqlite:"):]:
                path = text[len("sqlite:"):]
                return cls("sqlite", path[2:] if path.startswith("//") else path)  # sqlite:///abs or sqlite:rel
            if text.startswith(REDIS_SCHEMES):
                return cls("redis", text)
        raise ConfigError(f"{name}={value!r} must be 'memory', 'sqlite', 'sqlite:PATH' or a Redis URL "
                          "'redis://HOST:PORT/DB'")

    @property
    def durable(self) -> bool:
        """Whether checkpoints outlive the process that wrote them (what a SIGKILL crash needs)."""
        return self.kind != "memory"

    def __str__(self) -> str:
        return self.kind if not self.target else (self.target if self.kind == "redis" else f"sqlite:{self.target}")


