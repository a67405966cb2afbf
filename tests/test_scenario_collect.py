"""YAML scenario files as pytest items (through pytester): collected only with --agent-chaos, one item per
scenario named after it, run through the same path as the ``agent_chaos`` fixture (same JSON report for
the same seed), strict xfail, replay commands, ini patterns, duplicate names across files."""

from __future__ import annotations

import json
import re
import shlex

import pytest

MODULE = '''
from pytest_agentops import tool

class World:
    def __init__(self):
        self.refunded = []
        self.deleted = []

@tool
def lookup(world, order_id: int) -> dict:
    """Look up an order."""
    return {"id": order_id, "status": "paid"}

@tool(side_effect=True)
def refund(world, order_id: int) -> str:
    """Refund an order."""
    world.refunded.append(order_id)
    return "refunded"

@tool(destructive=True)
def delete(world, order_id: int) -> str:
    """Delete an order."""
    world.deleted.append(order_id)
    return "deleted"

def careful(task, env):
    for _ in range(4):
        try:
            env.tools["lookup"](42)
            env.record_usage(input_tokens=300, output_tokens=40, model="gpt-4o-mini")
            return env.tools["refund"](42)
        except Exception:
            continue
    return "gave up"

def sloppy(task, env):
    env.record_usage(input_tokens=300, output_tokens=40)
    try:
        env.tools["lookup"](42)
        env.tools["refund"](42)
    except Exception:
        return "failed"
    env.tools["delete"](42)
    return "done"

def refunded(world, output):
    return 42 in world.refunded
'''

REFUND = '''\
name: refund
agent: chaosmod:careful
task: Refund order 42
world: chaosmod:World
tools: [chaosmod:lookup, chaosmod:refund, chaosmod:delete]
check: chaosmod:refunded
faults:
  profile: high
  per_tool: {refund: 0.3}
expect:
  completion_rate: ">= 0.80"
  tokens_per_task.p95: "<= 4000"
trials: 120
seed: 11
'''

PYTHON_REFUND = '''
from chaosmod import World, careful, delete, lookup, refund, refunded
from pytest_agentops import Faults, Scenario

def test_refund(agent_chaos):
    agent_chaos.run(Scenario(
        name="refund", agent=careful, task="Refund order 42", world=World, tools=[lookup, refund, delete],
        check=refunded, faults=Faults.profile("high", per_tool={"refund": 0.3}),
        expect={"completion_rate": ">= 0.80", "tokens_per_task.p95": "<= 4000"}, trials=120, seed=11)).check()
'''

SLOPPY = '''\
- name: sloppy deletes
  agent: chaosmod:sloppy
  task: Refund order 42
  world: chaosmod:World
  tools: [chaosmod:lookup, chaosmod:refund, chaosmod:delete]
  check: chaosmod:refunded
  expect: {unconfirmed_destructive_calls: "== 0"}
  trials: 40
  seed: 3
  xfail: the sloppy agent deletes without asking
- name: sloppy plain
  agent: chaosmod:sloppy
  task: Refund order 42
  world: chaosmod:World
  tools: [chaosmod:lookup, chaosmod:refund, chaosmod:delete]
  check: chaosmod:refunded
  expect: {unconfirmed_destructive_calls: "== 0"}
  trials: 40
  seed: 3
'''


@pytest.fixture
def project(pytester):
    pytester.makepyfile(chaosmod=MODULE)
    pytester.syspathinsert()
    pytester.mkdir("scenarios")
    (pytester.path / "scenarios" / "refund.yaml").write_text(REFUND)
    pytester.makepyfile(test_python_refund=PYTHON_REFUND)
    return pytester


def test_yaml_and_python_scenarios_give_identical_campaigns(project):
    yaml_run = project.runpytest("--agent-chaos", "scenarios", "-v", "--agent-chaos-report=yaml.json")
    yaml_run.assert_outcomes(passed=1)
    yaml_run.stdout.fnmatch_lines(["scenarios/refund.yaml::refund PASSED*", "*agent chaos*",
                                   "scenarios/refund.yaml::refund", "refund  seed=11  profile=high*",
                                   "*completion_rate*>= 0.8*pass*"])
    python_run = project.runpytest("--agent-chaos", "test_python_refund.py", "--agent-chaos-report=py.json")
    python_run.assert_outcomes(passed=1)
    from_yaml = json.loads((project.path / "yaml.json").read_text())
    from_python = json.loads((project.path / "py.json").read_text())
    # the same campaign, named by its test: the YAML item or the Python test
    assert [c.pop("nodeid") for c in from_yaml["campaigns"]] == ["scenarios/refund.yaml::refund"]
    assert [c.pop("nodeid") for c in from_python["campaigns"]] == ["test_python_refund.py::test_refund"]
    assert from_yaml.pop("session")["expected"] == ["scenarios/refund.yaml::refund"]
    assert from_python.pop("session")["expected"] == ["test_python_refund.py::test_refund"]
    assert from_yaml == from_python
    (campaign,) = from_yaml["campaigns"]
    assert campaign["scenario"] == "refund" and campaign["seed"] == 11 and campaign["trials"] > 1


def test_without_the_flag_yaml_files_are_not_collected(project):
    result = project.runpytest("scenarios")
    assert result.ret == pytest.ExitCode.NO_TESTS_COLLECTED
    everything = project.runpytest("-v")
    everything.assert_outcomes(passed=1)  # the Python test's smoke trial only
    assert "refund.yaml" not in everything.stdout.str()


@pytest.mark.parametrize("target", ["scenarios/refund.yaml", "scenarios/refund.yaml::refund"])
def test_a_scenario_file_named_without_the_flag_is_an_error_that_says_how_to_run_it(project, target):
    result = project.runpytest(target)
    # a collection error (with "::name", pytest adds its own "found no collectors"), not a green "no tests"
    assert result.ret in (pytest.ExitCode.INTERRUPTED, pytest.ExitCode.USAGE_ERROR)
    result.stdout.fnmatch_lines(["*scenarios/refund.yaml: a scenario file runs only with --agent-chaos (pytest "
                                 "--agent-chaos scenarios/refund.yaml)*"])
    assert "Traceback" not in result.stdout.str()
    # a YAML file that is no scenario file (another plugin's) is left alone: pytest's own "not found"
    (project.path / "other.yaml").write_text("test_name: x\nstages: []\n")
    other = project.runpytest("other.yaml")
    assert other.ret == pytest.ExitCode.USAGE_ERROR and "agent-chaos" not in other.stdout.str() + other.stderr.str()
    # and so is one another plugin collects, even one with name: and agent: (a review of the first version)
    (project.path / "conftest.py").write_text(
        "import pytest\n"
        "class Check(pytest.Item):\n"
        "    def runtest(self):\n"
        "        pass\n"
        "class CheckFile(pytest.File):\n"
        "    def collect(self):\n"
        "        yield Check.from_parent(self, name='check')\n"
        "def pytest_collect_file(file_path, parent):\n"
        "    if file_path.name.startswith('check_'):\n"
        "        return CheckFile.from_parent(parent, path=file_path)\n")
    (project.path / "check_pool.yaml").write_text("name: pool\nagent: the-agent-pool\n")
    theirs = project.runpytest("check_pool.yaml")
    theirs.assert_outcomes(passed=1)


def test_the_older_harness_spelling_is_warned_of_at_its_yaml_line_and_w_error_is_a_clean_collection_error(project):
    """Found by an outside review: the deprecation of ``harness:`` was shown at a line of the plugin
    (``scenario_file/load.py:71``), and under ``-W error`` it was a collection error with a traceback through the
    plugin's frames."""
    old = REFUND.replace("trials:", "harness: {enforce: true}\ntrials:", 1)
    (project.path / "scenarios" / "refund.yaml").write_text(old)
    result = project.runpytest("--agent-chaos", "scenarios", "-p", "no:cacheprovider")
    line = old.splitlines().index("harness: {enforce: true}") + 1
    result.stdout.fnmatch_lines([f"*scenarios/refund.yaml:{line}: DeprecationWarning: *'harness:' is deprecated*"])
    strict = project.runpytest("--agent-chaos", "scenarios", "-p", "no:cacheprovider", "-W", "error")
    assert strict.ret == pytest.ExitCode.INTERRUPTED and "Traceback" not in strict.stdout.str()
    strict.stdout.fnmatch_lines([f"scenarios/refund.yaml:{line}: 'harness:' is deprecated*"])


def test_a_setting_that_fails_at_run_time_is_shown_at_its_key(pytester):
    """An outside review: ``state: "sqlite:/nonexistent/dir/x.db"`` (found only when the store opens) was shown at
    ``file:1:1``, the scenario's start, not at the key."""
    pytester.makepyfile(quietmod="def agent(task, env):\n    return 'ok'\n")
    pytester.syspathinsert()
    pytester.mkdir("scenarios")
    (pytester.path / "scenarios" / "s.yaml").write_text(
        "# a store in a directory that does not exist\nname: store\nagent: quietmod:agent\ntask: t\ntrials: 2\n"
        "seed: 1\nfaults: {profile: none}\nstate: 'sqlite:/nonexistent/dir/x.db'\n", encoding="utf-8")
    result = pytester.runpytest("--agent-chaos", "scenarios", "-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["scenarios/s.yaml:8:1: scenario 'store': state='sqlite:/nonexistent/dir/x.db'*"])
    # a key merged in from another item's anchor is shown at the item that merged it, not the other item's line
    (pytester.path / "scenarios" / "s.yaml").write_text(
        "- &base\n  name: first\n  agent: quietmod:agent\n  task: t\n  trials: 2\n  seed: 1\n"
        "  faults: {profile: none}\n  state: 'sqlite:/nonexistent/dir/x.db'\n- <<: *base\n  name: second\n",
        encoding="utf-8")
    result = pytester.runpytest("--agent-chaos", "scenarios", "-p", "no:cacheprovider")
    result.assert_outcomes(failed=2)
    result.stdout.fnmatch_lines(["scenarios/s.yaml:8:3: scenario 'first': state=*",
                                 "scenarios/s.yaml:9:3: scenario 'second': state=*"])


def test_what_a_yaml_scenario_changed_process_wide_is_warned_of_at_its_yaml_line(pytester):
    """A review: the ``ProcessStateChanged`` warning of a YAML scenario item was shown in pytest's runner
    (``_pytest/runner.py:184``), where no ``filterwarnings`` rule of the user's could name it."""
    pytester.makepyfile(meddlemod="import socket\n\ndef meddler(task, env):\n    socket.setdefaulttimeout(5)\n"
                                  "    return 'ok'\n")
    pytester.syspathinsert()
    pytester.mkdir("scenarios")
    (pytester.path / "scenarios" / "m.yaml").write_text("# a scenario that changes the default socket timeout\n"
                                                        "name: meddler\nagent: meddlemod:meddler\ntask: t\n"
                                                        "trials: 3\nseed: 1\nfaults: {profile: none}\n")
    result = pytester.runpytest("--agent-chaos", "scenarios", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, warnings=1)
    result.stdout.fnmatch_lines(["*scenarios/m.yaml:2: ProcessStateChanged: the campaign's trials changed "
                                 "process-wide state, put back at its end: the default socket timeout*"])


def test_an_unused_setting_of_a_yaml_scenario_is_warned_at_its_line_and_an_xfail_does_not_absorb_it(pytester):
    """A review: the ``UnusedSetting`` warning of a YAML item landed in pytest's entry point (``pytest/__main__.py``,
    xdist's ``remote.py``); under ``-W error`` an ``xfail:`` scenario took the error as its expected failure (green,
    no campaign run) and a plain one showed ~1,000 lines of frames."""
    pytester.makepyfile(quietmod="def agent(task, env):\n    return 'ok'\n")
    pytester.syspathinsert()
    pytester.mkdir("scenarios")
    (pytester.path / "scenarios" / "u.yaml").write_text(
        "# scenarios whose latency_s is unused\n- name: unused\n  agent: quietmod:agent\n  task: t\n  trials: 3\n"
        "  seed: 1\n  faults: {profile: none, latency_s: 5}\n- name: unused xfail\n  agent: quietmod:agent\n"
        "  task: t\n  trials: 3\n  seed: 1\n  faults: {profile: none, latency_s: 5}\n  xfail: expected to fail\n",
        encoding="utf-8")
    result = pytester.runpytest("--agent-chaos", "scenarios/u.yaml::unused", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, warnings=1)
    result.stdout.fnmatch_lines(["*scenarios/u.yaml:2: UnusedSetting: scenario 'unused': latency_s=5: latency is 0*"])
    strict = pytester.runpytest("--agent-chaos", "scenarios", "-p", "no:cacheprovider",
                                "-W", "error::pytest_agentops.UnusedSetting")
    strict.assert_outcomes(failed=2)
    strict.stdout.fnmatch_lines(["*scenarios/u.yaml:2:*: scenario 'unused': UnusedSetting: scenario 'unused': "
                                 "latency_s=5*", "*scenarios/u.yaml:8:*: scenario 'unused xfail': UnusedSetting*"])
    assert len(strict.stdout.lines) < 80, strict.stdout.str()


def test_a_profile_from_the_command_line_that_zeroes_a_rate_leaves_no_unused_setting_warning(pytester):
    """A review: ``--agent-chaos-profile=none`` on a scenario with ``latency_s=5`` warned at the user's line of a
    setting the command line had turned off (and failed a test under ``filterwarnings = error``)."""
    pytester.makepyfile(test_p="""
        from pytest_agentops import Faults, Scenario

        def test_p(agent_chaos):
            agent_chaos.run(Scenario(name="p", agent=lambda task, env: "ok", trials=2, seed=1,
                                     faults=Faults.profile("mid", latency_s=5, crash_steps=2)))
    """)
    result = pytester.runpytest("--agent-chaos", "--agent-chaos-profile=none", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, warnings=1)  # (crash_steps without a crash: unused whatever the profile)
    result.stdout.fnmatch_lines(["*test_p.py:4: UnusedSetting: scenario 'p': crash_steps=[[]2, 2]: crash is 0, no "
                                 "trial crashes"])


def test_each_scenario_is_an_item_named_after_it_with_its_location(project):
    (project.path / "scenarios" / "sloppy.yaml").write_text(SLOPPY)
    recorder = project.inline_run("--agent-chaos", "--collect-only", "scenarios")
    items = {call.item.name: call.item for call in recorder.getcalls("pytest_itemcollected")}
    assert sorted(items) == ["refund", "sloppy deletes", "sloppy plain"]
    assert items["sloppy plain"].nodeid == "scenarios/sloppy.yaml::sloppy plain"
    assert items["sloppy plain"].location == ("scenarios/sloppy.yaml", 10, "scenario 'sloppy plain'")  # 0-based
    assert items["refund"].location[:2] == ("scenarios/refund.yaml", 0)


def test_xfail_scenario_is_xfailed_and_a_failure_shows_verdicts_and_a_working_replay(project):
    (project.path / "scenarios" / "sloppy.yaml").write_text(SLOPPY)
    result = project.runpytest("--agent-chaos", "scenarios", "-rxX", "--agent-chaos-report=all.json")
    result.assert_outcomes(passed=1, failed=1, xfailed=1)
    out = result.stdout.str()
    result.stdout.fnmatch_lines(["*_ scenario 'sloppy plain' _*",
                                 "agent chaos campaign 'sloppy plain' did not pass*",
                                 "*FAIL: unconfirmed_destructive_calls == 0: fail*",
                                 "*XFAIL scenarios/sloppy.yaml::sloppy deletes - the sloppy agent deletes without "
                                 "asking*"])
    assert "Traceback" not in out and "def runtest" not in out  # the verdicts, not a traceback
    # the replay command printed for the YAML item re-runs exactly that trial
    command = re.search(r"^\s*(pytest .*sloppy plain.*--agent-chaos-replay=.*)$", out, re.M).group(1)
    args = shlex.split(command)[1:]
    assert args[0] == "scenarios/sloppy.yaml::sloppy plain"
    replay = project.runpytest(*args, "--agent-chaos-report=replay.json")
    replay.assert_outcomes(failed=1)
    (replayed,) = json.loads((project.path / "replay.json").read_text())["campaigns"][0]["records"]
    campaigns = {c["scenario"]: c for c in json.loads((project.path / "all.json").read_text())["campaigns"]}
    assert replayed == campaigns["sloppy plain"]["records"][replayed["index"]]


def test_an_xfail_scenario_that_passes_is_a_strict_xpass_failure(project):
    text = REFUND.replace("name: refund", "name: refund marked xfail") + "xfail: expected to fail, but it passes\n"
    (project.path / "scenarios" / "refund.yaml").write_text(text)
    result = project.runpytest("--agent-chaos", "scenarios", "-rf")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*[[]XPASS(strict)[]] expected to fail, but it passes*"])


def test_command_line_paths_and_ini_patterns_select_yaml_files(project):
    project.mkdir("chaos")
    (project.path / "chaos" / "night.yml").write_text(REFUND.replace("name: refund", "name: night"))
    project.mkdir("other")
    (project.path / "other" / "one.yaml").write_text(REFUND.replace("name: refund", "name: one"))
    (project.path / "config.yaml").write_text("not: a scenario\n")  # an ordinary YAML file: left alone
    (project.path / "scenarios" / "refund.yaml").unlink()

    result = project.runpytest("--agent-chaos", "--collect-only", "-q", ".")
    assert "night" not in result.stdout.str() and "config.yaml" not in result.stdout.str()

    project.makeini("[pytest]\nagentops_scenario_files = chaos/*.yml\n")
    result = project.runpytest("--agent-chaos", "--collect-only", "-q", ".")
    result.stdout.fnmatch_lines(["chaos/night.yml::night"])
    assert "one.yaml" not in result.stdout.str() and "config.yaml" not in result.stdout.str()

    explicit = project.runpytest("--agent-chaos", "--collect-only", "-q", "other/one.yaml")
    explicit.stdout.fnmatch_lines(["other/one.yaml::one"])


def test_a_scenario_name_used_in_two_files_is_a_collection_error(project):
    (project.path / "scenarios" / "again.yaml").write_text(REFUND)
    result = project.runpytest("--agent-chaos", "scenarios")
    assert result.ret == pytest.ExitCode.INTERRUPTED
    result.stdout.fnmatch_lines(["scenarios/refund.yaml:1:1: duplicate scenario name 'refund' (also defined at "
                                 "scenarios/again.yaml:1:1)*"])
    assert "Traceback" not in result.stdout.str()


def test_scenarios_are_collected_with_the_flag_even_when_testpaths_does_not_list_them(project):
    project.mkdir("tests")
    (project.path / "test_python_refund.py").rename(project.path / "tests" / "test_python_refund.py")
    project.makeini("[pytest]\ntestpaths = tests\n")
    with_flag = project.runpytest("--agent-chaos", "--collect-only", "-q")
    with_flag.stdout.fnmatch_lines(["*tests/test_python_refund.py::test_refund*", "*scenarios/refund.yaml::refund*"])
    without = project.runpytest("--collect-only", "-q")
    assert "refund.yaml" not in without.stdout.str()
    given = project.runpytest("--agent-chaos", "--collect-only", "-q", "tests")  # paths given: only those
    assert "refund.yaml" not in given.stdout.str()


def test_the_directory_a_scenario_file_pattern_names_is_collected_when_testpaths_does_not_list_it(project):
    """``agentops_scenario_files = chaos/*.yml`` with ``testpaths = tests``: no scenario was collected, nothing
    said so, and the run was green."""
    project.mkdir("tests")
    (project.path / "test_python_refund.py").rename(project.path / "tests" / "test_python_refund.py")
    project.mkdir("chaos")
    (project.path / "scenarios" / "refund.yaml").rename(project.path / "chaos" / "refund.yml")
    project.makeini("[pytest]\ntestpaths = tests\nagentops_scenario_files = chaos/*.yml\n")
    with_flag = project.runpytest("--agent-chaos", "--collect-only", "-q")
    with_flag.stdout.fnmatch_lines(["*tests/test_python_refund.py::test_refund*", "*chaos/refund.yml::refund*"])
    given = project.runpytest("--agent-chaos", "--collect-only", "-q", "tests")  # paths given: only those
    assert "refund.yml" not in given.stdout.str()


def test_a_scenario_file_pattern_that_matches_no_file_is_warned_about_not_silent(project):
    """``agentops_scenario_files = chaos/*.yaml`` beside files named ``*.yml``: nothing came from it, the run was
    green, and nothing said so. A run over the test paths (no path given, every pattern should find its files)
    warns ``UnusedSetting`` naming the pattern; a pattern that matched is not named; a run given paths is not
    warned (a pattern rightly matches nothing outside them); the warning fails a run that makes warnings errors."""
    project.mkdir("chaos")
    (project.path / "chaos" / "night.yml").write_text(REFUND.replace("name: refund", "name: night"))
    project.makeini("[pytest]\nagentops_scenario_files =\n    chaos/*.yaml\n    chaos/*.yml\n    *.scenario.yaml\n")
    result = project.runpytest("--agent-chaos", "--collect-only", "-q")
    unmatched = ("*tox.ini:2: agentops_scenario_files: the pattern 'chaos/*.yaml' matched no .yaml/.yml file "
                 "collected in this run (it is matched against the path relative to the rootdir*")
    result.stdout.fnmatch_lines(["chaos/night.yml::night", "tox.ini:2", "*UnusedSetting: " + unmatched,
                                 "*the pattern '*.scenario.yaml' matched no * (it is matched against the file name*"])
    assert "'chaos/*.yml' matched" not in result.stdout.str()
    given = project.runpytest("--agent-chaos", "--collect-only", "-q", "chaos")
    given.stdout.fnmatch_lines(["chaos/night.yml::night"])
    assert "UnusedSetting" not in given.stdout.str()
    strict = project.runpytest("--agent-chaos", "-q", "-W", "error::pytest_agentops.UnusedSetting")
    assert strict.ret == pytest.ExitCode.USAGE_ERROR and "INTERNALERROR" not in str(strict.stdout) + str(strict.stderr)
    strict.stderr.fnmatch_lines(["ERROR: " + unmatched])
    # (under xdist, said once by the controller from what its workers collected: not once a worker)
    workers = project.runpytest_subprocess("--agent-chaos", "-q", "-n", "2", "-p", "no:cacheprovider")
    assert workers.ret == pytest.ExitCode.OK and str(workers.stdout).count("the pattern 'chaos/*.yaml'") == 1
    strict = project.runpytest_subprocess("--agent-chaos", "-n", "2", "-W", "error::pytest_agentops.UnusedSetting")
    assert strict.ret == pytest.ExitCode.USAGE_ERROR and "INTERNALERROR" not in str(strict.stdout) + str(strict.stderr)
    strict.stdout.fnmatch_lines(["*ERROR: " + unmatched])
    without = project.runpytest("--collect-only", "-q")
    assert "UnusedSetting" not in without.stdout.str()
    # (a review: ``-k`` and ``--deselect`` leave what was looked at as it was; a run from a folder below the rootdir
    # collects that folder alone; a pattern given with ``-o`` is said to come from there)
    for selected in (["-k", "refund"], ["--deselect", "chaos/night.yml::night"]):
        kept = project.runpytest("--agent-chaos", "-q", "-W", "error::pytest_agentops.UnusedSetting", *selected,
                                 "-o", "agentops_scenario_files=chaos/*.yml")
        assert kept.ret == pytest.ExitCode.OK and "1 deselected" in str(kept.stdout), kept.stdout
    project.mkdir("sub").joinpath("test_sub.py").write_text("def test_sub():\n    pass\n")
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(project.path / "sub")
        below = project.runpytest("--agent-chaos", "-q", "-W", "error::pytest_agentops.UnusedSetting")
    assert below.ret == pytest.ExitCode.OK and "1 passed" in str(below.stdout), below.stdout
    project.makeini("[pytest]\nagentops_scenario_files =\n    chaos/*.yml\n    *.yml\n")  # (both match night.yml)
    both = project.runpytest("--agent-chaos", "--collect-only", "-q", "-W", "error::pytest_agentops.UnusedSetting")
    assert both.ret == pytest.ExitCode.OK and "chaos/night.yml::night" in str(both.stdout), both.stdout
    given = project.runpytest("--agent-chaos", "--collect-only", "-q", "-o", "agentops_scenario_files=chaos/*.yaml")
    given.stdout.fnmatch_lines(["*UnusedSetting: -o agentops_scenario_files=chaos/[*].yaml: agentops_scenario_files: "
                                "the pattern 'chaos/[*].yaml' matched no *"])


def test_under_xdist_an_unmatched_pattern_made_an_error_ends_the_run_early(project):
    """``-W error::UnusedSetting`` under xdist: the first worker finds the unmatched pattern after collection, and
    the controller exits with the usage error when that worker finishes. It finished after its whole share of
    the run (every test ran, then the run said it was a usage error); now it stops after its first test, and the
    controller stops the others (40 tests of 0.2 s: a handful run)."""
    project.makeini("[pytest]\nagentops_scenario_files =\n    chaos/*.yaml\n")
    ran = project.path / "ran.txt"
    project.makepyfile(test_slow=f"""
import time, pytest

@pytest.mark.parametrize("i", range(40))
def test_slow(i):
    with open({str(ran)!r}, "a") as out:
        out.write(f"{{i}}\\n")
    time.sleep(0.2)
""")
    strict = project.runpytest_subprocess("--agent-chaos", "-n", "2", "-p", "no:cacheprovider",
                                          "-W", "error::pytest_agentops.UnusedSetting")
    assert strict.ret == pytest.ExitCode.USAGE_ERROR, strict.stdout
    strict.stdout.fnmatch_lines(["*ERROR: *the pattern 'chaos/*.yaml' matched no*"])
    started = ran.read_text().split() if ran.exists() else []
    assert len(started) < 20, f"{len(started)} of 40 tests ran before the usage error"


def test_only_yaml_files_that_look_like_scenarios_are_collected_under_scenarios(project):
    """Under scenarios/, a YAML file is a scenario file when its start shows a mapping with name: and agent:
    (or a list of them); other YAML files there are skipped, saying why, and the run goes on. A file that is
    a scenario file but broken is still a collection error at its file:line:column."""
    scenarios = project.path / "scenarios"
    scenarios.joinpath("compose.yaml").write_text("services:\n  redis: {image: redis}\n")
    scenarios.joinpath("names.yml").write_text("- alice\n- bob\n")
    scenarios.joinpath("half.yaml").write_text("name: half\ntask: no agent key\n")
    scenarios.joinpath("empty.yaml").write_text("# nothing yet\n")
    (scenarios / "fixtures").mkdir()
    scenarios.joinpath("fixtures", "orders.yaml").write_text("orders:\n" + "".join(
        f"  - {{id: {i}, status: paid}}\n" for i in range(2600)))  # past the 64 KiB looked at: its start decides
    scenarios.joinpath("listed.yaml").write_text(SLOPPY)  # a list of scenarios
    # (test data nested deeper than a scenario file may be: an outside review saw it abort the whole run)
    scenarios.joinpath("tree.yaml").write_text("tree: " + "[" * 150 + "]" * 150 + "\n")
    result = project.runpytest("--agent-chaos", "scenarios", "-rs", "-q", "--collect-only")
    assert result.ret == pytest.ExitCode.OK
    result.stdout.fnmatch_lines_random([
        "scenarios/refund.yaml::refund", "scenarios/listed.yaml::sloppy plain",
        "SKIPPED [[]1[]] scenarios/compose.yaml: not a scenario file (its top level is a mapping without 'name' "
        "and 'agent'); a scenario file holds a mapping with name: and agent:, or a list of them",
        "SKIPPED [[]1[]] scenarios/names.yml: not a scenario file (the first item of its top-level list is not a "
        "mapping)*",
        "SKIPPED [[]1[]] scenarios/half.yaml: not a scenario file (its top level is a mapping without 'agent')*",
        "SKIPPED [[]1[]] scenarios/empty.yaml: not a scenario file (it holds no YAML document)*",
        "SKIPPED [[]1[]] scenarios/fixtures/orders.yaml: not a scenario file (*",
        "SKIPPED [[]1[]] scenarios/tree.yaml: not a scenario file (it nests more than 100 levels deep before any "
        "'name' or 'agent' key)*",
    ])
    assert "ERROR" not in result.stdout.str() and "collect.py" not in result.stdout.str()
    # a broken scenario file (its start shows name: and agent:) is still an error where the mistake is
    scenarios.joinpath("broken.yaml").write_text("name: broken\nagent: chaosmod:careful\ntrails: 3\n")
    scenarios.joinpath("bad_yaml.yaml").write_text("name: bad\n\tagent: chaosmod:careful\n")
    scenarios.joinpath("deep.yaml").write_text("name: deep\nagent: chaosmod:careful\ntask: " + "[" * 150 + "]" * 150
                                               + "\n")
    broken = project.runpytest("--agent-chaos", "scenarios", "-q", "--collect-only")
    assert broken.ret == pytest.ExitCode.INTERRUPTED
    broken.stdout.fnmatch_lines_random([
        "scenarios/broken.yaml:3:1: unknown key 'trails' (did you mean 'trials'?)*",
        "scenarios/bad_yaml.yaml:2:1: YAML syntax error: *",
        "scenarios/deep.yaml:3:*: values nest more than 100 levels deep*"])
    # given on the command line or matched by a pattern, a file is a scenario file: no look, its error shown
    given = project.runpytest("--agent-chaos", "scenarios/compose.yaml", "-q", "--collect-only")
    given.stdout.fnmatch_lines(["scenarios/compose.yaml:1:1: unknown key 'services'*"])


@pytest.mark.parametrize(("text", "why"), [
    ("name: x\nagent: a:b\n", None),
    ("# a header\n- name: x\n  agent: a:b\n- name: y\n", None),  # a list: its first item decides
    ("<<: {agent: a:b}\nname: x\n", None),  # a merge key may bring the other key
    ("name: x\n\tagent: a:b\n", None),  # broken YAML: the loader reports it
    (b"name: \xff\n", None),  # not UTF-8: the loader reports it
    ("name: x\ntask: t\n", "its top level is a mapping without 'agent'"),
    # a misspelt name or agent: still a scenario file, whose error the loader reports (skipped, it ran silently never)
    ("nme: x\nagent: a:b\n", None),
    ("name: x\nagnt: a:b\ntools: m:T\ncheck: m:c\n", None),
    ("name: x\nservices: {}\ntools: [a]\n", "its top level is a mapping without 'agent'"),  # (one such key: not)
    # an agent that names no module:attr, in a file without name: a transcript or a model's settings (a review)
    ("- agent: support-bot\n  text: hello\n", "the first item of its top-level list is a mapping without 'name'"),
    ("agent:\n  model: gpt-4o-mini\n  temperature: 0\n", "its top level is a mapping without 'name'"),
    ("- 1\n- 2\n", "the first item of its top-level list is not a mapping"),
    ("[]\n", "its top level is an empty list"),
    ("just text\n", "its top level is not a mapping"),
    ("# nothing\n", "it holds no YAML document"),
    ("{a: [[[[[[{b: c}]]]]]], d: e}\n", "its top level is a mapping without 'name' and 'agent'"),
    # past the first 64 KiB: a long comment first, or many keys before name:, no longer hide a scenario file
    ("# " + "x" * 70_000 + "\nname: x\nagent: a:b\n", None),
    ("".join(f"k{i}: {i}\n" for i in range(9000)) + "name: x\nagent: a:b\n", None),
    ("# " + "x" * 70_000 + "\n", "it holds no YAML document"),
    ("".join(f"k{i}: {i}\n" for i in range(9000)), "its top level is a mapping without 'name' and 'agent'"),
])
def test_the_look_at_a_file_under_scenarios(tmp_path, text, why):
    from pytest_agentops.scenario_file import not_a_scenario_file

    path = tmp_path / "file.yaml"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    assert not_a_scenario_file(path) == why


def test_a_character_yaml_does_not_allow_is_an_error_of_that_file_alone(pytester):
    """A raw control character in one file under ``scenarios/`` was a ``ReaderError`` traceback from the look
    at the file, and no file of the directory was collected."""
    (pytester.path / "scenarios").mkdir()
    (pytester.path / "scenarios" / "good.yaml").write_text("name: good\nagent: pytest_agentops.demo:careful_agent\n")
    (pytester.path / "scenarios" / "bad.yaml").write_bytes(b"name: bad\nagent: a:b\ntask: \"a\x01b\"\n")
    result = pytester.runpytest("-p", "no:cacheprovider", "--agent-chaos", "--collect-only", "-q", "scenarios")
    result.stdout.fnmatch_lines(["scenarios/bad.yaml:3:*not allowed*", "*1 test collected, 1 error*"])
    assert "Traceback" not in result.stdout.str() and "ReaderError" not in result.stdout.str()


def test_a_collection_error_is_redacted(pytester, monkeypatch):
    """A key pasted where its variable's name goes (``key_env``) was shown whole in the collection error."""
    key = "sk-proj-Zk3PqRsTuVwXyZ0123456789abcd"
    monkeypatch.setenv("OPENAI_API_KEY", key)
    (pytester.path / "scenarios").mkdir()
    (pytester.path / "scenarios" / "live.yaml").write_text(
        f"name: live\nagent: pytest_agentops.demo:careful_agent\nlive: {{base_url: 'http://127.0.0.1:9/v1', "
        f"key_env: '{key}', model: m}}\n")
    result = pytester.runpytest("-p", "no:cacheprovider", "--agent-chaos", "--collect-only", "-q", "scenarios")
    result.stdout.fnmatch_lines(["scenarios/live.yaml:3:*key_env*[[]redacted[]]*"])
    assert "Zk3PqRs" not in result.stdout.str()


def test_a_scenario_file_with_a_misspelt_name_is_an_error_not_a_skip(pytester):
    """``nme: refund`` under ``scenarios/``: the file was skipped as "not a scenario file" (shown with ``-rs``
    only) and the run passed without its campaign."""
    (pytester.path / "scenarios").mkdir()
    (pytester.path / "scenarios" / "refund.yaml").write_text(
        "nme: refund\nagent: pytest_agentops.demo:careful_agent\nexpect: {completion_rate: '>= 0.9'}\n")
    result = pytester.runpytest("-p", "no:cacheprovider", "--agent-chaos", "-q", "scenarios")
    assert result.ret != 0
    result.stdout.fnmatch_lines(["*scenarios/refund.yaml:1:1: *nme*name*"])
