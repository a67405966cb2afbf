"""The budget layer: the circuit breaker behind outcome ``budget_exceeded``, and the 80% alert.

``BudgetGuard`` listens to the trial's meter (every source of usage feeds it: ``env.record_usage`` and the
fake model over HTTP). It alerts at ``alert_fraction`` of each budget and stops the trial with outcome
``budget_exceeded`` past a limit. The settings are ``settings.layers.Budget``; the record ``BudgetRecord``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .._frozen import Shared
from ..errors import TrialAborted, hide_own_frames
from ..plan import UserDay
from ..settings.layers import Budget, BudgetRecord
from .layer import LayerTrial, TrialPort

__tracebackhide__ = hide_own_frames

if TYPE_CHECKING:
    from ..scenario import Scenario
    from ..settings.run import RunSettings
    from .meter import TokenMeter, Usage
    from .trace import Trace


def _amount(name: str, value: float) -> str:
    return f"${value:.6g}" if name.endswith("_usd") else f"{value:.0f} tokens"


class BudgetGuard:
    """One trial's circuit breaker: a meter listener that alerts once per budget and trips past a limit.

    Tripping records a ``budget`` trace event, tells the trial it is over (``abort``: every later harness
    call raises too) and raises ``TrialAborted("budget_exceeded", reason)``, a ``BaseException`` so that
    an agent's ``except Exception`` does not swallow it. The breaker stays open: later usage raises again.
    """

    def __init__(self, budget: Budget, *, trace: Trace, day: UserDay | None = None,
                 abort: Callable[[str, str], None] | None = None):
        self.budget = budget
        self.trace = trace
        self._abort = abort
        self.day = day
        self.alerted: list[str] = []  # budgets whose alert this trial raised, in order
        self.tripped: str | None = None
        self.reason = ""
        self._quiet: set[str] = set()  # user-day budgets already past the alert line before this task
        self._alert_listeners: list[Callable[[str, float, float], None]] = []
        self._lock = threading.Lock()
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
        self.trace.add("budget", name, "exceeded", **data)
        if self._abort is not None:
            self._abort("budget_exceeded", reason)
        raise TrialAborted("budget_exceeded", reason)


def _round(value: float) -> float | int:
    return value if isinstance(value, int) else round(value, 10)


class _BudgetTrial(LayerTrial):
    __slots__ = ("guard", "records")

    def __init__(self, trial: TrialPort, budget: Budget, records: Shared):
        self.records = records  # the campaign's records, each kept once
        day = trial.plan.user_day(budget.users) if budget.per_user_day else None
        # (a lambda over the weak proxy: ``trial.abort`` is a method bound to the context itself, and holding it
        # would make the trial a reference cycle, left for the cyclic collector instead of freed at once)
        self.guard = BudgetGuard(budget, trace=trial.trace, day=day,
                                 abort=lambda outcome, reason: trial.abort(outcome, reason))
        trial.provide("budget", self.guard)

    def on_model_request(self, tokens: int, model: str) -> None:
        self.guard.check_request(tokens, model)

    def on_usage(self, usage: Usage, meter: TokenMeter) -> None:
        self.guard(usage, meter)

    def record(self) -> BudgetRecord:
        key = (len(self.guard.alerted), self.guard.tripped)
        found = self.records.get(key)
        return found if found is not None else self.records.add(key, BudgetRecord(alerts=key[0], exceeded=key[1]))


class _Budgets:
    __slots__ = ("budget", "records")
    name = "budget"

    def __init__(self, budget: Budget):
        self.budget = budget
        self.records = Shared()

    def attach(self, trial: TrialPort) -> LayerTrial:
        return _BudgetTrial(trial, self.budget, self.records)


class BudgetLayer:
    """On for scenarios with a ``Budget``."""

    name = "budget"

    def for_campaign(self, scenario: Scenario, run: RunSettings) -> _Budgets | None:
        return None if scenario.budget is None else _Budgets(scenario.budget)


LAYER = BudgetLayer()
