"""The token and cost meter of a trial: every source of usage (``env.record_usage``, the fake model over
HTTP) feeds it; listeners (the budget and escalation layers) are told about each metered call."""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from ..errors import ConfigError, hide_own_frames
from ..settings.prices import DEFAULT_PRICES, Price, is_listed, price_for
from ..stable_repr import exact_str
from .secrets import redact_short

__tracebackhide__ = hide_own_frames

#: The most tokens one metered call (and one event of the agent's own, ``env.trace.add``) may count: more than any
#: call could, a made-up figure (past it the cost is a float out of range and the report cannot be written)
MOST_TOKENS = 10 ** 12
#: The longest model name a usage keeps (longer: cut, redacted first): an agent's name of a megabyte, ten times a
#: trial, made a passing run's terminal line and JSON report 50 MB each
MODEL_NAME_CHARS = 256
#: The most names of models priced at the default price one trial keeps (``TrialRecord.default_priced``)
UNPRICED_KEPT = 32


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
        if (type(input_tokens) is int and type(output_tokens) is int and type(model) is str
                and 0 <= input_tokens <= MOST_TOKENS and 0 <= output_tokens <= MOST_TOKENS
                and len(model) <= MODEL_NAME_CHARS):  # (the usual call: exact values, nothing to check or cut)
            return self._add(input_tokens, output_tokens, model)
        counts = []
        for name, value in (("input_tokens", input_tokens), ("output_tokens", output_tokens)):
            if isinstance(value, bool) or not issubclass(type(value), int):
                raise ConfigError(f"record_usage: {name} must be an int, got {type(value).__name__}")
            count = int.__int__(value)  # (exact first: an agent's own ``__lt__`` must not judge it)
            if not 0 <= count <= MOST_TOKENS:
                shown = count if count.bit_length() < 64 else f"an int of {count.bit_length()} bits"
                raise ConfigError(f"record_usage: {name}={shown} must be from 0 to {MOST_TOKENS:,}")
            counts.append(count)
        input_tokens, output_tokens = counts
        if not issubclass(type(model), str):
            raise ConfigError(f"record_usage: model must be a str, got {type(model).__name__}")
        model = exact_str(model)
        if len(model) > MODEL_NAME_CHARS:
            model = redact_short(model, MODEL_NAME_CHARS, f"... ({len(model):,} characters)")
        return self._add(input_tokens, output_tokens, model)

    def _add(self, input_tokens: int, output_tokens: int, model: str) -> Usage:
        """Meter a usage whose counts and model name are checked: exact ints in range, an exact str of at most
        ``MODEL_NAME_CHARS`` characters."""
        price = price_for(self.prices, model)
        usage = Usage(input_tokens, output_tokens, model, price.cost(input_tokens, output_tokens))
        with self._lock:
            if model != "*" and len(self.default_priced) < UNPRICED_KEPT and not is_listed(self.prices, model):
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
