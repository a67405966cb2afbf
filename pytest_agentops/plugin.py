"""pytest glue: options, ini twins, the ``agent_chaos`` marker and fixture, header, summary, JSON report.

Computes nothing itself: campaigns run in ``runner``, verdicts in ``expect``, reports in ``report``.
Heavy modules are imported lazily, so an installed-but-unused plugin costs almost nothing at start-up.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from .result import CampaignResult
    from .scenario import Scenario

PROFILES = ("none", "low", "mid", "high")
_CACHE_SEED = "agentops/seed"


@dataclass(frozen=True, slots=True)
class ChaosOptions:
    """The run-level settings, resolved once per session from the command line and the ini file."""

    enabled: bool
    seed: int | None  # command line, else ini: wins over marker and scenario
    session_seed: int  # used when no seed is given anywhere
    trials: int | None
    profile: str | None
    report: str | None
    replay: tuple[str | None, int] | None  # (scenario name or None, trial index)
    concurrency: int | None = None  # trials run at once (results are still consumed in launch order)


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("agentops", "agent chaos campaigns (pytest-agentops)")
    group.addoption("--agent-chaos", action="store_true", default=None, dest="agent_chaos",
                    help="run full chaos campaigns (without it a chaos test runs one fault-free smoke trial).")
    group.addoption("--agent-chaos-seed", dest="agent_chaos_seed", metavar="SEED",
                    help="campaign seed: a whole number, or 'last' to reuse the previous run's seed.")
    group.addoption("--agent-chaos-trials", dest="agent_chaos_trials", metavar="N",
                    help="maximum trials per campaign (overrides scenarios and markers).")
    group.addoption("--agent-chaos-profile", dest="agent_chaos_profile", metavar="NAME",
                    help=f"fault profile: {', '.join(PROFILES)} (3%/8%/15% of tool calls fail for low/mid/high).")
    group.addoption("--agent-chaos-report", dest="agent_chaos_report", metavar="PATH",
                    help="write the JSON report of every campaign to PATH.")
    group.addoption("--agent-chaos-replay", dest="agent_chaos_replay", metavar="TRIAL_ID",
                    help="re-run only one trial: 17, trial-17 or SCENARIO/trial-17.")
    group.addoption("--agent-chaos-concurrency", dest="agent_chaos_concurrency", metavar="N",
                    help="trials run at once per campaign: async agents as tasks on one loop, sync agents in "
                         "N threads (verdicts do not depend on it).")
    parser.addini("agent_chaos", "run full chaos campaigns by default (like --agent-chaos)", type="bool",
                  default=False)
    parser.addini("agent_chaos_seed", "default campaign seed (scenario and marker seeds win over it)")
    parser.addini("agent_chaos_trials", "default maximum trials per campaign")
    parser.addini("agent_chaos_profile", "default fault profile for scenarios that set none")
    parser.addini("agent_chaos_report", "path of the JSON report")
    parser.addini("agent_chaos_replay", "re-run only this trial (like --agent-chaos-replay)")
    parser.addini("agent_chaos_concurrency", "default number of trials run at once per campaign")
    parser.addini("agentops_scenario_files", "glob patterns of YAML scenario files collected with --agent-chaos "
                  "(besides .yaml/.yml files under scenarios/ and files given on the command line)", type="args")


def parse_seed(value: str, source: str, cache: Any = None) -> int:
    """A seed setting: a whole number >= 0, or ``last`` (the previous run's seed from pytest's cache)."""
    text = str(value).strip()
    if text == "last":
        last = cache.get(_CACHE_SEED, None) if cache is not None else None
        if last is None:
            raise pytest.UsageError(f"{source}=last: no previous seed in the cache; give a number instead")
        return int(last)
    if not re.fullmatch(r"\d+", text):
        raise pytest.UsageError(f"{source}={value!r} must be a whole number >= 0 or 'last'")
    return int(text)


def parse_trials(value: str, source: str) -> int:
    text = str(value).strip()
    if not re.fullmatch(r"\d+", text) or int(text) < 1:
        raise pytest.UsageError(f"{source}={value!r} must be a whole number >= 1")
    return int(text)


def parse_concurrency(value: str, source: str) -> int:
    """How many trials run at once: a whole number >= 1."""
    text = str(value).strip()
    if not re.fullmatch(r"\d+", text) or int(text) < 1:
        raise pytest.UsageError(f"{source}={value!r} must be a whole number of trials run at once >= 1, e.g. 50")
    return int(text)


def parse_profile(value: str, source: str) -> str:
    text = str(value).strip()
    if text not in PROFILES:
        raise pytest.UsageError(f"{source}={value!r} is not a fault profile; valid profiles: {', '.join(PROFILES)}")
    return text


def parse_replay(value: str, source: str) -> tuple[str | None, int]:
    """``17``, ``trial-17``, ``refund/17``, ``refund/trial-17`` or ``refund[trial-17 ...]``."""
    text = str(value).strip()
    m = re.fullmatch(r"(?:(?P<name>[^/\[\]]+?)(?:/|\[))?(?:trial-)?(?P<index>\d+)(?:\s+seed=\d+)?\]?", text)
    if not m:
        raise pytest.UsageError(f"{source}={value!r} must be a trial id: 17, trial-17 or SCENARIO/trial-17")
    return m.group("name"), int(m.group("index"))


def _option(config: pytest.Config, name: str) -> str | None:
    value = config.getoption(name)
    return None if value is None or value == "" else str(value)


def _ini(config: pytest.Config, name: str) -> str | None:
    value = config.getini(name)
    return (str(value).strip() or None) if value else None


def resolve_options(config: pytest.Config) -> ChaosOptions:
    """Read every agent-chaos setting; a bad value is a UsageError naming the valid ones."""
    cache = getattr(config, "cache", None)
    seed = _setting(config, "agent_chaos_seed", lambda v, src: parse_seed(v, src, cache))
    if seed is not None:
        session_seed = seed
    else:
        from .runner import fresh_seed
        session_seed = fresh_seed()
    workerinput = getattr(config, "workerinput", None)
    if workerinput and "agentops_seed" in workerinput:  # xdist: every worker uses the controller's seed
        session_seed = int(workerinput["agentops_seed"])
    replay = _setting(config, "agent_chaos_replay", parse_replay)
    enabled = config.getoption("agent_chaos")
    return ChaosOptions(
        enabled=bool(enabled if enabled is not None else config.getini("agent_chaos")) or replay is not None,
        seed=seed, session_seed=session_seed,
        trials=_setting(config, "agent_chaos_trials", parse_trials),
        concurrency=_setting(config, "agent_chaos_concurrency", parse_concurrency),
        profile=_setting(config, "agent_chaos_profile", parse_profile),
        report=_setting(config, "agent_chaos_report", lambda v, src: v),
        replay=replay,
    )


def _setting(config: pytest.Config, name: str, parse: Any) -> Any:
    """A setting from the command line, else from its ini twin, parsed; None when neither is set."""
    cli = _option(config, name)
    if cli is not None:
        return parse(cli, "--" + name.replace("_", "-"))
    ini = _ini(config, name)
    return parse(ini, f"{name} (ini)") if ini is not None else None


options_key = pytest.StashKey[ChaosOptions]()
results_key = pytest.StashKey[list]()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "agent_chaos(trials=None, seed=None, profile=None, faults=None, confidence=None, concurrency=None): "
        "configure the agent_chaos fixture's campaigns for this test.",
    )
    opts = resolve_options(config)
    config.stash[options_key] = opts
    config.stash[results_key] = []
    if getattr(config, "cache", None) is not None and not hasattr(config, "workerinput"):
        config.cache.set(_CACHE_SEED, opts.session_seed)


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:  # xdist hook (called only when xdist is active)
    node.workerinput["agentops_seed"] = node.config.stash[options_key].session_seed


def pytest_report_header(config: pytest.Config) -> list[str] | None:
    opts = config.stash.get(options_key, None)
    if opts is None or not (opts.enabled or opts.seed is not None):
        return None
    mode = "campaigns" if opts.enabled else "smoke trials"
    parts = [f"agentops: {mode}, seed={opts.session_seed}"]
    if opts.trials:
        parts.append(f"trials={opts.trials}")
    if opts.profile:
        parts.append(f"profile={opts.profile}")
    if opts.concurrency:
        parts.append(f"concurrency={opts.concurrency}")
    if opts.replay:
        parts.append(f"replay={opts.replay[0] + '/' if opts.replay[0] else ''}trial-{opts.replay[1]}")
    return [", ".join(parts) + f" (repeat with --agent-chaos-seed={opts.session_seed})"]


class AgentChaos:
    """The ``agent_chaos`` fixture: runs campaigns with this test's settings and records their results."""

    def __init__(self, request: pytest.FixtureRequest):
        self._request = request
        self._config = request.config
        self.options: ChaosOptions = request.config.stash[options_key]
        marker = request.node.get_closest_marker("agent_chaos")
        self.marker_kwargs: dict[str, Any] = dict(marker.kwargs) if marker else {}
        unknown = set(self.marker_kwargs) - {"trials", "seed", "profile", "faults", "confidence", "concurrency"}
        if unknown:
            raise pytest.UsageError(f"@pytest.mark.agent_chaos: unknown argument(s) {sorted(unknown)}; valid: "
                                    "trials, seed, profile, faults, confidence, concurrency")
        self.results: list[CampaignResult] = []

    @property
    def enabled(self) -> bool:
        """Whether full campaigns run (``--agent-chaos``); otherwise one fault-free smoke trial."""
        return self.options.enabled

    def _seed(self, scenario: Scenario) -> int:
        return scenario_seed(self.options, self.marker_kwargs, scenario)

    def replay_command(self, seed: int, profile: str | None) -> str:
        return replay_command(self._request.node.nodeid, seed, profile, self.options)

    def run(self, scenario: Scenario, **overrides: Any) -> CampaignResult:
        """Run ``scenario``'s campaign (smoke trial without ``--agent-chaos``) and record the result."""
        result = run_scenario(self._config, self._request.node, scenario, self.marker_kwargs, **overrides)
        self.results.append(result)
        return result


def scenario_seed(options: ChaosOptions, marker_kwargs: dict[str, Any], scenario: Scenario) -> int:
    """The campaign seed: command line/ini, else the marker's, else the scenario's, else the session's."""
    for candidate in (options.seed, marker_kwargs.get("seed"), scenario.seed):
        if candidate is not None:
            return int(candidate)
    return options.session_seed


def replay_command(nodeid: str, seed: int, profile: str | None, options: ChaosOptions,
                   scenario: str | None = None) -> str:
    """The copy-paste command (a template with ``{index}``) that re-runs one trial; shell-quoted, so that
    node ids and scenario names with spaces work."""

    def literal(text: str) -> str:  # shell-quoted, and braces kept literal through str.format
        return shlex.quote(text).replace("{", "{{").replace("}", "}}")

    if scenario is None:
        replay = "--agent-chaos-replay={scenario}/trial-{index}"
    else:  # quote with a digit in place of the index, then put the placeholder there (inside the quotes)
        quoted = literal(f"--agent-chaos-replay={scenario}/trial-0")
        replay = quoted[:-2] + "{index}'" if quoted.endswith("0'") else quoted[:-1] + "{index}"
    parts = ["pytest", literal(nodeid), "--agent-chaos", f"--agent-chaos-seed={seed}", replay]
    if profile and options.profile:
        parts.append(literal(f"--agent-chaos-profile={profile}"))
    return " ".join(parts)


def run_scenario(config: pytest.Config, node: pytest.Item, scenario: Scenario,
                 marker_kwargs: dict[str, Any] | None = None, **overrides: Any) -> CampaignResult:
    """Run ``scenario``'s campaign for a test item with the run's settings, and record the result.

    The one path of the ``agent_chaos`` fixture and of YAML scenario items: the same seed, trials and
    profile precedence (call > command line/ini > marker > scenario), the same replay command, and the
    result in ``config.stash[results_key]`` for the terminal table and the JSON report.
    """
    from .runner import run_campaign

    o, m = config.stash[options_key], marker_kwargs or {}
    seed = overrides.pop("seed", None)
    seed = scenario_seed(o, m, scenario) if seed is None else seed
    replay = None
    smoke = not o.enabled
    if o.replay is not None:
        name, index = o.replay
        if name is None or name == scenario.name:
            replay = index
        else:
            smoke = True
    trials = overrides.pop("trials", None) or o.trials or m.get("trials")
    profile = overrides.pop("profile", None) or o.profile or m.get("profile")
    faults = overrides.pop("faults", None) or m.get("faults")
    if o.profile and faults is not None:
        faults = faults.with_profile(o.profile)
    result = run_campaign(
        scenario, seed=seed, trials=trials, faults=faults, profile=profile,
        confidence=overrides.pop("confidence", None) or m.get("confidence"),
        concurrency=overrides.pop("concurrency", None) or o.concurrency or m.get("concurrency"),
        replay=replay, smoke=smoke and replay is None, **overrides,
        replay_command=replay_command(node.nodeid, seed, profile, o, scenario.name),
    )
    config.stash[results_key].append((node.nodeid, result))
    for v in result.verdicts:
        node.user_properties.append(
            (f"agentops:{result.scenario}:{v.key}", f"{v.verdict} estimate={v.estimate} bound={v.bound}"))
    return result


@pytest.fixture
def agent_chaos(request: pytest.FixtureRequest) -> AgentChaos:
    """Run agent chaos campaigns: ``agent_chaos.run(scenario).check()``."""
    return AgentChaos(request)


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    results = config.stash.get(results_key, [])
    if not results or config.get_verbosity() < 0:
        return
    from .report.terminal import campaign_table

    terminalreporter.section("agent chaos")
    for nodeid, result in results:
        terminalreporter.write_line(nodeid)
        for line in campaign_table(result):
            terminalreporter.write_line(line)


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: Any) -> None:  # xdist controller: a worker's campaigns come home
    import json

    payload = getattr(node, "workeroutput", {}).get("agentops_campaigns")
    if payload:
        node.config.stash[results_key].extend((nodeid, campaign) for nodeid, campaign in json.loads(payload))


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    config = session.config
    opts = config.stash.get(options_key, None)
    results = config.stash.get(results_key, [])
    workeroutput = getattr(config, "workeroutput", None)
    if workeroutput is not None:  # an xdist worker: hand the campaigns (as JSON data) to the controller
        if results:
            import json

            workeroutput["agentops_campaigns"] = json.dumps(
                [(nodeid, r.to_dict()) for nodeid, r in results], allow_nan=False)
        return
    if opts is None or not opts.report:
        return
    from .report.json_report import write_report

    write_report(config.rootpath / opts.report if not opts.report.startswith("/") else opts.report,
                 [r for _, r in results])


def pytest_collect_file(file_path: Any, parent: pytest.Collector) -> pytest.Collector | None:
    """YAML scenario files become items with ``--agent-chaos`` (collect.py, imported only then)."""
    if file_path.suffix not in (".yaml", ".yml"):
        return None
    opts = parent.config.stash.get(options_key, None)
    if opts is None or not opts.enabled:
        return None
    from .collect import collect_scenario_file

    return collect_scenario_file(file_path, parent)
