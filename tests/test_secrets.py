"""Secrets an agent handles never reach a report: the fake model's key, ``sk-`` keys, Bearer values and the
values of secret-named environment variables are redacted from traces, reasons, outputs, the JSON report,
the terminal (what the agent prints and logs) and JUnit XML."""

from __future__ import annotations

import contextlib
import io
import json
import logging
import sys

import pytest

from pytest_agentops import Faults, Scenario, run_campaign, tool
from pytest_agentops.harness import secrets
from pytest_agentops.harness.secrets import REDACTED, is_secret_name, redact_data, redact_short, redact_text
from pytest_agentops.process.patch import installed

KEY = "agentops-test-4f9c1e7d2b8a6350"  # recognisable, and in no other text


@pytest.fixture
def secret_env(monkeypatch):
    monkeypatch.setenv("AGENTOPS_TEST_API_KEY", KEY)
    secrets.refresh()
    yield KEY
    monkeypatch.delenv("AGENTOPS_TEST_API_KEY")
    secrets.refresh()


@pytest.mark.parametrize(("name", "secret"), [
    ("OPENAI_API_KEY", True), ("GITHUB_TOKEN", True), ("DB_PASSWORD", True), ("AWS_SECRET_ACCESS_KEY", True),
    ("GHTOKEN", True), ("db-pass", True), ("my.secret.value", True), ("SERVICE_CREDENTIALS", True),
    ("PWD", False), ("OLDPWD", False), ("SSH_AUTH_SOCK", False), ("TOKENIZERS_PARALLELISM", False),
    ("KEYBOARD_LAYOUT", False), ("MONKEY", False), ("HOME", False), ("PATH", False),
])
def test_which_environment_variables_hold_secrets(name, secret):
    assert is_secret_name(name) is secret


def test_environment_values_of_eight_characters_or_more_are_redacted_longest_first():
    env = {"A_TOKEN": "short", "B_TOKEN": "abcdefgh", "C_SECRET": "abcdefgh-and-more", "HOME": "/home/someone"}
    assert secrets.environment_secrets(env) == ("abcdefgh-and-more", "abcdefgh")
    secrets.refresh(env)
    try:
        assert redact_text("x abcdefgh-and-more y abcdefgh z short /home/someone") == \
            f"x {REDACTED} y {REDACTED} z short /home/someone"
    finally:
        secrets.refresh()


@pytest.mark.parametrize("text", [
    "key sk-agentops-fake-api here", "sk-proj-AbC123dEf456", "Authorization: Bearer eyJhbGciOi.x.y",
])
def test_secret_shapes_are_redacted(text):
    assert "sk-" not in redact_text(text).replace(REDACTED, "") and "eyJ" not in redact_text(text)
    assert REDACTED in redact_text(text)


def test_a_secret_that_straddles_the_cut_is_redacted_whole(secret_env):
    text = "x" * 190 + KEY + "y" * 10_000_000
    short = redact_short(text, 200)
    assert short == "x" * 190 + REDACTED[:10] + "..." and KEY[:5] not in short


def test_report_data_is_redacted_keys_and_all(secret_env):
    data = {"a": [KEY, {"nested": f"Bearer {KEY}"}], KEY: 1, "n": 3, "ok": "plain"}
    assert redact_data(data) == {"a": [REDACTED, {"nested": REDACTED}], REDACTED: 1, "n": 3, "ok": "plain"}


def test_output_redaction_is_held_for_a_campaign_and_undone_after(secret_env, caplog):
    out, err, factory = sys.stdout, sys.stderr, logging.getLogRecordFactory()
    seen = io.StringIO()

    def agent(task, env):
        print(f"key={KEY}", file=sys.stdout)
        seen.write(f"stdout is wrapped: {isinstance(sys.stdout, secrets.RedactingStream)}\n")
        logging.getLogger("agent").warning("calling with %s", KEY)
        return "ok"

    with caplog.at_level(logging.WARNING):
        run_campaign(Scenario(name="print", agent=agent, trials=2, faults=Faults.none()))
    assert seen.getvalue().count("stdout is wrapped: True") == 2
    assert (sys.stdout, sys.stderr, logging.getLogRecordFactory()) == (out, err, factory)
    assert "output" not in installed()
    assert [r.getMessage() for r in caplog.records if r.name == "agent"] == [f"calling with {REDACTED}"] * 2


@tool
def lookup(world, query: str) -> str:
    """Look something up with a credential (and fail, saying it)."""
    raise ValueError(f"upstream rejected credential {query}")


def _leaky_agent(task, env):
    import os

    key = os.environ["AGENTOPS_TEST_API_KEY"]
    with contextlib.suppress(ValueError):
        env.tools["lookup"](key)
    if task == "escalate":
        env.escalate(f"stuck on {key}")
    if task == "raise":
        raise RuntimeError(f"the key {key} does not work (also sk-agentops-fake-openai)")
    return {"used": key, "headers": {"Authorization": f"Bearer {key}"}, "model_key": "sk-agentops-fake-api"}


def test_records_traces_and_reasons_hold_no_secret(secret_env):
    result = run_campaign(Scenario(name="leaky", agent=_leaky_agent, tools=[lookup], trials=3, seed=1,
                                   task=["return", "raise", "escalate"], faults=Faults.none(), early_stop=False))
    text = json.dumps(result.to_dict(with_traces=True))
    assert KEY not in text and "sk-agentops-fake" not in text
    outcomes = {r.outcome: r for r in result.records}
    assert set(outcomes) == {"completed", "error", "escalated"}
    assert outcomes["error"].reason.startswith(f"RuntimeError: the key {REDACTED} does not work (also {REDACTED})")
    assert REDACTED in outcomes["completed"].output
    call = next(e for e in outcomes["completed"].trace if e.kind == "tool_call")
    assert call.data["arguments"]["query"] == REDACTED and REDACTED in call.data["error"]


LEAKY_MODULE = '''
import logging
import os
import sys

from pytest_agentops import Faults, Scenario, tool

@tool
def lookup(world, query: str) -> str:
    """Look something up with a credential (and fail, saying it)."""
    raise ValueError(f"upstream rejected credential {query}")

def agent(task, env):
    key = os.environ["AGENTOPS_TEST_API_KEY"]
    print(f"agent prints the key {key} and sk-agentops-fake-api")
    print(f"and to stderr: {key}", file=sys.stderr)
    logging.getLogger("leaky").warning("agent logs the key %s", key)
    try:
        env.tools["lookup"](key)
    except ValueError:
        pass
    if task == "raise":
        raise RuntimeError(f"the key {key} does not work")
    return f"returns the key {key} with Authorization: Bearer {key}"

def child_agent(task, env):
    key = os.environ["AGENTOPS_TEST_API_KEY"]
    print(f"a child process prints the key {key}")
    return f"child returns {key}"

def never(world, output):
    return False

def test_leaky(agent_chaos):
    agent_chaos.run(Scenario(name="leaky", agent=agent, tools=[lookup], task=["return", "raise"], check=never,
                             trials=4, seed=5, faults=Faults.none(), early_stop=False,
                             expect={"completion_rate": ">= 0.9"})).check()

def test_leaky_child(agent_chaos):
    agent_chaos.run(Scenario(name="leaky child", agent=child_agent, check=never, trials=1, seed=5,
                             faults=Faults(crash_mode="sigkill"), timeout_s=60,
                             expect={"completion_rate": ">= 0.9"})).check()
'''


def test_no_secret_in_the_terminal_the_json_report_or_junit_xml(pytester, secret_env):
    pytester.makepyfile(test_leaky=LEAKY_MODULE)
    result = pytester.runpytest("--agent-chaos", "--agent-chaos-report=report.json", "--junitxml=junit.xml",
                                "-o", "junit_logging=all", "-rA", "-p", "no:cacheprovider")
    result.assert_outcomes(failed=2)
    terminal = result.stdout.str() + result.stderr.str()
    report = (pytester.path / "report.json").read_text()
    junit = (pytester.path / "junit.xml").read_text()
    for name, text in (("terminal", terminal), ("report", report), ("junit", junit)):
        assert KEY not in text, name
        assert "sk-agentops-fake" not in text, name
        assert REDACTED in text, name
    # what was redacted is where it would have been: the agent's prints and logs, reasons, outputs, traces
    assert f"agent prints the key {REDACTED} and {REDACTED}" in terminal
    assert f"and to stderr: {REDACTED}" in terminal and f"agent logs the key {REDACTED}" in terminal
    assert f"a child process prints the key {REDACTED}" in terminal
    assert f"RuntimeError: the key {REDACTED} does not work" in terminal
    campaigns = {c["scenario"]: c for c in json.loads(report)["campaigns"]}
    records = campaigns["leaky"]["records"]
    assert records[0]["output"] == f"returns the key {REDACTED} with Authorization: {REDACTED}"
    assert records[1]["reason"].startswith(f"RuntimeError: the key {REDACTED} does not work")
    call = next(e for e in records[0]["trace"] if e["kind"] == "tool_call")
    assert call["data"]["arguments"] == {"query": REDACTED}
    assert campaigns["leaky child"]["records"][0]["output"] == f"child returns {REDACTED}"
    assert f"agent prints the key {REDACTED}" in junit and f"agent logs the key {REDACTED}" in junit


def test_a_secret_named_key_in_what_a_tool_returns_is_masked_in_the_trace_and_a_cut_secret_is_not_half_shown(
        secret_env):
    """A tool's result is traced as text: the value of a secret-named key of its dicts is masked first, as an
    argument's is (the value is neither in the environment nor shaped like a key), and the text is redacted
    before it is cut, so a secret of the environment straddling the cut does not leave its first half."""
    env_secret = next(iter(secrets.environment_secrets()))

    @tool
    def settings(world) -> dict:
        """The service's settings."""
        return {"rows": [1, (2, 3)], "db": {"password": "hunter2-not-shaped"}, "note": "x" * 110 + env_secret}

    def agent(task, env):
        return env.tools["settings"]()["rows"][0]

    result = run_campaign(Scenario(name="settings", agent=agent, tools=[settings], trials=2, seed=1, faults="none",
                                   early_stop=False, check=lambda world, out: False))
    traced = [e.data["result"] for r in result.records for e in r.trace if e.kind == "tool_call"]
    assert len(traced) == 2 and all("'rows': [1, (2, 3)]" in t and "'password': '[redacted]'" in t for t in traced)
    assert not any("hunter2" in t or env_secret[:6] in t for t in traced)
    assert all(t.endswith(f"{REDACTED}'}}") for t in traced)  # (redacted whole, then short enough to keep)
