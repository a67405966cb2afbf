"""The one place settings precedence is resolved: ``resolve_run(scenario, sources)`` -> ``RunSettings``.

Precedence, highest first: the call's own arguments (``run_campaign(..., trials=)``,
``agent_chaos.run(scenario, trials=)``), the command line, the ini file, the ``agent_chaos`` marker, the
``Scenario``, the default. The pytest plugin only gathers its sources (``RunSource``) and calls
``resolve_run``; ``run_campaign`` calls it with its arguments as the one source.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any

from ._validation import check_bool, check_concurrency, check_confidence, check_seed, check_trials, check_whole
from .entropy import fresh_seed
from .errors import ConfigError, UnusedSetting, hide_own_frames, warn_at_campaign
from .scenario import Scenario
from .settings._meta import changed
from .settings.faults import Faults, unused_settings
from .settings.layers import check_isolation
from .settings.live import CassetteSpec
from .settings.run import DEFAULT_PROFILE, RunSettings, RunSource
from .settings.spend import SpendCap, check_usd

__tracebackhide__ = hide_own_frames


def _first(key: str, sources: Sequence[RunSource], scenario_value: Any = None) -> tuple[Any, int]:
    """The first value of ``key`` given by ``sources`` (highest first), else the scenario's; and its rank."""
    for rank, source in enumerate(sources):
        value = getattr(source, key)
        if value is not None:
            return value, rank
    return scenario_value, len(sources)


def _checked(key: str, sources: Sequence[RunSource], scenario_value: Any, check: Callable[[str, Any], Any]) -> Any:
    """``_first``'s value, checked, an error naming the source that gave it (``marker: trials='50' must ...``)."""
    value, rank = _first(key, sources, scenario_value)
    with _Blamed(sources, rank):
        check(key, value)
    return value


class _Blamed:
    """A ``ConfigError`` raised inside names the source of rank ``rank`` first (the scenario's past the sources)."""

    def __init__(self, sources: Sequence[RunSource], rank: int):
        self.name = sources[rank].name if rank < len(sources) else "Scenario"

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: Any, exc: BaseException | None, tb: Any) -> None:
        if isinstance(exc, ConfigError) and not str(exc).startswith(f"{self.name}:"):
            raise ConfigError(f"{self.name}: {exc}") from None


def resolve_run(scenario: Scenario, sources: Sequence[RunSource] = (), *, replay: int | None = None,
                smoke: bool = False, default_seed: int | None = None) -> RunSettings:
    """The run settings of ``scenario`` under ``sources`` (highest precedence first).

    Faults: the highest source that gives ``faults`` wins, else the scenario's, else the default profile.
    A ``profile`` given by a source ranked higher than where the faults came from replaces their rates
    (``Faults.with_profile``: mix and other settings kept). A smoke run has no faults and one trial. A run
    with no seed anywhere gets ``default_seed``, else a fresh one (printed with the result). The spend cap's
    dollars and tokens are resolved one by one, like the other settings; cassettes come from the sources only.
    """
    faults, faults_rank = _first("faults", sources, scenario.faults)
    profile, profile_rank = _first("profile", sources)
    if isinstance(faults, str):  # a profile name, as in a scenario file
        with _Blamed(sources, faults_rank):
            faults = Faults.profile(faults)
    if faults is None:
        with _Blamed(sources, profile_rank):
            faults = Faults.profile(profile or DEFAULT_PROFILE)
    if not isinstance(faults, Faults):
        with _Blamed(sources, faults_rank):
            raise ConfigError(f"faults={faults!r:.80} must be a Faults (e.g. Faults.profile('mid'))")
    as_written = faults  # (before a higher source's profile changes their rates)
    if profile is not None and profile_rank < faults_rank:
        with _Blamed(sources, profile_rank):
            faults = faults.with_profile(profile)
    scenario.check_tool_names(faults)
    seed = _checked("seed", sources, scenario.seed, check_seed)
    if seed is None:
        seed = default_seed if default_seed is not None else fresh_seed()
    trials = _checked("trials", sources, scenario.trials, lambda name, value: check_trials(value))
    max_usd = _checked("max_campaign_usd", sources, scenario.max_campaign_usd, check_usd)
    max_tokens = _checked("max_campaign_tokens", sources, scenario.max_campaign_tokens,
                          lambda name, value: check_whole(name, value, 1, what="tokens", optional=True))
    settings = RunSettings(
        seed=seed, trials=1 if smoke else trials, faults=Faults.none() if smoke else faults,
        confidence=_checked("confidence", sources, scenario.confidence, check_confidence),
        concurrency=_checked("concurrency", sources, scenario.concurrency,
                             lambda name, value: check_concurrency(value)),
        early_stop=_checked("early_stop", sources, scenario.early_stop, check_bool),
        isolation=_checked("isolation", sources, scenario.isolation, check_isolation),
        replay=replay, smoke=smoke,
        spend=SpendCap(max_usd, max_tokens) if max_usd is not None or max_tokens is not None else None,
        cassette=_cassette(sources))
    if not smoke:  # (a profile from the command line that zeroes a rate leaves the settings it drives unused: that
        # is what the profile was asked for, not a mistake in them; only what is unused either way is said)
        unused = set(unused_settings(as_written)) if as_written is not faults else None
        _warn_unused(scenario, (*(u for u in unused_settings(faults) if unused is None or u in unused),
                                *unused_scenario_settings(scenario)))
    return settings


def _cassette(sources: Sequence[RunSource]) -> CassetteSpec | None:
    """Record or replay cassettes (the highest source giving either decides; both at once is an error)."""
    for source in sources:
        if source.record is not None and source.cassette is not None:
            raise ConfigError(f"{source.name}: record={source.record!r} and cassette={source.cassette!r}: record "
                              "the upstream's answers, or replay them, not both")
        for name, value in (("record", source.record), ("cassette", source.cassette)):
            if value is not None and not (isinstance(value, (str, os.PathLike)) and str(value).strip()):
                raise ConfigError(f"{source.name}: {name}={value!r} must be a directory path (a string)")
        if source.record is not None:
            return CassetteSpec("record", str(source.record))
        if source.cassette is not None:
            return CassetteSpec("replay", str(source.cassette))
    return None


def unused_scenario_settings(scenario: Scenario) -> tuple[str, ...]:
    """The scenario's settings outside its faults that cannot take effect as they stand, each with why (an outside
    review found them accepted and silently doing nothing)."""
    unused = []
    escalation = scenario.escalation
    if escalation is not None and escalation.budget_fraction is not None and scenario.budget is None:
        unused.append(f"escalation.budget_fraction={escalation.budget_fraction:g}: no budget is set, the trigger "
                      "never fires")
    budget = scenario.budget
    if (budget is not None and "users" in changed(budget) and budget.per_user_day_tokens is None
            and budget.per_user_day_usd is None):
        unused.append("budget.users: no per_user_day_tokens or per_user_day_usd is set, no user's day is counted")
    if scenario.network == "allow" and scenario.allow_hosts:
        unused.append(f"allow_hosts={list(scenario.allow_hosts)}: network is 'allow', every host is reached")
    return tuple(unused)


def _warn_unused(scenario: Scenario, unused: tuple[str, ...]) -> None:
    """Warn ``UnusedSetting`` of the fault settings that cannot take effect in this campaign, at the line that
    started it (a YAML scenario's, a test's ``agent_chaos.run``, a script's ``run_campaign``)."""
    if unused:
        warn_at_campaign(UnusedSetting(f"scenario {scenario.name!r}: {'; '.join(unused)}"))
