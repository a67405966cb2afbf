"""A campaign is hermetic by default: an HTTP request of the agent or its tools to a host the scenario did not
declare fails with a connection error naming the host and the trial, through httpx and httpx2, sync and
async; the record, the JSON report and the table list the hosts refused; ``allow_hosts`` (exact or
``*.domain``) and ``network: allow`` let requests through."""

from __future__ import annotations

import http.server
import json
import threading
from typing import Any

import httpx
import pytest

from pytest_agentops import Faults, Scenario, run_campaign
from pytest_agentops.errors import ConfigError
from pytest_agentops.scenario_file import load_scenario_text

from client_agents import httpx2

BLOCKED = "api.example.invalid"


@pytest.fixture(scope="module")
def loopback():
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            body = b'{"real": true}'
            self.send_response(200)
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()
    thread.join()


def guarded(agent: Any, **kwargs: Any) -> Scenario:
    settings: dict[str, Any] = dict(name="hermetic", agent=agent, task="t", trials=2, seed=4, faults=Faults())
    settings.update(kwargs)
    return Scenario(**settings)


def sync_get(module: Any) -> Any:
    def agent(task: str, env: Any) -> str:
        try:
            module.get(f"https://{BLOCKED}/v1/things")
        except module.ConnectError as exc:
            return str(exc)
        return "reached"
    return agent


def async_get(module: Any) -> Any:
    async def agent(task: str, env: Any) -> str:
        async with module.AsyncClient() as client:
            try:
                await client.get(f"https://{BLOCKED}/v1/things")
            except module.ConnectError as exc:
                return str(exc)
        return "reached"
    return agent


@pytest.mark.parametrize("make", [sync_get, async_get], ids=["sync", "async"])
@pytest.mark.parametrize("module", [httpx, httpx2], ids=["httpx", "httpx2"])
def test_an_undeclared_host_fails_with_a_connection_error_naming_host_and_trial(module, make):
    result = run_campaign(guarded(make(module)))
    for record in result.records:
        assert f"network access to '{BLOCKED}' blocked in hermetic[{record.id} seed={record.seed}]" in record.output
        assert record.extra["blocked_hosts"] == [BLOCKED]
        assert [(e.kind, e.name, e.outcome) for e in record.trace if e.kind == "network"] == \
            [("network", BLOCKED, "blocked")]
    assert result.to_dict()["blocked_hosts"] == [BLOCKED]


def test_declared_hosts_exact_or_by_domain_pass_and_network_allow_opts_out(loopback):
    seen: list[Any] = []
    client = httpx.Client()  # one for every trial (a client loads the CA bundle when it is made)

    def agent(task: str, env: Any) -> str:
        seen.append(client.get(loopback).json())
        return "done"

    for settings in ({"allow_hosts": ["127.0.0.1"]}, {"network": "allow"}):
        seen.clear()
        result = run_campaign(guarded(agent, **settings))
        assert [r.outcome for r in result.records] == ["completed"] * 2 and seen == [{"real": True}] * 2
        assert "blocked_hosts" not in result.to_dict()
    refused = run_campaign(guarded(agent, allow_hosts=["*.example.com"]))
    assert {r.outcome for r in refused.records} == {"error"}
    assert refused.records[0].extra["blocked_hosts"] == ["127.0.0.1"]


def test_requests_outside_trials_are_not_the_guards_business(loopback):
    """The test's own requests while a campaign holds the interception go through."""
    seen = []

    def agent(task: str, env: Any) -> str:
        thread = threading.Thread(target=lambda: seen.append(httpx.get(loopback).json()))  # no trial context
        thread.start()
        thread.join()
        return "done"

    result = run_campaign(guarded(agent, trials=1))
    assert result.records[0].outcome == "completed" and seen == [{"real": True}]


def test_allow_hosts_are_host_names():
    assert Scenario(name="s", agent=lambda t, e: 1, allow_hosts=["API.Example.com", "*.internal", "10.0.0.1"]
                    ).allow_hosts == ("api.example.com", "*.internal", "10.0.0.1")
    for bad in (["https://api.example.com"], ["api.example.com/v1"], ["host:8080"], "api.example.com"):
        with pytest.raises(ConfigError, match="allow_hosts"):
            Scenario(name="s", agent=lambda t, e: 1, allow_hosts=bad)
    with pytest.raises(ConfigError, match="network='open' must be one of deny, allow"):
        Scenario(name="s", agent=lambda t, e: 1, network="open")


def test_scenario_files_declare_hosts_and_opt_out():
    (scenario,) = load_scenario_text("name: s\nagent: scenario_support:careful\nallow_hosts: [api.shipping.test, "
                                     "'*.internal']\nnetwork: deny\n")
    assert scenario.allow_hosts == ("api.shipping.test", "*.internal") and scenario.network == "deny"
    (opted,) = load_scenario_text("name: s\nagent: scenario_support:careful\nnetwork: allow\n")
    assert opted.network == "allow"


def test_blocked_hosts_in_the_table_and_the_json_report(pytester):
    pytester.makepyfile(test_leaky="""
        import httpx
        from pytest_agentops import Scenario

        def agent(task, env):
            try:
                httpx.get("https://telemetry.example.invalid/ping")
            except httpx.ConnectError:
                pass
            return "done"

        def test_leaky(agent_chaos):
            agent_chaos.run(Scenario(name="leaky", agent=agent, task="t", trials=3, seed=1)).check()
    """)
    result = pytester.runpytest("--agent-chaos", "--agent-chaos-report=report.json")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*network: blocked requests to telemetry.example.invalid (declare them in "
                                 "allow_hosts, or set network: allow)"])
    report = json.loads((pytester.path / "report.json").read_text())
    assert report["campaigns"][0]["blocked_hosts"] == ["telemetry.example.invalid"]
    assert report["campaigns"][0]["records"][0]["extra"]["blocked_hosts"] == ["telemetry.example.invalid"]
