"""Every command the plugin prints reproduces what it says, pasted into a shell from where pytest was started
(here a subdirectory of the project): each failing trial's replay command gives the same record and trace,
a failing smoke trial's command the same smoke trial, the header's command the same run; scenario names with
``/``, ``[`` and spaces work; a replay naming no campaign is a usage error; a relative report path is resolved
from the invocation directory."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import QUIET_ADDOPTS

PROJECT = '''
import pytest
from pytest_agentops import Faults, Scenario, tool


class Orders:
    def __init__(self):
        self.refunded = []


@tool
def lookup_order(world, order_id: int) -> dict:
    """Look up an order."""
    return {"id": order_id, "status": "paid"}


@tool(side_effect=True)
def refund_order(world, order_id: int) -> str:
    """Refund an order."""
    world.refunded.append(order_id)
    return "refunded"


def agent(task, env):
    try:
        env.tools["lookup_order"](42)
        env.clock.sleep(float(env.rng.integers(1, 5)))
        return env.tools["refund_order"](42)
    except Exception as exc:
        return f"failed: {exc}"


def never(task, env):
    return "no"


def make(name, agent=agent, **kw):
    settings = dict(name=name, agent=agent, task="Refund order 42", world=Orders,
                    tools=[lookup_order, refund_order], check=lambda world, output: 42 in world.refunded,
                    faults=Faults(rate=0.2, latency=0.3), trials=40, early_stop=False,
                    expect={"completion_rate": ">= 0.99"})
    settings.update(kw)
    return Scenario(**settings)


def test_named(agent_chaos):
    agent_chaos.run(make("refund / eu [v2]", seed=3)).check()


def test_unseeded(agent_chaos):
    agent_chaos.run(make("unseeded")).check()


@pytest.mark.parametrize("variant", ["a b"])
def test_param(agent_chaos, variant):
    agent_chaos.run(make(f"param {variant}", seed=9)).check()


def test_never(agent_chaos):
    agent_chaos.run(make("never", agent=never, seed=5, trials=3, expect={})).check()
'''


class Run:
    """What one ``pytest ARGS`` printed and returned."""

    def __init__(self, result: pytest.RunResult):
        self.stdout = result.stdout.str()
        self.returncode = int(result.ret)


@pytest.fixture
def run(pytester, monkeypatch):
    """``pytest ARGS`` as a user runs it from ``cwd`` (in-process: the same plugin and options)."""

    def go(cwd: Path, *args: str) -> Run:
        monkeypatch.chdir(cwd)
        return Run(pytester.runpytest(*args))

    return go


def pasted(command: str) -> list[str]:
    """The arguments of a printed ``pytest ...`` command, as a shell splits them."""
    words = shlex.split(command)
    assert words[0] == "pytest"
    return words[1:]


def records_of(report: Path) -> dict[tuple[str, int], dict]:
    data = json.loads(report.read_text())
    return {(c["scenario"], r["index"]): r for c in data["campaigns"] for r in c["records"]}


@pytest.fixture
def project(pytester):
    pytester.makepyfile(**{"tests/test_agents": PROJECT})
    pytester.makeini("[pytest]\n")
    sub = pytester.path / "tests"
    return pytester.path, sub


def test_each_printed_replay_command_reproduces_its_trial_from_the_invocation_directory(project, run):
    root, sub = project
    first = run(sub, "--agent-chaos", "--agent-chaos-report=out/report.json", "-p", "no:cacheprovider")
    assert first.returncode == 1, first.stdout + first.stderr
    report = sub / "out" / "report.json"  # relative to where pytest was started, as --junitxml is
    assert report.exists() and not (root / "out").exists()
    original = records_of(report)
    commands = re.findall(r"^(?:E)?\s+(pytest .*--agent-chaos-replay=.*)$", first.stdout, re.M)
    names = {shlex.split(c)[-1].split("=", 1)[1].rsplit("/trial-", 1)[0] for c in commands}
    assert {"refund / eu [v2]", "unseeded", "param a b"} <= names
    for command in commands:
        again = run(sub, *pasted(command), "--agent-chaos-report=replay.json", "-p", "no:cacheprovider")
        assert again.returncode == 1, again.stdout + again.stderr  # the replayed trial fails again
        (key, replayed), = records_of(sub / "replay.json").items()
        assert replayed == original[key]  # same record, the trace included (a failing trial's is reported)
        assert replayed["trace"] and replayed["faults"] == original[key]["faults"]


def test_a_trial_of_a_test_pytest_repeat_repeats_replays_with_its_count(project, run):
    """Under pytest-repeat's ``--count=2`` the tests are ``test_named[1-2]`` and ``test_named[2-2]``, ids pytest
    makes only with that option: the printed commands left it out, and pasted they ran nothing ("not found")."""
    _root, sub = project
    first = run(sub, "test_agents.py::test_named", "--count=2", "--agent-chaos", "--agent-chaos-report=first.json",
                "-p", "no:cacheprovider")
    assert first.returncode == 1, first.stdout
    commands = sorted(set(re.findall(r"^(?:E)?\s+(pytest .*--agent-chaos-replay=.*)$", first.stdout, re.M)))
    assert {shlex.split(c)[1].rsplit("[", 1)[1] for c in commands} == {"1-2]", "2-2]"}  # (each repeat's)
    original = records_of(sub / "first.json")
    for command in commands:
        assert "--count=2" in shlex.split(command)
        again = run(sub, *pasted(command), "--agent-chaos-report=again.json", "-p", "no:cacheprovider")
        assert again.returncode == 1, again.stdout
        assert re.search(r"\b1 failed\b", again.stdout) and "passed" not in again.stdout  # that one test alone
        (key, replayed), = records_of(sub / "again.json").items()
        assert replayed == original[key]
    # a ``repeat`` marker's ids need no option (pytest makes them whatever the command line says)
    (sub / "test_marked.py").write_text("import pytest\nfrom test_agents import make\n\n\n@pytest.mark.repeat(2)\n"
                                        "def test_marked(agent_chaos):\n"
                                        "    agent_chaos.run(make('marked', seed=3, trials=10)).check()\n")
    marked = run(sub, "test_marked.py", "--agent-chaos", "-p", "no:cacheprovider")
    commands = set(re.findall(r"^(?:E)?\s+(pytest .*--agent-chaos-replay=.*)$", marked.stdout, re.M))
    assert {shlex.split(c)[1].rsplit("[", 1)[1] for c in commands} == {"1-2]", "2-2]"}, marked.stdout
    assert not any("--count" in c for c in commands)


def test_a_failing_smoke_trial_prints_the_command_of_that_smoke_trial(project, run):
    _root, sub = project
    first = run(sub, "-k", "never", "-p", "no:cacheprovider", "--agent-chaos-report=smoke.json")
    assert first.returncode == 1
    (command,) = set(re.findall(r"^(?:E)?\s+(pytest .*)$", first.stdout, re.M))
    assert "--agent-chaos " not in command + " " and "--agent-chaos-seed=" in command  # fault-free, as it ran
    again = run(sub, *pasted(command), "--agent-chaos-report=again.json", "-p", "no:cacheprovider")
    assert again.returncode == 1
    assert records_of(sub / "again.json") == records_of(sub / "smoke.json")


def test_the_headers_command_repeats_the_whole_run_scenario_seeds_included(project, run):
    _root, sub = project
    first = run(sub, "--agent-chaos", "--agent-chaos-report=first.json", "-p", "no:cacheprovider")
    header = re.search(r"agentops: .*\(repeat this run with (.*)\)$", first.stdout, re.M).group(1)
    again = run(sub, *shlex.split(header), "--agent-chaos-report=again.json", "-p", "no:cacheprovider")
    assert (sub / "again.json").read_text() == (sub / "first.json").read_text()
    assert again.returncode == first.returncode


def test_a_replay_naming_no_campaign_is_a_usage_error_listing_the_campaigns(project, run):
    _root, sub = project
    wrong = run(sub, "test_agents.py", "--agent-chaos-replay=refund/trial-3", "-p", "no:cacheprovider", "-q")
    assert wrong.returncode == pytest.ExitCode.USAGE_ERROR, wrong.stdout
    assert "no campaign named 'refund' ran" in wrong.stdout and "'refund / eu [v2]'" in wrong.stdout
    typo = run(sub, "test_agents.py", "--agent-chaos-replay=unseded/trial-3", "-p", "no:cacheprovider", "-q")
    assert typo.returncode == pytest.ExitCode.USAGE_ERROR and "(did you mean 'unseeded'?)" in typo.stdout, typo.stdout
    assert re.search(r"^ERROR: --agent-chaos-replay: no campaign named 'refund' ran", wrong.stdout, re.M)  # (a
    # line of its own: it was written after the progress line's dots, "....  [100%]ERROR: ...")
    beyond = run(sub, "test_agents.py::test_named", "--agent-chaos-replay=refund / eu [v2]/trial-40",
                 "-p", "no:cacheprovider")
    assert "has no trial 40: its trials are 0..39" in beyond.stdout


def test_a_replay_of_a_test_that_uses_an_earlier_campaigns_result_says_why_it_cannot_run(project, run):
    """Found by an outside review: a test whose second campaign's threshold came from the first's estimate failed
    under the printed command with a ``KeyError`` (the first campaign does not run under a replay), and the
    session said "no campaign named 'stormy' ran; the campaigns of the selected tests: 'calm'", as if nothing
    could be done. Running the earlier campaigns in full instead ran them with the replayed one's seed (a review
    of that): not as in the run the command is from. The usage error says why now, and what does replay it."""
    _root, sub = project
    (sub / "test_seq.py").write_text(
        "from test_agents import make\n\n\n"
        "def test_faults_cost_at_most_10_points(agent_chaos):\n"
        "    baseline = agent_chaos.run(make('calm', faults='none', trials=20, expect={'completion_rate': '>= 0.8'}))\n"
        "    floor = baseline.metrics['completion_rate'].estimate - 0.10\n"
        "    agent_chaos.run(make('stormy', trials=20, expect={'completion_rate': f'>= {floor:.2f}'})).check()\n")
    first = run(sub, "test_seq.py", "--agent-chaos", "--agent-chaos-seed=3", "-p", "no:cacheprovider")
    commands = sorted(set(re.findall(r"^(?:E)?\s+(pytest .*--agent-chaos-replay=stormy/trial-\d+)$", first.stdout,
                                     re.M)))
    assert first.returncode == 1 and commands, first.stdout
    again = run(sub, *pasted(commands[0]), "-p", "no:cacheprovider")
    assert again.returncode == pytest.ExitCode.USAGE_ERROR, again.stdout
    assert re.search(r"^ERROR: --agent-chaos-replay: no campaign named 'stormy' ran; the campaigns of the selected "
                     r"tests: 'calm'; a selected test failed before reaching it: .* replay the trial with "
                     r"replay_trial in Python$", again.stdout, re.M), again.stdout


@pytest.mark.parametrize(("argv0", "on_path", "expected"), [
    ("/venv/lib/python3.11/site-packages/pytest/__main__.py", "venv", "python3 -m pytest"),
    ("/venv/lib/python3.11/site-packages/pytest/__main__.py", "base", "{executable} -m pytest"),
    ("/venv/lib/python3.11/site-packages/pytest/__main__.py", "none", "{executable} -m pytest"),
    ("/venv/bin/pytest", "venv", "pytest"), ("-c", "venv", "pytest"), ("/x/py.test", "venv", "pytest"),
])
def test_printed_commands_start_as_the_run_was_started(tmp_path, monkeypatch, argv0, on_path, expected):
    """``python -m pytest`` with the interpreter's name where ``PATH`` finds that very interpreter (``python3``
    on a system with no ``python``), else its full path: a venv's ``python3`` is a link to the base one, which
    ``PATH`` found first, and pasted the command ran without the venv's packages."""
    from pytest_agentops.pytest_plugin.commands import launcher

    base = tmp_path / "base" / "python3"
    base.parent.mkdir()
    base.write_text("#!/bin/sh\n")
    base.chmod(0o755)
    executable = tmp_path / "venv" / "python3"
    executable.parent.mkdir()
    executable.symlink_to(base)
    monkeypatch.setenv("PATH", {"venv": str(executable.parent), "base": str(base.parent), "none": "/nowhere"}[on_path])
    assert launcher(argv0, str(executable)) == expected.format(executable=executable)


AGENT_MODULE = '''
from pytest_agentops import tool

class Orders:
    def __init__(self):
        self.refunded = []

@tool(side_effect=True)
def refund_order(world, order_id: int) -> str:
    """Refund an order."""
    world.refunded.append(order_id)
    return "refunded"

TOOLS = [refund_order]

def hasty(task, env):
    try:
        return env.tools["refund_order"](42)
    except Exception as exc:
        return f"failed: {exc}"

def refunded(world, output):
    return 42 in world.refunded
'''


def test_a_run_started_with_python_m_pytest_prints_commands_that_run_the_same_way(tmp_path):
    """A project importing its own module from the working directory (which ``python -m pytest`` puts on
    ``sys.path``) got ``pytest ...`` replay commands, and pasted they failed: "cannot import module 'myagent'"."""
    import os
    import shutil
    import subprocess
    import sys

    (tmp_path / "myagent.py").write_text(AGENT_MODULE)
    (tmp_path / "scenarios").mkdir()
    (tmp_path / "scenarios" / "s.yaml").write_text(
        "name: hasty\nagent: myagent:hasty\ntask: Refund order 42\nworld: myagent:Orders\ntools: myagent:TOOLS\n"
        "check: myagent:refunded\nfaults: {rate: 0.3}\ntrials: 30\nseed: 5\nearly_stop: false\n"
        "expect: {completion_rate: '>= 0.99'}\n")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"} | {"PYTEST_ADDOPTS": QUIET_ADDOPTS}

    def python_m_pytest(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args], cwd=tmp_path,
                              env=env, capture_output=True, text=True, timeout=120)

    first = python_m_pytest("--agent-chaos", "--agent-chaos-report=r.json")
    assert first.returncode == 1, first.stdout + first.stderr
    command = re.search(r"^\s*(\S+ -m pytest .*--agent-chaos-replay=\S+)$", first.stdout, re.M).group(1)
    words = shlex.split(command)
    assert words[1:3] == ["-m", "pytest"] and Path(shutil.which(words[0]) or words[0]).resolve() == Path(
        sys.executable).resolve()  # (the interpreter that ran it, by the name PATH finds it under)
    again = python_m_pytest(*words[3:], "--agent-chaos-report=again.json")
    assert again.returncode == 1, again.stdout + again.stderr
    (key, replayed), = records_of(tmp_path / "again.json").items()
    assert replayed == records_of(tmp_path / "r.json")[key]


def test_a_trial_beyond_the_scenarios_own_count_replays_with_the_trials_the_run_had(project, run):
    """``--agent-chaos-trials=60`` on a scenario of 40 trials printed commands without it, and pasted, one of
    trial 40 or later said "campaign has no trial 45: its trials are 0..39". ``--agent-chaos-show`` printed
    a command without the test's node id and the run's options (a different trial ran): it prints the run's."""
    _root, sub = project
    first = run(sub, "test_agents.py::test_named", "--agent-chaos", "--agent-chaos-trials=60",
                "--agent-chaos-report=first.json", "-p", "no:cacheprovider")
    assert first.returncode == 1
    original = records_of(sub / "first.json")
    late = min(index for (_, index), r in original.items() if index >= 40 and r["outcome"] != "completed")
    shown = run(sub, f"--agent-chaos-show=refund / eu [v2]/trial-{late}", "--agent-chaos-report=first.json",
                "-p", "no:cacheprovider")
    (command,) = re.findall(r"^\s*replay: (pytest .*)$", shown.stdout, re.M)
    assert f"/trial-{late}" in command and "--agent-chaos-trials=60" in command and "test_named" in command
    again = run(sub, *pasted(command), "--agent-chaos-report=again.json", "-p", "no:cacheprovider")
    assert again.returncode == 1, again.stdout + again.stderr
    (key, replayed), = records_of(sub / "again.json").items()
    assert key == ("refund / eu [v2]", late) and replayed == original[key]


def test_the_report_is_the_same_however_and_from_wherever_pytest_was_started(project, run, monkeypatch):
    """The report kept the printed replay command whole, so a run started as ``python -m pytest``, or from
    another directory, wrote a different report for the same seeds: it keeps the command's options only."""
    import sys

    root, sub = project
    seeds = ("--agent-chaos-session-seed=5", "-p", "no:cacheprovider")
    run(sub, "--agent-chaos", "--agent-chaos-report=a.json", *seeds)
    monkeypatch.setattr(sys, "argv", ["/venv/lib/site-packages/pytest/__main__.py"])
    run(root, "--agent-chaos", "--agent-chaos-report=tests/b.json", *seeds)
    assert (sub / "a.json").read_bytes() == (sub / "b.json").read_bytes()
    shown = run(root, "--agent-chaos-show=unseeded/trial-0", "--agent-chaos-report=tests/b.json", "-p",
                "no:cacheprovider")
    (command,) = re.findall(r"^\s*replay: (.*)$", shown.stdout, re.M)
    words = shlex.split(command)  # (started as python -m pytest, from the rootdir: the node id from there)
    assert words[1:4] == ["-m", "pytest", "tests/test_agents.py::test_unseeded"], command
    assert words[-1] == "--agent-chaos-replay=unseeded/trial-0" and "--agent-chaos-seed=" in command


def test_names_shaped_like_a_key_are_left_in_the_commands_that_replay_them(pytester, run):
    """An outside review: a test folder named ``sk-payments-agent`` and a scenario named ``sk-resume-naive`` match
    the shape of an ``sk-`` key, and were redacted in every printed replay command (``[redacted]/test_refund.py``,
    a usage error pasted back), the report's node id and its ``--agent-chaos-show`` command. The user's own names
    are kept; a key in the agent's output is still redacted."""
    pytester.makepyfile(**{"sk-payments-agent/test_refund": PROJECT + '''

def test_shaped(agent_chaos):
    agent_chaos.run(make("sk-resume-naive", seed=3,
                         agent=lambda task, env: "sk-" + "live0123456789abcdef " + agent(task, env))).check()
'''})
    pytester.makeini("[pytest]\n")
    first = run(pytester.path, "--agent-chaos", "-k", "shaped", "--agent-chaos-report=report.json",
                "-p", "no:cacheprovider")
    assert first.returncode == 1, first.stdout
    commands = re.findall(r"^(?:E)?\s+(pytest .*--agent-chaos-replay=.*)$", first.stdout, re.M)
    assert commands and all("sk-payments-agent/test_refund.py::test_shaped" in c and "sk-resume-naive/trial-" in c
                            for c in commands), commands
    original = records_of(pytester.path / "report.json")
    assert "sk-live0123456789abcdef" not in (pytester.path / "report.json").read_text()
    again = run(pytester.path, *pasted(commands[0]), "--agent-chaos-report=replay.json", "-p", "no:cacheprovider")
    assert again.returncode == 1, again.stdout
    (key, replayed), = records_of(pytester.path / "replay.json").items()
    assert key[0] == "sk-resume-naive" and replayed == original[key]


KEY = "sk-" + "live0123456789abcdef"  # (a key's shape, written in two parts so that no scanner takes it for one)


def _keyed_project(pytester, scenario: str, other_test: str) -> None:
    """A project whose folder and a test's parameter have a key's shape: ``test_keyed[KEY]`` runs ``scenario``,
    failing; ``other_test`` is a second test's source."""
    pytester.makepyfile(**{"sk-payments-agent/test_params": PROJECT + f'''

@pytest.mark.parametrize("token", ["{KEY}"])
def test_keyed(agent_chaos, token):
    agent_chaos.run(make("{scenario}", seed=3, agent=lambda task, env: "nope")).check()


''' + other_test})
    pytester.makeini("[pytest]\n")


def test_a_key_in_a_tests_parameters_is_kept_in_its_own_commands_and_redacted_in_an_agents_output(pytester, run):
    """A second review: a key-shaped value kept in one test's node id (``test_keyed[sk-...]``) was left unredacted
    wherever it appeared for the rest of the session: a later test's agent printing that key showed it in the
    failure message and the report. A name is kept only where it stands whole (a node id's folders and file
    wherever they stand)."""
    key = KEY
    _keyed_project(pytester, "keyed", '''def test_later(agent_chaos):
    agent_chaos.run(make("later", seed=3, agent=lambda task, env: "''' + KEY + ''' in sk-payments-agent")).check()
''')
    first = run(pytester.path, "--agent-chaos", "-k", "test_keyed or test_later", "--agent-chaos-report=report.json",
                "-p", "no:cacheprovider")
    assert first.returncode == 1, first.stdout
    commands = re.findall(r"^(?:E)?\s+(pytest .*--agent-chaos-replay=.*)$", first.stdout, re.M)
    keyed = [c for c in commands if "test_keyed" in c]
    assert keyed and all(f"sk-payments-agent/test_params.py::test_keyed[{key}]" in c for c in keyed), commands
    report = (pytester.path / "report.json").read_text()
    outputs = {r["output"] for (scenario, _), r in records_of(pytester.path / "report.json").items()
               if scenario == "later"}
    assert outputs == {"[redacted] in sk-payments-agent"} and report.count(key) == report.count(f"[{key}]")
    again = run(pytester.path, *pasted(keyed[0]), "-p", "no:cacheprovider")
    assert again.returncode == 1 and "1 failed" in again.stdout, again.stdout


@pytest.mark.parametrize("how", ["from a folder beside the tests", "under xdist", "with the ini file elsewhere"])
def test_the_reports_keep_a_key_in_a_node_id_however_pytest_was_started(pytester, how):
    """A second review: a key in a test's parameters was kept only as the command wrote the node id, so the JSON
    report (which writes it relative to the rootdir) showed ``test_keyed[[redacted]]`` when pytest was started
    from another folder; under xdist the controller, which writes the reports, had kept nothing (folders, node
    ids, scenario names, replay arguments, an A/B comparison's names redacted). A third: with the ini file in
    another folder (``-c``), the commands' folder was redacted. Fresh processes: the names kept are the
    process's."""
    key = KEY
    _keyed_project(pytester, "sk-resume-naive", '''def test_compared(agent_chaos):
    agent_chaos.compare(make("sk-base-aaaaaaaa", seed=3), make("sk-cand-bbbbbbbb", seed=3)).check()
''')
    (pytester.path / "other").mkdir()
    (pytester.path / "cfg").mkdir()
    (pytester.path / "cfg" / "pytest.ini").write_text("[pytest]\n")
    cwd, args = pytester.path, ["--agent-chaos-report=r.json", "sk-payments-agent"]
    if how == "under xdist":
        args = ["-n", "2", *args]
    elif how == "with the ini file elsewhere":
        args = ["-c", "cfg/pytest.ini", *args]
    else:
        cwd, args = pytester.path / "other", ["--agent-chaos-report=../r.json", "../sk-payments-agent"]
    env = {**os.environ, "PYTEST_ADDOPTS": QUIET_ADDOPTS + " -p no:cacheprovider"}
    done = subprocess.run([sys.executable, "-m", "pytest", "--agent-chaos", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 1, done.stdout + done.stderr
    commands = re.findall(r"^(?:E)?\s+(\S.* -m pytest .*--agent-chaos-replay=.*)$", done.stdout, re.M)
    keyed = [c for c in commands if "test_keyed" in c]
    assert keyed and all(f"sk-payments-agent/test_params.py::test_keyed[{key}]" in c for c in keyed), commands
    report = json.loads((pytester.path / "r.json").read_text())
    (campaign,) = [c for c in report["campaigns"] if c["scenario"] == "sk-resume-naive"]
    assert campaign["nodeid"].endswith(f"test_params.py::test_keyed[{key}]"), campaign["nodeid"]
    assert "[redacted]" not in json.dumps(campaign["replay_args"])
    assert [(c["baseline"], c["candidate"]) for c in report["comparisons"]] == [("sk-base-aaaaaaaa",
                                                                                "sk-cand-bbbbbbbb")]


@pytest.mark.parametrize("password", ["hunter2'isgreat", "hunter2is{great}", "hunter2's{pass}word"])
def test_a_password_with_quotes_or_braces_in_a_scenario_name_is_redacted_in_its_replay_commands(pytester, run,
                                                                                                 monkeypatch, password):
    """An outside review: a secret environment value used in a scenario's name was redacted in the name but
    printed in the replay commands when it held a ``'`` (shell-quoted as ``'"'"'``) and in the JSON report's
    replay arguments when it held braces (doubled in the command's template)."""
    monkeypatch.setenv("DB_PASSWORD", password)
    pytester.makepyfile(test_login=PROJECT + '''
import os


def test_login(agent_chaos):
    agent_chaos.run(make("login-" + os.environ["DB_PASSWORD"], seed=3, agent=never, trials=3)).check()
''')
    pytester.makeini("[pytest]\n")
    result = run(pytester.path, "--agent-chaos", "--agent-chaos-report=report.json", "-p", "no:cacheprovider")
    assert result.returncode == 1, result.stdout
    assert "login-[redacted]/trial-0" in result.stdout
    written = result.stdout + (pytester.path / "report.json").read_text()
    assert [line for line in written.splitlines() if "hunter2" in line] == []
