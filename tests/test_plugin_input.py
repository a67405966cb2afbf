"""Bad input to the plugin, as users meet it through pytest: a clear one-line error naming where and what was
expected, never a screen of the plugin's frames and never a setting silently dropped (an outside review)."""

from __future__ import annotations

import os

import pytest

from pytest_agentops import ConfigError, Scenario

SCENARIO = """
import pytest
from pytest_agentops import Scenario

S = Scenario(name="s", agent=lambda task, env: "ok", trials=3, seed=1, faults="none")
"""


def _run_marked(pytester: pytest.Pytester, marker: str) -> pytest.RunResult:
    """A test whose ``agent_chaos`` marker has ``marker``'s arguments, run with ``--agent-chaos``."""
    pytester.makepyfile(test_marked=SCENARIO + f"""

@pytest.mark.agent_chaos({marker})
def test_marked(agent_chaos):
    agent_chaos.run(S)
""")
    return pytester.runpytest("--agent-chaos", "-p", "no:cacheprovider")


@pytest.mark.parametrize(("marker", "said"), [
    ("trails=5", "@pytest.mark.agent_chaos: unknown argument 'trails' (did you mean 'trials'?); valid: seed, *"),
    ("7", "@pytest.mark.agent_chaos(7,): the marker takes keyword arguments only (seed, trials, *"),
], ids=["misspelt", "positional"])
def test_a_bad_marker_argument_names_the_marker_line_and_what_was_meant(pytester, marker, said):
    """A misspelt argument showed a screen of the plugin's frames; a positional one (``agent_chaos(7)``) was
    dropped, and the campaign ran its 100 trials."""
    result = _run_marked(pytester, marker)
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines([f"E   pytest_agentops.errors.ConfigError: test_marked.py:7: {said}"])
    assert "campaigns.py" not in result.stdout.str() and "pytest_plugin" not in result.stdout.str()


@pytest.mark.parametrize(("marker", "said"), [
    ("confidence=3", "confidence=3 must be a number in [[]0.5, 1), e.g. 0.95"),
    ("concurrency=0", "concurrency=0 must be a whole number >= 1"),
    ("isolation='vm'", "isolation='vm' must be one of none, process"),
    ("seed=-1", "seed=-1 must be a whole number >= 0 (or None for a fresh seed, printed with the result)"),
    ("max_campaign_usd=0", "max_campaign_usd=0 must be a number of US dollars > 0*"),
    ("profile='hihg'", "profile='hihg' is not a fault profile*"),
], ids=["confidence", "concurrency", "isolation", "seed", "usd", "profile"])
def test_a_bad_marker_value_names_the_marker_and_its_line(pytester, marker, said):
    """A bad value in the marker said ``confidence=3 must be ...`` with no word of where it came from (the
    marker, the command line, the scenario): now the test's file and line and the marker, as a misspelt name."""
    result = _run_marked(pytester, marker)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([f"E *pytest_agentops.errors.ConfigError: test_marked.py:7: "
                                 f"@pytest.mark.agent_chaos: {said}"])
    assert "precedence.py" not in result.stdout.str() and "contextlib" not in result.stdout.str()


def test_a_misspelt_argument_of_a_marker_the_closest_one_shadows_is_an_error_at_its_own_line(pytester):
    """A review: a module's or a class's marker with a misspelt argument passed silently whenever the test had a
    marker of its own (the closest one is used, and was the only one checked)."""
    pytester.makepyfile(test_shadowed=SCENARIO + """

pytestmark = pytest.mark.agent_chaos(trails=4)


@pytest.mark.agent_chaos(trials=5)
def test_own_marker(agent_chaos):
    agent_chaos.run(S)


class TestC:
    pytestmark = pytest.mark.agent_chaos(concurency=2)

    @pytest.mark.agent_chaos(trials=2)
    def test_in_class(self, agent_chaos):
        agent_chaos.run(S)
""")
    result = pytester.runpytest("--agent-chaos", "-p", "no:cacheprovider")
    result.assert_outcomes(errors=2)
    out = result.stdout.str()
    mark_line = 1 + next(i for i, row in enumerate((pytester.path / "test_shadowed.py").read_text().splitlines())
                         if row.startswith("pytestmark"))
    said = "@pytest.mark.agent_chaos: unknown argument 'trails' (did you mean 'trials'?)"
    assert f"test_shadowed.py:{mark_line}: {said}" in out
    assert "@pytest.mark.agent_chaos: unknown argument 'concurency' (did you mean 'concurrency'?)" in out


def test_a_misspelt_marker_name_on_a_campaign_test_is_an_error_not_its_settings_dropped(pytester):
    """An outside review: ``@pytest.mark.agent_chaoss(trials=7)`` ran the campaign with 3 trials, exit 0, with only
    pytest's generic unknown-mark warning (an ini key misspelt so is a usage error)."""
    pytester.makepyfile(test_names=SCENARIO + """

@pytest.mark.agent_chaoss(trials=7)
def test_doubled(agent_chaos):
    agent_chaos.run(S)


@pytest.mark.agentchaos(trials=7)
def test_joined(agent_chaos):
    agent_chaos.run(S)


@pytest.mark.chaos
@pytest.mark.agent
@pytest.mark.parametrize("x", [1])
def test_other_markers(agent_chaos, x):
    agent_chaos.run(S)
""")
    result = pytester.runpytest("--agent-chaos", "-p", "no:cacheprovider", "-W",
                                "ignore::pytest.PytestUnknownMarkWarning")
    result.assert_outcomes(errors=2, passed=1)
    result.stdout.fnmatch_lines([
        "*test_names.py:*: @pytest.mark.agent_chaoss is no marker pytest-agentops knows (did you mean "
        "@pytest.mark.agent_chaos?): the campaign would run without its settings (trials=7)",
        "*test_names.py:*: @pytest.mark.agentchaos is no marker pytest-agentops knows*"])


def test_a_marker_on_a_test_that_takes_the_fixture_by_name_at_run_time_is_not_said_unused(pytester):
    """A review: a test taking the fixture with ``request.getfixturevalue`` (unseen at collection) was warned
    ``UnusedSetting: the marker changes nothing``, an error under ``-W error``, though the marker applied. It is
    said once the test ran, of a test that did not take the fixture."""
    pytester.makepyfile(test_late=SCENARIO + """

@pytest.mark.agent_chaos(trials=5)
def test_late(request):
    result = request.getfixturevalue("agent_chaos").run(S)
    assert len(result.records) == 5


@pytest.mark.agent_chaos(trials=5)
def test_unused():
    pass
""")
    result = pytester.runpytest("--agent-chaos", "-p", "no:cacheprovider", "-W", "error::pytest_agentops.UnusedSetting")
    result.assert_outcomes(passed=2, errors=1)
    result.stdout.fnmatch_lines(["*ERROR at teardown of test_unused*", "*UnusedSetting: test_late.py::test_unused: "
                                 "@pytest.mark.agent_chaos sets the campaigns*"])
    assert "test_late.py::test_late: @pytest.mark" not in result.stdout.str()


def test_a_bad_value_in_a_run_call_or_the_scenario_names_it():
    """The same for ``run_campaign``'s arguments and the scenario's own settings."""
    from pytest_agentops import run_campaign

    with pytest.raises(ConfigError, match=r"^arguments: concurrency=0 must be"):
        run_campaign(Scenario(name="s", agent=lambda task, env: "ok", trials=1, seed=1), concurrency=0)


def test_a_cassette_directory_that_is_not_a_path_is_refused():
    from pytest_agentops import run_campaign

    with pytest.raises(ConfigError, match=r"record=5 must be a directory path \(a string\)"):
        run_campaign(Scenario(name="s", agent=lambda task, env: "ok", trials=1, seed=1), record=5)


@pytest.mark.parametrize("task", [5, 3.5, None, {"a", "b"}])
def test_a_task_that_is_neither_text_nor_a_list_of_texts_is_a_config_error(task):
    """``Scenario(task=5)`` raised ``TypeError: 'int' object is not iterable`` from inside the scenario."""
    with pytest.raises(ConfigError, match=r"must be a string or a non-empty list of strings"):
        Scenario(name="s", agent=lambda task, env: "ok", task=task)


def test_two_outputs_at_one_path_are_a_usage_error(pytester):
    """``--agent-chaos-report=same.json --agent-chaos-html=same.json`` passed, and the JSON report was lost."""
    pytester.makepyfile(test_one=SCENARIO + "\n\ndef test_one(agent_chaos):\n    agent_chaos.run(S)\n")
    result = pytester.runpytest("--agent-chaos", "--agent-chaos-report=same.json", "--agent-chaos-html=./same.json",
                                "-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: --agent-chaos-report and --agent-chaos-html (or their ini twins) name the "
                                 "same file './same.json': one would replace the other"])
    # pytest's own JUnit XML at the report's path: the JSON report replaced it (an outside review)
    junit = pytester.runpytest("--agent-chaos", "--agent-chaos-report=same.out", "--junitxml=same.out",
                               "-p", "no:cacheprovider")
    assert junit.ret == pytest.ExitCode.USAGE_ERROR
    junit.stderr.fnmatch_lines(["ERROR: --junitxml and --agent-chaos-report (or its ini twin) name the same file "
                                "'same.out': one would replace the other"])


@pytest.mark.parametrize(("given", "cap"), [("2,000,000", 2_000_000), ("1_000", 1000), ("1_0", 10), ("750", 750),
                                            ("1,000,00", None), ("1,0", None), (",5", None), ("1,,000", None)])
def test_a_token_cap_takes_thousands_separators_only_where_they_group_thousands(given, cap):
    """``1,000,00`` was read as 100000, and ``1,0`` as 10."""
    from pytest_agentops.pytest_plugin.options import parse_tokens

    if cap is None:
        with pytest.raises(pytest.UsageError, match=r"must be a whole number of tokens >= 1, e.g. 2000000 or "):
            parse_tokens(given, "--agent-chaos-max-tokens")
    else:
        assert parse_tokens(given, "--agent-chaos-max-tokens") == cap


def test_a_switch_in_the_ini_file_that_is_not_true_or_false_names_its_key_and_file(pytester):
    """(An outside review: the message named no line, and hedged about ``-o`` when none was given.)"""
    pytester.makeini("[pytest]\naddopts = -q\nagent_chaos = maybe\n")
    pytester.makepyfile(test_one="def test_one():\n    pass\n")
    result = pytester.runpytest("-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: agent_chaos (tox.ini:3): invalid truth value 'maybe'; expected true or false"])
    given = pytester.runpytest("-p", "no:cacheprovider", "-o", "agent_chaos=perhaps")
    given.stderr.fnmatch_lines(["ERROR: -o agent_chaos: invalid truth value 'perhaps'; expected true or false"])
    # (a review: the flag on the command line hid the broken value, which every other key reports either way)
    flagged = pytester.runpytest("-p", "no:cacheprovider", "--agent-chaos")
    assert flagged.ret == pytest.ExitCode.USAGE_ERROR
    flagged.stderr.fnmatch_lines(["ERROR: agent_chaos (tox.ini:3): invalid truth value 'maybe'; expected true or *"])


@pytest.mark.parametrize(("name", "text", "line", "key", "meant"), [
    ("tox.ini", "[pytest]\naddopts = -q\nagent_chaos_trails = 500\n", 3, "agent_chaos_trails", "agent_chaos_trials"),
    ("setup.cfg", "[metadata]\nname = x\n[tool:pytest]\nAgent_Chaos_Seed = 7\n", 4, "Agent_Chaos_Seed",
     "agent_chaos_seed"),
    ("pyproject.toml", '[project]\nname = "x"\n[tool.other]\nagentops_scenario_file = 1\n\n[tool.pytest.ini_options]\n'
                       '  "agentops_scenario_file" = ["a"]\n', 7, "agentops_scenario_file", "agentops_scenario_files"),
    ("pytest.toml", '[pytest]\nagent_chaos_trails = "500"\n', 2, "agent_chaos_trails", "agent_chaos_trials"),
    ("pytest.ini", "[pytest]\nagent-chaos-profile = high\n", 2, "agent-chaos-profile", "agent_chaos_profile"),
], ids=["tox", "setup.cfg", "pyproject", "pytest.toml", "hyphens"])
def test_a_misspelled_setting_in_the_ini_file_is_an_error_naming_file_line_and_the_setting_meant(
        pytester, name, text, line, key, meant):
    """``agent_chaos_trails = 500`` got only pytest's "Unknown config option" warning in the summary, and the
    campaigns ran with the default number of trials."""
    pytester.path.joinpath(name).write_text(text)
    pytester.makepyfile(test_one="def test_one():\n    pass\n")
    result = pytester.runpytest("-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"ERROR: {pytester.path / name}:{line}: {key!r} is not a pytest-agentops setting "
                                 f"(did you mean {meant!r}?); its settings are agent_chaos, agent_chaos_cassette, *"])


@pytest.mark.parametrize(("given", "meant"), [("agent_chaos_trails=3", "agent_chaos_trials"),
                                            ("agent-chaos-trials=3", "agent_chaos_trials")])
def test_a_misspelled_setting_given_with_o_is_an_error_naming_the_option(pytester, given, meant):
    """Found by an outside review: ``-o agent_chaos_trails=3`` got only pytest's warning, and the campaigns ran
    with the default number of trials (in an ini file the same key was already an error)."""
    pytester.makepyfile(test_one="def test_one():\n    pass\n")
    result = pytester.runpytest("-p", "no:cacheprovider", "-o", given)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    key = given.partition("=")[0]
    result.stderr.fnmatch_lines([f"ERROR: -o {given}: {key!r} is not a pytest-agentops setting (did you mean "
                                 f"{meant!r}?)*"])
    assert pytester.runpytest("-p", "no:cacheprovider", "-o", "agent_chaos_trials=3").ret == pytest.ExitCode.OK


@pytest.mark.parametrize(("target", "said"), [("test_one.py", "is a file; give a directory to write the cassettes in"),
                                            ("/proc/agentops-cassettes", "cannot make the directory")])
def test_a_record_directory_that_cannot_be_one_is_a_usage_error_before_any_test_runs(pytester, target, said):
    """Found by an outside review: ``--agent-chaos-record=FILE`` failed the first test that recorded with a
    ``FileExistsError`` traceback from pathlib (the report options were checked at start-up already)."""
    if target.startswith("/proc") and not os.path.isdir("/proc/self"):
        pytest.skip("needs a procfs (no directory can be made in /proc)")
    pytester.makepyfile(test_one="def test_one():\n    pass\n")
    result = pytester.runpytest("-p", "no:cacheprovider", f"--agent-chaos-record={target}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"ERROR: --agent-chaos-record=*{target}: {said}*"])
    made = pytester.runpytest("-p", "no:cacheprovider", "--agent-chaos-record=cassettes/new")
    assert made.ret == pytest.ExitCode.OK and (pytester.path / "cassettes" / "new").is_dir()


@pytest.mark.parametrize("value", ["[5]", "5", '[["chaos/*.yml"]]'])
def test_scenario_file_patterns_that_are_not_text_in_pyproject_are_an_error_naming_the_line(pytester, value):
    """``agentops_scenario_files = [5]`` ended collection in a TypeError traceback; ``= 5`` was taken as the
    pattern '5' and nothing was collected."""
    pytester.path.joinpath("pyproject.toml").write_text(
        f'[tool.pytest.ini_options]\nagent_chaos = true\nagentops_scenario_files = {value}\n')
    pytester.makepyfile(test_one="def test_one():\n    pass\n")
    result = pytester.runpytest("-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"ERROR: {pytester.path / 'pyproject.toml'}:3: agentops_scenario_files = *: expected "
                                 "glob patterns of scenario files, as a list of strings*"])


@pytest.mark.parametrize(("name", "text"), [("ci.cfg", "[tool:pytest]\nagent_chaos_trails = 5\n"),
                                           ("ci.toml", "[pytest]\nagent_chaos_trails = 5\n")])
def test_a_misspelled_setting_in_a_config_file_given_with_c_is_an_error_too(pytester, name, text):
    """pytest reads any ``.cfg`` given with ``-c`` as ``setup.cfg`` (``[tool:pytest]``), and a ``.toml`` of
    another name by its ``[pytest]`` table: a misspelled key there was only pytest's warning."""
    pytester.path.joinpath(name).write_text(text)
    pytester.makepyfile(test_one="def test_one():\n    pass\n")
    result = pytester.runpytest("-p", "no:cacheprovider", "-c", name)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"ERROR: {pytester.path / name}:2: 'agent_chaos_trails' is not a pytest-agentops "
                                 "setting (did you mean 'agent_chaos_trials'?)*"])


@pytest.mark.parametrize(("name", "text"), [
    ("tox.ini", "[testenv]\nagent_chaos_trails = 1\n[pytest]\nagent_chaos_trials = 3\ntimeout_x = 1\n"
                "markers =\n    agentops_live: needs the network\n    agent_chaos = x\n"),
    ("pyproject.toml", '[tool.other]\nagent_chaos_trails = 1\n[tool.pytest.ini_options]\nagent_chaos_trials = "3"\n'
                       'timeout_x = "1"\nmarkers = [\n    "agentops_live: needs the network",\n'
                       '    "agent_chaos_x = y",\n]\n'),
], ids=["tox", "pyproject"])
def test_keys_of_other_sections_values_and_other_plugins_are_left_to_pytest(pytester, name, text):
    """Only the plugin's own keys in pytest's section: a tool's ``agent_chaos_x`` elsewhere, a value's lines (a
    marker named ``agentops_live``: pytest refused to start), and pytest's own keys, spelled right or wrong, are
    not the plugin's to judge."""
    pytester.path.joinpath(name).write_text(text)
    pytester.makepyfile(test_one="def test_one():\n    pass\n")
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*Unknown config option: timeout_x*"])


@pytest.mark.parametrize("name", ["refund\thigh", "refund\x00", "a\x7fb", "two\nlines"])
def test_a_scenario_name_with_a_control_character_is_a_config_error(name):
    """A NUL or a tab in a name was accepted: the name becomes the pytest item's and the replay id, and the
    printed replay command broke when pasted into a shell."""
    with pytest.raises(ConfigError, match=r"must not contain a control character \(a line break, a tab, NUL\)"):
        Scenario(name=name, agent=lambda task, env: "ok")
    Scenario(name="refund high é ✓", agent=lambda task, env: "ok")  # (spaces and any printable letter: fine)


def test_a_scenario_name_with_a_lone_surrogate_is_a_config_error():
    """``name: "refund\\ud800"`` loaded: pytest then failed with UnicodeEncodeError setting PYTEST_CURRENT_TEST,
    and with ``xfail`` the campaign that never ran was reported as 2 xfailed."""
    with pytest.raises(ConfigError, match=r"must be text UTF-8 can write \(it holds a lone surrogate\)"):
        Scenario(name="refund\ud800", agent=lambda task, env: "ok")


def test_a_lone_surrogate_an_agent_gives_reaches_every_report_escaped(pytester):
    """A model name with a lone surrogate (``env.record_usage(model="gpt-\\udcff")``) ended the session in a
    traceback from the HTML writer (no HTML nor OpenTelemetry file, exit status 1) though the test passed."""
    pytester.makepyfile(test_odd="""
        from pytest_agentops import Scenario, tool

        @tool
        def lookup(world, key: str) -> str:
            return "v"

        def agent(task, env):
            env.record_usage(input_tokens=10, output_tokens=1, model="gpt-\\udcff")
            return env.tools["lookup"]("k-\\ud800")

        def test_odd(agent_chaos):
            agent_chaos.run(Scenario(name="odd", agent=agent, tools=[lookup], trials=2, seed=1, faults="none"))
    """)
    result = pytester.runpytest("--agent-chaos", "--agent-chaos-report=r.json", "--agent-chaos-html=r.html",
                                "--agent-chaos-otel=r.otel.json")
    result.assert_outcomes(passed=1)
    assert result.ret == 0
    assert "udcff" in (pytester.path / "r.json").read_text(encoding="utf-8")  # (the model, priced by default)
    spans = (pytester.path / "r.otel.json").read_text(encoding="utf-8")
    assert "chat gpt-\\\\udcff" in spans and "k-\\\\\\\\ud800" in spans  # (the tool's arguments: JSON in JSON)
    assert "odd" in (pytester.path / "r.html").read_text(encoding="utf-8")  # (it shows no passing trial's calls)


def test_agent_chaos_run_given_something_else_than_a_scenario_says_so(pytester):
    """``agent_chaos.run("pkg:attr")`` raised ``AttributeError: 'str' object has no attribute 'faults'`` from
    deep in the settings (``run_campaign`` said what it expects)."""
    pytester.makepyfile(test_str="""
        def test_str(agent_chaos):
            agent_chaos.run("pytest_agentops.demo:careful_agent")
    """)
    result = pytester.runpytest("--agent-chaos")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*ConfigError: agent_chaos.run expects a Scenario, got "
                                 "'pytest_agentops.demo:careful_agent'"])


def test_show_on_a_cut_report_names_the_file(pytester):
    """A report cut short (a full disk) gave "Expecting property name ... line 41 column 2" and no file name."""
    pytester.path.joinpath("cut.json").write_text('{"campaigns": [{"scenario": "x", ', encoding="utf-8")
    result = pytester.runpytest("--agent-chaos-report=cut.json", "--agent-chaos-show=1")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"ERROR: --agent-chaos-show: {pytester.path / 'cut.json'}: *"])


@pytest.mark.parametrize(("field", "value", "said"), [
    ("cost_usd", None, "record.cost_usd must be a number >= 0, got NoneType"),
    ("trace", "x", "not a record as a report writes it"),
    ("trace", ["x"], "not a record as a report writes it"),
    ("trace", [{"t": "soon", "kind": "tool_call", "name": "x", "outcome": "ok", "data": {}}],
     "not a record as a report writes it"),
])
def test_show_on_a_malformed_record_is_a_usage_error_naming_it(pytester, field, value, said):
    """An outside review: a record with a field of the wrong type crashed ``--agent-chaos-show`` with pytest's
    INTERNALERROR traceback, and the run still exited 0."""
    import json

    pytester.makepyfile(test_one="""
        from pytest_agentops import Scenario

        def test_one(agent_chaos):
            agent_chaos.run(Scenario(name="one", agent=lambda task, env: "ok", trials=2, seed=1))
    """)
    assert pytester.runpytest("--agent-chaos", "--agent-chaos-report=r.json").ret == 0
    report = json.loads(pytester.path.joinpath("r.json").read_text())
    report["campaigns"][0]["records"][0][field] = value
    pytester.path.joinpath("r.json").write_text(json.dumps(report))
    result = pytester.runpytest("--agent-chaos-report=r.json", "--agent-chaos-show=0")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"ERROR: --agent-chaos-show: {pytester.path / 'r.json'}: campaign 'one', "
                                 f"trial-0: *{said}*"])


@pytest.mark.parametrize(("where", "said"), [("campaigns", "its campaigns are NoneType, not a list"),
                                             ("records", "campaign 'one': its records are NoneType, not a list")])
def test_show_on_a_report_whose_lists_are_null_is_a_usage_error(pytester, where, said):
    """A review: ``"campaigns": null`` crashed ``--agent-chaos-show`` with pytest's INTERNALERROR (exit 3)."""
    import json

    pytester.makepyfile(test_one="""
        from pytest_agentops import Scenario

        def test_one(agent_chaos):
            agent_chaos.run(Scenario(name="one", agent=lambda task, env: "ok", trials=2, seed=1))
    """)
    assert pytester.runpytest("--agent-chaos", "--agent-chaos-report=r.json").ret == 0
    report = json.loads(pytester.path.joinpath("r.json").read_text())
    if where == "campaigns":
        report["campaigns"] = None
    else:
        report["campaigns"][0]["records"] = None
    pytester.path.joinpath("r.json").write_text(json.dumps(report))
    result = pytester.runpytest("--agent-chaos-report=r.json", "--agent-chaos-show=one/trial-0")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"ERROR: --agent-chaos-show: {said}: is this a pytest-agentops JSON report? *"])


def test_an_agents_words_reach_the_terminal_as_text_never_as_control_codes(pytester):
    """A review: an exception's text, an escalation's reason and a tool's result came out raw in the failure
    message, the summary and ``--agent-chaos-show``: escape sequences that clear a line, retitle the window or
    print a green PASSED, and a newline that put ``::error title=spoof::`` at the start of a CI log's line."""
    pytester.makepyfile(test_ansi=r"""
from pytest_agentops import Scenario, tool

@tool
def fetch(world, s: str) -> str:
    "Fetched text with terminal controls."
    return "ok\x1b[2K\rFAKE"

def agent(task, env):
    env.tools["fetch"]("x")
    raise RuntimeError("boom\x1b[2K\r\x1b]0;pwned\x07\x1b[32mPASSED\x1b[0m\n::error title=spoof::agent")

def test_ansi(agent_chaos):
    agent_chaos.run(Scenario(name="ansi", agent=agent, task="t", tools=[fetch], check=lambda w, o: False,
                             trials=3, seed=1, faults="none", expect={"completion_rate": ">= 0.5"})).check()
""")
    result = pytester.runpytest("--agent-chaos", "--agent-chaos-report=r.json", "-p", "no:cacheprovider")
    shown = pytester.runpytest("--agent-chaos-report=r.json", "--agent-chaos-show=ansi/trial-0",
                               "-p", "no:cacheprovider")
    for run in (result, shown):
        out = run.stdout.str() + run.stderr.str()
        assert "\x1b" not in out and "\r" not in out and "\x07" not in out
        assert not [line for line in out.splitlines() if line.startswith("::")]
    assert r"boom\x1b[2K\r\x1b]0;pwned\x07\x1b[32mPASSED\x1b[0m\n::error title=spoof::agent" in result.stdout.str()


def test_the_marker_on_a_test_without_the_fixture_is_named_as_changing_nothing(pytester):
    """An outside review: ``@pytest.mark.agent_chaos(trials=2, profile="high")`` on a test calling ``run_campaign``
    (no fixture) was silently ignored: its campaign ran 20 trials under ``mid``. It warns ``UnusedSetting``."""
    pytester.makepyfile(test_marked="""
        import pytest

        @pytest.mark.agent_chaos(trials=2)
        def test_no_fixture():
            pass

        @pytest.mark.agent_chaos(trials=2)
        def test_fixture(agent_chaos):
            pass
    """)
    result = pytester.runpytest("--agent-chaos")
    result.assert_outcomes(passed=2, warnings=1)
    assert "test_marked.py::test_no_fixture: @pytest.mark.agent_chaos sets the campaigns" in result.stdout.str()
    assert "test_fixture: @pytest.mark.agent_chaos" not in result.stdout.str()
    strict = pytester.runpytest("--agent-chaos", "-W", "error::pytest_agentops.UnusedSetting")
    # (an error of that test at its teardown, once it ran without the fixture: never pytest's INTERNALERROR)
    strict.assert_outcomes(errors=1, passed=2)
    strict.stdout.fnmatch_lines(["*ERROR at teardown of test_no_fixture*"])


def test_a_bad_marker_on_a_class_or_module_is_named_at_its_own_line(pytester):
    """An outside review: a module's ``pytestmark`` (line 4) and a class's marker (line 5) with a misspelt argument
    were named at the test's ``def`` (lines 7 and 8), where no marker was."""
    pytester.makepyfile(test_mod="""
        import pytest


        pytestmark = pytest.mark.agent_chaos(trails=5)


        def test_one(agent_chaos):
            pass
    """, test_cls="""
        import pytest


        @pytest.mark.agent_chaos(trails=5)
        class TestRefund:

            def test_two(self, agent_chaos):
                pass
    """)
    result = pytester.runpytest()
    result.stdout.fnmatch_lines_random(["*ConfigError: test_mod.py:4: @pytest.mark.agent_chaos: unknown argument "
                                        "'trails'*", "*ConfigError: test_cls.py:4: @pytest.mark.agent_chaos: "
                                        "unknown argument 'trails'*"])
