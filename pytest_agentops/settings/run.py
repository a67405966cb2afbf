"""How one campaign is run (``RunSettings``) and what one source of settings gives (``RunSource``).

Which source wins is ``pytest_agentops.precedence.resolve_run``.
"""

from __future__ import annotations

from dataclasses import dataclass

from .._validation import check_bool, check_concurrency, check_confidence, check_trials
from ..errors import ConfigError, hide_own_frames
from .faults import Faults
from .layers import check_isolation
from .live import CassetteSpec
from .spend import SpendCap

__tracebackhide__ = hide_own_frames

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
    isolation: str | None = None


@dataclass(frozen=True, slots=True)
class RunSettings:
    """How one campaign is run, after every source of settings (call, CLI, ini, marker, scenario) is resolved.

    With early stopping (``sequential``) every expectation is judged after every trial of the launch-order
    prefix by a rule that keeps its error rate at every trial (``pytest_agentops.judge``); without, once after
    the last trial, at ``confidence``.
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
    isolation: str = "none"  # where each trial's agent runs (``settings.layers.ISOLATIONS``)
    allowed_faults: frozenset[str] | None = None  # only these faults may fire (``plan.fault_id``); None: all

    def __post_init__(self) -> None:
        check_isolation("isolation", self.isolation)
        object.__setattr__(self, "early_stop", check_bool("early_stop", self.early_stop))
        object.__setattr__(self, "smoke", check_bool("smoke", self.smoke))
        check_trials(self.trials)
        if self.replay is not None and (isinstance(self.replay, bool) or not isinstance(self.replay, int)
                                        or self.replay < 0):
            raise ConfigError(f"replay={self.replay!r} must be a trial index >= 0")
        check_concurrency(self.concurrency)
        check_confidence("confidence", self.confidence)

    @property
    def sequential(self) -> bool:
        """Whether the campaign may stop at interim looks."""
        return self.early_stop and self.replay is None and not self.smoke
