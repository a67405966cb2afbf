"""The corpus of broken scenario files (tests/scenario_errors/, one mistake per file): each gives its own
clear message at the right line and column, as a ScenarioFileError, never another exception."""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_agentops.errors import ScenarioFileError
from pytest_agentops.scenario_file import load_scenarios

CORPUS = Path(__file__).parent / "scenario_errors"
pytestmark = pytest.mark.filterwarnings(
    "ignore:.*is deprecated. give enforce and scopes at the top level:DeprecationWarning")

# file (without .yaml) -> (message fragment, line, column); column None where only the line is meaningful
EXPECTED: dict[str, tuple[str, int, int | None]] = {
    # keys
    "unknown_key_typo": ("unknown key 'trails' (did you mean 'trials'?)", 3, 1),
    "key_at_top_level_and_under_harness": ("'enforce' is given at the top level and under 'harness:'; give it once",
                                           3, 1),
    "key_belongs_under_faults": ("unknown key 'profile' ('profile' belongs under 'faults:')", 3, 1),
    "missing_name": ("missing required key 'name'", 1, 1),
    "missing_agent": ("missing required key 'agent'", 1, 1),
    "duplicate_key": ("duplicate key 'trials' (first given at line 3)", 5, 1),
    "key_not_a_string": ("key 1 must be a string; quote it", 3, 1),
    # the file's shape
    "empty_file": ("the file is empty: expected a scenario", 1, 1),
    "top_level_scalar": ("expected a scenario (a mapping with name:, agent:, ...) or a list of them, got 'refund",
                         1, 1),
    "empty_list": ("empty list: expected at least one scenario", 1, 1),
    "list_item_not_mapping": ("scenario #2='scenario_support:careful' must be a mapping", 3, 3),
    "duplicate_scenario_name": ("duplicate scenario name 'refund' (first defined at line 1)", 3, 9),
    # (merged in from an anchor: shown at the item that repeats it, not at the anchor's name, line 2 twice)
    "duplicate_scenario_name_by_merge": ("duplicate scenario name 'refund' (first defined at line 2)", 4, 3),
    # YAML itself: YAML's own line and column, plus a hint for the common ones
    "yaml_unclosed_bracket": ("YAML syntax error: expected ',' or ']'", 4, 7),
    "yaml_unquoted_threshold": ("a threshold starting with '>' must be quoted", 4, 21),
    "yaml_tab_indentation": ("indent with spaces, not tabs", 4, 1),
    "yaml_boolean_word": ("network=False must be one of deny, allow (deny: requests to hosts not in allow_hosts "
                          "fail) (YAML reads an unquoted no as false: quote it, 'no', to give the word)", 3, 10),
    "yaml_two_documents": ("put several scenarios in one list", 3, 1),
    "python_object_tag": ("tag '!!python/object/apply:os.system' is not allowed", 2, 8),
    "custom_tag": ("tag '!agent' is not allowed", 2, 8),
    "recursive_alias": ("recursive alias", 3, 7),
    "invalid_date": ("cannot read the value '2024-13-45': month must be in 1..12", 3, 7),
    # numbers YAML 1.1 reads otherwise than they look (010 was 8 trials, 1:30 was 90 seconds, silently)
    "trials_octal": ("010 is read by YAML 1.1 as 8 (an octal number: its leading 0): write the number in plain "
                     "decimal, or quote it to mean text", 3, 9),
    "seconds_base_60": ("1:30 is read by YAML 1.1 as 90 (a base-60 number, minutes:seconds)", 3, 12),
    # bounded work whatever the file holds (yamldoc: MAX_EXPANDED, MAX_DEPTH)
    "alias_bomb": ("aliases ('*name') expand this value to more than 2,000,000 nodes and characters (aliases of "
                   "aliases multiply: a 'billion laughs' file?)", 9, 6),
    "nesting_too_deep": ("values nest more than 100 levels deep", 3, 107),
    # references package.module:attr
    "reference_with_dot_not_colon": ("must be a reference 'package.module:attr' (the module's import path, a colon, "
                                     "then the attribute) (did you mean 'scenario_support:careful'?)", 2, 8),
    "reference_not_a_string": ("agent=['scenario_support', 'careful'] must be a reference", 2, 8),
    "unimportable_module": ("cannot import module 'my_agents.support' (ModuleNotFoundError: No module named "
                            "'my_agents'); is the package installed or on sys.path?", 2, 8),
    "module_raises_on_import": ("importing module 'scenario_support_broken' raised RuntimeError: this module is "
                                "broken on purpose", 2, 8),
    "missing_attribute": ("'scenario_support' has no attribute 'carefull' (did you mean 'careful'?)", 2, 8),
    "non_callable_agent": ("agent='scenario_support:NOT_CALLABLE' is not callable (it is int 42); agent must be a "
                           "callable agent(task, env)", 2, 8),
    "non_callable_tool": ("tools[1]='scenario_support:NOT_CALLABLE' is not callable", 5, 5),
    "tools_reference_not_a_list": ("tools='scenario_support:NOT_TOOLS' must name a list or tuple of tools", 3, 8),
    "tools_not_a_list": ("must be a list of references 'package.module:attr'", 3, 8),
    "duplicate_tool": ("tools: duplicate tool name(s) ['lookup_order']", 5, 5),
    # scenario values (Scenario's own validators, located)
    "name_empty": ("name='' must be a non-empty string", 1, 7),
    "name_with_slash": ("name='refund/high' must not contain '/'", 1, 7),
    "name_with_tab": ("name='refund\\thigh' must not contain a control character (a line break, a tab, NUL)", 1, 7),
    "task_empty_list": ("task=[] must be a string or a non-empty list of strings", 3, 7),
    "task_list_with_number": ("task[1]=42 must be a string", 5, 5),
    "trials_zero": ("trials=0 must be a whole number >= 1", 3, 9),
    "trials_not_a_number": ("trials='many' must be a whole number >= 1", 3, 9),
    "trials_fraction": ("trials=10.5 must be a whole number >= 1", 3, 9),
    "trials_above_maximum": ("trials=100,000,000 is too large: at most 10,000,000 trials per campaign", 3, 9),
    "concurrency_above_maximum": ("concurrency=100,000 is too large: at most 1,000 trials run at once", 3, 14),
    "seed_negative": ("seed=-1 must be a whole number >= 0", 3, 7),
    "confidence_as_percent": ("confidence=95 must be a number in [0.5, 1)", 3, 13),
    "timeout_zero": ("timeout_s=0 must be a number of seconds > 0", 3, 12),
    "early_stop_not_bool": ("early_stop='sometimes' must be true or false", 3, 13),
    "xfail_not_a_reason": ("xfail=True must be the reason, a non-empty string", 3, 8),
    "prices_one_number": ("prices['gpt-4o']=[2.5] must be [input_usd_per_mtok, output_usd_per_mtok]", 4, 11),
    # faults
    "faults_not_a_mapping": ("faults=[0.1, 0.2] must be a profile name (none, low, mid, high) or a mapping", 3, 9),
    "faults_unknown_profile": ("faults: profile='extreme' is not a fault profile; valid profiles: none, low, mid, "
                               "high", 4, 12),
    "faults_profile_shorthand_typo": ("faults='hihg' is not a fault profile; valid profiles: none, low, mid, high "
                                      "(did you mean 'high'?)", 3, 9),
    "faults_unknown_key": ("faults: unknown key 'latncy' (did you mean 'latency'?)", 5, 3),
    "faults_negative_rate": ("faults: rate=-0.1 must be between 0 and 1", 4, 9),
    "faults_rate_above_one": ("faults: rate=8 must be between 0 and 1", 4, 9),
    "faults_rate_as_percent": ("faults: rate='8%' must be a number between 0 and 1 (write a share: 0.08 for 8%)", 4, 9),
    "faults_unknown_kind": ("unknown fault kind 'errror'; valid kinds: error, timeout, rate_limit, malformed, empty "
                            "(did you mean 'error'?)", 5, 9),
    "faults_latency_in_mix": ("unknown fault kind 'latency' (latency and outage have their own settings)", 5, 19),
    "faults_mix_all_zero": ("faults: mix={'error': 0, 'timeout': 0} must have at least one positive weight", 5, 8),
    "faults_negative_weight": ("faults: mix['error']=-1 must be a weight >= 0", 4, 16),
    "faults_per_tool_unknown_tool": ("per_tool['refund']: 'refund' is not one of the scenario's tools (did you mean "
                                     "'refund_order'?)", 6, 5),
    "faults_per_tool_unknown_key": ("per_tool['refund_order']: unknown key 'rat' (did you mean 'rate'?)", 6, 20),
    "faults_per_tool_rate_above_one": ("per_tool['refund_order']=1.5 must be between 0 and 1", 6, 19),
    "faults_outage_tools_not_a_list": ("faults: outage_tools='refund_order' must be a list of strings", 6, 17),
    # approver and harness
    "approver_probability_above_one": ("approver: approve=1.5 must be a probability between 0 and 1", 4, 12),
    "approver_unknown_key": ("approver: unknown key 'approval' (did you mean 'approve'?)", 4, 3),
    "harness_enforce_not_bool": ("harness: enforce='yes please' must be true or false", 4, 12),
    "harness_scopes_not_a_list": ("harness: scopes='orders:write' must be a list of strings", 4, 11),
    # expectations
    "expect_not_a_mapping": ("expect=['completion_rate >= 0.90'] must be a mapping of metric name to a threshold",
                             4, 3),
    "expect_unknown_metric": ("unknown metric 'completion' (did you mean 'completion_rate'?)", 4, 3),
    "expect_bad_expression": ("expect['completion_rate']='at least 0.90' is not a threshold expression", 4, 20),
    "expect_threshold_not_a_string": ("expect['completion_rate']=0.9 must be a string like '>= 0.90'", 4, 20),
    "expect_rate_threshold_above_one": ("a rate threshold must be between 0 and 1", 4, 20),
    "expect_quantile_missing": ("'tokens_per_task' is a distribution; address a quantile, e.g. "
                                "'tokens_per_task.p95'", 4, 3),
    "expect_count_wrong_operator": ("a violation count takes '== 0' or '<= N'", 4, 34),
    "expect_unknown_rule": ("expect: 'rule_violations:lookup_frist' names no trajectory rule of this scenario (did "
                            "you mean 'lookup_first'?); rules: lookup_first", 8, 3),
    # trajectory rules
    "trajectory_rules_not_a_list": ("trajectory: rules={'tool': 'refund_order', 'at_most': 1} must be a list of "
                                    "rules", 5, 10),
    "trajectory_rule_unknown_key": ("trajectory: rules[0]: unknown key 'aftr' (did you mean 'after'?)", 6, 28),
    "trajectory_rule_unknown_tool": ("trajectory: rules[0]: after: 'lookup' is not one of the scenario's tools (did "
                                     "you mean 'lookup_order'?)", 6, 35),
    "trajectory_rule_two_things": ("trajectory: rules[0]: Rule(tool='refund_order') must say exactly one thing", 6, 7),
    "trajectory_rule_same_unknown_argument": ("trajectory: rules[0]: rule 'refund_order_after_lookup_order': same: "
                                              "refund_order has no argument 'order' (did you mean 'order_id'?)", 8, 13),
}


def test_the_corpus_and_the_table_match():
    files = {p.stem for p in CORPUS.glob("*.yaml")}
    assert files == set(EXPECTED)
    assert len(files) >= 30


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_each_broken_file_has_its_message_and_location(name):
    fragment, line, column = EXPECTED[name]
    path = CORPUS / f"{name}.yaml"
    with pytest.raises(ScenarioFileError) as info:
        load_scenarios(path)
    error = info.value
    assert fragment in error.bare_message
    assert (error.line, error.column if column is not None else None) == (line, column)
    # the message names the file, line and column first, as a compiler does
    assert str(error).startswith(f"{path}:{line}:{error.column}: ")
    assert "Traceback" not in str(error)


def test_messages_are_distinct():
    """Every mistake has its own message, not one generic 'invalid scenario'."""
    messages = []
    for name in EXPECTED:
        with pytest.raises(ScenarioFileError) as info:
            load_scenarios(CORPUS / f"{name}.yaml")
        messages.append(info.value.bare_message)
    assert len(set(messages)) == len(messages)


BROKEN_UNDER_SCENARIOS = """\
name: refund
agent: scenario_support:careful
trails: 100
"""


def test_collecting_a_broken_file_is_a_clean_collection_error(pytester):
    pytester.mkdir("scenarios")
    pytester.path.joinpath("scenarios", "refund.yaml").write_text(BROKEN_UNDER_SCENARIOS)
    result = pytester.runpytest("--agent-chaos", "scenarios")
    assert result.ret == pytest.ExitCode.INTERRUPTED
    result.stdout.fnmatch_lines([
        "*ERROR collecting scenarios/refund.yaml*",
        "scenarios/refund.yaml:3:1: unknown key 'trails' (did you mean 'trials'?)*",
    ])
    assert "Traceback" not in result.stdout.str() + result.stderr.str()
    assert "scenario_file.py" not in result.stdout.str()  # no internal frame either


def test_a_byte_that_is_not_utf8_is_named_by_its_line_and_column(tmp_path):
    """The error gave the byte's offset in the file alone (``at byte 63``): the line and column it sits on are
    what an editor shows."""
    path = tmp_path / "latin1.yaml"
    path.write_bytes(b"name: refund\nagent: pytest_agentops.demo:make_agent\ntask: \xc3\xa9t\xc3\xa9 caf\xe9 order\n")
    with pytest.raises(ScenarioFileError) as caught:
        load_scenarios(path)
    assert (caught.value.line, caught.value.column) == (3, 14)  # (in characters: the two before it take 4 bytes)
    assert str(caught.value) == f"{path}:3:14: the file is not UTF-8 text (invalid continuation byte at byte 67)"
