"""How one campaign is run (``RunSettings``) and what one source of settings gives (``RunSource``).

Which source wins is ``pytest_agentops.precedence.resolve_run``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .. import stats
from .._validation import is_number
from ..errors import ConfigError
from .faults import Faults
from .live import CassetteSpec
from .spend import SpendCap

#: The fault profile of a scenario that sets no faults anywhere.
DEFAULT_PROFILE = "mid"


@dataclass(frozen=True, slots=True)
class RunSource:
    """The run settings one source gives (None: not given here), named for messages (``command line``)."""

    name: str
    seed: int | None = None
    trials: int | None = None
    profile: str | None = None
    faults: Faults | None = None
    confidence: float | None = None
    concurrency: int | None = None
    early_stop: bool | None = None
    max_campaign_usd: float | None = None
    max_campaign_tokens: int | None = None
    record: str | None = None  # a directory: record the live upstream's answers there (cassettes)
    cassette: str | None = None  # a directory: replay the cassettes there instead of calling the upstream


@dataclass(frozen=True, slots=True)
class RunSettings:
    """How one campaign is run, after every source of settings (call, CLI, ini, marker, scenario) is resolved.

    ``looks`` are the launch-order prefixes at which the campaign may stop early (the last is ``trials``),
    ``look_confidence`` the confidence each interim verdict is judged at (Bonferroni over the looks).
    """

    seed: int
    trials: int
    faults: Faults
    confidence: float = 0.95
    concurrency: int = 1
    early_stop: bool = True
    replay: int | None = None
    smoke: bool = False
    spend: SpendCap | None = None  # the campaign's spend cap
    cassette: CassetteSpec | None = None  # recording or replaying the live upstream's answers

    def __post_init__(self) -> None:
        if isinstance(self.trials, bool) or not isinstance(self.trials, int) or self.trials < 1:
            raise ConfigError(f"trials={self.trials!r} must be a whole number >= 1")
        if self.replay is not None and (isinstance(self.replay, bool) or not isinstance(self.replay, int)
                                        or self.replay < 0):
            raise ConfigError(f"replay={self.replay!r} must be a trial index >= 0")
        if isinstance(self.concurrency, bool) or not isinstance(self.concurrency, int) or self.concurrency < 1:
            raise ConfigError(f"concurrency={self.concurrency!r} must be a whole number >= 1")
        if not is_number(self.confidence) or not 0.5 <= self.confidence < 1 or math.isnan(self.confidence):
            raise ConfigError(f"confidence={self.confidence!r} must be a number in [0.5, 1), e.g. 0.95")

    @property
    def sequential(self) -> bool:
        """Whether the campaign may stop at interim looks."""
        return self.early_stop and self.replay is None and not self.smoke

    @property
    def looks(self) -> tuple[int, ...]:
        """The trial counts at which verdicts are looked at (a replay or smoke run has one trial)."""
        n = 1 if self.replay is not None else self.trials
        return stats.look_schedule(n) if self.sequential else (n,)

    @property
    def look_confidence(self) -> float:
        """The confidence of each look's verdicts on rates and quantiles (counts spend no alpha early)."""
        return 1 - stats.per_look_alpha(1 - self.confidence, len(self.looks))
