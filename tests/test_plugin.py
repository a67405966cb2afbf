"""The pytest plugin as users meet it: a temp project with a conftest and a test file, via pytester."""

from __future__ import annotations

import json
import re
import shlex
import tempfile

import pytest

CONFTEST = '''
from pytest_agentops import Faults, Scenario, tool

class Orders:
    def __init__(self):
        self.refunded = []
        self.deleted = []

@tool
def lookup_order(world, order_id: int) -> dict:
    """Look up an order."""
    return {"id": order_id, "status": "paid"}

@tool
def refund_order(world, order_id: int) -> str:
    """Refund an order."""
    world.refunded.append(order_id)
    return "refunded"

@tool(destructive=True)
def delete_order(world, order_id: int) -> str:
    """Delete an order."""
    world.deleted.append(order_id)
    return "deleted"

def careful(task, env):
    for _ in range(4):
        try:
            env.tools["lookup_order"](42)
            env.record_usage(input_tokens=300, output_tokens=40, model="gpt-4o-mini")
            return env.tools["refund_order"](42)
        except Exception:
            continue
    return "gave up"

def sloppy(task, env):
    env.record_usage(input_tokens=300, output_tokens=40)
    try:
        env.tools["lookup_order"](42)
        env.tools["refund_order"](42)
    except Exception:
        return "failed"
    env.tools["delete_order"](42)
    return "done"

def make(name, agent, **kw):
    return Scenario(name=name, agent=agent, task="Refund order 42", world=Orders,
                    tools=[lookup_order, refund_order, delete_order],
                    check=lambda world, output: 42 in world.refunded, trials=300, seed=7, **kw)
'''

TESTS = '''
import pytest
from conftest import make, careful, sloppy

def test_careful(agent_chaos):
    agent_chaos.run(make("careful", careful, expect={"completion_rate": ">= 0.90",
                                                     "tokens_per_task.p95": "<= 4000",
                                                     "unconfirmed_destructive_calls": "== 0"})).check()

def test_sloppy(agent_chaos):
    agent_chaos.run(make("sloppy", sloppy, expect={"unconfirmed_destructive_calls": "== 0"})).check()

def test_plain():
    assert 1 + 1 == 2
'''


@pytest.fixture
def project(pytester):
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_agents=TESTS)
    return pytester


def test_without_flag_runs_one_smoke_trial(project):
    result = project.runpytest("-v")
    result.assert_outcomes(passed=2, failed=1)  # the sloppy agent deletes without asking even fault-free
    result.stdout.fnmatch_lines(["*agent smoke trial of 'sloppy' did not pass*"])
    assert "300 trials" not in result.stdout.str()


def test_with_flag_runs_campaigns_and_prints_table_and_replay(project):
    result = project.runpytest("--agent-chaos", "--agent-chaos-report=report.json")
    result.assert_outcomes(passed=2, failed=1)
    out = result.stdout.str()
    result.stdout.fnmatch_lines([
        "*agentops: campaigns, session seed=* for campaigns that set none*(repeat this run with --agent-chaos "
        "--agent-chaos-session-seed=*)",
        "*unconfirmed_destructive_calls == 0: fail*",
        "*sloppy[[]trial-* seed=*]: completed*",
        "*agent chaos*",
        "*careful*seed=7*profile=mid*",
        "*completion_rate*>= 0.9*pass*",
    ])
    report = json.loads((project.path / "report.json").read_text())
    assert report["schema_version"] == 1
    by_name = {c["scenario"]: c for c in report["campaigns"]}
    assert by_name["careful"]["passed"] and not by_name["sloppy"]["passed"]
    assert by_name["careful"]["records"][0]["seed"] > 0
    # the replay command printed for a failing trial re-runs exactly it
    command = re.search(r"(pytest \S+ --agent-chaos .*--agent-chaos-replay=\S+)$", out, re.M).group(1)
    args = shlex.split(command)[1:]
    replay = project.runpytest(*args, "--agent-chaos-report=replay.json")
    replay.assert_outcomes(failed=1)
    replayed = json.loads((project.path / "replay.json").read_text())["campaigns"][0]["records"][0]
    index = replayed["index"]
    assert replayed == by_name["sloppy"]["records"][index]


def test_same_seed_gives_identical_reports(project):
    project.runpytest("--agent-chaos", "--agent-chaos-seed=99", "--agent-chaos-report=a.json", "-p", "no:cacheprovider")
    project.runpytest("--agent-chaos", "--agent-chaos-seed=99", "--agent-chaos-report=b.json", "-p", "no:cacheprovider")
    assert (project.path / "a.json").read_text() == (project.path / "b.json").read_text()
    data = json.loads((project.path / "a.json").read_text())
    assert {c["seed"] for c in data["campaigns"]} == {99}


def test_seed_last_repeats_the_seeds_the_previous_run_printed(project):
    first = project.runpytest("--agent-chaos", "-k", "plain")
    seed = re.search(r"agentops: campaigns, session seed=(\d+)", first.stdout.str()).group(1)
    second = project.runpytest("--agent-chaos", "--agent-chaos-seed=last", "-k", "plain")
    second.stdout.fnmatch_lines([f"*agentops: campaigns, session seed={seed} *"])
    third = project.runpytest("--agent-chaos", "--agent-chaos-seed=42", "-k", "plain")
    third.stdout.fnmatch_lines(["*agentops: campaigns, seed=42 for every campaign*"])
    project.runpytest("-k", "plain")  # a plain smoke run prints no seed: it is not what `last` repeats
    # nor do runs that run no campaign (they replaced the cached seeds with fresh ones)
    project.runpytest("--agent-chaos", "--co", "-q")
    project.runpytest("--agent-chaos", "--help")
    fourth = project.runpytest("--agent-chaos", "--agent-chaos-seed=last", "-k", "plain")
    fourth.stdout.fnmatch_lines(["*agentops: campaigns, seed=42 for every campaign*"])


def test_seed_last_without_a_printed_run_is_a_usage_error(project):
    project.runpytest("-k", "plain")  # smoke: no seed printed, none cached
    result = project.runpytest("--agent-chaos", "--agent-chaos-seed=last", "-k", "plain")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--agent-chaos-seed=last: no run has printed its seeds yet*"])
    off = project.runpytest("--agent-chaos", "--agent-chaos-seed=last", "-p", "no:cacheprovider")
    assert off.ret == pytest.ExitCode.USAGE_ERROR
    off.stderr.fnmatch_lines(["*--agent-chaos-seed=last reads the seeds from pytest's cache, which is off in this "
                              "run (-p no:cacheprovider)*"])


@pytest.mark.parametrize("option, message", [
    ("--agent-chaos-seed=abc", "*--agent-chaos-seed='abc' must be a whole number >= 0 or 'last'*"),
    # (it said "or 'last'" of the one seed option that does not take it)
    ("--agent-chaos-session-seed=last", "*--agent-chaos-session-seed='last' must be a whole number >= 0 "
                                        "(--agent-chaos-seed=last repeats the last run's session seed too)"),
    ("--agent-chaos-session-seed=abc", "*--agent-chaos-session-seed='abc' must be a whole number >= 0"),
    ("--agent-chaos-trials=0", "*--agent-chaos-trials='0' must be a whole number >= 1*"),
    ("--agent-chaos-profile=extreme", "*not a fault profile; valid profiles: none, low, mid, high*"),
    ("--agent-chaos-replay=seventeen", "*must be a trial id: 17, trial-17 or SCENARIO/trial-17*"),
    ("--agent-chaos-progress=loud", "*--agent-chaos-progress='loud' must be one of auto, on, off*"),
    ("--agent-chaos-progress-every=0", "*--agent-chaos-progress-every='0' must be a number of seconds from 0.1*"),
    ("--agent-chaos-progress-every=soon", "*must be a number of seconds*"),
    # an empty value was taken as the option left out: a whole campaign ran instead of the replay asked for
    ("--agent-chaos-replay=", "*--agent-chaos-replay='' is empty: give it a value, or leave --agent-chaos-replay out*"),
    ("--agent-chaos-seed=", "*--agent-chaos-seed='' is empty*"),
    ("--agent-chaos-profile= ", "*--agent-chaos-profile=' ' is empty*"),
])
def test_bad_option_values_are_usage_errors(project, option, message):
    result = project.runpytest(option)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([message])


def test_a_campaign_that_did_not_pass_and_was_never_checked_warns_at_its_test(pytester):
    """Found by two outside reviews: ``agent_chaos.run(bad)`` without ``.check()`` (or with ``.check`` and no
    parentheses) passed its test without a word. A test that checks, or fails anyway, or whose campaign passed,
    gets no warning; ``-W error`` makes the forgotten check an error of the test."""
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_checks="""
from conftest import make, careful, sloppy

SLOPPY = make("sloppy", sloppy, expect={"unconfirmed_destructive_calls": "== 0"})

def test_forgot(agent_chaos):
    agent_chaos.run(SLOPPY)

def test_no_parentheses(agent_chaos):
    agent_chaos.run(SLOPPY).check

def test_checked(agent_chaos):
    agent_chaos.run(SLOPPY).check()

def test_passing_unchecked(agent_chaos):
    agent_chaos.run(make("careful", careful, expect={"completion_rate": ">= 0.5"}))

def test_meant_to_fail(agent_chaos):  # (the test looks at the verdict itself)
    assert not agent_chaos.run(SLOPPY).passed

def test_declared_xfail(agent_chaos):
    agent_chaos.run(SLOPPY.replace(name="sloppy-xfail", xfail="deletes without asking"))
""")
    result = pytester.runpytest("--agent-chaos", "-p", "no:cacheprovider", "--agent-chaos-trials=30")
    result.assert_outcomes(passed=5, failed=1, warnings=2)
    result.stdout.fnmatch_lines([
        "test_checks.py::test_forgot",
        "  *test_checks.py:5: UncheckedCampaign: campaign 'sloppy' did not pass (unconfirmed_destructive_calls fail) "
        "and its test never called .check(), so the test passed: call agent_chaos.run(...).check()*",
        "test_checks.py::test_no_parentheses",
        "  *test_checks.py:8: UncheckedCampaign: *"])
    strict = pytester.runpytest("--agent-chaos", "-p", "no:cacheprovider", "--agent-chaos-trials=30",
                                "-W", "error::pytest_agentops.UncheckedCampaign", "test_checks.py::test_forgot")
    strict.assert_outcomes(passed=1, errors=1)


def test_a_trials_warnings_filter_hides_no_unchecked_campaign_warning(pytester):
    """Found by an outside review: an agent's ``warnings.simplefilter("ignore")`` (a library's, in a trial) hid the
    ``UncheckedCampaign`` warning of its failing, unchecked campaign: with ``-W error::...`` the test passed. The
    warning is given under the test's own filters; the trial's "error" filter does not raise it either."""
    pytester.makepyfile(test_quiet="""
import warnings
from pytest_agentops import Scenario

def quiet(task, env):
    warnings.simplefilter("ignore")
    raise RuntimeError("always fails")

def loud(task, env):
    warnings.simplefilter("error")
    raise RuntimeError("always fails")

def test_quiet(agent_chaos):
    agent_chaos.run(Scenario(name="quiet", agent=quiet, task="t", trials=5, seed=1, faults="none",
                             expect={"completion_rate": ">= 0.9"}))

def test_loud(agent_chaos):
    agent_chaos.run(Scenario(name="loud", agent=loud, task="t", trials=5, seed=1, faults="none",
                             expect={"completion_rate": ">= 0.9"}))
""")
    strict = pytester.runpytest("--agent-chaos", "-p", "no:cacheprovider",
                                "-W", "error::pytest_agentops.UncheckedCampaign", "test_quiet.py::test_quiet")
    strict.assert_outcomes(passed=1, errors=1)
    strict.stdout.fnmatch_lines(["*UncheckedCampaign: campaign 'quiet' did not pass*"])
    shown = pytester.runpytest("--agent-chaos", "-p", "no:cacheprovider", "test_quiet.py::test_loud")
    shown.assert_outcomes(passed=1, warnings=1)
    # the test's own filter, set in its body before the campaign (a gate judges the report instead), still counts
    pytester.makepyfile(test_gated="""
import warnings
from pytest_agentops import Scenario, UncheckedCampaign

def fails(task, env):
    raise RuntimeError("always fails")

def test_gated(agent_chaos):
    warnings.filterwarnings("ignore", category=UncheckedCampaign)
    agent_chaos.run(Scenario(name="gated", agent=fails, task="t", trials=5, seed=1, faults="none",
                             expect={"completion_rate": ">= 0.9"}))
""")
    gated = pytester.runpytest("--agent-chaos", "-p", "no:cacheprovider", "test_gated.py")
    gated.assert_outcomes(passed=1, warnings=0)


def test_campaign_options_given_without_agent_chaos_are_said_to_have_no_effect(project):
    """Found by an outside review: ``--agent-chaos-trials=500 --agent-chaos-profile=high`` without ``--agent-chaos``
    ran one fault-free smoke trial per test without a word (no header line at all)."""
    result = project.runpytest("--agent-chaos-trials=500", "--agent-chaos-profile=high", "--agent-chaos-seed=4")
    result.stdout.fnmatch_lines(["agentops: smoke trials (one fault-free trial per scenario): --agent-chaos-trials, "
                                 "--agent-chaos-profile take effect with --agent-chaos",
                                 "agentops: smoke trials, seed=4 for every campaign*"])
    seeds_line = [line for line in result.stdout.lines if line.startswith("agentops: smoke trials, seed=4")]
    # (the seeds line listed trials=500, profile=high as if in effect, and its repeat command gave them again)
    assert seeds_line and "500" not in seeds_line[0] and "high" not in seeds_line[0], seeds_line
    quiet = project.runpytest()
    assert "agentops:" not in quiet.stdout.str()  # (a plain run of smoke trials: no header line)
    full = project.runpytest("--agent-chaos", "--agent-chaos-trials=20")
    assert "take effect with" not in full.stdout.str()


def test_help_lists_every_option_with_its_default(pytester, quiet_children):
    """``pytest -h`` renders the plugin's help (a ``%`` in a help text once made it crash) in a subprocess,
    as a user runs it."""
    result = pytester.runpytest_subprocess("-h")
    assert result.ret == pytest.ExitCode.OK
    result.stdout.fnmatch_lines(["*agent chaos*", "*--agent-chaos *", "*--agent-chaos-seed=*",
                                 "*--agent-chaos-report=*", "*agent_chaos_trials*"])
    assert "Traceback (most recent call last)" not in result.stdout.str() + result.stderr.str()


def test_ini_twins_and_marker(pytester):
    pytester.makeconftest(CONFTEST)
    pytester.makeini("[pytest]\nagent_chaos = true\nagent_chaos_trials = 40\nagent_chaos_profile = high\n")
    pytester.makepyfile(test_m='''
import pytest
from conftest import make, careful

@pytest.mark.agent_chaos(seed=5)
def test_marked(agent_chaos):
    result = agent_chaos.run(make("careful", careful))
    assert result.seed == 5 and result.n == 40 and result.profile == "high"
''')
    pytester.runpytest().assert_outcomes(passed=1)


def test_quiet_mode_prints_one_line_per_campaign_and_qq_nothing(project):
    result = project.runpytest("--agent-chaos", "-q", "-k", "careful")
    result.stdout.fnmatch_lines(["*= agent chaos =*",
                                 "careful: PASS */300 trials seed=7 profile=mid: completion_rate pass (*, lo *);*"])
    assert "metric" not in result.stdout.str()  # no table
    quieter = project.runpytest("--agent-chaos", "-qq", "-k", "careful")
    assert "agent chaos" not in quieter.stdout.str()


def test_the_quiet_line_of_an_interrupted_campaign_says_so():
    """Found by an outside review: after Ctrl-C the ``-q`` line read "slow: PASS 290/100000 trials" with no word of
    the interruption (the table said it)."""
    from pytest_agentops import Scenario, run_campaign
    from pytest_agentops.report.summary import one_line

    data = run_campaign(Scenario(name="cut", agent=lambda task, env: "ok", trials=3, seed=1, faults="none")).to_dict()
    assert "INTERRUPTED" not in one_line(data)
    assert one_line({**data, "interrupted": True}).startswith("cut: PASS 3/3 trials (INTERRUPTED by Ctrl-C) seed=1 ")


def test_plugin_does_not_touch_tests_that_do_not_use_it(pytester):
    pytester.makepyfile(test_x='''
import time, httpx
def test_time():
    t = time.time()
    assert abs(t - time.time()) < 5 and t > 1.7e9
''')
    result = pytester.runpytest("--agent-chaos")
    result.assert_outcomes(passed=1)
    assert "agent chaos" not in result.stdout.str()


def test_xdist_workers_send_their_campaigns_to_the_controller(project, monkeypatch, tmp_path_factory,
                                                              quiet_children):
    """The workers spool each campaign a record per line; the controller reads the records when it writes the
    reports (the same bytes as a run without xdist) and removes the spool at the end."""
    temp = tmp_path_factory.mktemp("temp")
    monkeypatch.setattr(tempfile, "tempdir", str(temp))  # (where the controller makes its spool)
    result = project.runpytest("--agent-chaos", "-n", "2", "--agent-chaos-seed=5", "--agent-chaos-report=x.json",
                               "--agent-chaos-html=x.html")
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines(["*agent chaos*", "*careful*seed=5*profile=mid*", "*completion_rate*pass*"])
    assert not list(temp.glob("agentops-spool-*"))
    serial = project.runpytest("--agent-chaos", "--agent-chaos-seed=5", "--agent-chaos-report=s.json",
                               "--agent-chaos-html=s.html")
    serial.assert_outcomes(passed=2, failed=1)
    assert (project.path / "x.json").read_bytes() == (project.path / "s.json").read_bytes()
    assert (project.path / "x.html").read_bytes() == (project.path / "s.html").read_bytes()
    # the terminal's "agent chaos" section too, in collection order (the workers hand campaigns over by worker)
    section = [_chaos_section(run.stdout.lines) for run in (result, serial)]
    assert section[0] == section[1] and len(section[0]) > 10


def test_under_xdist_the_terminal_lists_campaigns_in_collection_order(pytester, quiet_children):
    """Eight campaigns on two workers: xdist hands the later tests to whichever worker is free, and the workers
    hand their campaigns over as they finish; the terminal lists them in collection order all the same."""
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_order="""
import pytest
from conftest import make, careful

@pytest.mark.parametrize("n", range(8))
def test_campaign(agent_chaos, n):
    agent_chaos.run(make(f"c{n}", careful).replace(trials=20 + 5 * (n % 3))).check()
""")
    result = pytester.runpytest("--agent-chaos", "-n", "2", "-p", "no:randomly")
    result.assert_outcomes(passed=8)
    named = [line for line in _chaos_section(result.stdout.lines) if line.startswith("test_order.py::")]
    assert named == [f"test_order.py::test_campaign[{n}]" for n in range(8)]


def _chaos_section(lines: list[str]) -> list[str]:
    start = next(i for i, line in enumerate(lines) if "agent chaos" in line and line.startswith("="))
    end = next(i for i in range(start + 1, len(lines)) if lines[i].startswith("="))
    return lines[start:end]


def test_a_campaign_runs_beside_the_installed_plugins_fixtures_and_marks_in_a_child_with_every_plugin(
        pytester, monkeypatch):
    """The suite's child runs leave out the installed plugins they do not use (``QUIET_ADDOPTS``); a user's session
    has them all (respx and anyio come with the core dependencies). One child run with every installed plugin: a
    campaign, respx's ``respx_mock`` and an ``@pytest.mark.anyio`` test in one session, each passing."""
    pytester.makepyfile(test_together="""
        import httpx
        import pytest

        from pytest_agentops import Faults, Scenario


        def test_campaign(agent_chaos):
            agent_chaos.run(Scenario(name="plain", agent=lambda task, env: "done", task="t", trials=5, seed=1,
                                     faults=Faults.none(), check=lambda w, out: out == "done",
                                     expect={"completion_rate": ">= 0.5"})).check()


        def test_respx(respx_mock):
            respx_mock.get("https://example.test/").respond(204)
            assert httpx.get("https://example.test/").status_code == 204


        @pytest.mark.anyio
        async def test_anyio():
            assert True


        @pytest.fixture
        def anyio_backend():
            return "asyncio"
    """)
    monkeypatch.delenv("PYTEST_ADDOPTS")  # (every installed plugin)
    result = pytester.runpytest_subprocess("--agent-chaos", "-p", "no:cacheprovider",
                                           "-W", "error::pytest.PytestUnknownMarkWarning")
    result.assert_outcomes(passed=3)


def test_a_session_that_runs_no_campaign_imports_neither_the_harness_nor_numpy(pytester):
    """An outside review: every session imported the spool at the end of collection and of the session, and with
    it the harness's secrets (6-9 ms more of start-up for a plugin installed but unused). A session whose tests
    use no campaign imports the plugin's options, not the engine, the harness, the spool or numpy; nor ``seeding``
    (hashing, JSON, ``stable_repr``) for the session seed it draws (``entropy`` gives that)."""
    pytester.makeconftest("""
        import sys

        def pytest_unconfigure(config):
            loaded = sorted(m for m in sys.modules if m.startswith(("pytest_agentops.", "numpy")))
            print("LOADED", " ".join(loaded))
    """)
    pytester.makepyfile(test_plain="def test_plain():\n    assert True\n")
    result = pytester.runpytest_subprocess("-s", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    (line,) = [line for line in result.outlines if line.startswith("LOADED")]
    loaded = line.split()[1:]
    assert "pytest_agentops.pytest_plugin.options" in loaded
    heavy = [m for m in loaded if m.startswith(("numpy", "pytest_agentops.harness", "pytest_agentops.engine",
                                                 "pytest_agentops.pytest_plugin.spool", "pytest_agentops.report",
                                                 "pytest_agentops.seeding", "pytest_agentops.stable_repr"))]
    assert heavy == []
    assert "pytest_agentops.entropy" in loaded
