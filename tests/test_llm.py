"""The model boundary (pytest_agentops.llm) with plain httpx/httpx2 clients: wire formats, policies, usage,
faults, drift, isolation between trials, interception that leaks nowhere, determinism."""

from __future__ import annotations

import asyncio
import http.server
import itertools
import json
import threading
from collections import Counter

import httpx
import pytest
import respx
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_agentops import ConfigError, Faults, Scenario, run_campaign
from pytest_agentops.llm import (
    Drift,
    FakeLLM,
    HttpFaults,
    ModelFaults,
    ModelRequest,
    Reply,
    call,
    call_tools_then_answer,
    rule,
    scripted,
    tokens,
    wire,
)
from pytest_agentops.llm import usage as usage_rule
from pytest_agentops.llm.perturb import DriftState, perturb_reply
from pytest_agentops.llm.policy import default_used, respond
from pytest_agentops.metrics import REGISTRY
from pytest_agentops.process.http_hub import HUB, httpcore2_mocker
from pytest_agentops.settings.layers import Budget

from conftest import ORDER_TOOLS, Orders

try:
    import httpx2
except ImportError:  # httpx2 is optional: the httpx path must work without it
    httpx2 = None

TOOL_SCHEMAS = [{"type": "function", "function": {"name": name, "description": f"{name} tool", "parameters": {
    "type": "object", "properties": {"order_id": {"type": "integer"}}, "required": ["order_id"]}}}
    for name in ("lookup_order", "refund_order", "delete_order")]
REFUND_POLICY = call_tools_then_answer(call("lookup_order", order_id=42), call("refund_order", order_id=42),
                                       answer="Refunded order 42.")


_CLIENTS: dict[str, object] = {}


def shared_client(module=httpx):
    """One client per HTTP library for the whole test session (making a client costs ~30 ms of SSL set-up)."""
    if module.__name__ not in _CLIENTS:
        _CLIENTS[module.__name__] = module.Client(timeout=10)
    return _CLIENTS[module.__name__]


def chat_loop(client_module=httpx, *, max_turns: int = 8, retries: int = 4):
    """A minimal tool-calling agent over raw HTTP: retries 429/5xx/transport errors, runs tool calls."""

    def agent(task, env):
        messages = [{"role": "system", "content": "Confirm before deleting anything."},
                    {"role": "user", "content": task}]
        client = shared_client(client_module)
        for _turn in range(max_turns):
            for attempt in range(retries + 1):
                try:
                    response = client.post(f"{env.llm.base_url}/chat/completions",
                                           headers={"authorization": f"Bearer {env.llm.api_key}"},
                                           json={"model": env.llm.model, "messages": messages,
                                                 "tools": TOOL_SCHEMAS})
                    if response.status_code in (429, 500, 503, 529):
                        continue
                    body = response.json()
                    break
                except (client_module.TransportError, ValueError):
                    if attempt == retries:
                        raise
            else:
                return "model unavailable"
            message = body["choices"][0]["message"]
            messages.append(message)
            if not message.get("tool_calls"):
                return message["content"]
            for tc in message["tool_calls"]:
                try:
                    out = env.tools[tc["function"]["name"]](**json.loads(tc["function"]["arguments"]))
                except Exception as exc:
                    out = f"error: {exc}"
                messages.append({"role": "tool", "tool_call_id": tc["id"], "content": str(out)})
        return "too many turns"

    return agent


def refund_scenario(**kwargs) -> Scenario:
    settings = dict(name="llm-refund", agent=chat_loop(), task="Refund order 42", world=Orders, tools=ORDER_TOOLS,
                    check=lambda w, out: 42 in w.refunded, llm=FakeLLM(REFUND_POLICY, model="gpt-4o-mini"),
                    faults=Faults(), trials=10, seed=3)
    settings.update(kwargs)
    return Scenario(**settings)


def model_calls(record):
    return [e for e in record.trace if e.kind == "model_call"]


# --- settings -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("make", "message"), [
    (lambda: ModelFaults(rate=1.5), r"model.rate=1.5 must be between 0 and 1"),
    (lambda: ModelFaults(mix={"teapot": 1}), r"model.mix has unknown kind 'teapot'; valid kinds: rate_limit"),
    (lambda: ModelFaults(output_mix={"wrong_tool": -1}), r"model.output_mix\['wrong_tool'\]=-1 must be a weight"),
    (lambda: ModelFaults(bloat=1), r"model.bloat=1 must be a whole number >= 2"),
    (lambda: Drift(keep_last=0), r"drift.keep_last=0 must be a whole number >= 1"),
    (lambda: Drift(distractors=()), r"drift.distractors=\(\) must be a non-empty list"),
    (lambda: HttpFaults(hosts=["https://x.test/a"]), r"http.hosts=.* must be a list of host names"),
    # (an outside review: each faulted no request and the campaign passed as if the host had held up)
    (lambda: Faults(http=HttpFaults(rate=0.5)), r"http.rate=0.5 needs http.hosts, the host names whose requests"),
    (lambda: HttpFaults(hosts=["a.test:443"], rate=1.0), r"http.hosts: 'a.test:443' must be a host name without "
                                                         r"a port .*: 'a.test'\)"),
    (lambda: HttpFaults(hosts=["[::1]:8080"]), r"'\[::1\]:8080' must be a host name without a port .*: '::1'\)"),
    (lambda: ModelFaults.profile("extreme"), r"profile='extreme' is not a fault profile; valid profiles: none"),
    (lambda: Faults(model={"rate": 0.1, "colour": 2}), r"model has unknown key\(s\) \['colour'\]; valid keys: rate"),
    (lambda: FakeLLM("not callable"), r"llm.policy='not callable' must be a policy"),
    (lambda: Scenario(name="x", agent=lambda t, e: None, llm=42), r"llm=42 must be a FakeLLM"),
])
def test_bad_settings_are_named(make, message):
    with pytest.raises(ConfigError, match=message):
        make()


def test_profiles_set_model_faults_and_keep_tool_rates():
    assert [Faults.profile(p).rate for p in ("low", "mid", "high")] == [0.03, 0.08, 0.15]
    assert [(Faults.profile(p).model.rate, Faults.profile(p).model.output_rate) for p in ("low", "mid", "high")] \
        == [(0.02, 0.02), (0.05, 0.05), (0.10, 0.10)]
    assert Faults.none().model is None and Faults.profile("mid").drift is None
    assert Faults.profile("mid", model=None).model is None
    assert Faults(rate=0.1).with_profile("high").model.profile_name == "high"
    mine = ModelFaults(rate=0.5)
    assert Faults(model=mine).with_profile("high").model is mine  # set by hand: kept
    assert Faults(model="low", drift={"profile": "high", "keep_last": 2}).drift.keep_last == 2


# --- the usage rule and wire formats ------------------------------------------------------------------------


def test_usage_rule_is_ceil_of_chars_over_four():
    assert [tokens(""), tokens("abc"), tokens("abcd"), tokens("abcde")] == [0, 1, 1, 2]
    messages = [{"role": "user", "content": "Refund order 42"}]
    text = json.dumps(messages, sort_keys=True, separators=(",", ":"))
    assert usage_rule.input_tokens(messages) == -(-len(text) // 4)
    reply = {"role": "assistant", "content": None, "tool_calls": [
        {"id": "c", "type": "function", "function": {"name": "refund_order", "arguments": '{"order_id": 42}'}}]}
    assert usage_rule.output_tokens(reply) == tokens('refund_order{"order_id": 42}') == 7
    assert usage_rule.output_tokens({"content": ""}) == 1


_MESSAGE_VALUES = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=6)
                               | st.floats(allow_nan=False, allow_infinity=False),
                               lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner,
                                                                                             max_size=3),
                               max_leaves=8)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.dictionaries(st.text(max_size=5), _MESSAGE_VALUES, max_size=4), max_size=5),
       st.lists(st.dictionaries(st.text(max_size=5), _MESSAGE_VALUES, max_size=2), max_size=2))
def test_input_tokens_count_the_canonical_text_of_the_whole_prompt(messages, tools):
    """The fake encodes each message once and counts the prompt from those texts: the same count as the
    canonical JSON of the whole message list, as the module's rule states (tools counted apart)."""
    whole = json.dumps(messages, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    declared = (-(-len(usage_rule.canonical(tools)) // 4)) if tools else 0
    assert usage_rule.input_tokens(messages, tools) == -(-len(whole) // 4) + declared
    texts = [usage_rule.canonical(m) for m in messages]
    assert usage_rule.prompt_tokens(texts, tools) == usage_rule.input_tokens(messages, tools)


def test_anthropic_and_responses_requests_normalize_to_chat_messages():
    anthropic_body = {"model": "claude", "system": [{"type": "text", "text": "Be careful."}], "messages": [
        {"role": "user", "content": "Refund 42"},
        {"role": "assistant", "content": [{"type": "text", "text": "Looking."},
                                          {"type": "tool_use", "id": "tu1", "name": "lookup_order",
                                           "input": {"order_id": 42}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "tu1", "content": "paid"}]}],
        "tools": [{"name": "lookup_order", "input_schema": {"type": "object"}}]}
    p = wire.parse("messages", anthropic_body)
    assert [m["role"] for m in p.messages] == ["system", "user", "assistant", "tool"]
    assert p.messages[2]["tool_calls"][0]["function"] == {"name": "lookup_order", "arguments": '{"order_id": 42}'}
    assert p.messages[3] == {"role": "tool", "tool_call_id": "tu1", "content": "paid"}
    assert p.tools[0]["function"]["name"] == "lookup_order"
    responses_body = {"model": "m", "instructions": "Be careful.", "input": [
        {"role": "user", "content": [{"type": "input_text", "text": "Refund 42"}]},
        {"type": "function_call", "call_id": "c1", "name": "lookup_order", "arguments": '{"order_id":42}'},
        {"type": "function_call_output", "call_id": "c1", "output": "paid"}],
        "tools": [{"type": "function", "name": "lookup_order", "parameters": {"type": "object"}}]}
    r = wire.parse("responses", responses_body)
    assert [m["role"] for m in r.messages] == ["system", "user", "assistant", "tool"]
    assert r.messages[1]["content"] == "Refund 42"
    with pytest.raises(wire.WireError, match="'messages' must be a list"):
        wire.parse("chat", {"model": "m"})


def test_chat_stream_carries_the_reply_and_usage():
    message = {"role": "assistant", "content": None, "tool_calls": [
        {"id": "c1", "type": "function", "function": {"name": "lookup_order", "arguments": '{"order_id": 42}'}}]}
    events = wire.chat_sse(message, rid="r", model="m", created=0, usage=(10, 7), include_usage=True)
    assert events[-1] == b"data: [DONE]\n\n"
    chunks = [json.loads(e[len(b"data: "):]) for e in events[:-1]]
    args = "".join(tc["function"].get("arguments", "") for c in chunks for ch in c["choices"]
                   for tc in ch["delta"].get("tool_calls", ()))
    assert args == '{"order_id": 42}'
    assert chunks[-1]["usage"] == {"prompt_tokens": 10, "completion_tokens": 7, "total_tokens": 17}
    assert chunks[-2]["choices"][0]["finish_reason"] == "tool_calls"


# --- policies -----------------------------------------------------------------------------------------------


def _request(messages, turn=0, tools=TOOL_SCHEMAS):
    return ModelRequest(messages=tuple(messages), tools=tuple(tools), turn=turn)


def test_scripted_policy_plays_turns_in_order():
    policy = scripted(call("lookup_order", order_id=42), [call("a"), call("b")], "done")
    replies = [respond(policy, _request([], turn=t)) for t in range(4)]
    assert [tuple(c.name for c in r.tool_calls) for r in replies[:2]] == [("lookup_order",), ("a", "b")]
    assert replies[2].content == "done" and replies[3].content == ""
    with pytest.raises(ConfigError, match="scripted turn 0 returned 42"):
        scripted(42)


def test_call_tools_then_answer_reads_progress_from_the_prompt_and_retries_errors():
    base = [{"role": "user", "content": "Refund order 42"}]
    assert respond(REFUND_POLICY, _request(base)).tool_calls[0].name == "lookup_order"

    def after(name, result):
        return [{"role": "assistant", "tool_calls": [{"id": name, "type": "function",
                                                      "function": {"name": name, "arguments": "{}"}}]},
                {"role": "tool", "tool_call_id": name, "content": result}]

    failed = base + after("lookup_order", "error: timed out")
    assert respond(REFUND_POLICY, _request(failed)).tool_calls[0].name == "lookup_order"
    done = base + after("lookup_order", "{'status': 'paid'}") + after("refund_order", "refunded")
    assert respond(REFUND_POLICY, _request(done)).content == "Refunded order 42."


def test_plain_function_policies_get_messages_and_tools_and_may_report_used_messages():
    seen = {}

    def policy(messages, tools):
        seen["args"] = (len(messages), [t["function"]["name"] for t in tools])
        return {"role": "assistant", "content": "ok", "used": [1]}

    reply = respond(policy, _request([{"role": "system", "content": "s"}, {"role": "user", "content": "u"}]))
    assert seen["args"] == (2, ["lookup_order", "refund_order", "delete_order"])
    assert reply == Reply(content="ok", used=(1,))
    assert respond(rule(lambda r: r.task), _request([{"role": "user", "content": "hi"}])).content == "hi"


def test_default_used_messages_are_system_task_and_the_latest_turn():
    messages = [{"role": "system"}, {"role": "user"}, {"role": "assistant"}, {"role": "tool"},
                {"role": "assistant"}, {"role": "tool"}, {"role": "tool"}]
    assert default_used(messages) == (0, 1, 5, 6)


# --- perturbations and drift (unit level: the draws are given) ------------------------------------------------

_CALL = {"role": "assistant", "content": None, "tool_calls": [
    {"id": "c1", "type": "function", "function": {"name": "refund_order", "arguments": '{"order_id": 42}'}}]}


@pytest.mark.parametrize(("kind", "check"), [
    ("wrong_tool", lambda m, d: m["tool_calls"][0]["function"]["name"] in ("lookup_order", "delete_order")),
    ("unknown_tool", lambda m, d: m["tool_calls"][0]["function"]["name"] == "refund_order_v2"),
    ("malformed_args", lambda m, d: m["tool_calls"][0]["function"]["arguments"] == '{"order_id": 42'),
    ("missing_arg", lambda m, d: m["tool_calls"][0]["function"]["arguments"] == "{}" and d["argument"] == "order_id"),
    ("verbose", lambda m, d: usage_rule.output_tokens(m) >= 7 * usage_rule.output_tokens(_CALL)),
    ("refusal", lambda m, d: "tool_calls" not in m and "can't help" in m["content"]),
    ("premature_final", lambda m, d: "tool_calls" not in m and d["skipped"] == ["refund_order"]),
])
def test_each_output_fault_changes_the_reply(kind, check):
    settings = ModelFaults(output_rate=1.0, output_mix={kind: 1.0})
    message, fired, details = perturb_reply(dict(_CALL), TOOL_SCHEMAS, settings, 0.0, 0.5, 0.5)
    assert fired == kind and check(message, details)
    assert _CALL["tool_calls"][0]["function"]["name"] == "refund_order"  # the input is not mutated


def test_output_faults_only_fire_where_they_apply():
    settings = ModelFaults(output_rate=1.0, output_mix={"wrong_tool": 1.0})
    final = {"role": "assistant", "content": "Done."}
    assert perturb_reply(final, TOOL_SCHEMAS, settings, 0.0, 0.5, 0.5)[1] is None


def test_drift_kinds_change_the_prompt_and_stay():
    prompt = [{"role": "system", "content": "Confirm before deleting."}, {"role": "user", "content": "task"},
              {"role": "assistant", "tool_calls": [{"id": "a"}, {"id": "b"}]},
              {"role": "tool", "tool_call_id": "a", "content": "A"},
              {"role": "tool", "tool_call_id": "b", "content": "B"}]
    state = DriftState(Drift(rate=1.0, mix={"drop_system": 1, "reorder_tool_results": 1}, keep_last=2))
    assert state.draw(0.0, 0.0, 0.0) == "drop_system"
    assert state.draw(0.0, 0.0, 0.0) == "reorder_tool_results"  # a new kind: active ones are not drawn again
    assert state.draw(0.0, 0.0, 0.0) is None
    out, changed, injected = state.apply(prompt)
    assert changed == ["drop_system", "reorder_tool_results"] and not injected
    assert [m.get("content") for m in out if m["role"] == "tool"] == ["B", "A"]
    assert all(m["role"] != "system" for m in out)
    state = DriftState(Drift(rate=1.0, mix={"truncate": 1, "distractor": 1, "stale_fact": 1}, keep_last=2))
    for _ in range(3):
        state.draw(0.0, 0.0, 0.0)
    out, changed, injected = state.apply(prompt)
    assert changed == ["truncate", "distractor", "stale_fact"]
    assert out[0]["role"] == "system" and len(out) == 1 + 2 + 2 and len(injected) == 2
    assert all(m.get("content") != "task" for m in out)  # the task itself was truncated away


# --- campaigns over HTTP ------------------------------------------------------------------------------------


@pytest.mark.parametrize("client", ["httpx", "httpx2"])
def test_a_campaign_meters_tokens_traces_attempts_and_reaches_verdicts(client):
    module = httpx if client == "httpx" else pytest.importorskip("httpx2")
    faults = Faults(model=ModelFaults(rate=0.3, mix={"rate_limit": 1, "server_error": 1, "timeout": 1}))
    result = run_campaign(refund_scenario(agent=chat_loop(module), faults=faults, trials=12,
                                          expect={"completion_rate": ">= 0.5"}), early_stop=False)
    assert [v.key for v in result.verdicts] == ["completion_rate"] and result.verdicts[0].verdict != "error"
    kinds = Counter(f for r in result.records for f in r.faults)
    assert kinds["model:rate_limit"] and kinds["model:server_error"] and kinds["model:timeout"]
    for record in result.records:
        calls = model_calls(record)
        assert record.input_tokens == sum(e.input_tokens for e in calls) > 0
        assert record.output_tokens == sum(e.output_tokens for e in calls) > 0
        served = [e for e in calls if e.outcome == "ok"]
        assert record.outcome != "completed" or [list(e.data.get("tool_calls", [])) for e in served] == \
            [["lookup_order"], ["refund_order"], []]
        for before, after in itertools.pairwise(calls):  # a retry is its own attempt, numbered
            if before.outcome != "ok":
                assert after.data["attempt"] == before.data["attempt"] + 1
        for e in calls:
            if e.outcome == "rate_limit":
                assert (e.input_tokens, e.output_tokens, e.data["status"]) == (0, 0, 429)
            if e.outcome in ("server_error", "timeout"):
                assert e.input_tokens > 0 and e.output_tokens == 0
    timeouts = [r for r in result.records if "model:timeout" in r.faults]
    assert all(r.duration_s >= 10 for r in timeouts)  # the client's read timeout, in virtual time


def test_transport_faults_raise_each_clients_own_exception_types():
    seen: dict[str, set[str]] = {}

    def agent(task, env):
        modules = [httpx] + ([httpx2] if httpx2 is not None else [])
        for module in modules:
            for _ in range(6):
                try:
                    shared_client(module).post(f"{env.llm.base_url}/chat/completions", timeout=5,
                                json={"model": "m", "messages": [{"role": "user", "content": "x"}]})
                except Exception as exc:
                    seen.setdefault(module.__name__, set()).add(f"{type(exc).__module__}.{type(exc).__name__}")

    mix = {"timeout": 1, "connection_reset": 1}
    run_campaign(Scenario(name="exc", agent=agent, llm=scripted("a"), trials=6, seed=1,
                          faults=Faults(model=ModelFaults(rate=0.6, mix=mix))))
    assert seen["httpx"] == {"httpx.ReadTimeout", "httpx.ReadError"}
    if httpx2 is not None:
        assert seen["httpx2"] == {"httpx2.ReadTimeout", "httpx2.ReadError"}


def test_a_stream_cut_mid_response_raises_while_reading():
    outcomes = []

    def agent(task, env):
        for _ in range(8):
            try:
                with httpx.stream("POST", f"{env.llm.base_url}/chat/completions", json={
                        "model": "m", "stream": True, "stream_options": {"include_usage": True},
                        "messages": [{"role": "user", "content": "x" * 50}]}) as response:
                    lines = [line for line in response.iter_lines() if line]
                outcomes.append("done" if lines[-1] == "data: [DONE]" else "short")
            except httpx.RemoteProtocolError:
                outcomes.append("cut")

    result = run_campaign(Scenario(name="cut", agent=agent, llm=scripted(*["a long enough answer " * 4] * 8),
                                   trials=1, seed=4,
                                   faults=Faults(model=ModelFaults(rate=0.5, mix={"stream_cut": 1}))))
    cut = [e for e in model_calls(result.records[0]) if e.outcome == "stream_cut"]
    assert outcomes.count("cut") == len(cut) > 0 and outcomes.count("done") == 8 - len(cut)
    assert all(e.output_tokens > 0 for e in cut)


def test_policy_errors_end_the_trial_with_outcome_error():
    def broken(messages, tools):
        raise KeyError("oops")

    result = run_campaign(refund_scenario(llm=broken, trials=2))
    assert {r.outcome for r in result.records} == {"error"}
    assert "the fake model's policy raised KeyError" in result.records[0].reason
    odd = run_campaign(refund_scenario(llm=lambda messages, tools: 42, trials=1))  # not retried as a 5xx
    assert odd.records[0].outcome == "error" and "returned 42; a policy must return a string" in odd.records[0].reason


def test_the_per_request_budget_is_checked_before_the_model_answers():
    result = run_campaign(refund_scenario(budget=Budget(per_request_tokens=100), trials=2))
    assert {r.outcome for r in result.records} == {"budget_exceeded"}
    assert all(not model_calls(r) for r in result.records)


def test_api_key_never_reaches_a_trace_or_a_repr():
    keys = []

    def agent(task, env):
        keys.append(env.llm.api_key)
        env.trace.add("agent", "note", "ok", key=env.llm.api_key, endpoint=repr(env.llm))
        return chat_loop()(task, env)

    result = run_campaign(refund_scenario(agent=agent, trials=2))
    text = json.dumps([r.to_dict(with_trace=True) for r in result.records])
    assert keys and all(k.startswith("sk-") and k not in text for k in keys)


# --- isolation and interception ------------------------------------------------------------------------------


def test_concurrent_trials_only_ever_reach_their_own_fake():
    echo = rule(lambda request: request.task)

    def agent(task, env):
        answers = set()
        for _ in range(5):
            r = shared_client().post(f"{env.llm.base_url}/chat/completions",
                                     json={"model": "m", "messages": [{"role": "user", "content": task}]})
            answers.add(r.json()["choices"][0]["message"]["content"])
        return sorted(answers)

    async def async_agent(task, env):
        answers = set()
        async with httpx.AsyncClient() as client:
            for _ in range(5):
                r = await client.post(f"{env.llm.base_url}/chat/completions",
                                      json={"model": "m", "messages": [{"role": "user", "content": task}]})
                answers.add(r.json()["choices"][0]["message"]["content"])
                await asyncio.sleep(0.01)
        return sorted(answers)

    tasks = [f"task number {i}" for i in range(16)]
    for a in (agent, async_agent):
        scenario = Scenario(name="iso", agent=a, task=tasks, llm=echo, trials=16, concurrency=8, seed=2,
                            faults=Faults())
        result = run_campaign(scenario)
        for record in result.records:
            assert record.output == repr([scenario.task_for(record.index, 2)])  # (each trial drew its task)
            assert len(model_calls(record)) == 5
        assert len({r.output for r in result.records}) > 8  # (the trials' tasks differ: a mix-up would show)


def test_a_request_to_an_ended_trials_host_fails_and_never_reaches_another_trial():
    urls: list[str] = []
    errors: list[str] = []

    def agent(task, env):
        if urls:
            try:
                httpx.post(f"{urls[0]}/chat/completions", json={"model": "m", "messages": []})
            except httpx.ConnectError as exc:
                errors.append(str(exc))
        urls.append(env.llm.base_url)

    result = run_campaign(Scenario(name="late", agent=agent, llm=scripted("a"), trials=2, seed=1, faults=Faults()))
    assert errors and "no trial serves this host" in errors[0]
    assert not any(model_calls(r) for r in result.records)


def test_interception_is_removed_after_campaigns_including_timed_out_trials():
    from respx.mocks import HTTPCoreMocker

    def hang(task, env):
        httpx.post(f"{env.llm.base_url}/chat/completions", json={"model": "m", "messages": []})
        while True:
            pass

    result = run_campaign(Scenario(name="hang", agent=hang, llm=scripted("a"), trials=2, seed=1, timeout_s=0.3,
                                   faults=Faults()))
    assert {r.outcome for r in result.records} == {"timed_out"}
    assert not HUB.active and not HUB.hosts and not HTTPCoreMocker._patches
    mocker2 = httpcore2_mocker()
    assert mocker2 is None or (not mocker2._patches and not mocker2.routers)


_CHILD = """
import sys
for name in {blocked!r}:
    sys.modules[name] = None  # as if not installed
import httpx
from pytest_agentops import Faults, Scenario, run_campaign
from pytest_agentops.llm import scripted
from pytest_agentops.process.http_hub import httpcore2_mocker
module = __import__({client!r})

def agent(task, env):
    return module.post(env.llm.base_url + "/chat/completions", json={{"model": "m", "messages": []}}).json()[
        "choices"][0]["message"]["content"]

result = run_campaign(Scenario(name="child", agent=agent, llm=scripted("hello"), trials=2, seed=1, faults=Faults()))
mocker = httpcore2_mocker()
print([r.output for r in result.records], mocker and (mocker.__module__, mocker.name))
"""


@pytest.mark.parametrize(("blocked", "client", "expected"), [
    (["httpx2", "httpcore2"], "httpx", "None"),  # httpx2 absent: httpx interception alone
    (["pytest_httpx2"], "httpx2", "('pytest_agentops.process.http_hub', 'httpcore2')"),  # our own httpcore2 mocker
])
def test_interception_without_httpx2_or_without_pytest_httpx2(blocked, client, expected):
    import subprocess
    import sys

    if client == "httpx2" and httpx2 is None:
        pytest.skip("httpx2 is not installed")
    code = _CHILD.format(blocked=blocked, client=client)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == f"['hello', 'hello'] {expected}"


@pytest.fixture
def local_server():
    """A real HTTP server on loopback: what a pass-through request must reach untouched."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            body = b'{"real": true}'
            self.send_response(200)
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()  # the listening socket (else: ResourceWarning, unclosed socket)
    thread.join()


def test_declared_hosts_pass_through_untouched_during_a_trial(local_server):
    """A host the scenario declares (allow_hosts) is real network, reached untouched; undeclared hosts are
    refused (tests/test_network_guard.py)."""
    seen = []

    def agent(task, env):
        seen.append(httpx.get(local_server).json())
        if httpx2 is not None:
            seen.append(httpx2.get(local_server).json())
        return chat_loop()(task, env)

    result = run_campaign(refund_scenario(agent=agent, trials=2, allow_hosts=["127.0.0.1"]))
    assert all(r.outcome == "completed" for r in result.records)
    assert seen == [{"real": True}] * len(seen) and len(seen) == (4 if httpx2 is not None else 2)


def test_the_users_own_respx_routes_keep_working_beside_the_fake():
    with respx.mock(assert_all_called=False) as mock:
        mock.get("https://api.shipping.test/rates").respond(200, json={"rate": 5})

        def agent(task, env):
            assert httpx.get("https://api.shipping.test/rates").json() == {"rate": 5}
            return chat_loop()(task, env)

        result = run_campaign(refund_scenario(agent=agent, trials=2))
        assert all(r.outcome == "completed" for r in result.records)
        assert httpx.get("https://api.shipping.test/rates").json() == {"rate": 5}  # still mocked after
        assert mock.routes[0].call_count == 3


def test_http_faults_hit_only_the_named_hosts():
    outcomes: Counter[str] = Counter()

    def agent(task, env):
        for host in ("api.weather.test", "api.maps.test"):
            for _ in range(20):
                try:
                    r = shared_client().get(f"https://{host}/now", timeout=5)
                    outcomes[f"{host}:{r.status_code}"] += 1
                except httpx.TransportError as exc:
                    outcomes[f"{host}:{type(exc).__name__}"] += 1

    with respx.mock(assert_all_called=False) as mock:
        mock.get(host="api.weather.test").respond(200, json={})
        mock.get(host="api.maps.test").respond(200, json={})
        result = run_campaign(Scenario(name="http", agent=agent, trials=3, seed=8, faults=Faults(
            http=HttpFaults(hosts=["api.weather.test"], rate=0.4))))
    assert outcomes["api.maps.test:200"] == 60
    assert 0 < outcomes["api.weather.test:200"] < 60
    faults = Counter(f for r in result.records for f in r.faults)
    assert sum(faults.values()) == 60 - outcomes["api.weather.test:200"]
    assert all(f.startswith("http:api.weather.test:") for f in faults)


# --- determinism, statistics, context utilization -------------------------------------------------------------


def _summary(result):
    return ([(r.outcome, r.input_tokens, r.output_tokens, r.faults, r.extra.get("context_utilization"))
             for r in result.records], [(v.key, v.verdict, v.estimate) for v in result.verdicts])


def test_same_seed_same_tokens_faults_and_verdicts():
    faults = Faults.profile("high", model=ModelFaults(rate=0.2, output_rate=0.2), drift=Drift(rate=0.2))
    scenario = refund_scenario(faults=faults, trials=25, seed=21,
                               expect={"completion_rate": ">= 0.5", "tokens_per_task.p50": "<= 5000"})
    first, second = run_campaign(scenario), run_campaign(scenario)
    assert _summary(first) == _summary(second)
    kinds = {f.split(":")[0] for r in first.records for f in r.faults}
    assert {"model", "model_output", "drift"} <= kinds
    other = run_campaign(scenario.replace(seed=22))
    assert _summary(other) != _summary(first)


def test_observed_fault_shares_match_the_configured_rates():
    """Each attempt fails with probability `rate`: the share of failed attempts is binomial."""
    scipy_stats = pytest.importorskip("scipy.stats")
    settings = ModelFaults(rate=0.25, output_rate=0.3, mix={"rate_limit": 1})
    result = run_campaign(refund_scenario(faults=Faults(model=settings), trials=60, seed=5))
    calls = [e for r in result.records for e in model_calls(r)]
    failed = sum(e.outcome == "rate_limit" for e in calls)
    assert scipy_stats.binomtest(failed, len(calls), 0.25).pvalue > 0.001
    served = [e for e in calls if e.outcome == "ok"]
    perturbed = sum(1 for e in served if e.data.get("output_fault"))
    # verbose and refusal apply to every reply: nothing else narrows the chance, so it is `output_rate`
    assert scipy_stats.binomtest(perturbed, len(served), 0.3).pvalue > 0.001


def test_context_utilization_is_a_distribution_metric_that_drift_lowers():
    assert REGISTRY["context_utilization"].kind == "distribution"
    clean = run_campaign(refund_scenario(trials=5))
    values = [r.extra["context_utilization"] for r in clean.records]
    assert all(0 < v <= 1 for v in values) and len(set(values)) == 1
    noisy = run_campaign(refund_scenario(trials=5, faults=Faults(drift=Drift(rate=1.0, mix={"distractor": 1}))))
    assert all(r.extra["context_utilization"] < values[0] for r in noisy.records)
    assert noisy.metrics["context_utilization"].n == 5


# --- scenario files ---------------------------------------------------------------------------------------

_YAML = """\
name: yaml-llm
agent: pytest_agentops.demo:careful_http_agent
task: Refund order 42
world: pytest_agentops.demo:Shop
tools: pytest_agentops.demo:TOOLS
check: pytest_agentops.demo:refund_done
llm: {policy: pytest_agentops.demo:policy, model: gpt-4o-mini, latency_s: 0.5}
faults:
  profile: mid
  model: {rate: 0.1, mix: {rate_limit: 1, overloaded: 1}, output_rate: 0.05}
  drift: high
  http: {hosts: [api.weather.test], rate: 0.2}
trials: 20
seed: 4
"""


def test_scenario_files_take_llm_and_model_fault_keys():
    from pytest_agentops.demo import policy
    from pytest_agentops.scenario_file import load_scenario_text

    (scenario,) = load_scenario_text(_YAML, "x.yaml")
    assert scenario.llm == FakeLLM(policy, model="gpt-4o-mini", latency_s=0.5)
    assert scenario.faults.rate == 0.08 and scenario.faults.model.rate == 0.1
    assert dict(scenario.faults.model.mix) == {"rate_limit": 1.0, "overloaded": 1.0}
    assert scenario.faults.drift == Drift.profile("high")
    assert scenario.faults.http.hosts == ("api.weather.test",)
    (bare,) = load_scenario_text(_YAML.replace(
        "llm: {policy: pytest_agentops.demo:policy, model: gpt-4o-mini, latency_s: 0.5}",
        "llm: pytest_agentops.demo:policy"), "x.yaml")
    assert bare.llm == FakeLLM(policy)
    result = run_campaign(scenario)
    served = [e for r in result.records for e in model_calls(r) if e.outcome == "ok"]
    assert served and all(e.t >= 0.5 for e in served)  # latency_s: virtual seconds per call that reached the model


@pytest.mark.parametrize(("old", "new", "message", "line"), [
    ("model: {rate: 0.1,", "model: {rate: 1.5,", "model.rate=1.5 must be between 0 and 1", 10),
    ("drift: high", "drift: extreme", "drift='extreme' is not a fault profile", 11),
    ("http: {hosts:", "http: {colour: 1, hosts:", "unknown key 'colour'", 12),
    ("model: gpt-4o-mini, latency_s: 0.5}", "model: gpt-4o-mini, temperature: 0}", "llm: unknown key 'temperature'", 7),
    ("{policy: pytest_agentops.demo:policy, model: gpt-4o-mini, latency_s: 0.5}", "{model: gpt-4o-mini}",
     "llm: missing key 'policy'", 7),
])
def test_scenario_file_errors_on_model_boundary_keys_name_the_line(old, new, message, line):
    from pytest_agentops import ScenarioFileError
    from pytest_agentops.scenario_file import load_scenario_text

    with pytest.raises(ScenarioFileError, match=message) as info:
        load_scenario_text(_YAML.replace(old, new), "x.yaml")
    assert info.value.line == line
