"""The pytest-free entry points: ``run_campaign`` (a scenario's campaign, or one trial of it),
``replay_trial`` and ``shrink_trial``."""

from __future__ import annotations

import dataclasses
from typing import Any

from ..errors import CampaignInterrupted, ConfigError, hide_own_frames
from ..precedence import resolve_run
from ..process.gc_hold import collector_paused
from ..records import MinimalFaults, TrialRecord
from ..result import CampaignResult
from ..scenario import Scenario
from ..settings.faults import Faults
from ..settings.run import RunSettings, RunSource
from ..vtime.real import real_perf_counter
from .progress import ProgressCallback
from .scheduler import Runner
from .shrink import failure_of, shrink_record

__tracebackhide__ = hide_own_frames

_wall = real_perf_counter  # never the virtual clock


def run_campaign(scenario: Scenario, *, seed: int | None = None, trials: int | None = None,
                 faults: Faults | None = None, profile: str | None = None, confidence: float | None = None,
                 concurrency: int | None = None, early_stop: bool | None = None, replay: int | None = None,
                 smoke: bool = False, replay_command: str | None = None,
                 isolation: str | None = None, max_campaign_usd: float | None = None,
                 max_campaign_tokens: int | None = None, record: str | None = None,
                 cassette: str | None = None) -> CampaignResult:
    """Run a scenario's campaign (or one trial of it with ``replay=i``) and judge its expectations.

    ``replay_command`` is a template with ``{index}`` used in failure messages to tell how to re-run a
    trial (the pytest plugin passes its copy-paste command line). ``isolation="process"`` runs each trial's
    agent in a child process of its own (``Scenario.isolation``). ``max_campaign_usd``/``max_campaign_tokens``
    cap the campaign's spend; ``record`` (a directory) records a live model's answers as cassettes,
    ``cassette`` replays them instead of calling the live model.
    """
    if not isinstance(scenario, Scenario):
        raise ConfigError(f"run_campaign expects a Scenario, got {scenario!r}")
    source = RunSource("arguments", seed=seed, trials=trials, profile=profile, faults=faults, confidence=confidence,
                       concurrency=concurrency, early_stop=early_stop, isolation=isolation,
                       max_campaign_usd=max_campaign_usd, max_campaign_tokens=max_campaign_tokens, record=record,
                       cassette=cassette)
    settings = resolve_run(scenario, (source,), replay=replay, smoke=smoke)
    if settings.cassette is not None and scenario.live is None:  # (the command line's: for the live ones among all)
        name = "record" if settings.cassette.mode == "record" else "cassette"
        raise ConfigError(f"{name}={settings.cassette.directory!r}: scenario {scenario.name!r} calls no live model "
                          "(Scenario(live=...)): there is nothing to record or replay")
    return run_resolved(scenario, settings, replay_command=replay_command)


def run_resolved(scenario: Scenario, settings: RunSettings, *, replay_command: str | None = None,
                 progress: ProgressCallback | None = None, progress_every_s: float = 5.0) -> CampaignResult:
    """Run a campaign whose settings are resolved already (the pytest plugin resolves its own sources).

    ``progress`` is called with a ``engine.progress.Progress`` at most every ``progress_every_s`` wall
    seconds while the campaign runs (from this thread; never for a campaign that ends sooner); it changes
    nothing in the result.

    Ctrl-C ends the campaign with the trials that finished judged: ``CampaignInterrupted`` (a
    ``KeyboardInterrupt``) carries that result. A campaign that fails gets its worst failing trial shrunk to
    the faults it needs (``engine.shrink``, ``Scenario.shrink_runs`` re-runs at most), shown under its replay
    command."""
    if progress is not None and not progress_every_s > 0:  # before the campaign takes hold of anything
        raise ValueError(f"progress_every_s={progress_every_s!r} must be a number of seconds > 0")
    started = _wall()
    runner = Runner(scenario, settings, progress=progress, progress_every_s=progress_every_s)
    records, stopped_early = runner.run()
    wall_s = _wall() - started
    with collector_paused():  # (their metrics are summed up with no collection walking them)
        result = CampaignResult.build(scenario, settings, records, stopped_early=stopped_early, wall_s=wall_s,
                                      replay_command=replay_command, late_calls=runner.layers.late_calls,
                                      unstoppable=runner.unstoppable(), interrupted=runner.interrupted,
                                      spend=runner.spend.summary(), task_of=runner.layers.task_given)
    if runner.interrupted:
        raise CampaignInterrupted(result)
    # a live model's trial is not shrunk: each re-run would call the real model (and re-record its cassette);
    # its replay from the cassette is the way to look at it
    if scenario.shrink_runs and scenario.live is None and not settings.smoke and settings.replay is None \
            and not result.passed:
        worst = [r for r in result.worst_trials(1) if failure_of(r) is not None]
        # (a record that kept only its skeleton has no fault ids to shrink from: its trial is run again first)
        shrunk = [shrink_record(scenario, settings, r.index, record=r if r.trace_kept else None,
                                max_runs=scenario.shrink_runs) for r in worst]
        result = dataclasses.replace(result, minimal_faults=tuple(m for m in shrunk if m is not None))
    return result


def shrink_trial(scenario: Scenario, index: int, *, seed: int | None = None, faults: Faults | None = None,
                 profile: str | None = None, max_runs: int = 64) -> MinimalFaults | None:
    """The faults trial ``index`` of the campaign needs to fail, as few as delta debugging finds in
    ``max_runs`` re-runs of it (None: the trial does not fail)."""
    _check_trial("shrink_trial", scenario, index, seed)
    source = RunSource("arguments", seed=seed, profile=profile, faults=faults)
    settings = resolve_run(scenario, (source,))
    return shrink_record(scenario, settings, index, max_runs=max_runs)


def replay_trial(scenario: Scenario, index: int, *, seed: int | None = None, **kwargs: Any) -> TrialRecord:
    """Re-run exactly trial ``index`` of the campaign and return its record (``seed``: the campaign's, as its
    summary prints it; needed unless the scenario sets its own)."""
    _check_trial("replay_trial", scenario, index, seed)
    return run_campaign(scenario, seed=seed, replay=index, **kwargs).records[0]


def _check_trial(what: str, scenario: Scenario, index: Any, seed: int | None) -> None:
    """The trial named can be run again: a trial index, and a seed (without one, each call would draw a fresh seed
    and run another trial). Any index >= 0 is a trial: trial i is the same whatever the campaign's trial count
    (a campaign run with ``trials=600`` has trials past the scenario's 300)."""
    if not isinstance(scenario, Scenario):
        raise ConfigError(f"{what} expects a Scenario, got {scenario!r:.80}")
    if isinstance(index, bool) or not isinstance(index, int) or index < 0:
        raise ConfigError(f"{what}: index={index!r:.80} must be a trial index >= 0 (trial-17 is 17)")
    if seed is None and scenario.seed is None:
        raise ConfigError(f"{what}: seed is needed: scenario {scenario.name!r} sets none, so every campaign of it "
                          f"draws a fresh seed (its summary and replay command print it): "
                          f"{what}(scenario, {index}, seed=SEED)")
