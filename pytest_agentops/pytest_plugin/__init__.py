"""The pytest plugin (entry point ``agentops``): options and their ini twins, the ``agent_chaos`` marker and
fixture, the header, the terminal summary, the JSON report, YAML scenario collection and pytest-xdist.

Computes nothing itself and imports only ``pytest_plugin.options`` when loaded: campaigns (``campaigns``),
YAML items (``collect``) and reports load when a test uses them, so an installed-but-unused plugin costs
next to nothing at start-up.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

from .options import CACHE_SEED, add_options, comparisons_key, options_key, resolve_options, results_key

if TYPE_CHECKING:
    from .campaigns import AgentChaos


def pytest_addoption(parser: pytest.Parser) -> None:
    add_options(parser)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "agent_chaos(trials=None, seed=None, profile=None, faults=None, confidence=None, concurrency=None): "
        "configure the agent_chaos fixture's campaigns for this test.",
    )
    opts = resolve_options(config)
    config.stash[options_key] = opts
    config.stash[results_key] = []
    config.stash[comparisons_key] = []
    if getattr(config, "cache", None) is not None and not hasattr(config, "workerinput"):
        config.cache.set(CACHE_SEED, opts.session_seed)


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


@pytest.fixture
def agent_chaos(request: pytest.FixtureRequest) -> AgentChaos:
    """Run agent chaos campaigns: ``agent_chaos.run(scenario).check()``."""
    from .campaigns import AgentChaos

    return AgentChaos(request)


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    results = config.stash.get(results_key, [])
    comparisons = config.stash.get(comparisons_key, [])
    if not (results or comparisons) or config.get_verbosity() < 0:
        return
    from ..report.terminal import campaign_table

    terminalreporter.section("agent chaos")
    for nodeid, result in results:
        terminalreporter.write_line(nodeid)
        for line in campaign_table(result):
            terminalreporter.write_line(line)
    from ..report.terminal import comparison_lines

    for nodeid, comparison in comparisons:
        terminalreporter.write_line(nodeid)
        for line in comparison_lines(comparison):
            terminalreporter.write_line(line)


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: Any) -> None:  # xdist controller: a worker's campaigns come home
    import json

    payload = getattr(node, "workeroutput", {}).get("agentops_campaigns")
    if payload:
        node.config.stash[results_key].extend((nodeid, campaign) for nodeid, campaign in json.loads(payload))
    payload = getattr(node, "workeroutput", {}).get("agentops_comparisons")
    if payload:
        node.config.stash[comparisons_key].extend((nodeid, c) for nodeid, c in json.loads(payload))


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    config = session.config
    opts = config.stash.get(options_key, None)
    results = config.stash.get(results_key, [])
    comparisons = config.stash.get(comparisons_key, [])
    workeroutput = getattr(config, "workeroutput", None)
    if workeroutput is not None:  # an xdist worker: hand the campaigns (as JSON data) to the controller
        import json

        if results:
            workeroutput["agentops_campaigns"] = json.dumps(
                [(nodeid, r.to_dict()) for nodeid, r in results], allow_nan=False)
        if comparisons:
            workeroutput["agentops_comparisons"] = json.dumps(
                [(nodeid, c.to_dict()) for nodeid, c in comparisons], allow_nan=False)
        return
    if opts is None or not opts.report:
        return
    from ..report.json_report import write_report

    write_report(config.rootpath / opts.report if not opts.report.startswith("/") else opts.report,
                 [r for _, r in results], comparisons=[c for _, c in comparisons])


def pytest_collect_file(file_path: Any, parent: pytest.Collector) -> pytest.Collector | None:
    """YAML scenario files become items with ``--agent-chaos`` (collect.py, imported only then)."""
    if file_path.suffix not in (".yaml", ".yml"):
        return None
    opts = parent.config.stash.get(options_key, None)
    if opts is None or not opts.enabled:
        return None
    from .collect import collect_scenario_file

    return collect_scenario_file(file_path, parent)
