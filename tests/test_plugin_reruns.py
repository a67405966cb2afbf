"""A test run again in the same session (pytest-rerunfailures, a ``flaky`` marker): the report, the summary table
and the JUnit properties keep the campaigns of the attempt that counts, not one copy per attempt.

The re-runs come from a conftest that does what pytest-rerunfailures does (``runtestprotocol`` again for the same
item, the failed attempt's reports logged as ``rerun``), so the suite does not load that plugin into every run."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import pytest

pytest_plugins = ["pytester"]

RERUNS = '''
import pytest
from _pytest.runner import runtestprotocol

@pytest.hookimpl(tryfirst=True)
def pytest_runtest_protocol(item, nextitem):
    """Up to two re-runs of a failed test, as pytest-rerunfailures runs them."""
    for attempt in range(3):
        item.ihook.pytest_runtest_logstart(nodeid=item.nodeid, location=item.location)
        reports = runtestprotocol(item, nextitem=nextitem, log=False)
        again = attempt < 2 and any(r.failed for r in reports)
        for report in reports:
            if again and report.failed:
                report.outcome = "rerun"
            item.ihook.pytest_runtest_logreport(report=report)
        item.ihook.pytest_runtest_logfinish(nodeid=item.nodeid, location=item.location)
        if not again:
            return True
'''

TESTS = '''
import itertools
from pytest_agentops import Scenario, tool

@tool
def lookup(world, key: str) -> str:
    return "v"

def agent(task, env):
    return env.tools["lookup"]("k")

attempts = itertools.count(1)

def test_flaky(agent_chaos):
    attempt = next(attempts)
    # each attempt runs a campaign of its own size: the report tells the attempts apart
    agent_chaos.run(Scenario(name="flaky", agent=agent, task="t", tools=[lookup], trials=4 + attempt, seed=1))
    assert attempt == 3, f"attempt {attempt} fails"

def test_steady(agent_chaos):
    agent_chaos.run(Scenario(name="steady", agent=agent, task="t", tools=[lookup], trials=4, seed=1))
'''


@pytest.fixture
def project(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makeconftest(RERUNS)
    pytester.makepyfile(test_reruns=TESTS)
    return pytester


@pytest.mark.parametrize("workers", [[], ["-n", "2"]], ids=["in-process", "xdist"])
def test_a_rerun_test_reports_the_campaigns_of_its_last_attempt_once(project, workers, quiet_children):
    result = project.runpytest("-q", "--agent-chaos", "--agent-chaos-report=r.json", "--junitxml=j.xml", *workers)
    assert result.parseoutcomes() == {"passed": 2, "rerun": 2}
    report = json.loads((project.path / "r.json").read_text(encoding="utf-8"))
    campaigns = sorted((c["nodeid"], c["scenario"], c["trials"]) for c in report["campaigns"])
    assert campaigns == [("test_reruns.py::test_flaky", "flaky", 7), ("test_reruns.py::test_steady", "steady", 4)]
    assert report["session"]["missing"] == []
    table = [line for line in result.outlines if line.startswith(("flaky:", "steady:"))]
    assert len(table) == 2 and "7/7 trials" in table[0] + table[1]
    # JUnit XML has a test case per attempt, each with the properties of its own attempt's campaign only
    junit = ET.parse(project.path / "j.xml").getroot()
    attempts = [[p.get("value") for p in case.iter("property") if p.get("name") == "agentops:flaky:campaign"]
                for case in junit.iter("testcase") if case.get("name") == "test_flaky"]
    assert [len(a) for a in attempts] == [1, 1, 1]
    assert [a[0].split()[2] for a in attempts] == ["trials=5/5", "trials=6/6", "trials=7/7"]


def test_a_node_id_collected_twice_is_not_a_rerun(pytester):
    """``pytest --keep-duplicates t.py t.py`` runs two items of one node id: the second was taken for a re-run of
    the first, whose campaign then left the report."""
    pytester.makepyfile(test_dup='''
        import itertools
        from pytest_agentops import Scenario

        runs = itertools.count(1)

        def test_one(agent_chaos):
            n = next(runs)
            agent_chaos.run(Scenario(name=f"run{n}", agent=lambda task, env: "ok", trials=3 + n, seed=1))
    ''')
    result = pytester.runpytest("-q", "--agent-chaos", "--keep-duplicates", "--agent-chaos-report=r.json",
                                "test_dup.py", "test_dup.py")
    result.assert_outcomes(passed=2)
    report = json.loads((pytester.path / "r.json").read_text(encoding="utf-8"))
    assert sorted((c["scenario"], c["trials"]) for c in report["campaigns"]) == [("run1", 4), ("run2", 5)]
