"""Token and cost metering for a trial, with a price table per model.

Every source of usage (``env.record_usage`` and, later, the HTTP model fake) feeds the same meter.
Listeners (budgets, circuit breakers) subscribe to it and may end the trial.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType

from ..errors import ConfigError


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
        price = self.prices.get(model) or self.prices["*"]
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
