"""The pytest-free entry points: ``run_campaign`` (a scenario's campaign, or one trial of it) and
``replay_trial``."""

from __future__ import annotations

from typing import Any

from ..errors import ConfigError
from ..precedence import resolve_run
from ..records import TrialRecord
from ..result import CampaignResult
from ..scenario import Scenario
from ..settings.faults import Faults
from ..settings.run import RunSettings, RunSource
from ..vtime.real import real_perf_counter
from .scheduler import Runner
from .spend import stop_confidence

_wall = real_perf_counter  # never the virtual clock


def run_campaign(scenario: Scenario, *, seed: int | None = None, trials: int | None = None,
                 faults: Faults | None = None, profile: str | None = None, confidence: float | None = None,
                 concurrency: int | None = None, early_stop: bool | None = None, replay: int | None = None,
                 smoke: bool = False, replay_command: str | None = None, max_campaign_usd: float | None = None,
                 max_campaign_tokens: int | None = None, record: str | None = None,
                 cassette: str | None = None) -> CampaignResult:
    """Run a scenario's campaign (or one trial of it with ``replay=i``) and judge its expectations.

    ``replay_command`` is a template with ``{index}`` used in failure messages to tell how to re-run a
    trial (the pytest plugin passes its copy-paste command line). ``max_campaign_usd``/``max_campaign_tokens``
    cap the campaign's spend; ``record`` (a directory) records a live model's answers as cassettes,
    ``cassette`` replays them instead of calling the live model.
    """
    if not isinstance(scenario, Scenario):
        raise ConfigError(f"run_campaign expects a Scenario, got {scenario!r}")
    source = RunSource("arguments", seed=seed, trials=trials, profile=profile, faults=faults, confidence=confidence,
                       concurrency=concurrency, early_stop=early_stop, max_campaign_usd=max_campaign_usd,
                       max_campaign_tokens=max_campaign_tokens, record=record, cassette=cassette)
    return run_resolved(scenario, resolve_run(scenario, (source,), replay=replay, smoke=smoke),
                        replay_command=replay_command)


def run_resolved(scenario: Scenario, settings: RunSettings, *, replay_command: str | None = None) -> CampaignResult:
    """Run a campaign whose settings are resolved already (the pytest plugin resolves its own sources)."""
    started = _wall()
    runner = Runner(scenario, settings)
    records, stopped_early = runner.run()
    wall_s = _wall() - started
    spend = runner.spend
    return CampaignResult.build(scenario, settings, records, stopped_early=stopped_early, wall_s=wall_s,
                                replay_command=replay_command, late_calls=runner.layers.late_calls,
                                unstoppable=runner.unstoppable(), spend=spend.summary(),
                                judge_confidence=stop_confidence(settings, len(records)) if spend.stopped else None)


def replay_trial(scenario: Scenario, index: int, *, seed: int | None = None, **kwargs: Any) -> TrialRecord:
    """Re-run exactly trial ``index`` of the campaign and return its record."""
    return run_campaign(scenario, seed=seed, replay=index, **kwargs).records[0]
