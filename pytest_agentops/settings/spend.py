"""A campaign's spend cap (``SpendCap``) and the cost estimate to make before a live run. Values only: the
ledger that enforces the cap is ``pytest_agentops.harness.spend``, the launch rule ``engine.spend``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .._validation import check_whole, is_number
from ..errors import ConfigError, hide_own_frames
from .prices import price_for, price_table

__tracebackhide__ = hide_own_frames

#: Output tokens reserved for a model call whose request sets no limit of its own (``max_tokens``,
#: ``max_completion_tokens``, ``max_output_tokens``): a call can only start when the cap has room for its
#: prompt and this many output tokens.
DEFAULT_RESERVED_OUTPUT_TOKENS = 4096


def check_usd(name: str, value: Any, *, optional: bool = True) -> float | None:
    """A dollar amount > 0 (None: no cap)."""
    if value is None and optional:
        return None
    if not is_number(value) or not math.isfinite(value) or value <= 0:
        raise ConfigError(f"{name}={value!r} must be a number of US dollars > 0 (or None: no cap)")
    return float(value)


@dataclass(frozen=True, slots=True)
class SpendCap:
    """The most a campaign may spend, in US dollars and/or tokens (input + output), over all its trials.

    Enforced twice: the campaign launches a trial only while its spend so far, the trials in flight and one
    more trial (as costly as the costliest so far) fit under the cap; and each model call through the model
    boundary reserves its prompt plus its output limit (``reserve_output_tokens`` when the request sets none)
    before it starts, so calls in flight can never cross it together. Spend an agent reports after the fact
    (``env.record_usage``) is counted, but cannot be refused in advance.
    """

    max_usd: float | None = None
    max_tokens: int | None = None
    reserve_output_tokens: int = DEFAULT_RESERVED_OUTPUT_TOKENS

    def __post_init__(self) -> None:
        object.__setattr__(self, "max_usd", check_usd("max_campaign_usd", self.max_usd))
        check_whole("max_campaign_tokens", self.max_tokens, 1, what="tokens", optional=True)
        check_whole("reserve_output_tokens", self.reserve_output_tokens, 1, what="tokens")
        if self.max_usd is None and self.max_tokens is None:
            raise ConfigError("SpendCap needs max_usd or max_tokens (or both)")

    def fits(self, usd: float, tokens: int) -> bool:
        """Whether a spend of ``usd`` and ``tokens`` stays within the cap."""
        return (self.max_usd is None or usd <= self.max_usd + 1e-12) and \
            (self.max_tokens is None or tokens <= self.max_tokens)

    def describe(self) -> str:
        """``$5 and 2,000,000 tokens``: for headers and messages."""
        parts = []
        if self.max_usd is not None:
            parts.append(f"${self.max_usd:g}")
        if self.max_tokens is not None:
            parts.append(f"{self.max_tokens:,} tokens")
        return " and ".join(parts)


def estimate_usd(trials: int, input_tokens_per_trial: int, output_tokens_per_trial: int, model: str,
                 prices: Mapping[str, Any] | None = None) -> float:
    """What a campaign will cost before it runs: trials x tokens per trial x the model's price.

    ``trials`` is the campaign's maximum (or what the verdicts' planning figure says they need);
    ``input_tokens_per_trial``/``output_tokens_per_trial`` come from a recorded run (the report's
    ``tokens_per_task`` and its records' ``input_tokens``/``output_tokens``) or a guess. Prices are the
    package's table with ``prices`` over it, as in a scenario.
    """
    check_whole("trials", trials, 1)
    check_whole("input_tokens_per_trial", input_tokens_per_trial, 0)
    check_whole("output_tokens_per_trial", output_tokens_per_trial, 0)
    return trials * price_for(price_table(prices), model).cost(input_tokens_per_trial, output_tokens_per_trial)
