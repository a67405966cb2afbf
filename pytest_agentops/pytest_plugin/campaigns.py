"""Running campaigns from pytest: the ``agent_chaos`` fixture's object and the one path it and YAML scenario
items share (``run_scenario``): the run's settings resolved from the call, the command line/ini and the
marker (``precedence.resolve_run``), the copy-paste replay command, and the result recorded for the
terminal table and the JSON report. Imported only when a test uses the fixture or a YAML item runs."""

from __future__ import annotations

import contextlib
import difflib
import shlex
import warnings
from dataclasses import fields, replace
from typing import Any

import pytest

from ..engine.campaign import run_resolved
from ..errors import CampaignInterrupted, ConfigError, UncheckedCampaign, hide_own_frames
from ..precedence import resolve_run
from ..process.kept_state import warnings_as
from ..result import CampaignResult
from ..scenario import Scenario
from ..seeding import trial_seed
from ..settings.run import RunSource
from ..trace_spill import TraceSpill
from .commands import literal, shown_node
from .options import ChaosOptions, comparisons_key, options_key, replayed_key, results_key, seen_key, spill_key

__tracebackhide__ = hide_own_frames

#: What ``@pytest.mark.agent_chaos(...)`` and ``agent_chaos.run(scenario, ...)`` may set.
RUN_ARGUMENTS = tuple(f.name for f in fields(RunSource) if f.name != "name")


def check_markers(node: pytest.Item) -> None:
    """Every ``agent_chaos`` marker that applies to the test (``check_marker``): the closest one, whose settings
    are used, and those it shadows (a module's or class's): a misspelt argument there was silently ignored."""
    for owner, marker in node.iter_markers_with_node("agent_chaos"):
        check_marker(node, marker.args, dict(marker.kwargs), _owner_at(node, owner))
    registered = {line.split("(")[0].split(":")[0].strip() for line in node.config.getini("markers")}
    for owner, marker in node.iter_markers_with_node():
        name = marker.name
        if name == "agent_chaos" or name in registered or not _near("agent_chaos", name):
            continue
        raise ConfigError(f"{_owner_at(node, owner)}: @pytest.mark.{name} is no marker pytest-agentops knows (did you "
                          f"mean @pytest.mark.agent_chaos?): the campaign would run without its settings "
                          f"({', '.join(f'{k}={v!r}' for k, v in marker.kwargs.items()) or 'none given'})")


def _near(known: str, name: str) -> bool:
    """Whether marker ``name`` reads as a slip for ``known`` (``agent_chaoss``, ``agentchaos``, ``Agent_Chaos``)."""
    plain = name.lower().replace("_", "").replace("-", "")
    return difflib.SequenceMatcher(None, known.replace("_", ""), plain).ratio() >= 0.8


def check_marker(node: pytest.Item, args: tuple[Any, ...], kwargs: dict[str, Any], where: str | None = None) -> None:
    """``@pytest.mark.agent_chaos(...)`` takes the run settings by name: anything else is a ``ConfigError``
    naming the test's file and line (the marker's, ``where``), the argument and the valid names (a misspelt one
    with the name it was probably meant as), not a screen of the plugin's frames, and never silently dropped."""
    where = where or _marker_at(node)
    if args:
        raise ConfigError(f"{where}: @pytest.mark.agent_chaos{args!r}: the marker takes keyword arguments only "
                          f"({', '.join(RUN_ARGUMENTS)}), e.g. @pytest.mark.agent_chaos(trials=200)")
    for name in sorted(set(kwargs) - set(RUN_ARGUMENTS)):
        close = difflib.get_close_matches(name, RUN_ARGUMENTS, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ConfigError(f"{where}: @pytest.mark.agent_chaos: unknown argument {name!r}{hint}; valid: "
                          f"{', '.join(RUN_ARGUMENTS)}")


def _test_at(node: pytest.Item) -> str:
    """``file:line`` where a test's definition starts (its first decorator), for messages about its marker."""
    return f"{node.location[0]}:{node.location[1] + 1}" if node.location[1] is not None else node.location[0]


def _marker_at(node: pytest.Item) -> str:
    """``file:line`` of the ``agent_chaos`` marker that applies to a test: the test's own (its first decorator),
    its class's (the class statement), or its module's (the ``pytestmark`` line); an outside review saw a
    module's or a class's bad marker named at the test's ``def``, where no marker was."""
    for owner, _ in node.iter_markers_with_node("agent_chaos"):
        return _owner_at(node, owner)
    return _test_at(node)


def _owner_at(node: pytest.Item, owner: Any) -> str:
    """``file:line`` of the ``agent_chaos`` marker ``owner`` (the test, its class or its module) gives the test."""
    if owner is node or not node.location[0]:
        return _test_at(node)
    line: int | None = None
    if isinstance(owner, pytest.Module):
        try:
            text = owner.path.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError):
            text = []
        line = next((i for i, row in enumerate(text, 1) if row.lstrip().startswith("pytestmark")), None)
    else:
        with contextlib.suppress(Exception):
            found = owner.reportinfo()[1]
            line = None if found is None else int(found) + 1
    return f"{node.location[0]}:{line}" if line else node.location[0]


def command_line_source(o: ChaosOptions) -> RunSource:
    """What the command line (or the ini) gives every campaign of the session: one place for ``run`` and
    ``compare`` (a comparison's used to leave out the isolation, the spend cap and the cassettes)."""
    return RunSource("command line", seed=o.seed, trials=o.trials, profile=o.profile, concurrency=o.concurrency,
                     isolation=o.isolation, max_campaign_usd=o.max_usd, max_campaign_tokens=o.max_tokens,
                     record=o.record, cassette=o.cassette)


def marker_source(node: pytest.Item, marker_kwargs: dict[str, Any] | None) -> RunSource:
    """What the test's ``agent_chaos`` marker gives, named with the marker's place (a bad value's error shows it)."""
    return _source(f"{_marker_at(node)}: @pytest.mark.agent_chaos", dict(marker_kwargs or {}))


class AgentChaos:
    """The ``agent_chaos`` fixture: runs campaigns with this test's settings and records their results."""

    def __init__(self, request: pytest.FixtureRequest):
        self._request = request
        self._config = request.config
        self.options: ChaosOptions = request.config.stash[options_key]
        marker = request.node.get_closest_marker("agent_chaos")
        self.marker_kwargs: dict[str, Any] = dict(marker.kwargs) if marker else {}
        check_markers(request.node)
        self.results: list[CampaignResult] = []
        self.comparisons: list[Any] = []  # (``ComparisonResult``s of ``compare``)
        # the test's warnings filters as its first campaign starts (its own ``filterwarnings`` included), before
        # any trial ran: a trial's ``simplefilter("ignore")`` must not hide the ``UncheckedCampaign`` warning (nor
        # a trial's "error" filter raise it)
        self._filters: tuple[list[Any], Any] | None = None

    @property
    def enabled(self) -> bool:
        """Whether full campaigns run (``--agent-chaos``); otherwise one fault-free smoke trial."""
        return self.options.enabled

    def run(self, scenario: Scenario, **overrides: Any) -> CampaignResult:
        """Run ``scenario``'s campaign (smoke trial without ``--agent-chaos``) and record the result."""
        __tracebackhide__ = True  # a failing test shows its own line and the message, not the plugin's frames
        self._keep_filters()
        result = run_scenario(self._config, self._request.node, scenario, self.marker_kwargs, **overrides)
        self.results.append(result)
        return result

    def _keep_filters(self) -> None:
        if self._filters is None:
            self._filters = (list(warnings.filters), warnings.showwarning)

    def warn_unchecked(self) -> None:
        """(At the fixture's teardown.) Warn of each campaign that did not pass, whose ``.check()`` was never called
        (nor ``.passed`` read by the test), in a test that passed: a forgotten ``.check()`` (or ``.check`` without its
        parentheses) passed the test. Not for a scenario declared ``xfail``."""
        tracker = self._config.pluginmanager.get_plugin("agentops-campaign-tests")
        outcome = getattr(tracker, "outcomes", {}).get(self._request.node.nodeid)
        if outcome != "passed":
            return
        unchecked = []
        for result in self.results:
            # (a scenario declared ``xfail`` is meant to fail: the table says XFAIL)
            if result.skipped is None and not result.xfail and not result.passed and not result._memo.get("checked"):
                not_passed = [f"{v.key} {v.verdict}" for v in result.failed_verdicts + result.inconclusive_verdicts]
                unchecked.append((f"campaign {result.scenario!r} did not pass "
                                  f"({', '.join(not_passed) or 'its smoke trial did not complete'})", "run"))
        for comparison in self.comparisons:
            if not comparison.passed and not comparison._memo.get("checked"):
                regressed = ", ".join(f.metric for f in comparison.regressions)
                unchecked.append((f"candidate {comparison.candidate!r} regressed against {comparison.baseline!r} "
                                  f"({regressed})", "compare"))
        node = self._request.node
        path, line = node.reportinfo()[:2] if hasattr(node, "reportinfo") else (node.path, 0)
        for what, call in unchecked:
            with warnings_as(self._filters) if self._filters is not None else contextlib.nullcontext():
                warnings.warn_explicit(UncheckedCampaign(  # (shown at the test, not in the plugin)
                    f"{what} and its test never called .check(), so the test passed: call "
                    f"agent_chaos.{call}(...).check() (where a gate judges the report instead: "
                    "-W ignore::pytest_agentops.UncheckedCampaign)"),
                    UncheckedCampaign, str(path), (line or 0) + 1)

    def compare(self, baseline: Scenario, candidate: Scenario, *, alpha: float = 0.05, margin: float = 0.05,
                growth: float = 0.2, **overrides: Any) -> Any:
        """Shadow mode: run ``baseline`` and ``candidate`` on common seeds and decide, pair by pair, regression
        or non-inferiority (``pytest_agentops.engine.compare``). Settings resolve as for ``run`` (from the
        baseline); without ``--agent-chaos`` one fault-free pair is run as a smoke test. Returns the
        ``ComparisonResult`` (``.check()`` raises on a regression)."""
        from ..engine.compare import ComparisonResult, check_comparison, compare_campaigns, paired_settings

        check_comparison(baseline, candidate, alpha, margin, growth)
        self._keep_filters()
        o = self.options
        sources = (_source("agent_chaos.compare", overrides), command_line_source(o),
                   marker_source(self._request.node, self.marker_kwargs))
        base = resolve_run(baseline, sources, smoke=not o.enabled, default_seed=o.session_seed)
        # (the candidate pairs with the baseline's trials, and keeps its own isolation, spend cap and cassettes)
        cand = paired_settings(base, resolve_run(candidate, sources, smoke=not o.enabled, default_seed=base.seed))
        if o.replay is not None and o.replay[0] is not None:  # a named trial: of one side, or not of this comparison
            self._config.stash.setdefault(seen_key, []).extend((baseline.name, candidate.name))
            sides = {baseline.name: baseline, candidate.name: candidate} if baseline.name != candidate.name else {}
            self._replay_side(sides.get(o.replay[0]), base, overrides)
            return ComparisonResult.not_run(baseline.name, candidate.name, base.seed, base.trials, alpha)
        result = compare_campaigns(baseline, candidate, alpha=alpha, margin=margin, growth=growth,
                                   _settings=(base, cand))
        if not base.smoke:  # (the pairs in which the candidate did worse are printed with these)
            node = self._request.node
            shown = invocation_nodeid(node)
            keep_names(self._config, node.nodeid, baseline.name, candidate.name, shown=shown)
            result = replace(result, replay_commands=tuple(
                replay_command(shown, base.seed, o, name, collection=collection_options(node))
                for name in (baseline.name, candidate.name)))
        # the session's copy keeps no trace: its report, terminal lines and xdist hand-over read none (each side
        # keeps up to a campaign's budget of trace events: a session of many comparisons held them all)
        self._config.stash[comparisons_key].append((self._request.node.nodeid, _without_traces(result)))
        self.comparisons.append(result)
        return result

    def _replay_side(self, scenario: Scenario | None, base: Any, overrides: dict[str, Any]) -> None:
        """Under ``--agent-chaos-replay`` naming a trial of one side of a comparison (``scenario``): that side's
        trial alone, run with the comparison's seed, trials, faults and confidence (the baseline's, which both sides
        ran with; each side's own isolation, spend cap and cassettes, as in the comparison), shown and
        reported as any replay; of another campaign (None): nothing, as for ``run``. The comparison itself is not
        made."""
        if scenario is None:
            return
        given = {k: v for k, v in overrides.items() if k not in ("seed", "trials", "faults", "profile", "confidence")}
        replayed = self.run(scenario, **given, seed=base.seed, trials=base.trials, faults=base.faults,
                            confidence=base.confidence)
        replayed._memo["checked"] = True  # (its verdicts are of one trial: the comparison's ``check`` stands in)


def invocation_nodeid(node: pytest.Item) -> str:
    """The item's node id with its file relative to where pytest was started (what a pasted command needs;
    the node id itself is relative to the rootdir)."""
    return shown_node(node.path, node.nodeid, node.config.invocation_params.dir)


#: pytest-repeat's parameter: ``test_x[2-3]`` is made only with ``--count=3`` (unless a ``repeat`` marker says 3)
_REPEAT_PARAM = "__pytest_repeat_step_number"


def collection_options(node: pytest.Item) -> tuple[str, ...]:
    """The options without which pytest would not make ``node`` again from a pasted command: pytest-repeat's
    ``--count=N`` for an item it made from that option (pasted without it, ``test_x[2-3]`` is "not found")."""
    callspec = getattr(node, "callspec", None)
    if callspec is None or _REPEAT_PARAM not in callspec.params or node.get_closest_marker("repeat") is not None:
        return ()
    count = node.config.getoption("count", None)
    return (f"--count={int(count)}",) if isinstance(count, int) and count > 1 else ()


def keep_names(config: pytest.Config, nodeid: str, *scenarios: Any, shown: str | None = None,
               commands: Any = ()) -> None:
    """Leave the user's names of a campaign's test out of the redaction of secret shapes (``keep_identifier``): its
    node id (rootdir-relative, as the reports write it), as a command started where pytest was started writes it
    (``shown``; else made from the rootdir), its scenarios' names, and the words of its printed ``commands``. By
    a worker as its campaign runs, by an xdist controller for what its workers handed over (it writes the
    reports: the commands tell it how they wrote the node id)."""
    from ..harness.secrets import keep_identifier

    keep_identifier(nodeid, node=True)
    if shown is None:
        shown = shown_node(config.rootpath / nodeid.partition("::")[0], nodeid, config.invocation_params.dir)
    keep_identifier(shown, node=True)
    for scenario in scenarios:
        if isinstance(scenario, str):
            keep_identifier(scenario)
    for command in [commands] if isinstance(commands, str) else commands:
        if isinstance(command, str) and ("sk-" in command or "Bearer" in command):
            with contextlib.suppress(ValueError):  # (a command is shell-quoted: its words are the names as given)
                for word in shlex.split(command):
                    keep_identifier(word, node=True)


def replay_command(nodeid: str, seed: int, options: ChaosOptions, scenario: str | None = None, *,
                   smoke: bool = False, collection: tuple[str, ...] = ()) -> str:
    """The copy-paste command (a template with ``{index}``) that re-runs one trial; shell-quoted, so that
    node ids and scenario names with spaces, ``/`` or ``[`` work (the names kept from redaction: ``keep_names``).
    A smoke trial is re-run as it ran: without ``--agent-chaos`` (fault-free), with its seed. ``collection``: the
    options the test's node id needs (``collection_options``)."""
    if smoke:
        cassettes = options.record or options.cassette
        return " ".join([options.launcher, literal(nodeid), *collection, f"--agent-chaos-seed={seed}",
                         *([literal(f"--agent-chaos-cassette={cassettes}")] if cassettes else [])])
    if scenario is None:
        replay = "--agent-chaos-replay={scenario}/trial-{index}"
    else:  # quote with a digit in place of the index, then put the placeholder there (inside the quotes)
        quoted = literal(f"--agent-chaos-replay={scenario}/trial-0")
        replay = quoted[:-2] + "{index}'" if quoted.endswith("0'") else quoted[:-1] + "{index}"
    parts = [options.launcher, literal(nodeid), *collection, "--agent-chaos", f"--agent-chaos-seed={seed}", replay]
    if options.trials is not None:  # (a trial beyond the scenario's own count exists only with it)
        parts.append(f"--agent-chaos-trials={options.trials}")
    if options.profile:
        parts.append(literal(f"--agent-chaos-profile={options.profile}"))
    if options.isolation:
        parts.append(literal(f"--agent-chaos-isolation={options.isolation}"))
    cassettes = options.record or options.cassette
    if cassettes:  # a live trial replays from what was recorded: offline and exact
        parts.append(literal(f"--agent-chaos-cassette={cassettes}"))
    return " ".join(parts)


def _keep(config: pytest.Config, nodeid: str, result: CampaignResult) -> None:
    """Record a finished campaign for the session's reports; an xdist worker hands it to the controller at
    once (``spool``): a worker that dies later loses nothing that finished."""
    config.stash[results_key].append((nodeid, result))
    if hasattr(config, "workerinput") and result.skipped is None:
        from .reports import worker_data
        from .spool import put_campaign

        put_campaign(config, nodeid, worker_data(config, result))
    _spill(config, result)


#: The trace events the session's finished campaigns keep in memory in all (~65 MiB; a campaign keeps up to
#: ``engine.trial.CAMPAIGN_TRACE_EVENTS`` while it runs): a campaign that would take them past it has its traces
#: moved to the session's temporary file (``trace_spill``), read back when a report reads them. Its reports are
#: the same bytes. (The bundled scenarios' 21 campaigns keep a few thousand events: none is moved.)
SESSION_TRACE_EVENTS = 100_000


class _SessionTraces:
    """The session's traces: how many events its campaigns keep in memory, and its spill file once made."""

    __slots__ = ("failed", "held", "spill")

    def __init__(self) -> None:
        self.held = 0
        self.spill: TraceSpill | None = None
        self.failed = False  # the file could not be written: every later campaign keeps its traces


def _spill(config: pytest.Config, result: CampaignResult) -> None:
    """Keep a finished campaign's traces in memory while the session's stay within ``SESSION_TRACE_EVENTS``;
    else move them to the session's temporary file: a session of many campaigns that keep long traces (runaway
    loops) holds a bounded part of them in memory, not every campaign's (six such: 854 -> 268 MiB). A file
    that cannot be written (a full disk) leaves them in memory, as before, and says so once."""
    store = result.records
    if not store.kept_events:
        return
    traces = config.stash.get(spill_key, None)
    if traces is None:
        traces = config.stash[spill_key] = _SessionTraces()
    if traces.held + store.kept_events <= SESSION_TRACE_EVENTS or traces.failed:
        traces.held += store.kept_events
        return
    if result.skipped is None:  # (the fault tallies read every trace: taken now, while they are in memory)
        from ..report.attribution import fault_delivery

        fault_delivery(result)
    try:
        if traces.spill is None:
            traces.spill = TraceSpill()
        traces.held += store.kept_events - store.spill_traces(traces.spill)  # (those not plain stay)
    except OSError as exc:
        traces.failed = True
        traces.held += store.kept_events
        from .reports import _say

        with contextlib.suppress(OSError):  # (the terminal's capture file may sit on the same full disk)
            _say(config, f"agentops: the session's traces could not be moved to a temporary file ({exc}): they "
                         "stay in memory")


def _without_traces(result: Any) -> Any:
    """A ``ComparisonResult`` whose records keep no trace (the same object when none has one)."""
    sides = (result.baseline_records, result.candidate_records)
    if not any(r.trace for side in sides for r in side):
        return result
    baseline, candidate = (tuple(replace(r, trace=()) if r.trace else r for r in side) for side in sides)
    return replace(result, baseline_records=baseline, candidate_records=candidate)


def retract(config: pytest.Config, item: pytest.Item) -> None:
    """``item`` runs again (a re-run of a failed test): the campaigns and comparisons its earlier attempt recorded
    leave the session's results (an xdist worker tells the controller, which drops those it was handed before), and
    their JUnit properties leave the item."""
    from ..report.junit import JUNIT_PREFIX

    nodeid = item.nodeid
    for key in (results_key, comparisons_key):
        kept = config.stash.get(key, None)
        if kept:
            kept[:] = [entry for entry in kept if entry[0] != nodeid]
    item.user_properties[:] = [p for p in item.user_properties
                               if not (isinstance(p, tuple) and str(p[0]).startswith(JUNIT_PREFIX))]
    if hasattr(config, "workerinput"):
        from .spool import put

        put(config, "retract", nodeid)


def _source(name: str, values: dict[str, Any]) -> RunSource:
    unknown = set(values) - set(RUN_ARGUMENTS)
    if unknown:
        raise ConfigError(f"{name}: unknown argument(s) {sorted(unknown)}; valid: {', '.join(RUN_ARGUMENTS)}")
    return RunSource(name, **values)


def run_scenario(config: pytest.Config, node: pytest.Item, scenario: Scenario,
                 marker_kwargs: dict[str, Any] | None = None, **overrides: Any) -> CampaignResult:
    """Run ``scenario``'s campaign for a test item with the run's settings, and record the result.

    The one path of the ``agent_chaos`` fixture and of YAML scenario items: the same precedence (call >
    command line/ini > marker > scenario), the same replay command, and the result in
    ``config.stash[results_key]`` for the terminal table and the JSON report.
    """
    __tracebackhide__ = True
    if not isinstance(scenario, Scenario):  # (a name, a module path: an AttributeError deep in the settings before)
        raise ConfigError(f"agent_chaos.run expects a Scenario, got {scenario!r}")
    o = config.stash[options_key]
    replay = None
    smoke = not o.enabled
    if o.replay is not None:
        name, index = o.replay
        config.stash.setdefault(seen_key, []).append(scenario.name)
        if name is not None and name != scenario.name:  # not the trial asked for: this campaign does not run
            return CampaignResult.not_run(scenario.name, f"not the replayed scenario {name!r}")
        replay = index
    sources = (_source("agent_chaos.run", overrides), command_line_source(o), marker_source(node, marker_kwargs))
    settings = resolve_run(scenario, sources, replay=replay, smoke=smoke and replay is None,
                           default_seed=o.session_seed)
    if replay is not None and o.replay_seed is not None and (replay >= settings.trials
                                                             or o.replay_seed != trial_seed(settings.seed, replay)):
        # not the trial the label names (another campaign of the same scenario, or a run with other seeds): not run;
        # if no campaign of the run has it, the session ends with a usage error saying so (``_check_replay_target``)
        return CampaignResult.not_run(scenario.name, f"this campaign's trial {replay} is not the label's (seed "
                                                     f"{o.replay_seed})")
    if replay is not None and replay >= settings.trials:
        raise ConfigError(f"--agent-chaos-replay: campaign {scenario.name!r} has no trial {replay}: its trials are "
                          f"0..{settings.trials - 1}")
    if replay is not None:
        config.stash.setdefault(replayed_key, []).append(scenario.name)
    shown = invocation_nodeid(node)
    keep_names(config, node.nodeid, scenario.name, shown=shown)
    command = replay_command(shown, settings.seed, o, scenario.name, smoke=settings.smoke,
                             collection=collection_options(node))
    from .progress import campaign_progress
    from .reports import wants

    if wants(o)["all_traces"] and scenario.keep_traces is not None:  # OpenTelemetry exports every trial's trace
        scenario = replace(scenario, keep_traces=None)
    try:
        with campaign_progress(config, o) as progress:
            result = run_resolved(scenario, settings, replay_command=command, **progress)
    except CampaignInterrupted as interrupted:  # Ctrl-C: report what finished, then stop as pytest does
        _keep(config, node.nodeid, interrupted.result)
        raise
    from ..report.junit import junit_properties

    properties = junit_properties(result)  # (before ``_keep`` moves the traces out: it tallies the trials)
    _keep(config, node.nodeid, result)
    node.user_properties.extend(properties)  # what record_property adds: JUnit XML <property>
    return result
