"""The token and cost meter of a trial: every source of usage (``env.record_usage``, the fake model over
HTTP) feeds it; listeners (the budget and escalation layers) are told about each metered call."""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from ..errors import ConfigError, hide_own_frames
from ..settings.prices import DEFAULT_PRICES, Price, is_listed, price_for
from ..stable_repr import exact_str

__tracebackhide__ = hide_own_frames


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
        self.default_priced: set[str] = set()  # models priced at the ``*`` fallback (no price of their own)
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
        # (an agent's own ``int``/``str`` kept as exact ones: the record's counts and model names outlive the trial)
        input_tokens, output_tokens = int.__int__(input_tokens), int.__int__(output_tokens)
        if isinstance(model, str):
            model = exact_str(model)
        price = price_for(self.prices, model)
        usage = Usage(input_tokens, output_tokens, model, price.cost(input_tokens, output_tokens))
        with self._lock:
            if model != "*" and not is_listed(self.prices, model):
                self.default_priced.add(model)
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
