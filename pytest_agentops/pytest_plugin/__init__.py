"""The pytest plugin (entry point ``agentops``): options and their ini twins, the ``agent_chaos`` marker and
fixture, the header, the terminal summary, the JSON report, YAML scenario collection and pytest-xdist.

Computes nothing itself and imports only ``pytest_plugin.options`` when loaded: campaigns (``campaigns``),
YAML items (``collect``) and reports load when a test uses them, so an installed-but-unused plugin costs
next to nothing at start-up.
"""

from __future__ import annotations

import pathlib
import sys
from typing import TYPE_CHECKING, Any

import pytest

from ..errors import hide_own_frames
from .ini_keys import check_ini_keys
from .options import (
    CACHE_SEED,
    INI_NAMES,
    USAGE_ERROR_OUTPUT,
    ChaosOptions,
    add_options,
    comparisons_key,
    is_campaign_item,
    options_key,
    replayed_key,
    resolve_options,
    results_key,
    seen_key,
    spool_key,
    write_error_key,
)

__tracebackhide__ = hide_own_frames

if TYPE_CHECKING:
    from collections.abc import Iterator

    from .campaigns import AgentChaos


def pytest_addoption(parser: pytest.Parser) -> None:
    add_options(parser)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "agent_chaos(trials=None, seed=None, profile=None, faults=None, confidence=None, concurrency=None, "
        "early_stop=None, isolation=None, max_campaign_usd=None, max_campaign_tokens=None, record=None, "
        "cassette=None): configure the agent_chaos fixture's campaigns for this test.",
    )
    check_ini_keys(config, INI_NAMES)
    opts = resolve_options(config)
    if opts.show is not None and config.getoption("numprocesses", None):
        raise pytest.UsageError("--agent-chaos-show reads a report and runs nothing: leave out -n")
    config.stash[options_key] = opts
    config.pluginmanager.register(_CampaignTests(config), "agentops-campaign-tests")
    config.stash[results_key] = []
    config.stash[comparisons_key] = []
    if opts.enabled:
        _collect_scenarios_beside_testpaths(config)
    elif any(arg.split("::")[0].endswith((".yaml", ".yml")) for arg in config.args):
        config.pluginmanager.register(_NamedWithoutChaos(), "agentops-named-without-chaos")


class _NamedWithoutChaos:
    """(Registered only when a YAML file is named on the command line without ``--agent-chaos``.) A scenario file so
    named that no plugin collects is a collection error saying to add ``--agent-chaos``, not pytest's bare "not
    found"; a YAML file another plugin collects is left to it."""

    @pytest.hookimpl(wrapper=True)
    def pytest_collect_file(self, file_path: Any, parent: pytest.Collector) -> Any:
        collected = yield
        if collected or file_path.suffix not in (".yaml", ".yml") or not parent.session.isinitpath(file_path):
            return collected
        from .collect import scenario_file_without_chaos

        ours = scenario_file_without_chaos(file_path, parent)
        return [ours] if ours is not None else collected


def _collect_scenarios_beside_testpaths(config: pytest.Config) -> None:
    """With ``--agent-chaos`` and no paths given, ``scenarios/`` at the rootdir is collected even when the ini's
    ``testpaths`` does not list it (``testpaths = tests`` is common): YAML scenarios are the main job. So is the
    directory an ``agentops_scenario_files`` pattern with a ``/`` names (``chaos/*.yml``: ``chaos/``); a
    pattern without one matches file names under the paths collected anyway."""
    if config.args_source != pytest.Config.ArgsSource.TESTPATHS:
        return
    covered = [pathlib.Path(arg.split("::")[0]) for arg in config.args]
    covered = [p if p.is_absolute() else config.rootpath / p for p in covered]
    for directory in (config.rootpath / "scenarios", *_pattern_directories(config)):
        if directory.is_dir() and not any(directory == p or p in directory.parents for p in covered):
            config.args.append(str(directory))
            covered.append(directory)


def _pattern_directories(config: pytest.Config) -> list[pathlib.Path]:
    """The directories ``agentops_scenario_files`` patterns with a ``/`` name: each one's leading parts before
    the first with a wildcard (none for a pattern that starts with one)."""
    found = []
    for pattern in config.getini("agentops_scenario_files"):
        if "/" not in pattern:
            continue
        literal = []
        for part in pattern.split("/")[:-1]:
            if any(c in part for c in "*?["):
                break
            literal.append(part)
        if literal:
            found.append(config.rootpath.joinpath(*literal))
    return found


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:  # xdist hook (called only when xdist is active)
    from .spool import SPOOL, controller_spool

    opts = node.config.stash[options_key]
    node.workerinput["agentops_seeds"] = [opts.seed, opts.session_seed]
    node.workerinput["agentops_launcher"] = opts.launcher  # (a worker's own argv says nothing of it)
    node.workerinput[SPOOL] = controller_spool(node.config)  # campaigns come home as each one finishes


def _campaigns_held() -> int:
    """How many times campaigns have taken hold of the redaction in this process (0 before the first)."""
    secrets = sys.modules.get("pytest_agentops.harness.secrets")
    return 0 if secrets is None else secrets.campaigns_held


class _CampaignTests:
    """Which collected tests run campaigns, and each one's outcome: the report lists those that never reported a
    campaign (registered per session, so that it knows its config)."""

    def __init__(self, config: pytest.Config):
        self.config = config
        self.expected: set[str] = set()
        self.marked_unused: set[str] = set()  # tests with the marker that do not use the fixture
        self.outcomes: dict[str, str] = {}
        self.started: set[int] = set()  # the items whose setup began (a second time: a re-run)
        self.held_at: dict[str, int] = {}  # node id -> ``secrets.campaigns_held`` as the test started

    def pytest_runtest_logstart(self, nodeid: str) -> None:
        # (kept after the test: pytest hands its warnings over once its whole protocol has ended)
        self.held_at[nodeid] = _campaigns_held()

    @pytest.hookimpl(tryfirst=True)
    def pytest_warning_recorded(self, warning_message: Any, nodeid: str) -> None:
        """A warning recorded in a test during which a campaign ran (through the fixture, a YAML item or the API),
        or while an agent's thread still runs, has its text redacted before pytest shows it (or a pytest-xdist
        worker sends it): an agent's ``warnings.warn`` naming a key. Other tests' warnings are left as they are
        (a test that never used the plugin saw its warnings rewritten once any campaign had run)."""
        secrets = sys.modules.get("pytest_agentops.harness.secrets")
        if secrets is None or not secrets.campaign_ran:
            return
        exit_guard = sys.modules.get("pytest_agentops.process.exit_guard")
        if _campaigns_held() > self.held_at.get(nodeid, secrets.campaigns_held) or getattr(exit_guard, "_running", 0):
            secrets.redact_warning(warning_message)

    def pytest_runtest_setup(self, item: pytest.Item) -> None:
        # a test run again in the same session (pytest-rerunfailures, a ``flaky`` marker): its earlier attempt's
        # campaigns leave the report and the summary table, which keep those of the attempt that counts. The same
        # item object set up again, not the same node id: ``--keep-duplicates`` runs two items of one node id
        if id(item) in self.started:
            from .campaigns import retract

            retract(self.config, item)
        else:
            self.started.add(id(item))  # (the session holds its items to its end: their ids stay theirs)

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_teardown(self, item: pytest.Item) -> Iterator[None]:
        # (said once the test ran: a test may take the fixture with ``request.getfixturevalue``, unseen at collection;
        # after its teardown, which a warning made an error under ``-W error`` must not cut short)
        torn_down = yield
        if item.nodeid in self.marked_unused and not item.stash.get(fixture_used_key, False):
            import warnings

            from ..errors import UnusedSetting

            warnings.warn(UnusedSetting(f"{item.nodeid}: @pytest.mark.agent_chaos sets the campaigns the agent_chaos "
                                        "fixture runs, and this test does not use it: the marker changes nothing "
                                        "(a campaign run with run_campaign takes its settings as arguments)"),
                          stacklevel=1)
        return torn_down

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        self.expected = {item.nodeid for item in session.items if is_campaign_item(item)}
        # (a marker only the fixture reads: on another test it changes nothing, said as that test is set up)
        self.marked_unused = {item.nodeid for item in session.items
                              if item.nodeid not in self.expected and item.get_closest_marker("agent_chaos")}
        if self.expected:  # (the spool, and the harness's secrets it imports, only where campaigns run)
            from .spool import put

            put(self.config, "expected", sorted(self.expected))

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        # an xdist controller collects nothing itself: it learns the campaign tests from the spool at the end
        if report.nodeid not in self.expected and not self._xdist():
            return
        if report.skipped:
            self.outcomes[report.nodeid] = "skipped"
        elif report.failed:
            self.outcomes[report.nodeid] = "failed"
        elif report.when == "call":
            self.outcomes.setdefault(report.nodeid, "passed")

    def _xdist(self) -> bool:
        return self.config.stash.get(spool_key, None) is not None


def prints_seeds(opts: ChaosOptions) -> bool:
    """Whether the header prints the run's seeds (full campaigns, or seeds given)."""
    return opts.enabled or opts.seed is not None or opts.session_seed_given


#: the command-line options a run of smoke trials (no ``--agent-chaos``) has no use for
_CAMPAIGN_ONLY = ("agent_chaos_trials", "agent_chaos_profile", "agent_chaos_concurrency", "agent_chaos_max_usd",
                  "agent_chaos_max_tokens")


def pytest_report_header(config: pytest.Config) -> list[str] | None:
    opts = config.stash.get(options_key, None)
    if opts is None:
        return None
    unused = [] if opts.enabled else ["--" + name.replace("_", "-") for name in _CAMPAIGN_ONLY
                                      if config.getoption(name, None) is not None]
    lines = [f"agentops: smoke trials (one fault-free trial per scenario): {', '.join(unused)} take effect with "
             "--agent-chaos"] if unused else []  # (given for campaigns that do not run: said, not silently dropped)
    if prints_seeds(opts):
        lines.append(_seeds_line(opts))
    return lines or None


def _seeds_line(opts: ChaosOptions) -> str:
    """The header's line of the run's seeds and settings, with the options that repeat the run."""
    mode = "campaigns" if opts.enabled else "smoke trials"
    if opts.seed is not None:
        parts = [f"agentops: {mode}, seed={opts.seed} for every campaign"]
        repeat = f"--agent-chaos-seed={opts.seed}"
    else:
        parts = [f"agentops: {mode}, session seed={opts.session_seed} for campaigns that set none"]
        repeat = f"--agent-chaos-session-seed={opts.session_seed}"
    campaigns = opts.enabled  # (smoke trials: one fault-free trial each; trials, profile and caps not in effect)
    if opts.trials and campaigns:
        parts.append(f"trials={opts.trials}")
        repeat += f" --agent-chaos-trials={opts.trials}"
    if opts.profile and campaigns:
        parts.append(f"profile={opts.profile}")
        repeat += f" --agent-chaos-profile={opts.profile}"
    if opts.concurrency and campaigns:
        parts.append(f"concurrency={opts.concurrency}")
    if opts.isolation:
        parts.append(f"isolation={opts.isolation}")
        repeat += f" --agent-chaos-isolation={opts.isolation}"
    if opts.replay:
        parts.append(f"replay={opts.replay[0] + '/' if opts.replay[0] else ''}trial-{opts.replay[1]}")
    if (opts.max_usd is not None or opts.max_tokens is not None) and campaigns:
        caps = [f"${opts.max_usd:g}"] if opts.max_usd is not None else []
        caps += [f"{opts.max_tokens:,} tokens"] if opts.max_tokens is not None else []
        parts.append(f"spend cap={' and '.join(caps)} per campaign")
        repeat += f" --agent-chaos-max-usd={opts.max_usd:g}" if opts.max_usd is not None else ""
        repeat += f" --agent-chaos-max-tokens={opts.max_tokens}" if opts.max_tokens is not None else ""
    if opts.record:
        parts.append(f"recording cassettes to {opts.record}")
    if opts.cassette:
        parts.append(f"replaying cassettes from {opts.cassette}")
        repeat += f" --agent-chaos-cassette={opts.cassette}"
    return ", ".join(parts) + f" (repeat this run with {'--agent-chaos ' if opts.enabled else ''}{repeat})"


@pytest.fixture
def agent_chaos(request: pytest.FixtureRequest) -> Iterator[AgentChaos]:
    """Run agent chaos campaigns: ``agent_chaos.run(scenario).check()`` (a campaign that did not pass, never
    checked, in a test that passed: an ``UncheckedCampaign`` warning at teardown)."""
    from .campaigns import AgentChaos

    request.node.stash[fixture_used_key] = True  # (the marker is read: ``pytest_runtest_teardown`` says nothing)
    chaos = AgentChaos(request)
    yield chaos
    chaos.warn_unchecked()


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    if config.stash.get(write_error_key, None):
        from .outputs import say_write_error

        say_write_error(terminalreporter, config)
    replay_error = config.stash.get(_replay_error_key, None)
    if replay_error:
        terminalreporter.write_line(replay_error, red=True)
    results = config.stash.get(results_key, [])
    comparisons = config.stash.get(comparisons_key, [])
    if not (results or comparisons) or config.get_verbosity() < -1:
        return
    from .reports import terminal_summary

    terminal_summary(terminalreporter, config)
    if comparisons:
        from ..report.terminal import comparison_lines

        if not results:
            terminalreporter.section("agent chaos")
        from ..harness.secrets import redact_text

        for nodeid, comparison in comparisons:
            terminalreporter.write_line(redact_text(nodeid))
            for line in comparison_lines(comparison):
                terminalreporter.write_line(line)


@pytest.hookimpl(tryfirst=True)
def pytest_collection(session: pytest.Session) -> bool | None:
    """``--agent-chaos-show``: print the trial from the last report instead of collecting and running tests."""
    opts = session.config.stash.get(options_key, None)
    if opts is None or opts.show is None:
        return None
    from .reports import show

    show(session.config, opts)
    return True


def pytest_collection_finish(session: pytest.Session) -> None:
    """With ``--agent-chaos`` over the test paths from the rootdir (no path given), an ``agentops_scenario_files``
    pattern that matched no file is warned about (``collect.warn_unmatched_patterns``; under xdist by the first
    worker alone, whose warning the controller shows)."""
    config = session.config
    opts = config.stash.get(options_key, None)
    if opts is None or not opts.enabled or config.args_source == pytest.Config.ArgsSource.ARGS or \
            config.invocation_params.dir != config.rootpath or not config.getini("agentops_scenario_files"):
        return
    worker = getattr(config, "workerinput", None)
    if worker is None or worker.get("workerid") == "gw0":
        from .collect import warn_unmatched_patterns

        usage_error = warn_unmatched_patterns(config)
        if usage_error:  # (a worker's: the controller exits with it when this worker finishes, so it stops after
            session.shouldstop = usage_error  # the test it is given first, not its whole share of the run)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_node_collection_finished(node: Any, ids: list[str]) -> None:
    """(xdist controller.) The tests in collection order, which the campaigns the workers hand over are put back in
    (they come grouped by worker): the terminal's "agent chaos" section reads as in a run without xdist."""
    node.config.stash.setdefault(_collected_key, ids)


def _in_collection_order(config: pytest.Config, pairs: list[tuple[str, Any]]) -> None:
    """Sort (node id, campaign or comparison) pairs the workers handed over into collection order, in place (a
    test's own campaigns stay in their order; a node id not collected goes last)."""
    ids = config.stash.get(_collected_key, None)
    if ids and len(pairs) > 1:
        order = {nodeid: i for i, nodeid in enumerate(ids)}
        pairs.sort(key=lambda pair: order.get(pair[0], len(order)))


_collected_key = pytest.StashKey[list[str]]()
#: set on a test's item when it takes the agent_chaos fixture (by its arguments or ``request.getfixturevalue``)
fixture_used_key = pytest.StashKey[bool]()


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: Any) -> None:  # xdist controller: a worker's replay targets come home
    import json

    output = getattr(node, "workeroutput", {})
    replay = output.get("agentops_replay")
    if replay:
        seen, replayed = json.loads(replay)
        node.config.stash.setdefault(seen_key, []).extend(seen)
        node.config.stash.setdefault(replayed_key, []).extend(replayed)
    payload = getattr(node, "workeroutput", {}).get("agentops_comparisons")
    if payload:
        handed = json.loads(payload)
        if "sk-" in payload or "Bearer" in payload:  # (names of the user's: kept from redaction here too)
            from .campaigns import keep_names

            for nodeid, c in handed:
                keep_names(node.config, nodeid, c.get("baseline"), c.get("candidate"))
        node.config.stash[comparisons_key].extend((nodeid, c) for nodeid, c in handed)
    if output.get(USAGE_ERROR_OUTPUT):  # (the patterns' warning made an error: ``collect.warn_unmatched_patterns``)
        pytest.exit(str(output[USAGE_ERROR_OUTPUT]), returncode=pytest.ExitCode.USAGE_ERROR)


_open_sessions: list[pytest.Session] = []  # (an in-process pytester run's session opens inside the outer one)


def pytest_sessionstart(session: pytest.Session) -> None:
    """Output paths checked, the JSON report marked running, the seeds cached for ``--agent-chaos-seed=last``:
    when a session that runs tests starts, not at configure (which ``--help`` and ``--markers`` run too, and they
    must not replace the last report or the last seeds), nor for ``--collect-only``."""
    _open_sessions.append(session)
    config = session.config
    opts = config.stash.get(options_key, None)
    if opts is None or config.option.collectonly:
        return
    if (prints_seeds(opts) and opts.show is None and getattr(config, "cache", None) is not None
            and not hasattr(config, "workerinput")):  # (--help, --co and --agent-chaos-show run no campaign)
        config.cache.set(CACHE_SEED, {"seed": opts.seed, "session": opts.session_seed})  # for --agent-chaos-seed=last
    if opts.report or opts.html or opts.otel or opts.record:
        from .outputs import prepare_outputs

        prepare_outputs(config, opts)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    config = session.config
    outermost = _open_sessions[:1] == [session]  # (not an in-process pytester run's, nor an xdist worker's)
    if session in _open_sessions:
        _open_sessions.remove(session)
    guard = sys.modules.get("pytest_agentops.process.exit_guard")  # (loaded once a campaign ran)
    if guard is not None and outermost and getattr(config, "workerinput", None) is None:
        guard.note_run_status(lambda: int(session.exitstatus))  # (its final status, read at the exit)
    opts = config.stash.get(options_key, None)
    results = config.stash.get(results_key, [])
    comparisons = config.stash.get(comparisons_key, [])
    workeroutput = getattr(config, "workeroutput", None)
    if workeroutput is not None:  # an xdist worker: hand the campaigns (as JSON data) to the controller
        import json

        # (each campaign went to the controller through the spool as it finished: ``campaigns.run_scenario``)
        workeroutput["agentops_replay"] = json.dumps([config.stash.get(seen_key, []),
                                                      config.stash.get(replayed_key, [])])
        if comparisons:
            workeroutput["agentops_comparisons"] = json.dumps(
                [(nodeid, c.to_dict()) for nodeid, c in comparisons], allow_nan=False)
        return
    if opts is None:
        return
    if opts.show is not None:  # nothing ran: the trial was printed at collection
        if session.exitstatus == pytest.ExitCode.NO_TESTS_COLLECTED:  # (an internal error keeps its status)
            session.exitstatus = pytest.ExitCode.OK
        return
    if opts.replay is not None and opts.replay[0] is not None:
        _check_replay_target(session, opts.replay[0])
    if not (results or comparisons or opts.report) and config.stash.get(spool_key, None) is None:
        return  # (no campaign ran, no report asked for: the spool and the harness are never imported)
    from .spool import session_summary, stopped_early, take

    tracker = config.pluginmanager.get_plugin("agentops-campaign-tests")
    expected = set(tracker.expected) if tracker is not None else set()
    spooled = take(config)  # under xdist: what the workers handed over, campaign by campaign
    handed = [(nodeid, data) for nodeid, data in spooled.get("campaign", [])]
    if handed:  # (the workers' names of their tests, kept from redaction here too: this process writes the reports)
        from .campaigns import keep_names

        for nodeid, data in handed:
            keep_names(config, nodeid, data.get("scenario"), commands=data.get("replay_command"))
    _in_collection_order(config, handed)
    results.extend(handed)
    _in_collection_order(config, comparisons)
    for nodeids in spooled.get("expected", []):
        expected.update(nodeids)
    if (results or opts.report) and not config.option.collectonly:  # --co runs nothing: no report of it
        from .reports import write_reports

        outcomes = tracker.outcomes if tracker is not None else {}
        try:
            reported = {n for n, _ in results} | {n for n, _ in comparisons}  # (a compare test reports a comparison)
            write_reports(config, opts, session_summary(expected, outcomes, exitstatus, reported,
                                                        stopped_early(session)))
        except OSError as exc:  # said after pytest's own summary (never instead of it), and the run fails
            config.stash[write_error_key] = (f"ERROR: agent chaos: a report could not be written: "
                                             f"{exc.filename or ''} ({exc.strerror or exc})")
            session.exitstatus = pytest.ExitCode.INTERNAL_ERROR


def _check_replay_target(session: pytest.Session, name: str) -> None:
    """``--agent-chaos-replay=NAME/trial-N`` where no campaign is named NAME: a usage error listing the names.

    A campaign NAME that was asked for but not replayed (its trials end before N, a bad setting) said why in
    its own test's error: nothing more here (the listing would name NAME as the campaign that did not run)."""
    config = session.config
    seen = sorted(set(config.stash.get(seen_key, [])))
    if config.option.collectonly or config.option.setupplan or session.shouldstop or session.shouldfail:
        return  # (no test ran, or not all of them: -x, --maxfail; the campaign may be among those not run)
    opts = config.stash[options_key]
    if name in seen and opts.replay_seed is not None and name not in config.stash.get(replayed_key, []):
        assert opts.replay is not None
        config.stash[_replay_error_key] = (
            f"ERROR: --agent-chaos-replay: no campaign of {name!r} in this run has a trial {opts.replay[1]} with the "
            f"label's seed {opts.replay_seed}: the label is from a run with other seeds; paste the whole replay "
            "command printed with it (its --agent-chaos-seed gives that trial)")
        session.exitstatus = pytest.ExitCode.USAGE_ERROR
        return
    if name in config.stash.get(replayed_key, []) or name in seen or not session.testscollected:
        return
    listed = ", ".join(repr(n) for n in seen) if seen else "none (no campaign ran)"
    import difflib

    close = difflib.get_close_matches(name, seen, n=1)
    listed += f" (did you mean {close[0]!r}?)" if close else ""
    # (said in the terminal summary, on a line of its own: here the progress line has not ended yet)
    hint = ("; a selected test failed before reaching it: under a replay the other campaigns do not run, so a test "
            "that uses an earlier campaign's result stops there; replay the trial with replay_trial in Python"
            ) if session.testsfailed else ""
    config.stash[_replay_error_key] = (f"ERROR: --agent-chaos-replay: no campaign named {name!r} ran; the "
                                       f"campaigns of the selected tests: {listed}{hint}")
    session.exitstatus = pytest.ExitCode.USAGE_ERROR


_replay_error_key = pytest.StashKey[str]()


def pytest_unconfigure(config: pytest.Config) -> None:
    """An xdist controller's spool goes once the reports and the summary are written (they read its records)."""
    spool = sys.modules.get("pytest_agentops.pytest_plugin.spool")  # (never made if the module was not loaded)
    if spool is not None:
        spool.discard(config)


@pytest.hookimpl(tryfirst=True)
def pytest_make_collect_report(collector: pytest.Collector) -> pytest.CollectReport | None:
    """A YAML file under scenarios/ that is not a scenario file: a skip at the file (pytest would show the
    line of the plugin that raised it)."""
    why = getattr(collector, "not_a_scenario", None)
    if why is None:
        return None
    from .collect import skip_reason

    return pytest.CollectReport(collector.nodeid, "skipped", (str(collector.path), None, skip_reason(why)), [])


def pytest_collect_file(file_path: Any, parent: pytest.Collector) -> pytest.Collector | None:
    """YAML scenario files become items with ``--agent-chaos`` (collect.py, imported only then); one named on the
    command line without it is a collection error that says so (``_NamedWithoutChaos``)."""
    if file_path.suffix not in (".yaml", ".yml"):
        return None
    opts = parent.config.stash.get(options_key, None)
    if opts is None or not opts.enabled:
        return None
    from .collect import collect_scenario_file

    return collect_scenario_file(file_path, parent)
