"""Bad input cannot hang or exhaust a run: scenario files are read with bounded work (size, nesting depth,
alias expansion), trials and concurrency are capped with clear errors. What these cost in time and memory
is measured in tests/benchmarks/bench_hostile_input.py; here, the refusals and their messages."""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest

from pytest_agentops import ConfigError, Faults, Scenario, run_campaign
from pytest_agentops._validation import MAX_CONCURRENCY, MAX_TRIALS
from pytest_agentops.errors import ScenarioFileError
from pytest_agentops.pytest_plugin.options import parse_concurrency, parse_trials
from pytest_agentops.scenario_file import load_scenario_text, read_scenario_file
from pytest_agentops.scenario_file.yamldoc import MAX_DEPTH, MAX_EXPANDED, MAX_FILE_BYTES, short
from pytest_agentops.settings.run import RunSettings

import scenario_support as sup

HEAD = "name: refund\nagent: scenario_support:careful\n"


def laughs(levels: int, copies: int = 9, key: str = "task") -> str:
    """A 'billion laughs' document: each anchor a list of ``copies`` aliases of the previous one."""
    lines = [HEAD + f"{key}:", f"  l0: &l0 [{', '.join(['lol'] * copies)}]"]
    lines += [f"  l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * copies)}]" for i in range(1, levels)]
    return "\n".join(lines) + "\n"


def refused(text: str) -> ScenarioFileError:
    with pytest.raises(ScenarioFileError) as info:
        load_scenario_text(text, "hostile.yaml")
    assert "Traceback" not in str(info.value)
    return info.value


# --- alias expansion: memoised and bounded -------------------------------------------------------------------


@pytest.mark.parametrize("key", ["task", "name", "world", "faults", "expect", "state"])
def test_an_alias_bomb_is_refused_at_the_alias_that_crosses_the_budget(key):
    """Wherever the bomb is (read by a reader, or shown in another error's message), it is refused by the
    tree check, before any value is expanded: at the first anchor whose expansion passes the budget."""
    text = laughs(10, key=key)
    assert len(text.encode()) < 700
    error = refused(text)
    assert "expand this value to more than 2,000,000 nodes and characters" in error.bare_message
    assert "'billion laughs'" in error.bare_message
    # l5 holds 9**6 copies of 'lol' (4 nodes and characters each): past 2,000,000, at its anchor '&l5'
    assert (error.path, error.line, error.column) == ("hostile.yaml", 9, 7)
    assert str(error).startswith("hostile.yaml:9:7: ")


def test_merge_keys_count_toward_the_budget():
    lines = [HEAD + "approver: &m0 {approve: 0.9, a: 1, b: 2, c: 3, d: 4, e: 5, f: 6, g: 7, h: 8, i: 9}",
             "task: &t0 x"]
    for i in range(1, 7):
        lines.append(f"x{i}: &m{i} {{<<: [{', '.join([f'*m{i - 1}'] * 10)}]}}")
    error = refused("\n".join(lines) + "\n")
    assert "expand this value to more than" in error.bare_message


def test_an_alias_used_many_times_is_expanded_once_and_shared():
    """Below the budget aliases are fine: the value a reader gets shares the aliased node's value (as
    yaml.safe_load does), so 9**5 leaves cost 9**4 small lists, not 59,049 strings' worth of lists."""
    from pytest_agentops.scenario_file.yamldoc import ScenarioLoader, YamlDoc, check_tree

    loader = ScenarioLoader(laughs(5), "ok.yaml")
    root = loader.get_single_node()
    doc = YamlDoc(loader, "ok.yaml")
    check_tree(doc, root)
    value = doc.plain(root)["task"]
    assert value["l4"][0] is value["l3"] and value["l4"][8] is value["l3"]
    assert doc.plain(root) is doc.plain(root)  # memoised per node
    loader.dispose()


def test_an_error_about_a_large_shared_value_shows_a_short_repr():
    """The reader refuses a mapping given as ``task`` (other than a task generator); its message stays short."""
    error = refused(laughs(5))
    assert error.bare_message.startswith("task: a mapping takes exactly one key, 'generate'")
    assert "got keys ['l0', 'l1'" in error.bare_message and len(error.bare_message) < 200
    wide = refused(HEAD + "task: {" + ", ".join(f"k{i}: 1" for i in range(5000)) + "}\n")
    assert "got keys ['k0', 'k1'" in wide.bare_message and len(wide.bare_message) < 250


def test_short_is_the_shortened_repr_built_only_as_far_as_shown():
    shared = ["x" * 10] * 1000
    huge = [shared] * 1000  # a billion characters if it were repr'd whole
    assert short(huge) == repr([shared])[:77] + "..."
    for value in ([1, "a", None, 2.5, True], {"a": [1, {"b": (2, 3)}]}, "text", [], {}):
        assert short(value) == repr(value)
    loop: list = [1]
    loop.append(loop)
    assert short(loop) == repr(loop) == "[1, [...]]"


def test_the_budget_exceeds_what_any_file_within_the_size_limit_holds_without_aliases():
    assert MAX_EXPANDED >= 2 * MAX_FILE_BYTES


# --- nesting depth -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", ["flow list", "flow mapping", "block", "aliases"])
def test_deep_nesting_is_a_clear_error_not_a_recursion_error(shape):
    if shape == "flow list":
        text = HEAD + "task: " + "[" * 20_000 + "]" * 20_000 + "\n"
        where = (3, 7 + MAX_DEPTH)
    elif shape == "flow mapping":
        text = HEAD + "task: " + "{a: " * 20_000 + "1" + "}" * 20_000 + "\n"
        where = (3, 7 + 4 * (MAX_DEPTH - 2) + 1)  # the key 'a' of the 99th mapping: its 101st level
    elif shape == "block":
        text = HEAD + "task:\n" + "".join(" " * i + "- \n" for i in range(1, 200))
        where = (3 + MAX_DEPTH, MAX_DEPTH + 1)
    else:  # shallow as written, deep once expanded: each anchor holds the previous one
        text = HEAD + "task:\n  a0: &a0 [1]\n" + "".join(f"  a{i}: &a{i} [*a{i - 1}]\n" for i in range(1, 2000))
        where = (3 + MAX_DEPTH, 8)
    assert len(text.encode()) <= MAX_FILE_BYTES
    error = refused(text)
    assert error.bare_message.startswith(f"values nest more than {MAX_DEPTH} levels deep")
    assert (error.line, error.column) == where


def test_nesting_up_to_the_limit_is_read():
    deep = "[" * (MAX_DEPTH - 2) + "x" + "]" * (MAX_DEPTH - 2)
    error = refused(HEAD + f"task: {deep}\n")  # read, then refused by the task reader (not a string)
    assert error.bare_message.startswith("task[0]=[[[[")


# --- the file's size ------------------------------------------------------------------------------------------


def test_a_text_over_one_megabyte_is_refused_before_it_is_parsed():
    text = HEAD + "task: '" + "x" * MAX_FILE_BYTES + "'\n"
    error = refused(text)
    assert error.bare_message == (f"the file is {len(text):,} bytes: scenario files are limited to 1 MB "
                                  "(1,000,000 bytes); split it into several files")
    assert error.line is None
    # UTF-8 bytes count, not characters
    wide = HEAD + "task: '" + "\u00e9" * (MAX_FILE_BYTES // 2 + 10) + "'\n"
    assert "scenario files are limited to 1 MB" in refused(wide).bare_message


def test_reading_a_file_reads_no_more_than_the_limit(tmp_path):
    big = tmp_path / "big.yaml"
    big.write_bytes(HEAD.encode() + b"# " + b"x" * (3 * MAX_FILE_BYTES) + b"\n")
    with pytest.raises(ScenarioFileError) as info:
        read_scenario_file(big, "scenarios/big.yaml")
    assert str(info.value) == (f"scenarios/big.yaml: the file is {big.stat().st_size:,} bytes: scenario files are "
                               "limited to 1 MB (1,000,000 bytes); split it into several files")
    with pytest.raises(ScenarioFileError, match="the file is larger than that: scenario files are limited to 1 MB"):
        read_scenario_file("/dev/zero")  # endless: only the limit is read
    ok = tmp_path / "ok.yaml"
    ok.write_bytes(b"name: a\r\nagent: b:c\r\n")
    assert read_scenario_file(ok) == "name: a\nagent: b:c\n"  # newlines as a text file reads them


# --- trials and concurrency: capped, with clear errors ---------------------------------------------------------


@pytest.mark.parametrize("trials", [MAX_TRIALS + 1, 10**8, 10**12, 10**30, 10**400])
def test_trials_above_the_maximum_are_a_config_error_naming_the_key(trials):
    with pytest.raises(ConfigError, match=r"^trials=\S+ is too large: at most 10,000,000 trials per campaign"):
        Scenario(name="big", agent=sup.careful, trials=trials)
    with pytest.raises(ConfigError, match=r"^trials=\S+ is too large: at most 10,000,000"):
        RunSettings(seed=1, trials=trials, faults=Faults.none())
    with pytest.raises(ConfigError, match=r"^arguments: trials=\S+ is too large"):  # (the source that gave it)
        run_campaign(Scenario(name="big", agent=sup.careful), trials=trials)


@pytest.mark.parametrize("concurrency", [MAX_CONCURRENCY + 1, 100_000, 10**20])
def test_concurrency_above_the_maximum_is_a_config_error_naming_the_key(concurrency):
    with pytest.raises(ConfigError, match=r"^concurrency=\S+ is too large: at most 1,000 trials run at once"):
        Scenario(name="wide", agent=sup.careful, concurrency=concurrency)
    with pytest.raises(ConfigError, match=r"^arguments: concurrency=\S+ is too large: at most 1,000"):
        run_campaign(Scenario(name="wide", agent=sup.careful), concurrency=concurrency)


def test_the_maximum_itself_is_allowed_and_a_campaign_planning_it_stops_at_its_first_look():
    scenario = Scenario(name="most", agent=sup.careful, world=sup.Orders, tools=sup.ORDER_TOOLS,
                        check=sup.refunded, faults=Faults.none(), trials=MAX_TRIALS, concurrency=MAX_CONCURRENCY,
                        seed=5, expect={"completion_rate": ">= 0.5"})
    result = run_campaign(scenario, concurrency=4)
    assert result.stopped_early and len(result.records) < 100 and result.max_trials == MAX_TRIALS
    verdict = result.verdicts[0]
    # beyond the lazy limit the stated error rates are the bounds Ville's constants guarantee
    assert verdict.verdict == "pass" and (verdict.false_pass, verdict.false_fail) == pytest.approx((0.05, 0.05))


@pytest.mark.parametrize("sequential", [True, False])
@pytest.mark.parametrize(("threshold", "fail_level"), [(0.9, None), (0.9, 0.8), (0.0, None), (1.0, None)])
def test_a_rule_beyond_the_lazy_limit_computes_the_boundaries_it_is_asked_for_and_the_same_ones(
        threshold, fail_level, sequential):
    from pytest_agentops.stats import LAZY_LIMIT, Bounds, rate_rule
    from pytest_agentops.stats.sequential import CHUNK

    big = LAZY_LIMIT + 3 * CHUNK + 17
    rule = rate_rule(threshold, max_n=big, fail_level=fail_level, sequential=sequential)
    assert isinstance(rule.pass_at, Bounds) and len(rule.pass_at) == big + 1
    probes = [0, 1, 2, 50, CHUNK - 1, CHUNK, LAZY_LIMIT, big - 1, big]
    seen = [(rule.pass_at[n], rule.fail_at[n]) for n in probes]
    assert "4 chunk(s)" in repr(rule.pass_at)  # only the chunks holding the probes: 0, 1, 24, 27
    whole_pass, whole_fail = np.asarray(rule.pass_at), np.asarray(rule.fail_at)
    assert seen == [(int(whole_pass[n]), int(whole_fail[n])) for n in probes]
    assert rule.pass_at[-1] == rule.pass_at[big] and rule.pass_at[2:5] == [rule.pass_at[n] for n in (2, 3, 4)]
    with pytest.raises(IndexError):
        rule.pass_at[big + 1]
    # the same boundaries as the whole computation an eager rule of that length would make
    n = np.arange(big + 1)
    assert np.all(whole_fail < whole_pass) and np.all((whole_fail >= -1) & (whole_pass <= n + 1))
    if not sequential or threshold in (0.0, 1.0):
        assert (rule.decide(0, big), rule.decide(big, big)) == (("fail", "pass") if 0 < threshold < 1 else
                                                                 ("pass", "pass") if threshold == 0 else ("fail", None))
    else:  # Ville's constants for each n: the first pass and fail are those of the short rule's uncalibrated twin
        short_rule = rate_rule(threshold, max_n=LAZY_LIMIT, fail_level=fail_level, calibrate=False)
        if fail_level is not None:  # an SPRT's boundaries do not depend on its length
            assert whole_pass[:LAZY_LIMIT].tolist() == list(short_rule.pass_at[:LAZY_LIMIT])
            assert whole_fail[:LAZY_LIMIT].tolist() == list(short_rule.fail_at[:LAZY_LIMIT])
        assert rule.first_pass() is not None and rule.first_fail() is not None


@pytest.mark.parametrize(("parse", "value", "message"), [
    (parse_trials, "10000001", "--x='10000001' is too large: at most 10,000,000 trials per campaign"),
    (parse_trials, "1" * 5000, "is too large: at most 10,000,000"),
    (parse_concurrency, "1001", "--x='1001' is too large: at most 1,000 trials run at once"),
    (parse_concurrency, "9" * 5000, "is too large: at most 1,000"),
])
def test_command_line_values_above_the_maximum_are_usage_errors(parse, value, message):
    with pytest.raises(pytest.UsageError) as info:
        parse(value, "--x")
    assert message in str(info.value)
    assert parse("10000000" if parse is parse_trials else "1000", "--x") in (MAX_TRIALS, MAX_CONCURRENCY)


@pytest.mark.parametrize(("written", "example"), [("1e8", ", e.g. 100_000_000"), ("1.5e3", ", e.g. 1_500"),
                                                   ("1e400", "")])
def test_a_whole_number_written_with_an_exponent_gets_a_hint_not_a_bare_type_error(written, example):
    error = refused(HEAD + f"trials: {written}\n")
    assert error.bare_message == (f"trials={written!r} must be a whole number: YAML reads {written} as text (an "
                                  "exponent needs a decimal point and a sign there, as in 1.0e+8); write the number "
                                  f"out{example}")


def test_a_seed_too_long_to_read_is_a_usage_error_not_an_internal_error():
    from pytest_agentops.pytest_plugin.options import parse_seed

    with pytest.raises(pytest.UsageError, match=r"^--s= has 5,000 digits: a seed has at most 100$"):
        parse_seed("9" * 5000, "--s")
    assert parse_seed("9" * 100, "--s") == int("9" * 100)


def test_a_replay_id_or_seed_too_long_to_read_is_a_usage_error_and_a_seed_has_one_limit_everywhere(pytester):
    """An outside review: a replay id of 5,000 digits (``--agent-chaos-replay``, ``--agent-chaos-show``, the ini
    key, a label's seed) was an INTERNALERROR (Python refuses to read an int past 4,300 digits); a scenario's
    seed of 101 to 4,300 digits ran, and the replay command printed for it was refused (the command line's limit
    is 100 digits): one limit now, a ``ConfigError`` for a scenario's."""
    pytester.makepyfile(test_long="""
        from pytest_agentops import Scenario

        def agent(task, env):
            return "ok"

        def test_a(agent_chaos):
            agent_chaos.run(Scenario(name="a", agent=agent, trials=2, seed=1, faults="none"))
    """)
    many = "9" * 5000
    for option in (f"--agent-chaos-replay=trial-{many}", f"--agent-chaos-show=a/{many}",
                   f"--agent-chaos-replay=a[trial-1 seed={many}]"):
        result = pytester.runpytest("-p", "no:cacheprovider", "--agent-chaos", option)
        assert result.ret == pytest.ExitCode.USAGE_ERROR, option
        assert "INTERNALERROR" not in result.stdout.str() + result.stderr.str()
        result.stderr.fnmatch_lines(["ERROR: *at most *"])
    with pytest.raises(ConfigError, match=r"^seed=~1e150 has more than 100 digits: a seed has at most 100"):
        Scenario(name="a", agent=lambda task, env: "ok", seed=10**150)
    assert Scenario(name="a", agent=lambda task, env: "ok", seed=10**100 - 1).seed == 10**100 - 1


@pytest.mark.parametrize(("threshold", "fail_level"), [(0.9, None), (0.9, 0.8), (0.99, None), (0.5, 0.4)])
def test_a_lazy_rule_keeps_the_error_rates_it_states_over_its_first_units(threshold, fail_level):
    """Beyond the lazy limit a rule states Ville's bounds (alpha, beta) as its error rates: the exact chance
    of a wrong verdict within its first 3,000 units, computed by dynamic programming at the boundary rates
    (the threshold, and the fail level or the threshold itself), is below them."""
    from pytest_agentops.stats import LAZY_LIMIT, rate_rule
    from pytest_agentops.stats.sequential import _outcome

    rule = rate_rule(threshold, max_n=LAZY_LIMIT + 1, fail_level=fail_level)
    horizon = 3000
    pass_at, fail_at = np.asarray(rule.pass_at[:horizon + 1]), np.asarray(rule.fail_at[:horizon + 1])
    false_fail = _outcome(pass_at, fail_at, threshold, horizon).failed
    false_pass = _outcome(pass_at, fail_at, rule.base_pass, horizon).passed
    assert false_pass <= rule.beta and false_fail <= rule.alpha
    assert rule.error_rates() == (rule.beta, rule.alpha)
    assert false_fail > 0.001 and false_pass > 0.001  # the boundaries are reached: the check is not vacuous


def test_a_bad_setting_fails_its_test_with_the_message_and_the_users_line_not_a_deep_traceback(pytester):
    """A typo in a scenario showed a screen of the package's own frames (dataclass ``__init__``, the validators)
    before the one line that matters; pytest shows the test's line and the message, and ``--fulltrace`` all."""
    pytester.makepyfile(test_typos="""
        from pytest_agentops import Faults, Scenario, run_campaign

        def agent(task, env):
            return "ok"

        def test_threshold():
            run_campaign(Scenario(name="x", agent=agent, trials=5, seed=1, expect={"completion_rate": ">= 1.5"}))

        def test_rate():
            Faults(rate=2)

        def test_at_run_time(agent_chaos):
            agent_chaos.run(Scenario(name="x", agent=agent, seed=1), trials=-3)
    """)
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(failed=3)
    out = result.stdout.str()
    assert "pytest_agentops/" not in out.replace("pytest_agentops.errors.", "")
    result.stdout.fnmatch_lines([
        "E   *ConfigError: expect*'>= 1.5': a rate threshold must be between 0 and 1",
        "test_typos.py:7: ConfigError",
        "E   *ConfigError: rate=2 must be between 0 and 1*",
        "test_typos.py:10: ConfigError",
        "E   *ConfigError: agent_chaos.run: trials=-3 must be a whole number >= 1",
        "test_typos.py:13: ConfigError",
    ])
    full = pytester.runpytest("-p", "no:cacheprovider", "--fulltrace").stdout.str()
    assert "pytest_agentops/_validation.py" in full  # (the frames are there for whoever asks)


def test_the_package_frames_are_hidden_only_from_errors_raised_on_purpose():
    """A bug of ours (any other exception) keeps its frames: hiding them would hide the bug."""
    import pytest_agentops
    from pytest_agentops.errors import hide_own_frames

    def info(exc):
        try:
            raise exc
        except BaseException:
            return pytest.ExceptionInfo.from_current()

    assert hide_own_frames(info(ConfigError("bad")))
    assert not hide_own_frames(info(ValueError("a bug")))
    assert not hide_own_frames(info(KeyError("a bug")))
    assert not hide_own_frames(None)
    # every module of the package that imports anything says so (the demo agent's frames are user code: shown;
    # ``errors`` defines it, and ``secret_rules``, which ``errors`` imports, cannot import it back)
    package = Path(pytest_agentops.__file__).parent
    missing = []
    exempt = ("__main__.py", "_version.py", "errors.py", "secret_rules.py")
    for path in sorted(package.rglob("*.py")):
        if "demo" in path.relative_to(package).parts or path.name in exempt:
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        imports = any(isinstance(node, (ast.Import, ast.ImportFrom)) for node in tree.body)
        hides = any(isinstance(node, ast.Assign) and ast.unparse(node) == "__tracebackhide__ = hide_own_frames"
                    for node in tree.body)
        if imports and not hides:
            missing.append(str(path.relative_to(package)))
    assert missing == []
    assert pytest_agentops.errors.__tracebackhide__ is hide_own_frames


@pytest.mark.parametrize(("yaml_line", "message"), [
    ("trajectory: {loop_period: 100000000000}", r"loop_period=100,000,000,000 is too large: at most 1,000 calls"),
    ("budget: {per_user_day_tokens: 100000, users: {count: 10, earlier_tasks: 100000000000}}",
     r"earlier_tasks=1e\+11 is too large: at most 10,000 tasks a day"),
    ("memory_limit_mb: 9000000000000", r"memory_limit_mb=9,000,000,000,000 is too large: at most 16,777,216 MiB"),
], ids=["loop_period", "earlier_tasks", "memory_limit_mb"])
def test_a_setting_too_large_to_run_is_refused_where_it_is_written(yaml_line, message):
    """Each was accepted: a loop period of 10^11 made every trial a MemoryError, 10^8 earlier tasks a day took
    846 MB and 3 s per trial, and a memory limit of 2^43 MiB overflowed the child process's setrlimit (every
    trial 'agent process exited with code 1'). Refused by the loader (at its line) and by the shipped schema."""
    import json
    import re

    import jsonschema

    from pytest_agentops.scenario_file import SCHEMA_PATH

    text = (f"name: big\nagent: scenario_support:Agents.careful\ntask: t\ntrials: 2\n{yaml_line}\n")
    with pytest.raises(ScenarioFileError, match=r"<string>:5:\d+: .*" + message):
        load_scenario_text(text)
    import yaml

    validator = jsonschema.Draft202012Validator(json.loads(SCHEMA_PATH.read_text(encoding="utf-8")))
    assert list(validator.iter_errors(yaml.safe_load(text)))
    fine = re.sub(r"\d{10,}", "1000", text)  # (the same document with a value in range: valid)
    load_scenario_text(fine)
    assert not list(validator.iter_errors(yaml.safe_load(fine)))


@pytest.mark.parametrize("key", ["model", "drift"])
def test_a_misspelt_model_or_drift_profile_names_its_key_and_the_closest_profile(key):
    """(A review: it said ``profile='hihg'``, a key the file does not have, and suggested nothing.)"""
    error = refused(HEAD + f"faults:\n  {key}: hihg\n")
    assert error.bare_message == (f"faults: {key}='hihg' is not a fault profile; valid profiles: none, low, mid, "
                                  "high (did you mean 'high'?)")
