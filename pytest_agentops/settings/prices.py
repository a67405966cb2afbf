"""Model prices: USD per million input and output tokens, a default table, and how a model name is priced."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass

from .._frozen import FrozenMap
from ..errors import ConfigError, hide_own_frames

__tracebackhide__ = hide_own_frames


@dataclass(frozen=True, slots=True)
class Price:
    """USD per million input and output tokens."""

    input_per_mtok: float
    output_per_mtok: float

    def cost(self, input_tokens: int, output_tokens: int) -> float:
        return (input_tokens * self.input_per_mtok + output_tokens * self.output_per_mtok) / 1_000_000


#: Default prices (USD per million tokens). ``*`` is used for models not listed; override per scenario.
DEFAULT_PRICES: FrozenMap[str, Price] = FrozenMap({
    "*": Price(3.0, 15.0),
    "gpt-4o": Price(2.5, 10.0),
    "gpt-4o-mini": Price(0.15, 0.6),
    "gpt-4.1": Price(2.0, 8.0),
    "gpt-4.1-mini": Price(0.4, 1.6),
    "claude-sonnet-4": Price(3.0, 15.0),
    "claude-haiku-4": Price(1.0, 5.0),
    "fake-model": Price(1.0, 2.0),
})


def price_table(prices: Mapping[str, object] | None) -> FrozenMap[str, Price]:
    """Merge user prices (``{"model": (in, out)}`` or ``Price``) over the defaults, validating them."""
    table = dict(DEFAULT_PRICES)
    if prices is not None and not isinstance(prices, Mapping):
        raise ConfigError(f"prices={prices!r:.80} must map model names to (input_usd_per_mtok, "
                          "output_usd_per_mtok), e.g. {'gpt-4o': (2.5, 10.0)}")
    for model, value in (prices or {}).items():
        if isinstance(value, Price):
            table[model] = value
            continue
        if isinstance(value, Mapping):
            value = (value.get("input"), value.get("output"))
        try:
            inp, out = value  # type: ignore[misc]
            if isinstance(inp, bool) or isinstance(out, bool) or not (0 <= inp < math.inf and 0 <= out < math.inf):
                raise ValueError  # (NaN fails both comparisons)
            table[model] = Price(float(inp), float(out))
        except (TypeError, ValueError, OverflowError):
            raise ConfigError(f"prices[{model!r}]={value!r:.80} must be (input_usd_per_mtok, output_usd_per_mtok), "
                              "two finite numbers >= 0") from None
    return FrozenMap(table)


_PROVIDER = re.compile(r"^[A-Za-z0-9_.-]+[:/]")  # "openai:gpt-4o", "anthropic/claude-sonnet-4"
_SNAPSHOT = re.compile(r"(-\d{4}-\d{2}-\d{2}|-\d{8}|@\d{8}|-latest)$")  # dated snapshots, aliases


def is_listed(prices: Mapping[str, Price], model: str) -> bool:
    """Whether ``model`` has a price of its own (exact, or its base name) rather than the ``*`` fallback."""
    return model in prices or _SNAPSHOT.sub("", _PROVIDER.sub("", model, count=1)) in prices


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
