"""The live boundary's parts on their own: settings, the rate limiter (a fake clock), reading and rewriting real
answers (JSON and SSE of the three APIs), drift applied to native requests (kept valid), cassettes (keys,
redaction, misses, fallbacks); and, against the loopback server, an upstream's own 429s waited out (not
faults) and its errors passed through to the agent as ``upstream_error``s."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_agentops import Faults, LiveLLM, run_campaign
from pytest_agentops.errors import ConfigError
from pytest_agentops.llm import replies, wire
from pytest_agentops.llm.cassette import Cassette, Recorded, cassette_path, request_key
from pytest_agentops.llm.live_drift import drift_body
from pytest_agentops.llm.perturb import DriftState
from pytest_agentops.llm.ratelimit import RateLimiter
from pytest_agentops.scenario_file import load_scenario_text
from pytest_agentops.seeding import canonical, canonical_json
from pytest_agentops.settings.model import Drift

from client_agents import openai_sync_agent, scenario
from live_support import KEY_ENV, SECRET, UpstreamServer

MESSAGE = {"role": "assistant", "content": "Looking it up.", "tool_calls": [
    {"id": "call_1", "type": "function", "function": {"name": "lookup_order", "arguments": '{"order_id": 42}'}}]}


def test_live_settings_name_a_url_and_an_environment_variable():
    live = LiveLLM(base_url="https://api.openai.com/v1/", key_env="OPENAI_API_KEY", model="gpt-4o-mini")
    assert live.base_url == "https://api.openai.com/v1" and live.host == "api.openai.com"
    assert "sk-" not in repr(live)
    with pytest.raises(ConfigError, match=r"live\.key_env='sk-abc123' must be the NAME of an environment variable"):
        LiveLLM(base_url="https://api.openai.com/v1", key_env="sk-abc123")
    with pytest.raises(ConfigError, match=r"live\.base_url='api.openai.com' must be an http\(s\) URL"):
        LiveLLM(base_url="api.openai.com", key_env="K")
    (loaded,) = load_scenario_text("name: s\nagent: scenario_support:careful\nlive: {base_url: 'http://localhost:11434"
                                   "/v1', key_env: OLLAMA_KEY, model: llama3, requests_per_minute: 60}\n")
    assert loaded.live == LiveLLM("http://localhost:11434/v1", "OLLAMA_KEY", "llama3", requests_per_minute=60)
    with pytest.raises(ConfigError, match="llm and live are both given"):
        scenario("both", openai_sync_agent, live=loaded.live)


def test_a_missing_key_is_an_error_naming_the_variable(monkeypatch):
    monkeypatch.delenv("AGENTOPS_NO_SUCH_KEY", raising=False)
    live = LiveLLM(base_url="http://127.0.0.1:9/v1", key_env="AGENTOPS_NO_SUCH_KEY")
    with pytest.raises(ConfigError, match="the environment variable AGENTOPS_NO_SUCH_KEY is not set"):
        run_campaign(scenario("no-key", openai_sync_agent, llm=None, live=live, trials=1))


def test_the_rate_limiter_keeps_requests_and_tokens_per_minute_and_the_upstreams_pauses():
    now = [0.0]
    waits: list[float] = []

    def sleep(seconds: float) -> None:
        waits.append(round(seconds, 6))
        now[0] += seconds

    limiter = RateLimiter(2, 1000, clock=lambda: now[0], sleep=sleep)
    for _ in range(2):
        limiter.acquire(100)
    limiter.acquire(100)  # a third request in the same minute waits for the first to slide out
    assert waits == [60.0]
    limiter.acquire(950)  # tokens: 200 in the window + 950 > 1000: wait for enough to slide out
    assert waits[-1] == pytest.approx(60.0) and limiter.throttled == 0
    limiter.pause(2.5)
    limiter.acquire(1)
    assert waits[-1] == pytest.approx(2.5) and limiter.throttled == 1


CHAT_SSE = b"".join(wire.chat_sse(MESSAGE, rid="x", model="m", created=1, usage=(11, 7), include_usage=True))


@pytest.mark.parametrize("api,stream", [(a, s) for a in ("chat", "messages", "responses") for s in (False, True)])
def test_answers_are_read_for_their_usage_and_message_and_written_back(api, stream):
    if api == "chat":
        body = CHAT_SSE if stream else json.dumps(wire.chat_body(MESSAGE, rid="x", model="m", created=1,
                                                                 usage=(11, 7))).encode()
    elif api == "messages":
        body = b"".join(wire.messages_sse(MESSAGE, rid="x", model="m", usage=(11, 7))) if stream else \
            json.dumps(wire.messages_body(MESSAGE, rid="x", model="m", usage=(11, 7))).encode()
    else:
        body = b"".join(wire.responses_sse(MESSAGE, rid="x", model="m", created=1, usage=(11, 7))) if stream else \
            json.dumps(wire.responses_body(MESSAGE, rid="x", model="m", created=1, usage=(11, 7))).encode()
    reply = replies.read_reply(api, body, stream)
    assert reply is not None and reply.usage == (11, 7) and reply.meta["model"] == "m"
    assert reply.message["tool_calls"][0]["function"]["name"] == "lookup_order"
    assert json.loads(reply.message["tool_calls"][0]["function"]["arguments"]) == {"order_id": 42}
    again = b"".join(replies.render(api, reply.message, reply, stream=stream, include_usage=True, model="m"))
    assert replies.read_reply(api, again, stream).message == reply.message


def test_a_usage_chunk_the_client_did_not_ask_for_is_removed():
    stripped = replies.strip_usage_chunk(CHAT_SSE)
    assert replies.read_usage("chat", CHAT_SSE, True) == (11, 7)
    assert replies.read_usage("chat", stripped, True) is None and stripped.endswith(b"data: [DONE]\n\n")
    assert replies.output_limit("chat", {"max_completion_tokens": 300}) == 300
    assert replies.output_limit("messages", {"max_tokens": 50}) == 50 and replies.output_limit("chat", {}) is None


def drifted(kinds: dict[str, int], keep_last: int = 2) -> DriftState:
    state = DriftState(Drift(rate=1.0, keep_last=keep_last, stale_facts=("STALE",), distractors=("NOTE",)))
    state.active.update(kinds)
    return state


def test_drift_on_a_chat_request_stays_valid():
    body = {"model": "m", "messages": [
        {"role": "system", "content": "sys"}, {"role": "user", "content": "task"},
        {"role": "assistant", "tool_calls": [{"id": "a"}, {"id": "b"}]},
        {"role": "tool", "tool_call_id": "a", "content": "A"}, {"role": "tool", "tool_call_id": "b", "content": "B"}]}
    out, kinds = drift_body("chat", body, drifted({"stale_fact": 0, "reorder_tool_results": 0}))
    assert kinds == ["reorder_tool_results", "stale_fact"]
    # the note never separates the tool calls from their results: it comes after them
    assert [m.get("tool_call_id") or m.get("content") for m in out["messages"][2:]] == [None, "b", "a",
                                                                                        "Reminder: STALE"]
    out, kinds = drift_body("chat", body, drifted({"truncate": 0, "drop_system": 0}))
    assert kinds == ["drop_system", "truncate"] and out["messages"][0]["role"] != "tool"  # no orphaned result
    assert out["model"] == "m" and body["messages"][0]["role"] == "system"  # the agent's own body untouched


def test_drift_on_an_anthropic_request_stays_valid():
    body = {"model": "m", "system": "sys", "max_tokens": 10, "messages": [
        {"role": "user", "content": "task"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "a"}, {"type": "tool_use", "id": "b"}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "a", "content": "A"},
                                     {"type": "tool_result", "tool_use_id": "b", "content": "B"}]}]}
    out, kinds = drift_body("messages", body, drifted({"stale_fact": 0, "reorder_tool_results": 0}))
    assert set(kinds) == {"stale_fact", "reorder_tool_results"} and out["system"] == "sys"
    last = out["messages"][-1]["content"]  # results reversed inside their message, the note after them
    assert [b.get("tool_use_id") or b.get("text") for b in last] == ["b", "a", "Reminder: STALE"]
    out, _ = drift_body("messages", body, drifted({"truncate": 0, "drop_system": 0}, keep_last=2))
    assert "system" not in out and out["messages"][0]["role"] == "user"


def test_drift_on_a_responses_request():
    body = {"model": "m", "instructions": "sys", "input": [
        {"role": "user", "content": "task"}, {"type": "function_call", "call_id": "a", "name": "f", "arguments": "{}"},
        {"type": "function_call_output", "call_id": "a", "output": "A"}]}
    out, kinds = drift_body("responses", body, drifted({"drop_system": 0, "distractor": 0}))
    assert kinds == ["drop_system", "distractor"] and "instructions" not in out
    assert out["input"][1] == {"role": "user", "content": "NOTE"}
    kept, _ = drift_body("responses", body, drifted({"distractor": 0}))
    assert kept["instructions"] == "sys"


_KEYED_BODY = {"model": "gpt-4o-mini", "messages": [{"role": "system", "content": "Be brief. \u00e9 \u2603"},
                                                   {"role": "user", "content": "Refund order 42"}],
               "temperature": 0.0, "n": 1, "stream": False, "x": [1.5, -0.0, 1e300, None, True],
               "tools": [{"type": "function", "function": {"name": "refund", "parameters": {
                   "type": "object", "properties": {"order_id": {"type": "integer"}}, "required": ["order_id"]}}}]}

_JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
                     lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner,
                                                                                 max_size=4), max_leaves=20)


def test_a_parsed_body_is_keyed_as_before_without_the_walk_that_makes_containers_exact():
    """The live boundary keys a request's parsed body (``request_key(..., parsed=True)``) without first walking it
    to make an agent's containers exact (a third of the replay's own work per call): the key is the one a cassette
    recorded before holds (pinned: the key of this body before the change)."""
    assert request_key("POST", "/chat/completions", _KEYED_BODY) == "7a239cd4776d00bffe8f32f9c96282e3"
    assert request_key("POST", "/chat/completions", json.loads(json.dumps(_KEYED_BODY)), parsed=True) == \
        "7a239cd4776d00bffe8f32f9c96282e3"


@settings(max_examples=300, deadline=None)
@given(_JSON)
def test_the_canonical_text_of_a_parsed_value_is_the_same_either_way(value):
    parsed = json.loads(json.dumps(value))
    assert canonical_json(parsed) == canonical(parsed) == canonical(value)
    assert request_key("POST", "/responses", parsed, parsed=True) == request_key("POST", "/responses", value)


def test_cassettes_key_requests_canonically_redact_and_name_what_they_miss(tmp_path):
    assert request_key("POST", "/chat/completions", {"b": 1, "a": [1]}) == \
        request_key("post", "/chat/completions", {"a": [1], "b": 1})
    path = cassette_path(tmp_path, "refund / live")
    assert path.name == "refund_live.jsonl"
    cassette = Cassette(path, secrets=[SECRET])
    answer = Recorded(200, (("content-type", "application/json"), ("set-cookie", "x")),
                      json.dumps({"echo": SECRET}).encode(), 0.0123)
    for trial, seed in ((1, 11), (0, 10)):
        cassette.add(trial=trial, seed=seed, key="k", occurrence=0, method="POST", path="/chat/completions",
                     api="chat", model="m", last_message="hi", request={"messages": []}, answer=answer)
    cassette.write()
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert [e["trial"] for e in lines] == [0, 1] and SECRET not in path.read_text()
    assert lines[0]["headers"] == {"content-type": "application/json"} and lines[0]["latency_ms"] == 12
    loaded = Cassette.load(path)
    assert loaded.find(11, "k", 0).latency_s == 0.012
    # only the trial recorded answers: another trial's answers (another seed, another occurrence) never do
    assert loaded.find(99, "k", 0) is None and loaded.find(11, "k", 1) is None
    assert loaded.find(10, "other", 0) is None
    assert "refund_live.jsonl" in str(loaded.miss("gpt-4o-mini", "Refund order 43"))
    assert "holds no trial of seed 99" in str(loaded.miss("gpt-4o-mini", "Refund order 43", 99))
    assert "holds no trial of seed" not in str(loaded.miss("gpt-4o-mini", "Refund order 43", 11))
    with pytest.raises(ConfigError, match=r"no cassette .*record one with --agent-chaos-record"):
        Cassette.load(tmp_path / "missing.jsonl")
    (tmp_path / "broken.jsonl").write_text("not json\n")
    with pytest.raises(ConfigError, match=r"broken.jsonl:1: not a cassette entry"):
        Cassette.load(tmp_path / "broken.jsonl")


def _live_campaign(server: UpstreamServer, name: str, agent: Any = openai_sync_agent, **kwargs: Any) -> Any:
    return run_campaign(scenario(name, agent, llm=None, faults=Faults(), expect={},
                                 live=LiveLLM(base_url=server.base_url, key_env=KEY_ENV, model="gpt-4o-mini"),
                                 **kwargs))


def test_an_upstreams_429s_are_waited_out_and_its_errors_reach_the_agent(monkeypatch):
    server = UpstreamServer(throttle=3)
    try:
        monkeypatch.setenv(KEY_ENV, SECRET)
        result = _live_campaign(server, "throttled", trials=4, concurrency=2)
        throttled = server.stats()["throttled"]
        monkeypatch.setenv(KEY_ENV, "sk-wrong")
        refused = _live_campaign(server, "refused", trials=1)
    finally:
        server.stop()
    assert throttled > 0 and all(r.outcome == "completed" for r in result.records)  # the agent saw no 429
    assert not any(r.faults for r in result.records)  # and no fault was recorded for them
    (record,) = refused.records
    calls = [e for e in record.trace if e.kind == "model_call"]
    assert [(e.outcome, e.data["status"]) for e in calls] == [("upstream_error", 401)] * len(calls)
    assert record.outcome == "error" and "AuthenticationError" in record.reason and not record.faults
