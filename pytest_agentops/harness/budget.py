"""Token and cost metering for a trial, a price table per model, and the budget layer.

Every source of usage (``env.record_usage`` and the HTTP model fake) feeds the same meter.
Listeners subscribe to it and may end the trial: ``BudgetGuard`` is the circuit breaker that alerts
at ``alert_fraction`` of each budget and stops the trial with outcome ``budget_exceeded`` past a limit.
"""

from __future__ import annotations

import math
import re
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError, TrialAborted, reject_unknown_keys

if TYPE_CHECKING:
    from .context import TrialContext
    from .trace import Trace


@dataclass(frozen=True, slots=True)
class Price:
    """USD per million input and output tokens."""

    input_per_mtok: float
    output_per_mtok: float

    def cost(self, input_tokens: int, output_tokens: int) -> float:
        return (input_tokens * self.input_per_mtok + output_tokens * self.output_per_mtok) / 1_000_000


#: Default prices (USD per million tokens). ``*`` is used for models not listed; override per scenario.
DEFAULT_PRICES: Mapping[str, Price] = MappingProxyType({
    "*": Price(3.0, 15.0),
    "gpt-4o": Price(2.5, 10.0),
    "gpt-4o-mini": Price(0.15, 0.6),
    "gpt-4.1": Price(2.0, 8.0),
    "gpt-4.1-mini": Price(0.4, 1.6),
    "claude-sonnet-4": Price(3.0, 15.0),
    "claude-haiku-4": Price(1.0, 5.0),
    "fake-model": Price(1.0, 2.0),
})


def price_table(prices: Mapping[str, object] | None) -> Mapping[str, Price]:
    """Merge user prices (``{"model": (in, out)}`` or ``Price``) over the defaults, validating them."""
    table = dict(DEFAULT_PRICES)
    for model, value in (prices or {}).items():
        if isinstance(value, Price):
            table[model] = value
            continue
        if isinstance(value, Mapping):
            value = (value.get("input"), value.get("output"))
        try:
            inp, out = value  # type: ignore[misc]
            if inp < 0 or out < 0:
                raise ValueError
            table[model] = Price(float(inp), float(out))
        except (TypeError, ValueError):
            raise ConfigError(f"prices[{model!r}]={value!r} must be (input_usd_per_mtok, output_usd_per_mtok) "
                              "with both >= 0") from None
    return MappingProxyType(table)


_PROVIDER = re.compile(r"^[A-Za-z0-9_.-]+[:/]")  # "openai:gpt-4o", "anthropic/claude-sonnet-4"
_SNAPSHOT = re.compile(r"(-\d{4}-\d{2}-\d{2}|-\d{8}|@\d{8}|-latest)$")  # dated snapshots, aliases


def price_for(prices: Mapping[str, Price], model: str) -> Price:
    """The price of ``model``: its exact entry, else without a provider prefix or snapshot suffix, else ``*``.

    Model APIs report dated snapshots (``gpt-4o-mini-2024-07-18``, ``claude-sonnet-4-20250514``) and
    frameworks prefix a provider (``openai:gpt-4o``); both are priced as the listed base model.
    """
    price = prices.get(model)
    if price is not None:
        return price
    base = _SNAPSHOT.sub("", _PROVIDER.sub("", model, count=1))
    price = prices.get(base)
    if price is None:
        price = prices.get("*") or DEFAULT_PRICES["*"]
    return price


@dataclass(frozen=True, slots=True)
class Usage:
    """One metered model call."""

    input_tokens: int
    output_tokens: int
    model: str
    cost_usd: float


class TokenMeter:
    """Adds up the tokens and cost of one trial; tells listeners about each new usage."""

    def __init__(self, prices: Mapping[str, Price] = DEFAULT_PRICES):
        self.prices = prices
        self.input_tokens = 0
        self.output_tokens = 0
        self.cost_usd = 0.0
        self.calls = 0
        self._listeners: list[Callable[[Usage, TokenMeter], None]] = []
        self._lock = threading.Lock()

    def subscribe(self, listener: Callable[[Usage, TokenMeter], None]) -> None:
        """Call ``listener(usage, meter)`` after every recorded usage (budget layers use this)."""
        self._listeners.append(listener)

    def record(self, input_tokens: int = 0, output_tokens: int = 0, model: str = "*") -> Usage:
        """Meter one model call."""
        for name, value in (("input_tokens", input_tokens), ("output_tokens", output_tokens)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ConfigError(f"record_usage: {name}={value!r} must be an int >= 0")
        price = price_for(self.prices, model)
        usage = Usage(input_tokens, output_tokens, model, price.cost(input_tokens, output_tokens))
        with self._lock:
            self.input_tokens += input_tokens
            self.output_tokens += output_tokens
            self.cost_usd += usage.cost_usd
            self.calls += 1
        for listener in self._listeners:
            listener(usage, self)
        return usage

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens


# --- the budget layer --------------------------------------------------------------------------------------

#: The cumulative budgets, in the order they are checked (the per-request limit is checked first).
BUDGET_NAMES = ("per_task_tokens", "per_task_usd", "per_user_day_tokens", "per_user_day_usd")


def _limit(name: str, value: Any, *, usd: bool) -> Any:
    if value is None:
        return None
    if usd:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
                or value <= 0:
            raise ConfigError(f"{name}={value!r} must be an amount of USD > 0 (or None for no limit)")
        return float(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{name}={value!r} must be a whole number of tokens >= 1 (or None for no limit)")
    return value


@dataclass(frozen=True, slots=True)
class UserDay:
    """The user a trial's task belongs to, and what that user had already spent today before it."""

    user: str
    earlier_tasks: int
    tokens: int
    usd: float


@dataclass(frozen=True, slots=True)
class DailyUsers:
    """Where a trial's task falls in its user's day, for the per-user-per-day budgets.

    A trial is one task of user ``user-<k>`` (``k`` uniform in ``[0, count)``) who already ran
    ``N ~ Poisson(earlier_tasks)`` tasks today; each earlier task spent ``x * tokens_per_task`` tokens
    and ``x * usd_per_task`` USD with ``x ~ Exponential(1)`` (one draw per task). Drawn from the trial's
    own seed, so trials stay independent and replayable: a campaign's ``budget_exceeded_rate`` estimates
    the share of tasks, arriving at a random point of a random user's day, that the daily cap stops.
    """

    count: int = 100
    earlier_tasks: float = 3.0
    tokens_per_task: int = 2000
    usd_per_task: float = 0.01

    def __post_init__(self) -> None:
        if isinstance(self.count, bool) or not isinstance(self.count, int) or self.count < 1:
            raise ConfigError(f"count={self.count!r} must be a whole number of users >= 1")
        for name in ("earlier_tasks", "usd_per_task"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
                    or value < 0:
                raise ConfigError(f"{name}={value!r} must be a number >= 0")
            object.__setattr__(self, name, float(value))
        if isinstance(self.tokens_per_task, bool) or not isinstance(self.tokens_per_task, int) \
                or self.tokens_per_task < 0:
            raise ConfigError(f"tokens_per_task={self.tokens_per_task!r} must be a whole number of tokens >= 0")

    def draw(self, trial_seed: int) -> UserDay:
        """The user and earlier spend of the trial with this seed (stream ``STREAM_BUDGET``)."""
        from ..faults import STREAM_BUDGET, trial_stream

        rng = trial_stream(trial_seed, STREAM_BUDGET)
        user = int(rng.integers(self.count))
        n = int(rng.poisson(self.earlier_tasks))
        share = float(rng.exponential(1.0, size=n).sum()) if n else 0.0
        return UserDay(f"user-{user}", n, round(share * self.tokens_per_task), share * self.usd_per_task)


@dataclass(frozen=True, slots=True)
class Budget:
    """Token and cost limits of a trial: the circuit breaker behind outcome ``budget_exceeded``.

    ``per_request_tokens`` caps one model call (input + output tokens; default 4,000, the common
    circuit-breaker setting). ``per_task_*`` cap the whole trial; ``per_user_day_*`` cap the trial's user
    over the day, counting the earlier spend ``users`` draws for it. ``None`` turns a limit off. The first
    time spend reaches ``alert_fraction`` of a cumulative budget, an ``alert`` event is recorded.
    """

    per_request_tokens: int | None = 4000
    per_task_tokens: int | None = None
    per_task_usd: float | None = None
    per_user_day_tokens: int | None = None
    per_user_day_usd: float | None = None
    alert_fraction: float = 0.8
    users: DailyUsers = field(default_factory=DailyUsers)

    def __post_init__(self) -> None:
        for name in ("per_request_tokens", "per_task_tokens", "per_user_day_tokens"):
            object.__setattr__(self, name, _limit(name, getattr(self, name), usd=False))
        for name in ("per_task_usd", "per_user_day_usd"):
            object.__setattr__(self, name, _limit(name, getattr(self, name), usd=True))
        a = self.alert_fraction
        if isinstance(a, bool) or not isinstance(a, (int, float)) or not 0 < a < 1:
            raise ConfigError(f"alert_fraction={a!r} must be a number between 0 and 1 (exclusive), e.g. 0.8")
        object.__setattr__(self, "alert_fraction", float(a))
        if not isinstance(self.users, DailyUsers):
            raise ConfigError(f"users={self.users!r} must be a DailyUsers(count=..., earlier_tasks=..., ...)")

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], where: str = "budget") -> Budget:
        """A Budget from plain data (a scenario file's ``budget:`` section); unknown keys are errors."""
        if not isinstance(data, Mapping):
            raise ConfigError(f"{where}={data!r} must be a mapping of budget settings")
        reject_unknown_keys(data, [f.name for f in fields(cls)], where)
        values = dict(data)
        users = values.get("users")
        if isinstance(users, Mapping):
            reject_unknown_keys(users, [f.name for f in fields(DailyUsers)], f"{where}.users")
            values["users"] = DailyUsers(**users)
        return cls(**values)

    @property
    def limits(self) -> dict[str, float]:
        """The cumulative budgets that are set, by name."""
        return {name: getattr(self, name) for name in BUDGET_NAMES if getattr(self, name) is not None}

    @property
    def per_user_day(self) -> bool:
        return self.per_user_day_tokens is not None or self.per_user_day_usd is not None


def _amount(name: str, value: float) -> str:
    return f"${value:.6g}" if name.endswith("_usd") else f"{value:.0f} tokens"


class BudgetGuard:
    """One trial's circuit breaker: a meter listener that alerts once per budget and trips past a limit.

    Tripping records a ``budget`` trace event, tells the trial it is over (``abort``: every later harness
    call raises too) and raises ``TrialAborted("budget_exceeded", reason)``, a ``BaseException`` so that
    an agent's ``except Exception`` does not swallow it. The breaker stays open: later usage raises again.
    """

    def __init__(self, budget: Budget, *, seed: int, trace: Trace,
                 abort: Callable[[str, str], None] | None = None, extra: dict[str, Any] | None = None):
        self.budget = budget
        self.trace = trace
        self._abort = abort
        self.extra = extra if extra is not None else {}
        self.day: UserDay | None = budget.users.draw(seed) if budget.per_user_day else None
        self.alerted: list[str] = []  # budgets whose alert this trial raised, in order
        self.tripped: str | None = None
        self.reason = ""
        self._quiet: set[str] = set()  # user-day budgets already past the alert line before this task
        self._alert_listeners: list[Callable[[str, float, float], None]] = []
        self._lock = threading.Lock()
        self.extra["budget_alerts"] = 0
        if self.day is not None:
            day = self.day
            trace.add("budget", "per_user_day", "drawn", user=day.user, earlier_tasks=day.earlier_tasks,
                      spent_before=day.tokens, spent_before_usd=round(day.usd, 10))
            for name, before in (("per_user_day_tokens", day.tokens), ("per_user_day_usd", day.usd)):
                limit = getattr(budget, name)
                if limit is not None and before >= budget.alert_fraction * limit:
                    self._quiet.add(name)  # its alert went off during an earlier task of the day

    def subscribe_alert(self, listener: Callable[[str, float, float], None]) -> None:
        """Call ``listener(budget_name, spent, limit)`` after each alert (an escalation layer may end the trial)."""
        self._alert_listeners.append(listener)

    def spent(self, meter: TokenMeter) -> dict[str, float]:
        """What counts against each cumulative budget now."""
        day = self.day or UserDay("", 0, 0, 0.0)
        return {"per_task_tokens": meter.total_tokens, "per_task_usd": meter.cost_usd,
                "per_user_day_tokens": day.tokens + meter.total_tokens, "per_user_day_usd": day.usd + meter.cost_usd}

    def check_request(self, tokens: int, model: str = "*") -> None:
        """Trip before a model call whose prompt alone is over the per-request limit (for HTTP fakes)."""
        limit = self.budget.per_request_tokens
        with self._lock:
            self._raise_if_open()
            if limit is not None and tokens > limit:
                self._trip("per_request_tokens", f"per_request_tokens={limit} exceeded: a request of {tokens} "
                           f"tokens to {model}", limit=limit, spent=tokens, model=model)

    def __call__(self, usage: Usage, meter: TokenMeter) -> None:
        """The meter listener: check the limits after one metered model call."""
        budget = self.budget
        with self._lock:
            self._raise_if_open()
            request = usage.input_tokens + usage.output_tokens
            spent = self.spent(meter)
            limits = budget.limits
            for name, limit in limits.items():
                if name not in self.alerted and name not in self._quiet \
                        and spent[name] >= budget.alert_fraction * limit:
                    self.alerted.append(name)
                    self.extra["budget_alerts"] = len(self.alerted)
                    self.trace.add("alert", name, "crossed", fraction=budget.alert_fraction, limit=limit,
                                   spent=_round(spent[name]), **self._who(name))
                    for listener in self._alert_listeners:
                        listener(name, spent[name], limit)
            if budget.per_request_tokens is not None and request > budget.per_request_tokens:
                self._trip("per_request_tokens", f"per_request_tokens={budget.per_request_tokens} exceeded: one "
                           f"model call of {request} tokens ({usage.model})", limit=budget.per_request_tokens,
                           spent=request, model=usage.model)
            for name, limit in limits.items():
                if spent[name] > limit:
                    who = self._who(name)
                    whose = f"{who['user']} has spent {_amount(name, spent[name])} today" if who \
                        else f"{_amount(name, spent[name])} spent"
                    self._trip(name, f"{name}={limit:g} exceeded: {whose}", limit=limit, spent=_round(spent[name]),
                               model=usage.model, **who)

    def _who(self, name: str) -> dict[str, Any]:
        return {"user": self.day.user} if self.day is not None and name.startswith("per_user_day") else {}

    def _raise_if_open(self) -> None:
        if self.tripped is not None:  # the breaker is open: no call goes through any more
            raise TrialAborted("budget_exceeded", self.reason)

    def _trip(self, name: str, reason: str, **data: Any) -> None:
        self.tripped, self.reason = name, reason
        self.extra["budget_exceeded"] = name
        self.trace.add("budget", name, "exceeded", **data)
        if self._abort is not None:
            self._abort("budget_exceeded", reason)
        raise TrialAborted("budget_exceeded", reason)


def _round(value: float) -> float | int:
    return value if isinstance(value, int) else round(value, 10)


def attach_budget(ctx: TrialContext, budget: Budget | None) -> BudgetGuard | None:
    """Put ``budget``'s circuit breaker on the trial's meter (nothing when the scenario has no budget)."""
    if budget is None:
        return None
    guard = BudgetGuard(budget, seed=ctx.seed, trace=ctx.trace, abort=ctx.abort, extra=ctx.extra)
    ctx.meter.subscribe(guard)
    return guard
