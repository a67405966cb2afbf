"""Secrets an agent handles never reach a report: the fake model's key, ``sk-`` keys, Bearer values and the
values of secret-named environment variables are redacted from traces, reasons, outputs, the JSON report,
the terminal (what the agent prints and logs) and JUnit XML."""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import sys

import pytest

from pytest_agentops import ConfigError, Faults, Scenario, run_campaign, tool
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
    # plurals: a list of keys is as secret as one; a count of tokens is not a token
    ("OPENAI_API_KEYS", True), ("ANTHROPIC_APIKEYS", True), ("APP_SECRETS", True), ("DB_PASSWORDS", True),
    ("SSH_KEYS", True), ("MAX_TOKENS", False), ("MAX_OUTPUT_TOKENS", False), ("HOTKEYS", False),
])
def test_which_environment_variables_hold_secrets(name, secret):
    from pytest_agentops.secret_rules import _NAME_VERDICTS, _secret_named

    class Name(str):  # (not remembered: only a plain ``str`` is)
        pass

    assert is_secret_name(name) is secret
    assert _secret_named(name) is secret and _secret_named(name) is secret  # (the second: remembered)
    assert _NAME_VERDICTS[name] is secret
    assert _secret_named(Name(name)) is secret and all(type(n) is str for n in _NAME_VERDICTS)
    assert secrets.environment_secrets({name: "a-value-long-enough"}) == (("a-value-long-enough",) if secret else ())


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


def _longest_piece(secret: str, text: str) -> int:
    """The most characters in a row of ``secret`` that ``text`` shows."""
    return max((n for n in range(len(secret), 0, -1) for i in range(len(secret) - n + 1) if secret[i:i + n] in text),
               default=0)


@pytest.mark.parametrize("body", [f"x{KEY}" * 5, f"x{KEY}" * 60, f"ab {KEY} " * 9, KEY * 40])
def test_a_secret_the_redacted_slice_cut_is_never_shown_in_part(secret_env, body):
    """A review: the slice redacted before the cut ended inside a secret; the occurrences before it shrank to
    ``[redacted]`` and pulled the start of the cut one under the limit (37 of a real token's characters in an
    output of a tool listing deploy keys, up to 94 of 95 at other places)."""
    for pad in range(0, 600, 7):
        shown = redact_short("y" * pad + body, 200)
        assert len(shown) <= 203 and _longest_piece(KEY, shown) < 4, pad


def test_an_upstream_error_is_redacted_before_it_is_cut(secret_env):
    """A review: a live upstream answering 400 with the prompt echoed (``Invalid input: use token ...``) had its
    first 200 bytes cut before the environment's secrets were redacted: the token's first 84 characters traced."""
    from pytest_agentops.llm.live import _excerpt

    body = ('{"error": {"message": "Invalid input: ' + "w" * 150 + f" use token {KEY} please" + '"}}').encode()
    excerpt = _excerpt(body, ("live-key-123456789",))
    assert _longest_piece(KEY, excerpt) < 4 and excerpt.startswith('{"error"')
    live_key = ("live-key-123456789",)
    assert _excerpt(b'{"error": "live-key-123456789 is bad"}', live_key) == '{"error": "[REDACTED] is bad"}'


def test_an_agents_own_event_names_and_the_scenario_name_are_redacted_in_the_trace(secret_env):
    """A review: ``env.trace.add("agent", f"auth {token}")``: the event's name (and outcome) were never
    redacted; nor the scenario's name, which names each trial's outcome event (and reached xdist's spool)."""
    def agent(task, env):
        env.trace.add(f"agent-{KEY}", f"auth {KEY}", f"sent {KEY}")
        return "done"

    result = run_campaign(Scenario(name=f"deploy-{KEY}", agent=agent, trials=2, seed=1, faults=Faults.none()))
    for record in result.records:
        labels = [(e.kind, e.name, e.outcome) for e in record.trace]
        assert KEY not in repr(labels) and (f"agent-{REDACTED}", f"auth {REDACTED}", f"sent {REDACTED}") in labels
        assert ("outcome", f"deploy-{REDACTED}", "completed") in labels


def test_progress_lines_redact_the_scenario_name(secret_env):
    from pytest_agentops.engine.progress import Progress
    from pytest_agentops.pytest_plugin.progress import progress_text

    line = progress_text(Progress(scenario=f"deploy-{KEY}", done=3, max_trials=10, elapsed_s=1.0, eta_s=2.0,
                                  estimates=()))
    assert KEY not in line and f"deploy-{REDACTED}" in line


def test_an_xdist_workers_spool_holds_no_secret(pytester, monkeypatch):
    """A review: a worker's spool file (left in the temp directory by a killed run) held the trace's and the
    scenario's texts unredacted; every text is redacted before it is written now."""
    pytest.importorskip("xdist")
    monkeypatch.setenv("AGENTOPS_TEST_API_KEY", KEY)
    pytester.makepyfile(f"""
        import os, shutil
        from pytest_agentops import Faults, Scenario

        def agent(task, env):
            env.trace.add("agent", "note", "ok", text=os.environ["AGENTOPS_TEST_API_KEY"])
            return "leaked: " + os.environ["AGENTOPS_TEST_API_KEY"]

        def test_1_campaign(agent_chaos):
            agent_chaos.run(Scenario(name="deploy-" + os.environ["AGENTOPS_TEST_API_KEY"], agent=agent, trials=2,
                                     faults=Faults.none(), check=lambda w, o: False))

        def test_2_copy(request):
            shutil.copytree(request.config.workerinput["agentops_spool"], {str(pytester.path / "copied")!r})
    """)
    result = pytester.runpytest_subprocess("-n", "1", "--agent-chaos", "--agent-chaos-seed=1", "-p", "no:randomly")
    result.assert_outcomes(passed=2)  # (no expectations: the campaign passes whatever its trials did)
    files = list((pytester.path / "copied").rglob("*.json"))
    assert files and all(KEY not in f.read_text() for f in files)
    assert any(REDACTED in f.read_text() for f in files)


def test_an_escalation_reason_is_redacted_before_it_is_cut(secret_env):
    """A second review: the reason was cut at 2,000 characters first, so a secret at the cut stayed in part
    (95 of 96 characters in the reason, the trace, both reports, the spans and JUnit)."""
    def agent(task, env):
        env.escalate("." * 1985 + KEY + " (token rejected)")

    [record] = run_campaign(Scenario(name="escalate", agent=agent, trials=1, seed=1, faults=Faults.none())).records
    shown = record.reason + repr([e.data for e in record.trace])
    assert record.outcome == "escalated" and _longest_piece(KEY, shown) < 4 and "characters)" in record.reason


def test_a_scenario_files_message_quotes_a_value_redacted_before_it_is_cut(secret_env):
    """A second review: a key pasted into a scenario file was quoted cut at 80 characters, then redacted: the
    cut key no longer matched (76 of 96 characters shown)."""
    from pytest_agentops.scenario_file.yamldoc import short

    for pad in range(0, 90, 3):
        assert _longest_piece(KEY, short("x" * pad + KEY + "y" * 200)) < 4, pad


def test_every_trace_events_name_is_redacted_even_before_the_environment_was_read(monkeypatch):
    """A second review: the scenario's name was redacted before the campaign read the environment (the first
    campaign of a process traced it whole); the name of a ``resume`` event (the scenario's) and of a
    ``checkpoint`` event (its key) were never redacted."""
    token = "agentops-second-review-7d1c9e3b5a"
    monkeypatch.setenv("AGENTOPS_REVIEW_TOKEN", token)  # (not read yet: no refresh)

    def agent(task, env):
        env.state.save(f"session:{token}", 1)
        return "ok"

    result = run_campaign(Scenario(name=f"deploy-{token}", agent=agent, trials=1, seed=1, faults=Faults.none(),
                                   state="memory"))
    labels = [(e.kind, e.name) for e in result.records[0].trace]
    assert ("checkpoint", f"session:{REDACTED}") in labels and ("outcome", f"deploy-{REDACTED}") in labels
    assert token not in repr(labels)


def test_the_timeline_and_the_html_table_redact_before_they_cut(secret_env):
    """A second review: a secret the environment held only when the campaign ended is whole in the records; the
    timeline (120 characters a value) and the HTML table (160 a reason) cut it first, and showed 56 and 20."""
    from pytest_agentops.report.html import _first
    from pytest_agentops.report.timeline import _short

    for pad in range(0, 170, 3):
        text = "r" * pad + KEY + "s" * 300
        assert _longest_piece(KEY, _short(text)) < 4 and _longest_piece(KEY, _first(text, 160)) < 4, pad
    assert _first("plain " * 40, 160) == ("plain " * 40)[:160]  # (no secret: as it was)


def test_a_config_error_and_a_results_repr_redact_the_values_they_quote(secret_env):
    """A second review: a setting quoting a secret (a Redis URL with its password, a key pasted as ``key_env``)
    and ``CampaignResult``'s repr (shown by pytest's assertion rewriting) quoted it whole."""
    from pytest_agentops import ConfigError, LiveLLM

    with pytest.raises(ConfigError) as caught:
        LiveLLM(base_url="http://127.0.0.1:9/v1", key_env=KEY)
    assert KEY not in str(caught.value) and REDACTED in str(caught.value)
    with pytest.raises(ConfigError) as caught:
        run_campaign(Scenario(name="s", agent=lambda t, e: "ok", trials=1, state=f"redis://:{KEY}@127.0.0.1:1/0"))
    assert KEY not in str(caught.value) and caught.value.__cause__ is None
    result = run_campaign(Scenario(name=f"deploy-{KEY}", agent=lambda t, e: "ok", trials=1, faults=Faults.none()))
    assert KEY not in repr(result) and f"deploy-{REDACTED}" in repr(result)


@pytest.mark.parametrize(("value", "also", "imported"), [
    ("sk-live0123456789abcdef", {}, "Scenario"),
    ("Pg-S3cretPassw0rd-xyz", {"DB_PASSWORD": "Pg-S3cretPassw0rd-xyz"}, "Scenario"),
    ("Pg-S3cret'Passw0rd-xyz", {"DB_PASSWORD": "Pg-S3cret'Passw0rd-xyz"}, "Env, Scenario"),
])
def test_a_collection_error_before_any_campaign_quotes_a_key_redacted(pytester, monkeypatch, value, also, imported):
    """A review: a module-level ``Scenario(faults=os.environ["PROFILE"])`` holding a key failed collection with
    ``profile='sk-live...'`` in full: a message is redacted through ``harness.secrets``, which a fresh pytest had
    not imported yet (no campaign). The secret shapes are redacted before it is (``errors.SECRET_SHAPE``), and so
    is the value of a secret-named variable (``DB_PASSWORD``'s, pasted as the profile: shown in full before), in
    the forms a message writes it (its ``repr`` in double quotes); also once a module imports ``Env`` (and with
    it ``harness.secrets``, which redacts only what a campaign's start read: a second review)."""
    monkeypatch.setenv("PROFILE", value)
    for name, secret in also.items():
        monkeypatch.setenv(name, secret)
    pytester.makeconftest("""
        import sys

        def pytest_sessionfinish(session):
            print("SECRETS-IMPORTED", "pytest_agentops.harness.secrets" in sys.modules)
    """)
    pytester.makepyfile(test_profile=f"""
        import os

        from pytest_agentops import {imported}

        S = Scenario(name="s", agent=lambda task, env: "ok", faults=os.environ["PROFILE"])


        def test_s():
            pass
    """)
    result = pytester.runpytest_subprocess("-s", "-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.INTERRUPTED
    result.stdout.fnmatch_lines([f"SECRETS-IMPORTED {'Env' in imported}",  # (printed before the errors are shown)
                                 "*ConfigError: profile=*[[]redacted[]]* is not a fault profile*"])
    assert value not in str(result.stdout) + str(result.stderr)
    assert "Passw0rd" not in str(result.stdout) + str(result.stderr)


@tool
def encoded(world, n: int) -> bytes:
    """Returns the password as bytes (a client's raw answer)."""
    return os.environ["AGENTOPS_TEST_DB_PASSWORD"].encode()


def test_a_non_ascii_secret_is_redacted_as_bytes_and_in_ascii(monkeypatch):
    """A tool returning the UTF-8 bytes of a non-ASCII password put ``b'P\\xc3\\xa4ssw...'`` in the trace, the
    reports and the OTel spans: the bytes' repr was not among the written forms looked for."""
    password = "Pässwört-geheim-42"
    monkeypatch.setenv("AGENTOPS_TEST_DB_PASSWORD", password)
    secrets.refresh()
    try:
        for written in (repr(password.encode()), ascii(password), json.dumps(password), repr(password)):
            redacted = secrets.redact_text(f"x {written} y")
            assert "geheim" not in redacted and REDACTED in redacted, written
        result = run_campaign(Scenario(name="bytes", agent=lambda task, env: env.tools["encoded"](1), trials=1,
                                       tools=[encoded], faults=Faults.none()))
        call = next(e for e in result.records[0].trace if e.kind == "tool_call")
        assert call.data["result"] == f"b'{REDACTED}'" and result.records[0].output == f"b'{REDACTED}'"
    finally:
        monkeypatch.delenv("AGENTOPS_TEST_DB_PASSWORD")
        secrets.refresh()


def test_report_data_is_redacted_keys_and_all(secret_env):
    data = {"a": [KEY, {"nested": f"Bearer {KEY}"}], KEY: 1, "n": 3, "ok": "plain"}
    assert redact_data(data) == {"a": [REDACTED, {"nested": REDACTED}], REDACTED: 1, "n": 3, "ok": "plain"}


def test_output_redaction_is_held_for_a_campaign_and_undone_after(secret_env, caplog):
    out, err, factory = sys.stdout, sys.stderr, logging.getLogRecordFactory()
    seen = io.StringIO()

    def agent(task, env):
        print(f"key={KEY}", file=sys.stdout)
        seen.write(f"stdout is redacting: {'redacting_write' in repr(sys.stdout.write)}\n")
        logging.getLogger("agent").warning("calling with %s", KEY)
        return "ok"

    with caplog.at_level(logging.WARNING):
        run_campaign(Scenario(name="print", agent=agent, trials=2, faults=Faults.none()))
    assert seen.getvalue().count("stdout is redacting: True") == 2
    assert (sys.stdout, sys.stderr, logging.getLogRecordFactory()) == (out, err, factory)
    assert "write" not in vars(sys.stdout) and "write" not in vars(sys.stderr)  # (the streams' own again)
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
    result = run_campaign(Scenario(name="leaky", agent=_leaky_agent, tools=[lookup], trials=9, seed=1,
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
import warnings

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
    print(f"after logging, the key {key}")
    sys.stdout.flush()
    sys.stdout.buffer.write(f"bytes to the buffer, the key {key}\\n".encode())
    warnings.warn(f"agent warns with the key {key}")
    warnings.warn(DeprecationWarning(f"agent warns of an old key {key}"))
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


def test_the_warnings_of_a_test_that_ran_no_campaign_are_left_as_they_are(pytester):
    """Found by an outside review: once any campaign had run in the process, every later test's warnings were
    rewritten ("Authorization: [redacted]"), in tests that never used the plugin, depending on the order and on
    the xdist worker. Only the warnings of tests that ran a campaign are redacted."""
    pytester.makepyfile(test_order="""
import warnings
from pytest_agentops import Scenario

def agent(task, env):
    warnings.warn("agent sends Authorization: Bearer abc.def-ghi")
    return "ok"

def test_1_agent(agent_chaos):
    agent_chaos.run(Scenario(name="w", agent=agent, task="t", trials=2, seed=1, faults="none")).check()

def test_2_unrelated():
    warnings.warn("a test fixture's header: Authorization: Bearer abc.def-ghi", RuntimeWarning)

def test_3_through_the_api():
    from pytest_agentops import run_campaign
    run_campaign(Scenario(name="api", agent=agent, task="t", trials=2, seed=1, faults="none")).check()
""")
    result = pytester.runpytest("--agent-chaos", "-p", "no:cacheprovider", "-p", "no:randomly")
    result.assert_outcomes(passed=3, warnings=3)
    # (the two agents' warnings, alike once redacted, are shown as one; a review: the API's were left out)
    result.stdout.fnmatch_lines(["*test_1_agent*", "*test_3_through_the_api*",
                                 "*UserWarning: agent sends Authorization: [[]redacted[]]*",
                                 "*test_2_unrelated*",
                                 "*RuntimeWarning: a test fixture's header: Authorization: Bearer abc.def-ghi*"])
    assert "UserWarning: agent sends Authorization: Bearer" not in result.stdout.str()


@pytest.mark.parametrize("live_log", [False, True], ids=["captured", "log_cli"])
def test_no_secret_in_the_terminal_the_json_report_or_junit_xml(pytester, secret_env, live_log):
    """With ``log_cli`` pytest's capture swaps ``sys.stdout`` out and back around each live log line: the agent's
    prints after its first log call reached the terminal and JUnit XML as they were."""
    pytester.makepyfile(test_leaky=LEAKY_MODULE)
    result = pytester.runpytest("--agent-chaos", "--agent-chaos-report=report.json", "--junitxml=junit.xml",
                                "-o", "junit_logging=all", "-rA", "-p", "no:cacheprovider",
                                *(["-o", "log_cli=true"] if live_log else []))
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
    assert f"after logging, the key {REDACTED}" in terminal
    assert f"bytes to the buffer, the key {REDACTED}" in terminal  # (under the text layer: redacted too)
    assert f"a child process prints the key {REDACTED}" in terminal
    assert f"RuntimeError: the key {REDACTED} does not work" in terminal
    # the warnings summary (pytest shows it after the test, when the campaign has ended): class kept
    assert f"UserWarning: agent warns with the key {REDACTED}" in terminal
    assert f"DeprecationWarning: agent warns of an old key {REDACTED}" in terminal
    campaigns = {c["scenario"]: c for c in json.loads(report)["campaigns"]}
    records = campaigns["leaky"]["records"]  # (each trial drew "return" or "raise")
    returned = next(r for r in records if r["reason"] == "check(world, output) returned False")
    assert returned["output"] == f"returns the key {REDACTED} with Authorization: {REDACTED}"
    assert next(r for r in records if r["outcome"] == "error")["reason"].startswith(
        f"RuntimeError: the key {REDACTED} does not work")
    call = next(e for e in returned["trace"] if e["kind"] == "tool_call")
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


# -- secrets as they are written down: escaped, as numbers, in mappings of other classes ------------------------
ESCAPED = "s3cr\\et'PW\"x"  # a backslash and both quotes: its repr escapes them
PEM = "-----BEGIN RSA PRIVATE KEY-----\nMIIEabc123\n-----END RSA PRIVATE KEY-----"
PIN = "73918264"


@pytest.fixture
def awkward_env(monkeypatch):
    monkeypatch.setenv("AGENTOPS_ESCAPED_PASSWORD", ESCAPED)
    monkeypatch.setenv("AGENTOPS_PRIVATE_KEY", PEM)
    monkeypatch.setenv("AGENTOPS_PIN_PASSWORD", PIN)
    secrets.refresh()
    yield
    for name in ("AGENTOPS_ESCAPED_PASSWORD", "AGENTOPS_PRIVATE_KEY", "AGENTOPS_PIN_PASSWORD"):
        monkeypatch.delenv(name)
    secrets.refresh()


@pytest.mark.parametrize("secret", [ESCAPED, PEM])
def test_a_secret_is_redacted_in_its_repr_and_json_forms_too(awkward_env, secret):
    for text in (secret, repr(secret), repr([secret]), repr(KeyError(secret)), json.dumps({"v": secret}),
                 json.dumps(secret, ensure_ascii=False)):
        redacted = redact_text(f"<{text}>")
        assert secret not in redacted and repr(secret)[1:-1] not in redacted and REDACTED in redacted, text


def test_escaped_numeric_and_mapping_secrets_never_reach_a_record(awkward_env):
    """A tool result and an exception are traced and recorded as their repr (which escapes a backslash, the quotes
    and a newline); a PIN passed as an int is a number in the trace; an ``OrderedDict`` is a mapping too."""
    import collections

    @tool
    def connect(world, dsn: str) -> dict:
        """Connect."""
        return {"dsn": dsn, "key": PEM}

    @tool
    def login(world, pin: int) -> collections.OrderedDict:
        """Log in."""
        return collections.OrderedDict(password="not-from-the-environment", user="u")

    def agent(task, env):
        env.tools["connect"](f"postgres://u:{ESCAPED}@db/x")
        env.tools["login"](int(PIN))
        raise KeyError(ESCAPED)

    result = run_campaign(Scenario(name="awkward", agent=agent, tools=[connect, login], trials=1, seed=1,
                                   faults="none", early_stop=False))
    text = json.dumps(result.to_dict(with_traces=True))
    for leaked in (ESCAPED, repr(ESCAPED)[1:-1], "MIIEabc123", PIN, "not-from-the-environment"):
        assert leaked not in text and json.dumps(leaked)[1:-1] not in text, leaked
    record = result.records[0]
    assert record.reason.startswith(f"KeyError: '{REDACTED}' at test_secrets.py:")
    calls = [e.data for e in record.trace if e.kind == "tool_call"]
    assert calls[1]["arguments"] == {"pin": REDACTED}
    assert calls[1]["result"] == repr(collections.OrderedDict(password=REDACTED, user="u"))  # (its own class)


def test_a_pin_that_went_through_a_float_is_redacted_as_the_int_is(awkward_env):
    """A review: ``73918264.0`` (a PIN read by ``json.loads`` or pandas) reached the JSON report, the OpenTelemetry
    file and ``--agent-chaos-show`` whole, as a tool's argument, its result and an ``env.trace.add`` value (numpy's
    ``float64`` too), where its ``int`` was redacted."""
    @tool
    def echo(world, x) -> object:
        """Echo."""
        return x

    import numpy as np

    def agent(task, env):
        env.tools["echo"](float(PIN))
        env.tools["echo"](np.float64(PIN))
        env.trace.add("agent", "n", "ok", val=float(PIN), inside=[np.float64(PIN)], other=float(PIN) + 1)
        return "done"

    result = run_campaign(Scenario(name="float-pin", agent=agent, tools=[echo], trials=1, seed=1, faults="none",
                                   early_stop=False))
    text = json.dumps(result.to_dict(with_traces=True))
    assert PIN not in text
    record = result.records[0]
    assert [e.data["arguments"]["x"] for e in record.trace if e.kind == "tool_call"] == [REDACTED, REDACTED]
    assert [e.data.get("result") for e in record.trace if e.kind == "tool_call"] == [REDACTED, REDACTED]
    [mine] = [e.data for e in record.trace if e.kind == "agent"]
    assert (mine["val"], mine["inside"], mine["other"]) == (REDACTED, (REDACTED,), float(PIN) + 1)  # (a number)


def test_a_long_numeric_secret_is_redacted_as_the_float_nearest_it(monkeypatch):
    """A second review: past 2**53 a float holds no such secret exactly (``int(float(s)) != s``), and its 16-17
    digits reached the report: the float nearest the secret is redacted."""
    from pytest_agentops.harness import secrets

    monkeypatch.setenv("AGENTOPS_LONG_PIN_PASSWORD", "12345678901234567890")
    secrets.refresh()
    try:
        assert secrets.is_secret_number(float(12345678901234567890))
        assert secrets.is_secret_number(12345678901234567890) and not secrets.is_secret_number(1.2345678e19)
    finally:
        monkeypatch.delenv("AGENTOPS_LONG_PIN_PASSWORD")
        secrets.refresh()


def test_a_mapping_with_nothing_to_mask_is_shown_as_it_is_and_one_that_cannot_be_read_is_left_to_its_repr():
    import collections
    from collections.abc import Mapping

    plain = collections.OrderedDict(a=1)
    assert secrets.mask_secret_keys(plain) is plain

    class Broken(Mapping):
        def __getitem__(self, key):
            raise KeyError(key)

        def __iter__(self):
            raise RuntimeError("no")

        def __len__(self):
            return 1

    broken = Broken()
    assert secrets.mask_secret_keys(broken) is broken
    assert secrets.mask_secret_keys(collections.defaultdict(int, token="t")) == {"token": REDACTED}


def test_a_bearer_value_is_redacted_without_the_json_around_it():
    text = json.dumps({"auth": "Bearer abc.DEF-123_~+/==", "next": 1})
    assert json.loads(redact_text(text)) == {"auth": REDACTED, "next": 1}


def test_the_terminal_table_and_a_world_factory_error_are_redacted(secret_env):
    from pytest_agentops.errors import ConfigError
    from pytest_agentops.report.terminal import campaign_table

    result = run_campaign(Scenario(name="table", agent=lambda task, env: "ok", task=f"use {KEY}", trials=2,
                                   seed=1, faults="none", early_stop=False))
    data = result.to_dict()
    data["per_task"] = [dict(t, task=f"use {KEY}") for t in data.get("per_task", [])] or \
        [{"task": f"use {KEY}", "completed": 2, "trials": 2, "lower": 0.2, "upper": 1.0}]
    assert not any(KEY in line for line in campaign_table(data))

    def world():
        raise ValueError(f"no database with {KEY}")

    with pytest.raises(ConfigError) as raised:
        run_campaign(Scenario(name="w", agent=lambda task, env: "ok", world=world, trials=1, seed=1, faults="none"))
    assert KEY not in str(raised.value) and REDACTED in str(raised.value) and raised.value.__cause__ is None
    assert "at test_secrets.py:" in str(raised.value)


def test_a_cassette_keeps_no_secret_of_the_environment_and_its_bodies_stay_json(tmp_path, secret_env):
    """The live key was the only secret a cassette redacted: a secret the agent sent in a prompt (and the
    upstream echoed) was written as it was, in a file meant to be committed."""
    from pytest_agentops.llm.cassette import Cassette, Recorded

    cassette = Cassette(tmp_path / "c.jsonl", secrets=("live-key-0123456789",))
    answer = json.dumps({"echo": f"password {KEY}", "auth": "Bearer live-key-0123456789", "n": 1})
    cassette.add(trial=0, seed=1, key="k", occurrence=0, method="POST", path="/v1/chat/completions", api="chat",
                 model="m", last_message=f"connect with {KEY}",
                 request={"messages": [{"role": "user", "content": f"connect with {KEY}"}]},
                 answer=Recorded(200, (("content-type", "application/json"),), answer.encode(), 0.01))
    text = cassette.write().read_text()
    assert KEY not in text and "live-key-0123456789" not in text
    entry = json.loads(text)
    assert entry["last_message"] == f"connect with {REDACTED}"
    assert json.loads(entry["body"]) == {"echo": f"password {REDACTED}", "auth": "Bearer [REDACTED]", "n": 1}


def test_a_cassette_answers_what_was_recorded_when_no_secret_is_in_it(tmp_path):
    """Secret shapes are not applied to a cassette (ordinary words match them: 'risk-assessment' held 'sk-...'
    and came back as 'ri[redacted]'); a replay must answer byte for byte what the upstream said."""
    from pytest_agentops.llm.cassette import Cassette, Recorded

    body = json.dumps({"text": "a risk-assessment, ask-me-anything, and a Bearer token.",
                       "tool": {"queue": "desk-operations"}}).encode()
    cassette = Cassette(tmp_path / "c.jsonl")
    cassette.add(trial=1, seed=1, key="k", occurrence=1, method="POST", path="/v1/chat/completions", api="chat",
                 model="m", last_message="risk-assessment", request={"n": 1},
                 answer=Recorded(200, (("content-type", "application/json"),), body, 0.001))
    entry = json.loads(cassette.write().read_text())
    assert entry["body"].encode() == body and entry["last_message"] == "risk-assessment"
    assert (entry["trial"], entry["occurrence"], entry["latency_ms"]) == (1, 1, 1)


def test_shapes_inside_words_are_not_secrets_and_a_bearer_value_is_redacted_to_its_end():
    assert redact_text("a risk-assessment for ask-me-anything") == "a risk-assessment for ask-me-anything"
    for token in ("abc:Zq9sV7tLp2XwR4mN", "x%2Fabc%3DsecretPart", "tok!en.v2"):
        assert redact_text(f"Authorization: Bearer {token}") == f"Authorization: {REDACTED}"


@pytest.mark.parametrize(("value", "redacted", "kept"), [
    ("00000001", None, 1),  # seven leading zeros: no secret number (it would redact every 1)
    ("73918264", 73918264, 7391826),
])
def test_a_whole_number_secret_needs_eight_significant_digits(monkeypatch, value, redacted, kept):
    monkeypatch.setenv("AGENTOPS_TEST_PIN_PASSWORD", value)
    secrets.refresh()
    try:
        assert redact_data({"n": kept}) == {"n": kept}
        if redacted is not None:
            assert redact_data({"n": redacted}) == {"n": REDACTED}
    finally:
        monkeypatch.delenv("AGENTOPS_TEST_PIN_PASSWORD")
        secrets.refresh()


def test_warnings_are_left_as_they_are_in_a_session_that_runs_no_campaign(pytester, quiet_children):
    """The warnings hook changes nothing until a campaign has run in the process."""
    pytester.makepyfile(test_plain="""
        import warnings
        from pytest_agentops import run_campaign  # (loads the redaction's module: still nothing is changed)

        def test_warns():
            warnings.warn("an sk-0123456789abcdef shaped text that is no secret here")
    """)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, warnings=1)
    result.stdout.fnmatch_lines(["*UserWarning: an sk-0123456789abcdef shaped text that is no secret here"])


@pytest.mark.parametrize("message", [
    UserWarning("key agentops-test-4f9c1e7d2b8a6350"),
    DeprecationWarning("key agentops-test-4f9c1e7d2b8a6350", "a second argument"),
    "key agentops-test-4f9c1e7d2b8a6350",
])
def test_a_recorded_warning_is_redacted_in_place_keeping_its_class(secret_env, message):
    import warnings

    recorded = warnings.WarningMessage(message, type(message) if isinstance(message, Warning) else UserWarning,
                                       "agent.py", 3)
    shown = str(message)
    secrets.redact_warning(recorded)
    assert str(recorded.message) == shown.replace(KEY, REDACTED) and KEY not in str(recorded.message)
    assert type(recorded.message) is type(message)
    unchanged = warnings.WarningMessage(UserWarning("nothing to hide"), UserWarning, "agent.py", 3)
    kept = unchanged.message
    secrets.redact_warning(unchanged)
    assert unchanged.message is kept


def test_a_secret_in_a_test_id_is_redacted_in_the_reports_session(pytester, secret_env):
    """The JSON report's ``session.expected`` (the tests that should report) listed a parametrized test's id as
    it was, with the secret its parameter held, while the campaign's own ``nodeid`` was redacted."""
    pytester.makepyfile(test_param="""
        import os
        import pytest
        from pytest_agentops import Scenario

        @pytest.mark.parametrize("token", [os.environ["AGENTOPS_TEST_API_KEY"]])
        def test_with_token(agent_chaos, token):
            agent_chaos.run(Scenario(name="param", agent=lambda task, env: "ok", trials=2, seed=1, faults="none"))
    """)
    result = pytester.runpytest("--agent-chaos", "--agent-chaos-report=report.json", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    report = json.loads((pytester.path / "report.json").read_text())
    assert report["session"]["expected"] == [f"test_param.py::test_with_token[{REDACTED}]"]
    assert KEY not in json.dumps(report)


def test_redaction_an_agent_wrapped_during_the_campaign_redacts_nothing_after_it(secret_env, capsys):
    """Found by an outside review: an agent that wrapped ``sys.stdout.write`` or the log record factory kept the
    campaign's redacting ones inside its wrappers, and a later plain test's output and caplog showed ``[redacted]``
    for text of its own. (Whatever the agent left stays the agent's: ours pass text through once the campaign ends.)"""
    seen = []
    factory, stdout_write = logging.getLogRecordFactory(), vars(sys.stdout).get("write")

    def agent(task, env):
        inner_write, inner_factory = sys.stdout.write, logging.getLogRecordFactory()

        def write(text):
            seen.append(text)
            return inner_write(text)

        sys.stdout.write = write
        logging.setLogRecordFactory(lambda *args, **kwargs: inner_factory(*args, **kwargs))
        return "ok"

    try:
        run_campaign(Scenario(name="wrapper", agent=agent, trials=1, faults=Faults.none()))
        assert logging.getLogRecordFactory() is not factory  # (the agent's wrapper is left as it is: theirs)
        capsys.readouterr()
        print(f"a later test prints {KEY}")
        printed = capsys.readouterr().out
        record = logging.getLogRecordFactory()("later", logging.WARNING, __file__, 1, "logs %s", (KEY,), None)
    finally:
        logging.setLogRecordFactory(factory)
        if stdout_write is None:
            vars(sys.stdout).pop("write", None)
        else:
            sys.stdout.write = stdout_write
    assert printed == f"a later test prints {KEY}\n" and f"a later test prints {KEY}" in "".join(seen)
    assert record.getMessage() == f"logs {KEY}"


def test_a_write_someone_put_on_stdout_before_the_campaign_is_theirs_again_after(secret_env):
    """The redaction patches the stream's own ``write`` for the campaign; putting it back deleted it, so a tee (or
    ``mock.patch.object(sys.stdout, "write")``) installed before the campaign was gone after it."""
    from unittest import mock

    seen = []

    def tee(text, _write=sys.stdout.write):
        seen.append(text)
        return _write(text)

    sys.stdout.write = tee
    try:
        run_campaign(Scenario(name="tee", agent=lambda task, env: print(f"agent says {KEY}") or "ok", trials=1,
                              faults=Faults.none()))
        assert sys.stdout.write is tee
        print("after the campaign")
    finally:
        del sys.stdout.write
    assert f"agent says {REDACTED}" in "".join(seen) and "after the campaign" in "".join(seen)
    with mock.patch.object(sys.stdout, "write") as patched:
        run_campaign(Scenario(name="mocked", agent=lambda task, env: "ok", trials=1, faults=Faults.none()))
        print("through the mock")
    assert any("through the mock" in str(c) for c in patched.call_args_list)


def test_a_secret_in_a_parameter_id_or_a_scenario_name_stays_out_of_what_the_plugin_writes(pytester, monkeypatch,
                                                                                            quiet_children):
    """A ``GITHUB_TOKEN`` used as a ``parametrize`` id and in a scenario name reached the plugin's own output:
    the campaign's failure message (its name, the worst trials' labels and replay commands), the "agent chaos"
    section's node id line, the JUnit properties' names and values, and the cassette's file name. (pytest's own
    lines, the test's id in its headers and in the JUnit test case's name, are pytest's.)"""
    from pytest_agentops.llm.cassette import cassette_path

    token = "ghp_Zx9Yw8Vu7Ts6Rq5Po4Nm3Lk2Ji1Hg0FeDcBa99"
    monkeypatch.setenv("GITHUB_TOKEN", token)
    pytester.makepyfile(test_names="""
        import os, pytest
        from pytest_agentops import Scenario

        TOKEN = os.environ["GITHUB_TOKEN"]

        @pytest.mark.parametrize("tok", [TOKEN])
        def test_param(agent_chaos, tok):
            agent_chaos.run(Scenario(name="n-" + TOKEN, agent=lambda task, env: "no", trials=2, seed=1,
                                     check=lambda w, o: o == "ok", faults="none",
                                     expect={"completion_rate": ">= 0.9"})).check()
    """)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--agent-chaos", "--junitxml=j.xml")
    result.assert_outcomes(failed=1)
    message = [line for line in result.outlines if line.startswith("E ")]
    assert message and not [line for line in message if token in line]
    assert any("n-[redacted]" in line for line in message)
    section = result.outlines[result.outlines.index(next(x for x in result.outlines if "agent chaos" in x)):]
    assert not [line for line in section if token in line and not line.startswith("FAILED")]
    assert any(line.startswith("test_names.py::test_param[[redacted]]") for line in section)
    import xml.etree.ElementTree as ET

    properties = [(p.get("name"), p.get("value")) for p in ET.parse(pytester.path / "j.xml").iter("property")]
    assert properties and not [p for p in properties if token in p[0] or token in p[1]]
    secrets.refresh()  # (this process read its environment before the token was set)
    try:
        assert token not in str(cassette_path(pytester.path, "n-" + token))
    finally:
        monkeypatch.delenv("GITHUB_TOKEN")
        secrets.refresh()


QUOTED = "pa'ss-W0rd-xyz"  # a single quote: shown as \' in the repr of a text that holds both quotes


@pytest.mark.parametrize("secret", [QUOTED, ESCAPED, PEM, "tab\tsecret-99", "Pässwörd-ünï-42"])
def test_a_secret_escaped_once_or_twice_or_url_encoded_is_redacted(monkeypatch, secret):
    """An outside review's leaks: a secret with a quote in a text holding both quotes (``\\'`` in its repr), a
    multi-line key inside JSON inside a dict (the JSON's ``\\n`` escaped again: ``\\\\n``), the repr of a
    ``bytearray``, and a password in a URL."""
    import urllib.parse

    monkeypatch.setenv("AGENTOPS_QUOTED_PASSWORD", secret)
    secrets.refresh()
    try:
        for text in (repr(f'say "hi" {secret}'), repr(KeyError(f'no "row" for {secret}')),
                     repr({"body": json.dumps({"key": secret})}), repr([json.dumps(secret)]),
                     json.dumps(repr(secret)), repr(bytearray(f'"{secret}'.encode())),
                     f"postgres://app:{urllib.parse.quote(secret, safe='')}@db/x",
                     f"?token={urllib.parse.quote_plus(secret)}&x=1"):
            redacted = redact_text(text)
            assert REDACTED in redacted, text
            assert "W0rd" not in redacted and "MIIEabc123" not in redacted and "secret-99" not in redacted
            assert "s3cr" not in redacted and "ünï" not in redacted and "\\xc3\\xbc" not in redacted, redacted
    finally:
        monkeypatch.delenv("AGENTOPS_QUOTED_PASSWORD")


def test_a_cassette_miss_shows_the_agents_message_redacted_before_it_is_cut(tmp_path, secret_env):
    """The miss's message cut the last message at 200 characters first: a secret at characters 184-214 was
    shown up to the cut."""
    from pytest_agentops.llm.cassette import Cassette

    message = "x" * 184 + " " + KEY + " and more words after it"
    text = str(Cassette(tmp_path / "c.jsonl").miss("m", message))
    assert KEY[:8] not in text and REDACTED in text


SET_FOR_THE_TEST = """
    import os
    from pytest_agentops import Faults, Scenario

    def agent(task, env):
        key = os.environ["SERVICE_API_KEY"]
        env.record_usage(input_tokens=10, output_tokens=2, model="deploy-" + key)
        env.trace.add("note", "auth " + key, "ok")
        return "done"

    SCENARIO = Scenario(name="mp", agent=agent, task="t", tools=[], check=lambda w, o: False, faults=Faults.none(),
                        trials=2, seed=3, expect={"completion_rate": ">= 0.9"})

    def test_mp(agent_chaos, monkeypatch):
        monkeypatch.setenv("SERVICE_API_KEY", "tenant-4f9Qz8Lm")  # set for this test alone
        agent_chaos.run(SCENARIO)
"""


def test_a_secret_set_for_the_test_alone_stays_out_of_the_reports_and_a_replays_timeline(pytester):
    """A secret a test sets with ``monkeypatch.setenv`` was gone by the time the reports were written, where
    the trace's event and model names are redacted: they held it (JSON, HTML, the default-price line). The
    timeline a replay prints in the terminal was not redacted at all."""
    pytester.makepyfile(test_mp=SET_FOR_THE_TEST)
    result = pytester.runpytest("-p", "no:cacheprovider", "--agent-chaos", "--agent-chaos-report=r.json",
                                "--agent-chaos-html=r.html")
    result.assert_outcomes(passed=1)
    written = [(pytester.path / name).read_text() for name in ("r.json", "r.html")]
    assert all("deploy-[redacted]" in text and "4f9Qz8Lm" not in text for text in written)
    assert not [line for line in result.outlines if "4f9Qz8Lm" in line]
    replay = pytester.runpytest("-p", "no:cacheprovider", "--agent-chaos", "--agent-chaos-replay=mp/trial-0")
    timeline = [line for line in replay.outlines if "auth " in line or "deploy-" in line]
    assert timeline and not [line for line in replay.outlines if "4f9Qz8Lm" in line], timeline


def test_a_kept_name_is_kept_where_it_stands_whole_and_a_node_ids_folders_wherever_they_stand(monkeypatch):
    """``keep_identifier``: a key-shaped parameter of a node id stays in the node id (its replay command) and is
    redacted elsewhere (an agent's output in a later test); its folders and file are left wherever they stand;
    the forms a command, a JSON report and a command template write the id in are kept too."""
    from pytest_agentops.harness import secrets

    monkeypatch.setattr(secrets, "_identifiers", set())
    monkeypatch.setattr(secrets, "_path_parts", set())
    key = "sk-" + "live0123456789abcdef"
    node = f"sk-payments-agent/test_params.py::test_keyed[{key}-it's]"
    secrets.keep_identifier(node, node=True)
    secrets.keep_identifier("sk-resume-naive")
    assert secrets.redact_text(f"{key} in sk-payments-agent/x.py") == "[redacted] in sk-payments-agent/x.py"
    for text in (f"pytest {node} -x", "pytest '" + node.replace("'", "'\"'\"'") + "' -x", json.dumps({"id": node}),
                 node.replace("{", "{{"), "--agent-chaos-replay=sk-resume-naive/trial-{index}"):
        assert secrets.redact_text(text) == text
    assert secrets.redact_text("sk-resume-naive2 and sk-resume-naiveX") == "[redacted] and [redacted]"


def test_a_secret_whose_bytes_are_not_utf8_is_redacted_and_breaks_no_message(monkeypatch):
    """A review: a secret-named variable holding bytes that are not UTF-8 (``os.environ`` gives them as surrogates)
    made ``urllib.parse.quote`` raise ``UnicodeEncodeError`` in every error message (a wrong profile, a bad
    ``--trials``) and in a campaign's start; its URL form is made of its bytes now."""
    value = "abc\udcffdefghij"
    monkeypatch.setenv("X_TOKEN", value)
    with pytest.raises(ConfigError, match="'nope' is not a fault profile"):
        Scenario(name="s", agent=lambda task, env: "ok", faults="nope")
    result = run_campaign(Scenario(name="s", agent=lambda task, env: f"got {value}", trials=1, faults=Faults.none()))
    assert result.records[0].output == f"got {REDACTED}"


def test_a_variable_treated_as_secret_is_redacted_whatever_its_name_and_named_once(monkeypatch):
    """``treat_as_secret`` (a live model's ``key_env``): the value of a variable whose name says nothing is redacted
    from then on, in text and in the package's error messages, and the name is given to trials' children once."""
    from pytest_agentops import secret_rules

    name, value = "AGENTOPS_TEST_PLAIN_NAME", "plain-looking-value-0931"
    monkeypatch.setattr(secret_rules, "_named", set(secret_rules._named))  # (the name is not kept past the test)
    monkeypatch.setenv(name, value)
    assert not is_secret_name(name) and value in redact_text(f"sent {value}")
    secrets.treat_as_secret(name)
    secrets.treat_as_secret(name)
    assert secrets.secret_names().count(name) == 1
    assert value not in redact_text(f"sent {value}") and REDACTED in redact_text(f"sent {value}")
    assert value not in str(ConfigError(f"the key {value} was refused"))
