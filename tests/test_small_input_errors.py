"""Small bad inputs an outside review met: each gets one clear error naming what was wrong and what was expected,
never a contradictory message, a check that comes too late, or a raw ``AttributeError``."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from pytest_agentops import ConfigError, Faults, tool
from pytest_agentops.plan import FaultPlan
from pytest_agentops.settings.tools import tool_spec

# -- --agent-chaos-replay with a trial index beyond the campaign ------------------------------------------------

_CAMPAIGN = """
from pytest_agentops import Faults, Scenario

S = Scenario(name="hasty", agent=lambda task, env: "ok", trials=3, seed=7, faults=Faults.none())


def test_hasty(agent_chaos):
    agent_chaos.run(S).check()
"""


def test_a_replay_index_beyond_the_trials_says_only_that_not_that_no_campaign_ran(pytester):
    """``--agent-chaos-replay=hasty/trial-300`` of a 300-trial campaign 'hasty' printed "no campaign named 'hasty'
    ran; the campaigns of the selected tests: 'hasty'" before the right error (no trial 300: 0..299)."""
    pytester.makepyfile(test_hasty=_CAMPAIGN)
    result = pytester.runpytest("--agent-chaos", "--agent-chaos-replay=hasty/trial-3", "-p", "no:cacheprovider")
    out = result.stdout.str()
    assert "no campaign named" not in out, out
    assert "--agent-chaos-replay: campaign 'hasty' has no trial 3: its trials are 0..2" in out
    result.assert_outcomes(failed=1)
    # a name no campaign has is still the usage error listing the campaigns
    wrong = pytester.runpytest("--agent-chaos", "--agent-chaos-replay=hastx/trial-1", "-p", "no:cacheprovider")
    assert wrong.ret == pytest.ExitCode.USAGE_ERROR
    wrong.stdout.fnmatch_lines(["ERROR: --agent-chaos-replay: no campaign named 'hastx' ran; the campaigns of the "
                                "selected tests: 'hasty' (did you mean 'hasty'?)"])


@pytest.mark.parametrize("how", [["--co"], ["--setup-plan"], ["-x"], ["--maxfail=1"]])
def test_a_replay_in_a_run_that_runs_not_every_test_is_no_usage_error(pytester, how):
    """Found by an outside review: under ``--collect-only``, ``--setup-plan``, or ``-x`` after an earlier failure,
    "no campaign named 'hastx' ran" was printed and the exit status was 4 (a usage error) instead of the run's own."""
    pytester.makepyfile(test_a_first="def test_fails():\n    assert False\n", test_hasty=_CAMPAIGN)
    result = pytester.runpytest("--agent-chaos", "--agent-chaos-replay=hastx/trial-1", "-p", "no:cacheprovider", *how)
    assert "no campaign named" not in result.stdout.str()
    assert result.ret == (pytest.ExitCode.OK if how[0] in ("--co", "--setup-plan") else pytest.ExitCode.TESTS_FAILED)


def test_a_replay_given_as_a_label_whose_seed_is_not_this_runs_is_an_error_not_another_trial(pytester):
    """Found by an outside review: ``--agent-chaos-replay="flaky[trial-0 seed=9039...]"`` (a trial's label pasted
    from a run with a fresh session seed) replayed trial 0 under another session seed: a different trial, without a
    word. The label's seed is checked; the label with its run's seed replays that very trial."""
    pytester.makepyfile(test_fresh="""
from pytest_agentops import Faults, Scenario

S = Scenario(name="fresh", agent=lambda task, env: env.rng.integers(10**9), trials=3, faults=Faults.none())

def test_fresh(agent_chaos):
    result = agent_chaos.run(S)
    print("LABEL", result.records[0].label, "OUTPUT", result.records[0].output)
""")
    first = pytester.runpytest("--agent-chaos", "--agent-chaos-session-seed=11", "-s", "-p", "no:cacheprovider")
    label, output = first.stdout.str().split("LABEL ")[1].split("\n")[0].split(" OUTPUT ")
    assert label.startswith("fresh[trial-0 seed=")
    again = pytester.runpytest("--agent-chaos-session-seed=11", f"--agent-chaos-replay={label}", "-s", "-p",
                               "no:cacheprovider")
    assert f"OUTPUT {output}" in again.stdout.str()
    other = pytester.runpytest("--agent-chaos-session-seed=12", f"--agent-chaos-replay={label}", "-p",
                               "no:cacheprovider")
    assert other.ret == pytest.ExitCode.USAGE_ERROR
    other.stdout.fnmatch_lines([f"ERROR: --agent-chaos-replay: no campaign of 'fresh' in this run has a trial 0 with "
                                f"the label's seed {label.split('seed=')[1][:-1]}: the label is from a run with other "
                                "seeds; paste the whole replay command printed with it*"])
    # two campaigns of one scenario (a parametrized seed): the label replays the one it names, the other does not run
    pytester.makepyfile(test_fresh="""
import pytest
from pytest_agentops import Faults, Scenario

S = Scenario(name="fresh", agent=lambda task, env: env.rng.integers(10**9), trials=3, faults=Faults.none())

@pytest.mark.parametrize("seed", [1, 2])
def test_fresh(agent_chaos, seed):  # (seed 1's campaign has no trial 2: not run either, not an error)
    result = agent_chaos.run(S.replace(seed=seed, trials=2 if seed == 1 else 3))
    print("LABEL", result.records[-1].label if result.records else "not run", "OUTPUT",
          result.records[-1].output if result.records else "")
""")
    first = pytester.runpytest("--agent-chaos", "-s", "-p", "no:cacheprovider", "test_fresh.py::test_fresh[2]")
    label, output = first.stdout.str().split("LABEL ")[1].split("\n")[0].split(" OUTPUT ")
    both = pytester.runpytest(f"--agent-chaos-replay={label}", "-s", "-p", "no:cacheprovider")
    assert both.ret == pytest.ExitCode.OK and f"OUTPUT {output}" in both.stdout.str()
    assert "LABEL not run" in both.stdout.str()


# -- agentops-compare --json PATH: checked before the comparison runs ------------------------------------------

_AB_MODULE = """
from pytest_agentops import Scenario, Faults
def agent(task, env):
    return "done"
BASE = Scenario(name="base", agent=agent, task="t", check=lambda w, o: o == "done", trials=10, seed=3,
                faults=Faults.none())
"""


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs a procfs (no file can be created in /proc)")
def test_agentops_compare_refuses_a_json_path_where_no_file_can_be_created_before_it_runs(tmp_path):
    """``--json /proc/x.json`` passed the early check (run as root, ``os.access`` says yes to any folder), the
    whole comparison ran and printed its summary, and only then the write failed."""
    (tmp_path / "ab_small.py").write_text(_AB_MODULE)
    target = "/proc/agentops-compare-x.json"
    proc = subprocess.run([sys.executable, "-m", "pytest_agentops", "compare", "ab_small:BASE", "ab_small:BASE",
                           "--json", target], capture_output=True, text=True, timeout=120, cwd=tmp_path,
                          env={**os.environ, "PYTHONPATH": str(tmp_path)})
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert proc.stdout == ""  # refused before the comparison ran (it prints its summary when done)
    assert "Traceback" not in proc.stderr
    assert proc.stderr.startswith(f"agentops-compare: error: --json={target}: cannot write the comparison there: ")
    assert proc.stderr.count("\n") == 1 and "give the path of a file in a writable directory" in proc.stderr


def test_the_early_output_check_leaves_no_file_behind_and_keeps_an_existing_one(tmp_path):
    """The early check of an output path (agentops-compare --json, agentops-gate --markdown) tries to create the
    file (what ``os.access`` cannot tell as root): it removes what it made, and an existing file is opened for
    appending only, its text kept."""
    from pytest_agentops.gate import unwritable as _json_unwritable

    new = tmp_path / "new.json"
    assert _json_unwritable(str(new)) is None and not new.exists()
    old = tmp_path / "old.json"
    old.write_text("kept")
    assert _json_unwritable(str(old)) is None and old.read_text() == "kept"
    assert "it is a directory" in _json_unwritable(str(tmp_path))  # (the gate's own checks come first)


# -- FaultPlan(seed, faults, tools) with the scenario's tools ---------------------------------------------------

@tool
def lookup_order(world, order_id: int) -> dict:
    """Look up an order."""
    return world.orders[order_id]


@tool(side_effect=True, name="refund")
def refund_order(world, order_id: int) -> str:
    """Refund an order."""
    return "refunded"


def plain_tool(world) -> str:
    """An undeclared tool (a plain function)."""
    return "ok"


_FAULTS = Faults.profile("high", per_tool={"refund": 0.5}, outage=0.5)


@pytest.mark.parametrize("seed", [1, 2, 3, 123, 2024])
def test_a_fault_plan_takes_the_scenarios_tools_as_the_scenario_does(seed):
    """``FaultPlan(123, faults, TOOLS).listing()`` with tool functions (what the docs' ``tools`` suggests, as in
    ``Scenario(tools=...)``) raised ``AttributeError: 'function' object has no attribute 'encode'``."""
    names = ("lookup_order", "refund", "plain_tool")
    by_name = FaultPlan(seed, _FAULTS, names)
    for tools in ([lookup_order, refund_order, plain_tool], (tool_spec(lookup_order), "refund", plain_tool)):
        plan = FaultPlan(seed, _FAULTS, tools)
        assert plan.tools == names
        assert plan.listing() == by_name.listing()  # the same draws: the tools' names, as a trial has them
        assert plan.outage_tool == by_name.outage_tool


@pytest.mark.parametrize(("tools", "said"), [
    (("lookup_order", 5), "FaultPlan(tools=...): item 1 is 5 (int); expected a tool's name (a string), a tool "
                          "function or a ToolSpec"),
    ("lookup_order", "FaultPlan(tools='lookup_order'): expected a sequence of tools (names, tool functions or "
                     "ToolSpecs), not a string"),
    (7, "FaultPlan(tools=7): expected a sequence of tools (names, tool functions or ToolSpecs), got int"),
])
def test_a_fault_plan_refuses_tools_it_cannot_name_with_a_config_error(tools, said):
    with pytest.raises(ConfigError) as caught:
        FaultPlan(1, _FAULTS, tools)
    assert str(caught.value) == said


@pytest.mark.parametrize("faults", ["mid", {"rate": 0.1}, None])
def test_a_fault_plan_refuses_faults_that_are_not_faults(faults):
    with pytest.raises(ConfigError, match=r"FaultPlan\(faults=.*\): expected a Faults \(e\.g\. Faults\(rate=0\.1\)"):
        FaultPlan(1, faults, ("lookup_order",))


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs a procfs (no file can be created in /proc)")
def test_agentops_gate_refuses_a_markdown_path_where_no_file_can_be_created(tmp_path, capsys):
    from pytest_agentops.gate import main

    assert main([str(tmp_path / "never-read.json"), "--markdown", "/proc/agentops-gate-x.md"]) == 2
    err = capsys.readouterr().err
    assert "--markdown" in err and "creating it failed" in err and "Traceback" not in err


# -- prices ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("prices", "said"), [
    ([1, 2], r"^prices=\[1, 2\] must map model names to \(input_usd_per_mtok, output_usd_per_mtok\)"),
    ({"m": (float("nan"), 1.0)}, r"^prices\['m'\]=\(nan, 1.0\) must be .*two finite numbers >= 0"),
    ({"m": (10 ** 400, 1)}, r"^prices\['m'\]=\(1000.*two finite numbers >= 0"),
    ({"m": (True, 1)}, r"^prices\['m'\]=\(True, 1\) must be"),
])
def test_bad_prices_in_python_are_a_config_error(prices, said):
    """``Scenario(prices=[1, 2])`` raised ``AttributeError: 'list' object has no attribute 'items'`` (YAML said it
    well); a NaN price was taken (every cost NaN), and a huge one raised ``OverflowError``."""
    from pytest_agentops import Scenario

    with pytest.raises(ConfigError, match=said):
        Scenario(name="s", agent=lambda task, env: "ok", prices=prices)


# -- replay_trial and shrink_trial of a trial that cannot be named ----------------------------------------------------


@pytest.mark.parametrize(("call", "said"), [
    (lambda s: __import__("pytest_agentops").replay_trial(s, 3),
     r"^replay_trial: seed is needed: scenario 'unseeded' sets none, .* replay_trial\(scenario, 3, seed=SEED\)"),
    (lambda s: __import__("pytest_agentops").shrink_trial(s, 3), r"^shrink_trial: seed is needed"),
    (lambda s: __import__("pytest_agentops").replay_trial(s, None, seed=1), r"^replay_trial: index=None must be a "
                                                                            r"trial index >= 0"),
], ids=["no_seed", "shrink_no_seed", "no_index"])
def test_a_replay_that_would_not_be_the_trial_named_is_a_config_error(call, said):
    """An outside review: ``replay_trial(s, 3)`` of a scenario without a seed ran another trial every call (three
    calls, three seeds, different tool failures); ``replay_trial(s, None)`` ran the whole campaign and returned
    its trial 0."""
    from pytest_agentops import Scenario

    with pytest.raises(ConfigError, match=said):
        call(Scenario(name="unseeded", agent=lambda task, env: "ok", trials=5, faults="high"))


def test_a_replay_with_its_seed_is_the_same_trial_every_time():
    from pytest_agentops import Scenario, replay_trial, run_campaign

    scenario = Scenario(name="unseeded", agent=lambda task, env: "ok", trials=5, faults="high")
    campaign = run_campaign(scenario, early_stop=False)
    again = [replay_trial(scenario, 3, seed=campaign.seed) for _ in range(2)]
    assert again[0].seed == again[1].seed == campaign.records[3].seed
    # trial i is the same whatever the trial count: one of a campaign run with more trials than the scenario's
    # replays without naming its count (a review of a first version that refused indices past scenario.trials)
    longer = run_campaign(scenario, trials=9, early_stop=False)
    assert replay_trial(scenario, 7, seed=longer.seed) == longer.records[7]


# -- task generators -------------------------------------------------------------------------------------------------


def _no_argument() -> str:
    return "t"


async def _async_generator(rng) -> str:
    return "t"


@pytest.mark.parametrize(("task", "said"), [
    (_no_argument, r"task=.* must take one argument: a task generator is called as generate\(rng\)"),
    (_async_generator, r"task=.* is a coroutine function \(async def\): calling it runs none of its body"),
])
def test_a_task_generator_that_cannot_be_called_as_generate_rng_is_refused(task, said):
    """An outside review: ``task: {generate: pytest_agentops.demo:Shop}`` loaded, and every trial ended in a
    ``TypeError`` while the campaign (no expectations) passed; an ``async def`` generator failed only at run time,
    at ``file:1:1``, with a "never awaited" warning."""
    from pytest_agentops import Scenario

    with pytest.raises(ConfigError, match=said):
        Scenario(name="s", agent=lambda task, env: "ok", task=task)


def test_a_cassette_for_a_scenario_without_a_live_model_is_refused(tmp_path):
    """An outside review: ``run_campaign(s, cassette=...)``/``record=...`` of a scenario with no ``live`` model ran
    as if not given (nothing recorded, nothing replayed, no directory made)."""
    from pytest_agentops import Scenario, run_campaign

    scenario = Scenario(name="offline", agent=lambda task, env: "ok", trials=1, seed=1)
    with pytest.raises(ConfigError, match=r"^cassette='/nonexistent/c': scenario 'offline' calls no live model"):
        run_campaign(scenario, cassette="/nonexistent/c")
    with pytest.raises(ConfigError, match=r"^record=.*: scenario 'offline' calls no live model"):
        run_campaign(scenario, record=str(tmp_path / "rec"))


@pytest.mark.parametrize(("xfail", "said"), [
    (True, r"^xfail=True must be the reason, a non-empty string"),
    ("  ", r"^xfail='  ' must be the reason"),
    ("x" * 2000, r"is 2,000 characters: a reason is at most 1,000"),
])
def test_an_xfail_that_is_not_a_reason_is_refused_in_python_as_in_yaml(xfail, said):
    """An outside review: ``Scenario(xfail=True)`` was taken in Python (YAML refused it), and a reason of a
    megabyte was echoed whole on every run."""
    from pytest_agentops import Scenario

    with pytest.raises(ConfigError, match=said):
        Scenario(name="s", agent=lambda task, env: "ok", xfail=xfail)

